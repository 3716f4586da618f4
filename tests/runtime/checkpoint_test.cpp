// Interpreter and checkpoint tests: run a program's fibers to their yield
// points, encode the state, decode it against the program, read the layouts
// of earlier versions, and refuse damaged checkpoints, by checksum and, with
// the checksum recomputed, by their structure.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <functional>

#include "compiler/compile.hpp"
#include "runtime/bytecode/verify.hpp"
#include "runtime/vm/checkpoint.hpp"
#include "runtime/vm/vm.hpp"

namespace {

using saga::Value;
using saga::runtime::Completed;
using saga::runtime::Fiber;
using saga::runtime::InstanceState;
using saga::runtime::Phase;
using saga::runtime::Stop;
using saga::runtime::Wait;

class FixedContext : public saga::stdlib::FunctionContext {
 public:
  int64_t now_ms() override { return 1'700'000'000'000; }
  void random_bytes(std::span<uint8_t> out) override {
    for (auto& b : out) b = 7;
  }
};

saga::runtime::LinkedProgram link(const std::string& text) {
  saga::SourceFile source("t.saga", text);
  saga::Diagnostics diags(source);
  auto program = saga::compiler::compile(source, diags);
  EXPECT_TRUE(program) << diags.render_text();
  auto linked = saga::runtime::verify_and_link(std::move(*program));
  EXPECT_TRUE(linked.ok()) << (linked.ok() ? "" : linked.status().message());
  return std::move(linked).value();
}

const char* kSource = R"(
service s { }
saga p(n: number, tags: list) {
  let id = uuid()
  let label = "n=${n} ${upper(tags[0])}"
  step a { do s.a(n: n * 2, label: label) -> r  undo s.undo(id: r.id, who: id) }
  if r.ok { output { r: r, label: label } } else { fail rejected "not ok: ${r}" }
}
)";

// kSource's instance stopped at step "a", awaiting its action.
InstanceState at_first_step(const saga::runtime::LinkedProgram& lp, FixedContext& ctx) {
  auto state =
      saga::runtime::start_state(lp, 0, Value::object({{"n", 21}, {"tags", Value::list({"x"})}}));
  EXPECT_EQ(saga::runtime::run(lp, state, state.root(), ctx), Stop::kInvoke);
  return state;
}

TEST(Interpreter, RunsToYieldPointsAndFinishes) {
  auto lp = link(kSource);
  FixedContext ctx;
  auto state = at_first_step(lp, ctx);
  Fiber& root = state.root();
  EXPECT_EQ(root.wait, Wait::kAction);
  EXPECT_EQ(lp.program.steps[root.step].name, "a");
  EXPECT_EQ(root.args, Value::object({{"n", 42}, {"label", "n=21 X"}}));
  root.stack.push_back(Value::object({{"ok", true}, {"id", "R1"}}));
  ASSERT_EQ(saga::runtime::run(lp, state, root, ctx), Stop::kComplete);
  EXPECT_EQ(state.output.to_json_text(), R"({"label":"n=21 X","r":{"id":"R1","ok":true}})");
}

TEST(Interpreter, FailStopsWithClassAndMessage) {
  auto lp = link(kSource);
  FixedContext ctx;
  auto state = at_first_step(lp, ctx);
  state.root().stack.push_back(Value::object({{"ok", false}}));
  ASSERT_EQ(saga::runtime::run(lp, state, state.root(), ctx), Stop::kFail);
  EXPECT_EQ(state.error_class, "rejected");
  EXPECT_EQ(state.error_message, R"(not ok: {"ok":false})");
}

TEST(Interpreter, UndoBlockComputesArgumentsFromBoundValues) {
  auto lp = link(kSource);
  FixedContext ctx;
  auto state = at_first_step(lp, ctx);
  state.root().stack.push_back(Value::object({{"ok", false}, {"id", "R9"}}));
  ASSERT_EQ(saga::runtime::run(lp, state, state.root(), ctx), Stop::kFail);
  Fiber undo;
  undo.pc = lp.program.steps[0].undo_pc;
  ASSERT_EQ(saga::runtime::run(lp, state, undo, ctx), Stop::kUndo);
  EXPECT_EQ(undo.args.find("id")->as_string(), "R9");
  EXPECT_EQ(undo.args.find("who")->as_string(), "07070707-0707-4707-8707-070707070707");
  ASSERT_EQ(saga::runtime::run(lp, state, undo, ctx), Stop::kReturned);
}

// A child fiber reads its ancestors' slots, keeps what it binds to itself,
// and its parent does not see that before the join.
TEST(Interpreter, ChildFibersSeeTheirParentsSlotsAndKeepTheirOwn) {
  auto lp = link(kSource);
  FixedContext ctx;
  auto state = at_first_step(lp, ctx);
  const uint32_t n = 0, label = 3;  // Slots: n, tags, id, label, r.
  ASSERT_EQ(lp.program.sagas[0].slot_names[label], "label");
  Fiber child;
  child.id = 1;
  child.parent = 0;
  EXPECT_EQ(saga::runtime::load_slot(state, child, n), Value(21));
  saga::runtime::store_slot(state, child, label, Value("mine"));
  EXPECT_EQ(saga::runtime::load_slot(state, child, label), Value("mine"));
  EXPECT_EQ(state.slots[label], Value("n=21 X"));
}

// Every operator computes what it says, through the compiler and the VM: a
// code generator that swapped `-` and `%`, or `<` and `>=`, fails here.
TEST(Interpreter, OperatorsComputeWhatTheySay) {
  auto lp = link(R"(
saga ops(a: number, b: number, t: bool, f: bool) {
  output {
    add: a + b, sub: a - b, mul: a * b, div: a / b, mod: a % b, neg: -a,
    lt: a < b, le: a <= b, gt: a > b, ge: a >= b, eq: a == b, ne: a != b,
    and: t and f, or: t or f, not: not t
  }
}
)");
  FixedContext ctx;
  struct Row {
    double a, b;
    const char* output;
  };
  const Row rows[] = {
      {7, 2,
       R"({"add":9,"and":false,"div":3.5,"eq":false,"ge":true,"gt":true,"le":false,"lt":false,)"
       R"("mod":1,"mul":14,"ne":true,"neg":-7,"not":false,"or":true,"sub":5})"},
      {2, 2,
       R"({"add":4,"and":false,"div":1,"eq":true,"ge":true,"gt":false,"le":true,"lt":false,)"
       R"("mod":0,"mul":4,"ne":false,"neg":-2,"not":false,"or":true,"sub":0})"},
      {-3, 5,
       R"({"add":2,"and":false,"div":-0.6,"eq":false,"ge":false,"gt":false,"le":true,"lt":true,)"
       R"("mod":-3,"mul":-15,"ne":true,"neg":3,"not":false,"or":true,"sub":-8})"},
  };
  for (const Row& r : rows) {
    auto state = saga::runtime::start_state(
        lp, 0, Value::object({{"a", r.a}, {"b", r.b}, {"t", true}, {"f", false}}));
    ASSERT_EQ(saga::runtime::run(lp, state, state.root(), ctx), Stop::kComplete);
    EXPECT_EQ(state.output.to_json_text(), r.output) << r.a << " " << r.b;
  }
}

TEST(InputValidation, NamesTheParameter) {
  auto lp = link(kSource);
  const auto& saga = lp.program.sagas[0];
  EXPECT_TRUE(
      saga::runtime::validate_input(saga, Value::object({{"n", 1}, {"tags", Value::list()}})).ok());
  auto s =
      saga::runtime::validate_input(saga, Value::object({{"n", "1"}, {"tags", Value::list()}}));
  EXPECT_EQ(s.message(), "input field 'n' must be a number, got string");
  s = saga::runtime::validate_input(saga, Value::object({{"n", 1}}));
  EXPECT_EQ(s.message(), "the input of saga 'p' is missing 'tags' (list)");
  s = saga::runtime::validate_input(saga,
                                    Value::object({{"n", 1}, {"tags", Value::list()}, {"x", 1}}));
  EXPECT_EQ(s.message(), "saga 'p' has no parameter 'x' (parameters: n, tags)");
}

// A program with a parallel block, for checkpoints with child fibers.
const char* kParallel = R"(
service s { }
saga q(items: list) {
  step first { do s.a() -> f  undo s.undo(id: f) }
  parallel {
    branch left { step l { do s.l() -> x  undo s.undo(id: x) } }
    branch right { step r { do s.r() -> y } }
  }
  output [x, y]
}
)";

// A log entry with the given detail (unset when it is empty, as a root
// step's entry is).
Completed entry(uint32_t step, bool in_doubt, saga::runtime::CompletedDetail d = {}) {
  Completed c{step, in_doubt, {}};
  if (!(d == saga::runtime::CompletedDetail{})) c.detail.mut() = std::move(d);
  return c;
}

// kParallel stopped with both branches waiting for their actions.
InstanceState forked(const saga::runtime::LinkedProgram& lp, FixedContext& ctx) {
  auto state = saga::runtime::start_state(lp, 0, Value::object({{"items", Value::list()}}));
  EXPECT_EQ(saga::runtime::run(lp, state, state.root(), ctx), Stop::kInvoke);
  state.root().stack.push_back(Value("F"));
  state.root().wait = Wait::kNone;
  state.root().completed.push_back(
      entry(0, false, {"", true, Value::object({{"id", "F"}}), "", "", {}}));
  EXPECT_EQ(saga::runtime::run(lp, state, state.root(), ctx), Stop::kFork);
  state.root().wait = Wait::kJoin;
  const auto& block = lp.program.blocks[state.root().join_block];
  for (uint32_t i = 0; i < block.branches.size(); ++i) {
    Fiber c;
    c.id = state.next_fiber++;
    c.parent = 0;
    c.block = state.root().join_block;
    c.index = i;
    c.detail.mut().prefix = block.branches[i].name + "/";
    c.pc = block.branches[i].entry_pc;
    state.fibers.push_back(std::move(c));
    EXPECT_EQ(saga::runtime::run(lp, state, state.fibers.back(), ctx), Stop::kInvoke);
  }
  return state;
}

// Encodes an instance as the store keeps it: its own checkpoint, and one per
// child fiber.
using Encoded = saga::runtime::EncodedState;
Encoded encode(const InstanceState& s) {
  return saga::runtime::encode_state(s);
}

TEST(Checkpoint, RoundTripsAtAYieldPoint) {
  auto lp = link(kSource);
  FixedContext ctx;
  auto state = at_first_step(lp, ctx);
  state.root().attempt = 3;
  state.root().earlier_attempt_in_doubt = true;
  state.root().wake_at_ms = 1234;
  state.deadline_ms = -5;
  state.root().completed.push_back(entry(0, true, {"x/a[2]", true, Value(1), "", "", {}}));
  state.root().completed.push_back(
      entry(0, false, {"", false, Value(), "type", "bad", {{entry(0, true, {"", true})}}}));
  state.root().completed.back().step = saga::bytecode::kNone;
  Encoded e = encode(state);
  auto back = saga::runtime::decode_checkpoint(lp, e.instance);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back.value() == state);
}

TEST(Checkpoint, RoundTripsFibersInTheirOwnCheckpoints) {
  auto lp = link(kParallel);
  FixedContext ctx;
  auto state = forked(lp, ctx);
  ASSERT_EQ(state.fibers.size(), 3u);
  state.fibers[1].detail.mut().locals.emplace_back(2, Value("kept"));
  Encoded e = encode(state);
  ASSERT_EQ(e.fibers.size(), 2u);
  // In any order.
  std::swap(e.fibers[0], e.fibers[1]);
  auto back = saga::runtime::decode_checkpoint(lp, e.instance, e.fibers);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back.value() == state);
  // A child without its parent's join is refused.
  std::vector<std::string> one = {e.fibers[0]};
  auto lonely = saga::runtime::decode_checkpoint(lp, encode(at_first_step(lp, ctx)).instance, one);
  EXPECT_FALSE(lonely.ok());
}

// The version 2 writer, frozen: one fiber, a flat compensation stack.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_svarint(std::string& out, int64_t v) {
  put_varint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}
void put_bytes(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}
std::string encode_v2(const InstanceState& s, uint8_t version) {
  const Fiber& f = s.root();
  std::string out;
  out.push_back(static_cast<char>(version));
  out.append(8, '\0');
  put_varint(out, s.saga);
  out.push_back(static_cast<char>(s.phase));
  put_varint(out, f.pc);
  put_varint(out, f.stack.size());
  for (const Value& v : f.stack) saga::encode(v, out);
  put_varint(out, s.slots.size());
  for (const Value& v : s.slots) saga::encode(v, out);
  put_varint(out, f.completed.size());
  for (const Completed& c : f.completed) {
    put_varint(out, c.step);
    out.push_back(static_cast<char>(c.in_doubt));
  }
  out.push_back(static_cast<char>(f.wait));
  put_varint(out, f.step == saga::bytecode::kNone ? 0 : uint64_t(f.step) + 1);
  saga::encode(f.args, out);
  put_varint(out, f.attempt);
  if (version >= 2) out.push_back(static_cast<char>(f.earlier_attempt_in_doubt));
  put_svarint(out, f.wake_at_ms);
  put_svarint(out, s.started_ms);
  put_svarint(out, s.deadline_ms);
  out.push_back(static_cast<char>(s.cancelled));
  out.push_back(static_cast<char>(s.had_effects));
  put_bytes(out, s.error_class);
  put_bytes(out, s.error_message);
  saga::encode(s.output, out);
  uint64_t sum = XXH3_64bits(out.data() + 9, out.size() - 9);
  for (int i = 0; i < 8; ++i) out[1 + i] = static_cast<char>(sum >> (8 * i));
  return out;
}

// Checkpoints of versions 1 and 2 (one fiber, no undo arguments in the
// compensation stack) still load; version 1's missing earlier-attempt flag
// is taken as true while an action is awaited, the safe side.
TEST(Checkpoint, ReadsVersions1And2) {
  auto lp = link(kSource);
  FixedContext ctx;
  auto state = at_first_step(lp, ctx);
  state.root().attempt = 2;
  state.root().completed.push_back(entry(0, true));
  auto v2 = saga::runtime::decode_checkpoint(lp, encode_v2(state, 2));
  ASSERT_TRUE(v2.ok()) << v2.status().message();
  EXPECT_TRUE(v2.value() == state);
  auto v1 = saga::runtime::decode_checkpoint(lp, encode_v2(state, 1));
  ASSERT_TRUE(v1.ok()) << v1.status().message();
  auto flagged = state;
  flagged.root().earlier_attempt_in_doubt = true;
  EXPECT_TRUE(v1.value() == flagged);
  std::string newer = encode_v2(state, 2);
  newer[0] = 4;
  auto r = saga::runtime::decode_checkpoint(lp, newer);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "checkpoint version 4 is not supported by this runtime (it reads 1 to 3)");
}

// A version 2 instance that was stuck (done, its undo's wait kept) is
// compensating and stuck now, so an operator can act on that undo.
TEST(Checkpoint, AStuckVersion2InstanceIsCompensatingAndStuck) {
  auto lp = link(kSource);
  FixedContext ctx;
  auto state = at_first_step(lp, ctx);
  state.phase = Phase::kDone;
  state.root().wait = Wait::kUndo;
  state.root().attempt = 20;
  auto back = saga::runtime::decode_checkpoint(lp, encode_v2(state, 2));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->phase, Phase::kCompensating);
  EXPECT_TRUE(back->stuck);
  EXPECT_EQ(back->root().wait, Wait::kUndo);
}

TEST(Checkpoint, RefusesEveryDamagedByteAndTruncation) {
  auto lp = link(kParallel);
  FixedContext ctx;
  auto state = forked(lp, ctx);
  Encoded e = encode(state);
  for (size_t i = 0; i < e.instance.size(); ++i) {
    std::string damaged = e.instance;
    damaged[i] ^= 0x20;
    EXPECT_FALSE(saga::runtime::decode_checkpoint(lp, damaged, e.fibers).ok()) << "byte " << i;
  }
  for (size_t n = 0; n < e.instance.size(); ++n) {
    EXPECT_FALSE(saga::runtime::decode_checkpoint(lp, e.instance.substr(0, n), e.fibers).ok()) << n;
  }
  for (size_t i = 0; i < e.fibers[0].size(); ++i) {
    std::vector<std::string> fibers = e.fibers;
    fibers[0][i] ^= 0x20;
    EXPECT_FALSE(saga::runtime::decode_checkpoint(lp, e.instance, fibers).ok()) << "byte " << i;
  }
}

// Recomputes the checksum of a damaged checkpoint, so that only the checks
// of its structure stand between it and the interpreter.
std::string reseal(std::string bytes) {
  uint64_t sum = XXH3_64bits(bytes.data() + 9, bytes.size() - 9);
  for (int i = 0; i < 8; ++i) bytes[1 + i] = static_cast<char>(sum >> (8 * i));
  return bytes;
}

// Every single-byte damage with a valid checksum either is refused or
// decodes to a state that passes every check (and so is safe to run):
// decoding never crashes, and most damage is caught by structure alone.
TEST(Checkpoint, ResealedDamageIsRefusedByStructure) {
  auto lp = link(kParallel);
  FixedContext ctx;
  auto state = forked(lp, ctx);
  Encoded e = encode(state);
  size_t refused = 0, total = 0;
  for (size_t i = 9; i < e.instance.size(); ++i) {
    for (uint8_t flip : {0x01, 0x20, 0x80}) {
      std::string damaged = e.instance;
      damaged[i] = static_cast<char>(damaged[i] ^ flip);
      auto r = saga::runtime::decode_checkpoint(lp, reseal(damaged), e.fibers);
      refused += !r.ok();
      ++total;
    }
  }
  for (size_t i = 9; i < e.fibers[1].size(); ++i) {
    std::vector<std::string> fibers = e.fibers;
    fibers[1][i] = static_cast<char>(fibers[1][i] ^ 0x01);
    fibers[1] = reseal(fibers[1]);
    refused += !saga::runtime::decode_checkpoint(lp, e.instance, fibers).ok();
    ++total;
  }
  // Values and times may change into other valid values; indexes, counts,
  // tags and the fiber tree may not.
  EXPECT_GT(refused, total / 3) << refused << " of " << total;
}

// The structure checks, one by one, each on an otherwise valid checkpoint.
TEST(Checkpoint, RefusesStatesTheProgramCannotBeIn) {
  auto lp = link(kParallel);
  FixedContext ctx;
  struct Case {
    const char* what;
    std::function<void(InstanceState&)> damage;
    const char* message;
  };
  const Case cases[] = {
      {"pc inside an instruction", [](InstanceState& s) { s.fibers[1].pc += 1; }, "resume point"},
      {"stack depth", [](InstanceState& s) { s.fibers[1].stack.push_back(Value(1)); },
       "stack depth"},
      {"root not at its join", [](InstanceState& s) { s.root().pc -= 1; }, "JOIN"},
      {"parent does not wait", [](InstanceState& s) { s.fibers[1].parent = 2; },
       "parent does not wait"},
      {"branch out of range", [](InstanceState& s) { s.fibers[2].index = 5; }, "out of range"},
      {"duplicate fiber id", [](InstanceState& s) { s.fibers[2].id = 1; }, "not unique"},
      {"id beyond next_fiber", [](InstanceState& s) { s.next_fiber = 2; }, "out of range"},
      {"next fiber 0, the root's id (found by fuzz_checkpoint: FORK gave a branch id 0)",
       [](InstanceState& s) {
         s.fibers.resize(1);
         s.next_fiber = 0;
       },
       "next fiber"},
      {"next fiber beyond kMaxFiberId",
       [](InstanceState& s) { s.next_fiber = saga::runtime::kMaxFiberId + 1; }, "next fiber"},
      {"running child that waits for nothing",
       [](InstanceState& s) { s.fibers[1].wait = Wait::kNone; }, "waits for nothing"},
      {"waits at a JOIN of no block (found by fuzz_checkpoint: read out of bounds)",
       [](InstanceState& s) {
         s.fibers[1].wait = Wait::kJoin;
         s.fibers[1].join_block = saga::bytecode::kNone;
       },
       "JOIN of no block"},
      {"a branch that waits for an undo (found by fuzz_checkpoint: it made the instance stuck "
       "while running)",
       [](InstanceState& s) { s.fibers[1].wait = Wait::kUndo; }, "undo awaited outside"},
      {"an undo of a step that has none (found by fuzz_checkpoint: the machine read past the "
       "program's actions)",
       [&lp](InstanceState& s) {
         s.fibers.resize(1);
         s.phase = Phase::kCompensating;
         s.root().wait = Wait::kUndo;
         for (uint32_t i = 0; i < lp.program.steps.size(); ++i) {
           if (lp.program.steps[i].name == "r") s.root().step = i;
         }
       },
       "a step that has none"},
      {"fibers while compensating",
       [](InstanceState& s) {
         s.phase = Phase::kCompensating;
         s.root().wait = Wait::kUndo;
         s.root().step = 0;
       },
       "not running"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto state = forked(lp, ctx);
    ASSERT_TRUE(
        saga::runtime::decode_checkpoint(lp, encode(state).instance, encode(state).fibers).ok());
    c.damage(state);
    Encoded e = encode(state);
    auto r = saga::runtime::decode_checkpoint(lp, e.instance, e.fibers);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status().message();
  }
}

}  // namespace
