// Time budgets (analysis.hpp, check_budgets): for a saga with a deadline,
// the worst-case time of each path through its body, compared with the
// deadline.
//
// Invariant: a warning is sound. The bound counts what certainly can
// happen on a path: every attempt of a step waiting its full timeout (when
// the policy retries timeouts; else one attempt does), the longest backoff
// before each retry (jitter only shortens it), a `sleep` of a constant
// duration. A loop is counted once (its number of items is not known) and a
// `parallel` block as its slowest branch, so the bound is a lower bound of
// the worst case: when it exceeds the deadline, the deadline can fire
// before the retries are exhausted. A step that can wait without a timeout
// makes the path unbounded: that is a warning of its own. Nothing after a
// pivot step counts: its completion drops the deadline.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "compiler/analysis.hpp"

namespace saga::compiler {
namespace {

// The HTTP client's timeout for a call that names none (HttpOptions::
// default_timeout_ms): a host can change it, so the bound uses it only for
// services with a url and the http.* actions.
constexpr uint64_t kHttpDefaultTimeoutMs = 30'000;

struct Part {
  const ast::Step* step = nullptr;
  double ms = 0;
  std::string how;  // "4 attempts of 2s + 3.8s of backoff"
};

struct Bound {
  double ms = 0;
  std::vector<Part> path;  // The steps of the slowest path, in order.
  bool loop = false;       // A loop on the path is counted once.
};

// "14s", rounded up to the second ("1.5s" below ten seconds).
std::string seconds(double ms) {
  if (ms < 10'000 && std::fmod(ms, 1000) != 0) return fmt::format("{:.1f}s", ms / 1000);
  return fmt::format("{}s", static_cast<uint64_t>(std::ceil(ms / 1000)));
}

class Budget {
 public:
  Budget(const Analysis& a, Diagnostics& diags) : a_(a), diags_(diags) {}

  void saga(const ast::Saga& saga, const SagaInfo& info) {
    if (info.deadline_ms == 0) return;
    deadline_ms_ = info.deadline_ms;
    const ast::Stmt* deadline = nullptr;
    for (const ast::Stmt& s : saga.body) {
      if (s.kind == ast::StmtKind::Deadline) deadline = &s;
    }
    if (deadline == nullptr) return;
    Bound b = block(saga.body);
    // An unbounded path has had its warning (a step without a timeout).
    if (std::isinf(b.ms) || b.ms <= static_cast<double>(info.deadline_ms)) return;
    std::string path;
    for (const Part& p : b.path) {
      if (p.ms == 0) continue;
      path +=
          fmt::format("{}{} {} ({})", path.empty() ? "" : ", ", p.step->name, seconds(p.ms), p.how);
    }
    diags_.warning(
        deadline->span,
        fmt::format("the deadline ({}) can fire before the retries are exhausted: the worst "
                    "case of a path is {}{}",
                    bytecode::format_duration(info.deadline_ms), seconds(b.ms),
                    b.loop ? " (a loop counted once)" : ""),
        fmt::format("the slowest path: {}; raise the deadline, or give fewer attempts or "
                    "shorter timeouts",
                    path));
  }

 private:
  Bound block(const ast::Block& body) {
    Bound total;
    for (const ast::Stmt& s : body) {
      add(total, stmt(s));
      // Once the pivot completes the deadline no longer applies: the rest of
      // this path does not count.
      if (s.kind == ast::StmtKind::Step && s.step && s.step->kind == ast::StepKind::Pivot) break;
    }
    return total;
  }

  static void add(Bound& to, const Bound& b) {
    to.ms += b.ms;
    to.loop |= b.loop;
    to.path.insert(to.path.end(), b.path.begin(), b.path.end());
  }

  static Bound slowest(Bound a, Bound b) { return b.ms > a.ms ? b : a; }

  Bound stmt(const ast::Stmt& s) {
    switch (s.kind) {
      case ast::StmtKind::Step:
        return s.step ? step(*s.step) : Bound{};
      case ast::StmtKind::If: {
        Bound then = s.then_block ? block(*s.then_block) : Bound{};
        Bound other = s.else_block ? block(*s.else_block) : Bound{};
        return slowest(std::move(then), std::move(other));
      }
      case ast::StmtKind::Parallel: {
        Bound worst;
        if (s.body) {
          for (const ast::Stmt& branch : *s.body) worst = slowest(worst, stmt(branch));
        }
        return worst;
      }
      case ast::StmtKind::Branch:
        return s.body ? block(*s.body) : Bound{};
      case ast::StmtKind::Await: {
        // Waits its whole timeout at worst, then perhaps runs its else block.
        Bound b;
        if (auto it = a_.awaits.find(&s); it != a_.awaits.end()) {
          b.ms = static_cast<double>(it->second.timeout_ms);
        }
        if (s.else_block) add(b, block(*s.else_block));
        return b;
      }
      case ast::StmtKind::Foreach: {
        Bound once = s.body ? block(*s.body) : Bound{};
        once.loop = true;
        return once;
      }
      default:
        return {};
    }
  }

  Bound step(const ast::Step& st) {
    auto it = a_.steps.find(&st);
    if (it == a_.steps.end() || !st.action) return {};
    const StepInfo& info = it->second;
    Bound b;
    // (A retriable step runs after the pivot, where the deadline no longer
    // applies: block() stops counting there.)
    if (info.action == "log" || st.kind == ast::StepKind::Retriable) return b;
    if (info.action == "sleep") {
      for (const ast::NamedArg& arg : st.action->args) {
        if (arg.name == "for" && arg.value && arg.value->kind == ast::ExprKind::Duration) {
          b.ms = arg.value->number;
          b.path.push_back({&st, b.ms, "sleep"});
        }
      }
      return b;
    }
    uint64_t timeout = info.timeout_ms;
    if (timeout == 0 && info.service != bytecode::kNoService) {
      const bytecode::Service& svc = a_.services[info.service];
      timeout = svc.timeout_ms != 0 ? svc.timeout_ms : svc.url.empty() ? 0 : kHttpDefaultTimeoutMs;
    }
    if (timeout == 0 && info.action.rfind("http.", 0) == 0) timeout = kHttpDefaultTimeoutMs;
    if (timeout == 0) {
      diags_.warning(st.name_span,
                     fmt::format("step '{}' has no timeout: with the saga's deadline ({}), an "
                                 "attempt that gets no answer waits until the deadline fires",
                                 st.name, bytecode::format_duration(deadline_ms_)),
                     "give the step a `timeout`, or its service one");
      b.ms = std::numeric_limits<double>::infinity();
      return b;
    }
    uint32_t attempts = 1;
    double backoff = 0;
    bool retries_timeouts = false;
    if (info.policy != bytecode::kNone) {
      const bytecode::RetryPolicy& p = a_.policies[info.policy];
      if (p.attempts == bytecode::kUnlimitedAttempts) {
        diags_.warning(st.retry ? st.retry->span : st.name_span,
                       fmt::format("step '{}' is retried without limit: the saga's deadline ({}) "
                                   "fires before its retries are exhausted",
                                   st.name, bytecode::format_duration(deadline_ms_)),
                       "give it a number of attempts, or make it a retriable step after the "
                       "pivot, where the deadline no longer applies");
        b.ms = std::numeric_limits<double>::infinity();
        return b;
      }
      attempts = p.attempts;
      retries_timeouts = bytecode::retries_class(p, "timeout");
      for (uint32_t r = 1; r < attempts; ++r) {
        backoff += static_cast<double>(bytecode::backoff_ms(p, r));  // Jitter only shortens it.
      }
    }
    const uint32_t slow = retries_timeouts ? attempts : 1;
    b.ms = static_cast<double>(slow) * static_cast<double>(timeout) + backoff;
    std::string how = slow == 1 ? fmt::format("an attempt of {}", seconds(timeout))
                                : fmt::format("{} attempts of {}", slow, seconds(timeout));
    if (backoff > 0) how += fmt::format(" + {} of backoff", seconds(backoff));
    b.path.push_back({&st, b.ms, how});
    return b;
  }

  const Analysis& a_;
  Diagnostics& diags_;
  uint64_t deadline_ms_ = 0;
};

}  // namespace

void check_budgets(const ast::File& file, const Analysis& analysis, Diagnostics& diags) {
  Budget budget(analysis, diags);
  for (size_t i = 0; i < file.sagas.size() && i < analysis.sagas.size(); ++i) {
    budget.saga(file.sagas[i], analysis.sagas[i]);
  }
}

}  // namespace saga::compiler
