// Encoding and validation of checkpoints (see checkpoint.hpp).
#include "runtime/vm/checkpoint.hpp"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
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
  size_t left() const { return in_.size(); }

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

// Fills in the checksum of the checkpoint that starts at `start`.
void seal(std::string& out, size_t start) {
  uint64_t sum = XXH3_64bits(out.data() + start + 9, out.size() - start - 9);
  for (int i = 0; i < 8; ++i) out[start + 1 + i] = static_cast<char>(sum >> (8 * i));
}

// kNone is written as 0, any other index as index + 1.
void put_index(std::string& out, uint32_t index) {
  put_varint(out, index == bytecode::kNone ? 0 : uint64_t(index) + 1);
}

// A log entry starts with a byte of flags that says which of its parts
// follow, so that the entry of a root step (a step and whether it is in
// doubt) costs two or three bytes, as before fibers.
constexpr uint8_t kEntryInDoubt = 1;
constexpr uint8_t kEntryNamed = 2;      // The name follows.
constexpr uint8_t kEntryArgs = 4;       // args_ready: the undo's arguments follow.
constexpr uint8_t kEntryArgsError = 8;  // The error of computing them follows.
constexpr uint8_t kEntryGroup = 16;     // The logs of a parallel group follow.
constexpr uint8_t kEntryKnown = 31;

void put_log(std::string& out, const std::vector<Completed>& log) {
  put_varint(out, log.size());
  for (const Completed& entry : log) {
    const CompletedDetail& c = *entry.detail;
    const uint8_t flags =
        (entry.in_doubt ? kEntryInDoubt : 0) | (c.name.empty() ? 0 : kEntryNamed) |
        (c.args_ready ? kEntryArgs : 0) |
        (c.args_error.empty() && c.args_error_class.empty() ? 0 : kEntryArgsError) |
        (c.group.empty() ? 0 : kEntryGroup);
    out.push_back(static_cast<char>(flags));
    put_index(out, entry.step);
    if (flags & kEntryNamed) put_bytes(out, c.name);
    if (flags & kEntryArgs) encode(c.args, out);
    if (flags & kEntryArgsError) {
      put_bytes(out, c.args_error_class);
      put_bytes(out, c.args_error);
    }
    if (flags & kEntryGroup) {
      put_varint(out, c.group.size());
      for (const std::vector<Completed>& branch : c.group) put_log(out, branch);
    }
  }
}

// A fiber starts with a byte of flags too: the parts a root fiber at an
// ordinary step does not have follow only when set.
constexpr uint8_t kFiberChild = 1;     // id, parent, block, index, prefix, suffix, locals, ended.
constexpr uint8_t kFiberJoin = 2;      // join_block, items.
constexpr uint8_t kFiberUndoName = 4;  // undo_name.
constexpr uint8_t kFiberKnown = 7;

// The fields of one fiber, for the instance's checkpoint (the root) or a
// child's own.
void put_fiber(std::string& out, const Fiber& f) {
  const FiberDetail& d = *f.detail;
  const bool child = f.id != 0 || f.parent != 0 || f.block != bytecode::kNone || f.index != 0 ||
                     !d.prefix.empty() || !d.suffix.empty() || !d.locals.empty() || f.ended;
  const bool join = f.join_block != bytecode::kNone || !d.items.is_null();
  const uint8_t flags = (child ? kFiberChild : 0) | (join ? kFiberJoin : 0) |
                        (d.undo_name.empty() ? 0 : kFiberUndoName);
  out.push_back(static_cast<char>(flags));
  if (child) {
    put_varint(out, f.id);
    put_varint(out, f.parent);
    put_index(out, f.block);
    put_varint(out, f.index);
    put_bytes(out, d.prefix);
    put_bytes(out, d.suffix);
    put_varint(out, d.locals.size());
    for (const auto& [slot, v] : d.locals) {
      put_varint(out, slot);
      encode(v, out);
    }
    out.push_back(static_cast<char>(f.ended));
  }
  put_varint(out, f.pc);
  put_varint(out, f.stack.size());
  for (const Value& v : f.stack) encode(v, out);
  out.push_back(static_cast<char>(f.wait));
  put_index(out, f.step);
  encode(f.args, out);
  put_varint(out, f.attempt);
  out.push_back(static_cast<char>(f.earlier_attempt_in_doubt));
  put_svarint(out, f.wake_at_ms);
  if (flags & kFiberUndoName) put_bytes(out, d.undo_name);
  put_log(out, f.completed);
  if (join) {
    put_index(out, f.join_block);
    encode(d.items, out);
  }
}

}  // namespace

void encode_checkpoint(const InstanceState& s, std::string& out) {
  size_t start = out.size();
  out.push_back(static_cast<char>(kCheckpointVersion));
  out.append(8, '\0');  // Checksum, filled in by seal().
  put_varint(out, s.saga);
  out.push_back(static_cast<char>(s.phase));
  put_varint(out, s.slots.size());
  for (const Value& v : s.slots) encode(v, out);
  put_varint(out, s.next_fiber);
  put_svarint(out, s.started_ms);
  put_svarint(out, s.deadline_ms);
  out.push_back(static_cast<char>(s.cancelled));
  out.push_back(static_cast<char>(s.had_effects));
  out.push_back(static_cast<char>(s.stuck));
  put_bytes(out, s.error_class);
  put_bytes(out, s.error_message);
  encode(s.output, out);
  put_fiber(out, s.root());
  seal(out, start);
}

void encode_fiber(const Fiber& f, std::string& out) {
  size_t start = out.size();
  out.push_back(static_cast<char>(kCheckpointVersion));
  out.append(8, '\0');
  put_fiber(out, f);
  seal(out, start);
}

EncodedState encode_state(const InstanceState& state) {
  EncodedState e;
  encode_checkpoint(state, e.instance);
  for (size_t i = 1; i < state.fibers.size(); ++i) {
    encode_fiber(state.fibers[i], e.fibers.emplace_back());
  }
  return e;
}

namespace {

// Checks the version byte and the checksum; the reader of the rest.
Result<Reader> open_checkpoint(std::string_view bytes, uint8_t* version) {
  if (bytes.size() < 9) return corrupt("too short");
  *version = static_cast<uint8_t>(bytes[0]);
  if (*version < 1 || *version > kCheckpointVersion) {
    return Status(StatusCode::kUnsupported,
                  fmt::format("checkpoint version {} is not supported by this runtime (it reads 1 "
                              "to {})",
                              static_cast<int>(*version), kCheckpointVersion));
  }
  uint64_t stored = 0;
  for (int i = 0; i < 8; ++i) stored |= uint64_t(static_cast<uint8_t>(bytes[1 + i])) << (8 * i);
  if (XXH3_64bits(bytes.data() + 9, bytes.size() - 9) != stored) {
    return corrupt("checksum mismatch");
  }
  return Reader(bytes.substr(9));
}

// Reads a step index written with put_index, checking it against the program.
uint32_t get_index(Reader& r, const char* what, size_t limit) {
  uint64_t v = r.varint(what);
  if (v == 0) return bytecode::kNone;
  if (v - 1 >= limit) r.fail(what, "out of range");
  return static_cast<uint32_t>(v - 1);
}

// The deepest a log's groups nest: nested blocks, bounded by the code.
constexpr int kMaxGroupDepth = 64;

void get_log(Reader& r, const bytecode::Program& p, std::vector<Completed>& log, int depth) {
  uint64_t n = r.varint("compensation log size");
  if (n > r.left()) r.fail("compensation log", "implausibly large");
  for (uint64_t i = 0; r.ok() && i < n; ++i) {
    Completed c;
    const uint8_t flags = r.byte("entry flags");
    if (flags & ~kEntryKnown) r.fail("compensation log", "unknown entry flags");
    c.step = get_index(r, "completed step", p.steps.size());
    c.in_doubt = (flags & kEntryInDoubt) != 0;
    if (flags & (kEntryNamed | kEntryArgs | kEntryArgsError | kEntryGroup)) {
      CompletedDetail& d = c.detail.mut();
      if (flags & kEntryNamed) d.name = r.bytes("step name");
      d.args_ready = (flags & kEntryArgs) != 0;
      if (d.args_ready) d.args = r.value("undo arguments");
      if (flags & kEntryArgsError) {
        d.args_error_class = r.bytes("undo arguments error class");
        d.args_error = r.bytes("undo arguments error");
      }
    }
    uint64_t groups = (flags & kEntryGroup) ? r.varint("group size") : 0;
    if ((flags & kEntryGroup) && groups == 0) r.fail("compensation log", "an empty group");
    if (groups > 0 && (c.step != bytecode::kNone || depth >= kMaxGroupDepth)) {
      r.fail("compensation log", "a group entry that is also a step, or nested too deep");
    }
    if (groups > r.left()) r.fail("compensation log", "implausibly large group");
    for (uint64_t g = 0; r.ok() && g < groups; ++g) {
      c.detail.mut().group.emplace_back();
      get_log(r, p, c.detail.mut().group.back(), depth + 1);
    }
    if (c.step == bytecode::kNone && groups == 0) r.fail("compensation log", "an empty entry");
    log.push_back(std::move(c));
  }
}

void get_fiber(Reader& r, const bytecode::Program& p, size_t slots, Fiber& f) {
  const uint8_t flags = r.byte("fiber flags");
  if (flags & ~kFiberKnown) r.fail("fiber", "unknown flags");
  if (flags & kFiberChild) {
    f.id = static_cast<uint32_t>(r.varint("fiber id"));
    f.parent = static_cast<uint32_t>(r.varint("fiber parent"));
    f.block = get_index(r, "fiber block", p.blocks.size());
    f.index = static_cast<uint32_t>(r.varint("fiber index"));
    FiberDetail& d = f.detail.mut();
    d.prefix = r.bytes("fiber prefix");
    d.suffix = r.bytes("fiber suffix");
    uint64_t locals = r.varint("local count");
    if (locals > slots) r.fail("locals", "more than the saga has slots");
    for (uint64_t i = 0; r.ok() && i < locals; ++i) {
      uint64_t slot = r.varint("local slot");
      if (slot >= slots) r.fail("locals", "slot out of range");
      d.locals.emplace_back(static_cast<uint32_t>(slot), r.value("local value"));
    }
    f.ended = r.byte("ended") != 0;
  }
  f.pc = static_cast<uint32_t>(r.varint("pc"));
  uint64_t n = r.varint("stack size");
  if (n > bytecode::kMaxStackDepth) r.fail("stack", "deeper than the verifier allows");
  for (uint64_t i = 0; r.ok() && i < n; ++i) f.stack.push_back(r.value("stack value"));
  uint8_t wait = r.byte("wait");
  if (wait > static_cast<uint8_t>(Wait::kJoin)) r.fail("wait", "unknown");
  f.wait = static_cast<Wait>(wait);
  f.step = get_index(r, "step", p.steps.size());
  f.args = r.value("arguments");
  f.attempt = static_cast<uint32_t>(r.varint("attempt"));
  f.earlier_attempt_in_doubt = r.byte("earlier attempt in doubt") != 0;
  f.wake_at_ms = r.svarint("wake time");
  if (flags & kFiberUndoName) f.detail.mut().undo_name = r.bytes("undo name");
  get_log(r, p, f.completed, 0);
  if (flags & kFiberJoin) {
    f.join_block = get_index(r, "join block", p.blocks.size());
    f.detail.mut().items = r.value("items");
  }
}

// The v1 and v2 layout: one fiber, a flat compensation stack without the
// undo's arguments (computed from the slots when the undo runs).
Status decode_v2(Reader& r, uint8_t version, const bytecode::Program& p, InstanceState& s) {
  s.saga = static_cast<uint32_t>(r.varint("saga"));
  uint8_t phase = r.byte("phase");
  Fiber f;
  f.pc = static_cast<uint32_t>(r.varint("pc"));
  uint64_t n = r.varint("stack size");
  if (n > bytecode::kMaxStackDepth) r.fail("stack", "deeper than the verifier allows");
  for (uint64_t i = 0; r.ok() && i < n; ++i) f.stack.push_back(r.value("stack value"));
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
    f.completed.push_back(c);
  }
  uint8_t wait = r.byte("wait");
  uint64_t step = r.varint("step");
  f.step = step == 0 ? bytecode::kNone : static_cast<uint32_t>(step - 1);
  f.args = r.value("arguments");
  f.attempt = static_cast<uint32_t>(r.varint("attempt"));
  // Version 1 did not say: assume the worst while an action is awaited.
  f.earlier_attempt_in_doubt =
      version >= 2 ? r.byte("earlier attempt in doubt") != 0 : wait == uint8_t(Wait::kAction);
  f.wake_at_ms = r.svarint("wake time");
  s.started_ms = r.svarint("start time");
  s.deadline_ms = r.svarint("deadline");
  s.cancelled = r.byte("cancelled") != 0;
  s.had_effects = r.byte("had effects") != 0;
  s.error_class = r.bytes("error class");
  s.error_message = r.bytes("error message");
  s.output = r.value("output");
  if (!r.ok()) return corrupt(r.error());
  if (!r.done()) return corrupt("trailing bytes");
  if (phase > static_cast<uint8_t>(Phase::kDone)) return corrupt("unknown phase");
  if (wait > static_cast<uint8_t>(Wait::kUndo)) return corrupt("unknown wait");
  if (f.step != bytecode::kNone && f.step >= p.steps.size()) return corrupt("step out of range");
  s.phase = static_cast<Phase>(phase);
  f.wait = static_cast<Wait>(wait);
  // Before version 3 a stuck instance was done with its undo's wait kept.
  if (s.phase == Phase::kDone && f.wait == Wait::kUndo) {
    s.phase = Phase::kCompensating;
    s.stuck = true;
  }
  // The undo being run had its arguments computed already (they are in
  // args): its pc is past the UNDO of its undo block.
  s.fibers.push_back(std::move(f));
  return Status::Ok();
}

// A waiting fiber must stand at a yield point the verifier proved, with the
// stack depth the code has there.
Status check_resume_point(const LinkedProgram& lp, const InstanceState& s, const Fiber& f) {
  const bytecode::Program& p = lp.program;
  if (f.wait == Wait::kNone) return Status::Ok();
  if (f.wait == Wait::kJoin) {
    if (f.join_block == bytecode::kNone || p.blocks[f.join_block].saga != s.saga) {
      return corrupt("a fiber waits at a JOIN of no block of its saga");
    }
    bytecode::Instruction in;
    if (f.pc >= p.code.size() || f.pc >= lp.depth_at.size() || lp.depth_at[f.pc] != 0 ||
        !bytecode::decode(p.code, f.pc, in) || in.op != bytecode::Op::JOIN ||
        in.a != f.join_block) {
      return corrupt("a fiber's pc is not the JOIN it waits at");
    }
    if (!f.stack.empty()) return corrupt("stack depth does not match the program");
    return Status::Ok();
  }
  if (f.step == bytecode::kNone || p.steps[f.step].saga != s.saga) {
    return corrupt("step out of range");
  }
  // An undo awaited in compensation runs from the arguments in the fiber;
  // its pc is not used. Its step must have one.
  if (f.wait == Wait::kUndo) {
    if (p.steps[f.step].undo_action == bytecode::kNone) {
      return corrupt("an undo awaited at a step that has none");
    }
    return Status::Ok();
  }
  if (f.pc >= lp.depth_at.size() || lp.depth_at[f.pc] < 0) {
    return corrupt("pc is not a resume point");
  }
  // INVOKE's result is pushed when the action completes.
  size_t expected = static_cast<size_t>(lp.depth_at[f.pc]) - 1;
  if (lp.depth_at[f.pc] < 1 || f.stack.size() != expected) {
    return corrupt("stack depth does not match the program");
  }
  return Status::Ok();
}

}  // namespace

Result<InstanceState> decode_checkpoint(const LinkedProgram& lp, std::string_view bytes,
                                        std::span<const std::string> children) {
  const bytecode::Program& p = lp.program;
  uint8_t version = 0;
  auto opened = open_checkpoint(bytes, &version);
  if (!opened.ok()) return opened.status();
  Reader& r = opened.value();
  InstanceState s;
  if (version < 3) {
    if (!children.empty()) return corrupt("fibers with a checkpoint of version 1 or 2");
    Status st = decode_v2(r, version, p, s);
    if (!st.ok()) return st;
  } else {
    s.saga = static_cast<uint32_t>(r.varint("saga"));
    uint8_t phase = r.byte("phase");
    uint64_t n = r.varint("slot count");
    if (s.saga >= p.sagas.size()) r.fail("saga", "out of range");
    if (r.ok() && n != p.sagas[s.saga].slot_names.size()) {
      r.fail("slots", "count does not match the saga");
    }
    for (uint64_t i = 0; r.ok() && i < n; ++i) s.slots.push_back(r.value("slot value"));
    const uint64_t next_fiber = r.varint("next fiber");
    // The root is fiber 0, so the next id is at least 1.
    if (next_fiber == 0 || next_fiber > kMaxFiberId) r.fail("next fiber", "out of range");
    s.next_fiber = static_cast<uint32_t>(next_fiber);
    s.started_ms = r.svarint("start time");
    s.deadline_ms = r.svarint("deadline");
    s.cancelled = r.byte("cancelled") != 0;
    s.had_effects = r.byte("had effects") != 0;
    s.stuck = r.byte("stuck") != 0;
    s.error_class = r.bytes("error class");
    s.error_message = r.bytes("error message");
    s.output = r.value("output");
    if (phase > static_cast<uint8_t>(Phase::kDone)) r.fail("phase", "unknown");
    s.phase = static_cast<Phase>(phase);
    Fiber root;
    if (r.ok()) get_fiber(r, p, s.slots.size(), root);
    if (!r.ok()) return corrupt(r.error());
    if (!r.done()) return corrupt("trailing bytes");
    if (root.id != 0 || root.parent != 0 || root.block != bytecode::kNone ||
        !root.detail->locals.empty()) {
      return corrupt("the root fiber is not a root");
    }
    s.fibers.push_back(std::move(root));
    for (const std::string& child : children) {
      uint8_t v = 0;
      auto cr = open_checkpoint(child, &v);
      if (!cr.ok()) return cr.status();
      if (v < 3) return corrupt("a fiber checkpoint of version 1 or 2");
      Fiber f;
      get_fiber(cr.value(), p, s.slots.size(), f);
      if (!cr.value().ok()) return corrupt(cr.value().error());
      if (!cr.value().done()) return corrupt("trailing bytes in a fiber");
      s.fibers.push_back(std::move(f));
    }
  }
  if (s.saga >= p.sagas.size()) return corrupt("saga out of range");

  // The fiber tree: ids unique and below next_fiber, every child's parent
  // present and waiting at the JOIN of the child's block, in the saga.
  if (s.fibers.size() > 1 && s.phase != Phase::kForward) {
    return corrupt("fibers of an instance that is not running");
  }
  std::sort(s.fibers.begin() + 1, s.fibers.end(),
            [](const Fiber& a, const Fiber& b) { return a.id < b.id; });
  for (size_t i = 1; i < s.fibers.size(); ++i) {
    const Fiber& f = s.fibers[i];
    if (f.id == 0 || f.id >= s.next_fiber || f.id == s.fibers[i - 1].id) {
      return corrupt("fiber ids are not unique or out of range");
    }
    const Fiber* parent = s.fiber(f.parent);
    if (parent == nullptr || f.block == bytecode::kNone || parent->wait != Wait::kJoin ||
        parent->join_block != f.block || f.parent >= f.id) {
      return corrupt("a fiber whose parent does not wait for it");
    }
    const bytecode::Block& block = p.blocks[f.block];
    const size_t count = block.kind == bytecode::Block::Kind::Parallel
                             ? block.branches.size()
                             : parent->detail->items.size();
    if (f.index >= count) return corrupt("a fiber's branch or item is out of range");
  }
  for (const Fiber& f : s.fibers) {
    // Undos run one at a time on the root, once compensation has begun
    // (runtime/engine/machine.cpp, next_undo): the machine would take an
    // undo awaited anywhere else for a compensation that gave up.
    if (f.wait == Wait::kUndo && (f.id != 0 || s.phase != Phase::kCompensating)) {
      return corrupt("an undo awaited outside compensation");
    }
    // Then the resume point: it checks that a join_block is one (a fiber
    // that waits at a JOIN may come without one).
    Status ok = check_resume_point(lp, s, f);
    if (!ok.ok()) return ok;
    if (f.wait == Wait::kJoin && p.blocks[f.join_block].kind == bytecode::Block::Kind::Foreach &&
        !f.detail->items.is_list()) {
      return corrupt("a foreach's items are not a list");
    }
    if (f.ended && f.wait != Wait::kNone) return corrupt("an ended fiber that waits");
    if (!f.ended && f.id != 0 && f.wait == Wait::kNone) {
      return corrupt("a running fiber that waits for nothing");
    }
  }
  const Fiber& root = s.root();
  if (root.wait == Wait::kNone && s.phase != Phase::kDone) return corrupt("not at a yield point");
  if (s.phase == Phase::kCompensating && root.wait != Wait::kUndo) {
    return corrupt("compensating without an undo to wait for");
  }
  if (s.stuck && s.phase != Phase::kCompensating) return corrupt("stuck but not compensating");
  return s;
}

}  // namespace saga::runtime
