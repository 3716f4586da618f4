// Names of instance statuses (saga/store.hpp): the words `sagactl list` prints
// and accepts ("running", "stuck", ...), and which statuses are terminal. The
// numeric values are stored in the instances.status column, so they never
// change; the names are the user-facing spelling.
#include <string_view>
#include <vector>

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
