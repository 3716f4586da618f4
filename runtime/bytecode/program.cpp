// Small helpers over Program: hash text, lookups and instruction decoding.
#include "runtime/bytecode/program.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>

namespace saga::bytecode {

const char* to_string(Type t) {
  switch (t) {
    case Type::Any:
      return "any";
    case Type::String:
      return "string";
    case Type::Number:
      return "number";
    case Type::Bool:
      return "bool";
    case Type::List:
      return "list";
    case Type::Object:
      return "object";
  }
  return "?";
}

const char* to_string(StepKind k) {
  switch (k) {
    case StepKind::Plain:
      return "step";
    case StepKind::Pivot:
      return "pivot";
    case StepKind::Retriable:
      return "retriable";
  }
  return "step";
}

bool retries_class(const RetryPolicy& p, std::string_view cls) {
  return std::any_of(p.retry_on.begin(), p.retry_on.end(),
                     [&](const std::string& on) { return on == cls || on == kAnyClass; });
}

bool retries_every_class(const RetryPolicy& p) {
  return std::find(p.retry_on.begin(), p.retry_on.end(), kAnyClass) != p.retry_on.end();
}

bool is_await_step(const Program& p, const Step& s) {
  if (s.action >= p.actions.size()) return false;
  const Action& a = p.actions[s.action];
  return a.service == kNoService && a.name == kSignalAction;
}

bool emits(const Program& p) {
  Instruction in;
  for (uint32_t pc = 0; pc < p.code.size() && decode(p.code, pc, in); pc += in.size) {
    if (in.op == Op::EMIT) return true;
  }
  return false;
}

uint16_t format_version(const Program& p) {
  const bool kinds = std::any_of(p.steps.begin(), p.steps.end(),
                                 [](const Step& s) { return s.kind != StepKind::Plain; });
  const bool policies = std::any_of(p.policies.begin(), p.policies.end(), [](const RetryPolicy& r) {
    return r.attempts == kUnlimitedAttempts || retries_every_class(r);
  });
  const bool undo_policies = std::any_of(p.steps.begin(), p.steps.end(),
                                         [](const Step& s) { return s.undo_retry != kNone; });
  const bool pauses = std::any_of(p.policies.begin(), p.policies.end(),
                                  [](const RetryPolicy& r) { return r.then != Then::Fail; });
  const bool awaits = std::any_of(p.steps.begin(), p.steps.end(),
                                  [&](const Step& s) { return is_await_step(p, s); });
  if (awaits || emits(p)) return 6;
  if (!p.triggers.empty()) return 5;
  if (undo_policies || pauses) return 4;
  if (kinds || policies) return 3;
  return p.blocks.empty() ? 1 : 2;
}

bool valid_event_type(std::string_view type) {
  if (type.empty() || type.size() > 256) return false;
  bool segment = false;  // Inside a segment with at least one character.
  for (char c : type) {
    if (c == '.') {
      if (!segment) return false;
      segment = false;
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') {
      segment = true;
    } else {
      return false;
    }
  }
  return segment;
}

bool valid_event_path(std::string_view path) {
  const std::string_view head = path.substr(0, path.find('.'));
  bool known = false;
  for (std::string_view f : kEventFields) known = known || f == head;
  if (!known) return false;
  if (head.size() == path.size()) return true;
  if (head != "data") return false;
  // Below data: identifiers, separated by single dots.
  std::string_view rest = path.substr(head.size() + 1);
  bool segment = false;
  for (size_t i = 0; i < rest.size(); ++i) {
    const char c = rest[i];
    if (c == '.') {
      if (!segment) return false;
      segment = false;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
               (segment && std::isdigit(static_cast<unsigned char>(c)))) {
      segment = true;
    } else {
      return false;
    }
  }
  return segment;
}

uint64_t backoff_ms(const RetryPolicy& p, uint32_t retry) {
  double d = static_cast<double>(p.initial_ms);
  switch (p.backoff) {
    case Backoff::Fixed:
      break;
    case Backoff::Linear:
      d += static_cast<double>(retry - 1) * static_cast<double>(p.step_ms);
      break;
    case Backoff::Exponential:
      d *= std::pow(p.factor, retry - 1);
      break;
  }
  if (p.max_ms > 0) d = std::min(d, static_cast<double>(p.max_ms));
  return static_cast<uint64_t>(std::min(d, 1e12));
}

std::string format_duration(uint64_t ms) {
  if (ms == 0) return "0ms";
  constexpr struct {
    uint64_t ms;
    const char* suffix;
  } kUnits[] = {{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}};
  for (const auto& unit : kUnits) {
    if (ms % unit.ms == 0) return fmt::format("{}{}", ms / unit.ms, unit.suffix);
  }
  return fmt::format("{}ms", ms);
}

std::string Program::hash_hex() const {
  std::string out;
  out.reserve(32);
  for (uint8_t byte : hash) out += fmt::format("{:02x}", byte);
  return out;
}

uint32_t Program::find_saga(std::string_view name) const {
  for (uint32_t i = 0; i < sagas.size(); ++i) {
    if (sagas[i].name == name) return i;
  }
  return kNone;
}

LineEntry Program::line_at(uint32_t pc) const {
  // The last entry whose pc is at or before the instruction.
  auto it = std::upper_bound(lines.begin(), lines.end(), pc,
                             [](uint32_t p, const LineEntry& e) { return p < e.pc; });
  if (it == lines.begin()) return {pc, 0, 0};
  return *(it - 1);
}

bool decode(const std::vector<uint8_t>& code, uint32_t pc, Instruction& out) {
  if (pc >= code.size() || code[pc] >= kOpCount) return false;
  out.op = static_cast<Op>(code[pc]);
  const OpInfo& info = op_info(out.op);
  uint32_t wa = operand_width(info.a), wb = operand_width(info.b);
  out.size = 1 + wa + wb;
  if (static_cast<uint64_t>(pc) + out.size > code.size()) return false;
  auto read = [&](uint32_t at, uint32_t width) {
    uint32_t v = 0;
    for (uint32_t i = 0; i < width; ++i) v |= static_cast<uint32_t>(code[at + i]) << (8 * i);
    return v;
  };
  out.a = read(pc + 1, wa);
  out.b = read(pc + 1 + wa, wb);
  return true;
}

}  // namespace saga::bytecode
