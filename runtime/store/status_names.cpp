// Names of instance statuses (saga/store.hpp): the words `sagactl list` prints
// and accepts ("running", "stuck", ...), and which statuses are terminal. The
// numeric values are stored in the instances.status column, so they never
// change; the names are the user-facing spelling.
#include <fmt/format.h>

#include <string_view>
#include <vector>

#include "runtime/store/status_names.hpp"
#include "saga/store.hpp"

namespace saga {
namespace {

struct StatusName {
  InstanceStatus status;
  const char* name;
};

// One row per status, in numeric order.
constexpr StatusName kNames[] = {
    {InstanceStatus::kPending, "pending"},
    {InstanceStatus::kRunning, "running"},
    {InstanceStatus::kCompensating, "compensating"},
    {InstanceStatus::kCompleted, "completed"},
    {InstanceStatus::kCompensated, "compensated"},
    {InstanceStatus::kFailed, "failed"},
    {InstanceStatus::kStuck, "stuck"},
    {InstanceStatus::kCancelled, "cancelled"},
    {InstanceStatus::kPaused, "paused"},
};

}  // namespace

const char* to_string(InstanceStatus s) {
  for (const StatusName& n : kNames) {
    if (n.status == s) return n.name;
  }
  return "unknown";
}

const std::vector<InstanceStatus>& all_statuses() {
  static const std::vector<InstanceStatus> all = [] {
    std::vector<InstanceStatus> v;
    for (const StatusName& n : kNames) v.push_back(n.status);
    return v;
  }();
  return all;
}

std::optional<InstanceStatus> parse_status(std::string_view text) {
  for (const StatusName& n : kNames) {
    if (text == n.name) return n.status;
  }
  return std::nullopt;
}

std::optional<InstanceStatus> status_of_code(int64_t code) {
  for (const StatusName& n : kNames) {
    if (static_cast<int64_t>(n.status) == code) return n.status;
  }
  return std::nullopt;
}

bool is_terminal(InstanceStatus s) {
  switch (s) {
    case InstanceStatus::kCompleted:
    case InstanceStatus::kCompensated:
    case InstanceStatus::kFailed:
    case InstanceStatus::kCancelled:
      return true;
    case InstanceStatus::kPending:
    case InstanceStatus::kRunning:
    case InstanceStatus::kCompensating:
    case InstanceStatus::kStuck:
    case InstanceStatus::kPaused:
      return false;
  }
  return false;
}

bool waits_for_operator(InstanceStatus s) {
  return s == InstanceStatus::kStuck || s == InstanceStatus::kPaused;
}

}  // namespace saga

namespace saga::store {

namespace {
const char* status_name(int64_t status) {
  const std::optional<InstanceStatus> known = status_of_code(status);
  return known ? to_string(*known) : "of an unknown status";
}
}  // namespace

Status not_postable(const std::string& id, int64_t status) {
  return {StatusCode::kFailedPrecondition,
          fmt::format("instance {} is {}: a finished instance takes no messages", id,
                      status_name(status))};
}

Status check_move(const InstanceMove& move, int64_t status, const std::string& program,
                  bool same_checkpoint, const std::vector<FiberRow>& fibers,
                  const std::string& owner, int64_t lease_until,
                  const std::function<bool(const std::string&, int64_t)>& claim_gone) {
  auto refuse = [&](const std::string& why) {
    return Status(StatusCode::kFailedPrecondition, fmt::format("instance {} {}", move.id, why));
  };
  if (status < 0 || status > 2) {
    return refuse(fmt::format("is {}: only an unfinished instance can move", status_name(status)));
  }
  if (program != move.from_program) {
    return refuse(fmt::format("runs on program {}, not {}", program, move.from_program));
  }
  if (!same_checkpoint || fibers != move.expected_fibers) {
    return refuse("changed since it was read (it ran): nothing was moved");
  }
  if (!owner.empty() && !(claim_gone && claim_gone(owner, lease_until))) {
    return refuse(
        fmt::format("is claimed by the engine {}, which still runs: stop it first", owner));
  }
  return Status::Ok();
}

}  // namespace saga::store
