// Idempotency obligations (`sagactl check --obligations`): the calls of each
// saga that a participant must be able to receive more than once with one
// idempotency key, so that at-least-once delivery has its effect once.
//
// Invariant: the list is complete for declared services. Every `do` of a
// service operation may be sent again with the same key (an attempt in
// doubt is sent again after a crash, and a retry policy sends it again), and
// every `undo` compensates, possibly after its do was in doubt, and is
// retried on every class; so each is listed unless its service declares the
// operation `idempotent`. Calls the engine performs (log, sleep) have no
// participant, and the http.* actions name none: neither is listed.
#include <fmt/format.h>

#include "compiler/analysis.hpp"

namespace saga::compiler {
namespace {

class Lister {
 public:
  Lister(const Analysis& a, const SourceFile& source) : a_(a), source_(source) {}

  std::vector<Obligation> saga(const ast::Saga& saga) {
    saga_ = saga.name;
    block(saga.body, "", "");
    return std::move(out_);
  }

 private:
  // [prefix] and [suffix] make a step's name in a fiber: "flight/" and "[i]".
  void block(const ast::Block& body, const std::string& prefix, const std::string& suffix) {
    for (const ast::Stmt& s : body) {
      switch (s.kind) {
        case ast::StmtKind::Step:
          if (s.step) step(*s.step, prefix, suffix);
          break;
        case ast::StmtKind::If:
          if (s.then_block) block(*s.then_block, prefix, suffix);
          if (s.else_block) block(*s.else_block, prefix, suffix);
          break;
        case ast::StmtKind::Await:
          if (s.else_block) block(*s.else_block, prefix, suffix);
          break;
        case ast::StmtKind::Parallel:
          if (s.body) {
            for (const ast::Stmt& branch : *s.body) {
              if (branch.body) block(*branch.body, prefix + branch.name + "/", suffix);
            }
          }
          break;
        case ast::StmtKind::Foreach:
          if (s.body) block(*s.body, prefix, suffix + "[i]");
          break;
        default:
          break;
      }
    }
  }

  bool idempotent(uint32_t service, const std::string& action) const {
    return a_.idempotent_services.count(service) != 0 || a_.idempotent_actions.count(action) != 0;
  }

  // "retried: up to 4 attempts on timeout, unavailable", or empty.
  std::string retried(uint32_t policy) const {
    if (policy == bytecode::kNone) return {};
    const bytecode::RetryPolicy& p = a_.policies[policy];
    if (p.retry_on.empty() || p.attempts == 1) return {};
    const bool any = bytecode::retries_every_class(p);
    const std::string on =
        any ? std::string("every class") : fmt::format("{}", fmt::join(p.retry_on, ", "));
    if (p.attempts == bytecode::kUnlimitedAttempts) {
      return fmt::format("retried until it succeeds, on {}", on);
    }
    return fmt::format("retried: up to {} attempts on {}", p.attempts, on);
  }

  void step(const ast::Step& st, const std::string& prefix, const std::string& suffix) {
    auto it = a_.steps.find(&st);
    if (it == a_.steps.end()) return;
    const StepInfo& info = it->second;
    const LineCol at = source_.locate(st.span.offset);
    const std::string key = "<instance>/" + prefix + st.name + suffix;
    if (info.service != bytecode::kNoService && !idempotent(info.service, info.action)) {
      Obligation o = base(st, info.action, at);
      o.key = key;
      if (std::string r = retried(info.policy); !r.empty()) o.why.push_back(std::move(r));
      o.why.emplace_back("in doubt: sent again after a crash");
      out_.push_back(std::move(o));
    }
    if (st.undo && info.undo_service != bytecode::kNoService &&
        !idempotent(info.undo_service, info.undo_action)) {
      Obligation o = base(st, info.undo_action, source_.locate(st.undo->span.offset));
      o.undo = true;
      o.key = key + "/undo";
      o.why.emplace_back("compensates: also after its do was in doubt (accept nothing to undo)");
      o.why.emplace_back("retried on every class");
      out_.push_back(std::move(o));
    }
  }

  Obligation base(const ast::Step& st, const std::string& action, LineCol at) const {
    Obligation o;
    o.saga = saga_;
    const size_t dot = action.find('.');
    o.service = action.substr(0, dot);
    o.op = dot == std::string::npos ? std::string() : action.substr(dot + 1);
    o.step = st.name;
    o.line = at.line;
    o.column = at.column;
    return o;
  }

  const Analysis& a_;
  const SourceFile& source_;
  std::string saga_;
  std::vector<Obligation> out_;
};

}  // namespace

std::vector<Obligation> obligations(const ast::File& file, const Analysis& analysis,
                                    const SourceFile& source) {
  std::vector<Obligation> all;
  for (const ast::Saga& saga : file.sagas) {
    std::vector<Obligation> some = Lister(analysis, source).saga(saga);
    all.insert(all.end(), some.begin(), some.end());
  }
  return all;
}

}  // namespace saga::compiler
