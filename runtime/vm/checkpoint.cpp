// Encoding and validation of checkpoints (see checkpoint.hpp).
#include "runtime/vm/checkpoint.hpp"

#include <fmt/format.h>
#include <xxhash.h>

#include <cstring>

namespace saga::runtime {
namespace {

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// Zig-zag for signed times.
void put_svarint(std::string& out, int64_t v) {
  put_varint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}

void put_bytes(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  bool done() const { return in_.empty(); }

  uint64_t varint(const char* what) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in_.empty()) return fail(what, "truncated");
      auto byte = static_cast<uint8_t>(in_[0]);
      in_.remove_prefix(1);
      v |= uint64_t(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
    return fail(what, "overlong varint");
  }
  int64_t svarint(const char* what) {
    uint64_t z = varint(what);
    return static_cast<int64_t>((z >> 1) ^ (~(z & 1) + 1));
  }
  uint8_t byte(const char* what) {
    if (in_.empty()) return static_cast<uint8_t>(fail(what, "truncated"));
    auto b = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return b;
  }
  std::string bytes(const char* what) {
    uint64_t n = varint(what);
    if (!ok_) return {};
    if (n > in_.size()) return fail(what, "truncated"), std::string();
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  Value value(const char* what) {
    if (!ok_) return {};
    auto v = decode(in_);
    if (!v.ok()) {
      fail(what, v.status().message().c_str());
      return {};
    }
    return std::move(v).value();
  }
  uint64_t fail(const char* what, const char* why) {
    if (ok_) error_ = fmt::format("{}: {}", what, why);
    ok_ = false;
    return 0;
  }

 private:
  std::string_view in_;
  bool ok_ = true;
  std::string error_;
};

Status corrupt(const std::string& why) {
  return Status(StatusCode::kCorrupt, "corrupted checkpoint: " + why);
}

}  // namespace

void encode_checkpoint(const InstanceState& s, std::string& out) {
  size_t start = out.size();
  out.push_back(static_cast<char>(kCheckpointVersion));
  out.append(8, '\0');  // Checksum, filled in below.
  put_varint(out, s.saga);
  out.push_back(static_cast<char>(s.phase));
  put_varint(out, s.pc);
  put_varint(out, s.stack.size());
  for (const Value& v : s.stack) encode(v, out);
  put_varint(out, s.slots.size());
  for (const Value& v : s.slots) encode(v, out);
  put_varint(out, s.completed.size());
  for (const Completed& c : s.completed) {
    put_varint(out, c.step);
    out.push_back(static_cast<char>(c.in_doubt));
  }
  out.push_back(static_cast<char>(s.wait));
  put_varint(out, s.step == bytecode::kNone ? 0 : uint64_t(s.step) + 1);
  encode(s.args, out);
  put_varint(out, s.attempt);
  out.push_back(static_cast<char>(s.earlier_attempt_in_doubt));
  put_svarint(out, s.wake_at_ms);
  put_svarint(out, s.started_ms);
  put_svarint(out, s.deadline_ms);
  out.push_back(static_cast<char>(s.cancelled));
  out.push_back(static_cast<char>(s.had_effects));
  put_bytes(out, s.error_class);
  put_bytes(out, s.error_message);
  encode(s.output, out);
  uint64_t sum = XXH3_64bits(out.data() + start + 9, out.size() - start - 9);
  for (int i = 0; i < 8; ++i) out[start + 1 + i] = static_cast<char>(sum >> (8 * i));
}

Result<InstanceState> decode_checkpoint(const LinkedProgram& lp, std::string_view bytes) {
  const bytecode::Program& p = lp.program;
  if (bytes.size() < 9) return corrupt("too short");
  const auto version = static_cast<uint8_t>(bytes[0]);
  if (version != kCheckpointVersion && version != 1) {
    return Status(StatusCode::kUnsupported,
                  fmt::format("checkpoint version {} is not supported by this runtime (it reads 1 "
                              "to {})",
                              static_cast<int>(version), kCheckpointVersion));
  }
  uint64_t stored = 0;
  for (int i = 0; i < 8; ++i) stored |= uint64_t(static_cast<uint8_t>(bytes[1 + i])) << (8 * i);
  if (XXH3_64bits(bytes.data() + 9, bytes.size() - 9) != stored)
    return corrupt("checksum mismatch");

  Reader r(bytes.substr(9));
  InstanceState s;
  s.saga = static_cast<uint32_t>(r.varint("saga"));
  uint8_t phase = r.byte("phase");
  s.pc = static_cast<uint32_t>(r.varint("pc"));
  uint64_t n = r.varint("stack size");
  if (n > bytecode::kMaxStackDepth) r.fail("stack", "deeper than the verifier allows");
  for (uint64_t i = 0; r.ok() && i < n; ++i) s.stack.push_back(r.value("stack value"));
  n = r.varint("slot count");
  if (s.saga < p.sagas.size() && n != p.sagas[s.saga].slot_names.size()) {
    r.fail("slots", "count does not match the saga");
  }
  for (uint64_t i = 0; r.ok() && i < n; ++i) s.slots.push_back(r.value("slot value"));
  n = r.varint("compensation stack size");
  if (n > p.steps.size() * 64 + 64) r.fail("compensation stack", "implausibly large");
  for (uint64_t i = 0; r.ok() && i < n; ++i) {
    Completed c;
    c.step = static_cast<uint32_t>(r.varint("completed step"));
    c.in_doubt = r.byte("in doubt") != 0;
    if (c.step >= p.steps.size()) r.fail("compensation stack", "step out of range");
    s.completed.push_back(c);
  }
  uint8_t wait = r.byte("wait");
  uint64_t step = r.varint("step");
  s.step = step == 0 ? bytecode::kNone : static_cast<uint32_t>(step - 1);
  s.args = r.value("arguments");
  s.attempt = static_cast<uint32_t>(r.varint("attempt"));
  // Version 1 did not say: assume the worst while an action is awaited.
  s.earlier_attempt_in_doubt =
      version >= 2 ? r.byte("earlier attempt in doubt") != 0 : wait == uint8_t(Wait::kAction);
  s.wake_at_ms = r.svarint("wake time");
  s.started_ms = r.svarint("start time");
  s.deadline_ms = r.svarint("deadline");
  s.cancelled = r.byte("cancelled") != 0;
  s.had_effects = r.byte("had effects") != 0;
  s.error_class = r.bytes("error class");
  s.error_message = r.bytes("error message");
  s.output = r.value("output");
  if (!r.ok()) return corrupt(r.error());
  if (!r.done()) return corrupt("trailing bytes");

  // Indexes and the resume point must fit the verified program.
  if (s.saga >= p.sagas.size()) return corrupt("saga out of range");
  if (phase > static_cast<uint8_t>(Phase::kDone)) return corrupt("unknown phase");
  if (wait > static_cast<uint8_t>(Wait::kUndo)) return corrupt("unknown wait");
  s.phase = static_cast<Phase>(phase);
  s.wait = static_cast<Wait>(wait);
  if (s.wait == Wait::kNone && s.phase != Phase::kDone) return corrupt("not at a yield point");
  if (s.wait != Wait::kNone) {
    if (s.step >= p.steps.size() || p.steps[s.step].saga != s.saga) {
      return corrupt("step out of range");
    }
    if (s.pc >= lp.depth_at.size() || lp.depth_at[s.pc] < 0)
      return corrupt("pc is not a resume point");
    // INVOKE's result is pushed when the action completes; UNDO pushes nothing.
    size_t expected = static_cast<size_t>(lp.depth_at[s.pc]) - (s.wait == Wait::kAction ? 1 : 0);
    if (s.stack.size() != expected) return corrupt("stack depth does not match the program");
  }
  return s;
}

}  // namespace saga::runtime
