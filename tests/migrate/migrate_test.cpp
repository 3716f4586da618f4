// Tests of migration (runtime/migrate): the verdict of each wait point for
// the changes a saga goes through (a step inserted before or after, renamed,
// a variable removed, an undo changed, compensating at a step), the
// translation of a state into another layout, the store's move with its
// checks, and instances that wait in a sleep moved and run to the end on the
// new program.
#include "runtime/migrate/migrate.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

#include "compiler/compile.hpp"
#include "runtime/bytecode/format.hpp"
#include "runtime/vm/checkpoint.hpp"
#include "saga/engine.hpp"
#include "tests/support/eventually.hpp"

namespace saga::migrate {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> image_of(const std::string& text) {
  auto image = compiler::compile_to_image("order.saga", text);
  EXPECT_TRUE(image.ok()) << image.status().message();
  return image.ok() ? image.value() : std::vector<uint8_t>{};
}

runtime::LinkedProgram link(const std::string& text) {
  auto program = bytecode::load(image_of(text));
  EXPECT_TRUE(program.ok());
  auto linked = runtime::verify_and_link(std::move(program).value());
  EXPECT_TRUE(linked.ok());
  return std::move(linked).value();
}

// The saga every case changes: a reservation, an hour's sleep, a charge.
// Each {..} hole takes the text a case inserts there.
std::string order(const std::string& before_nap = "", const std::string& after_nap = "",
                  const std::string& reserve = "reserve",
                  const std::string& release = "release(res: r.id)") {
  return "service inv { timeout 1s }\n"
         "saga order(id: string) {\n"
         "  step " +
         reserve + " { do inv.reserve(order: id) -> r  undo inv." + release + " }\n" + before_nap +
         "  step nap { do sleep(for: 1h) }\n" + after_nap +
         "  step charge { do inv.charge(order: id) -> c  undo inv.refund(c: c.id) }\n"
         "  output { r: r.id, c: c.id }\n"
         "}\n";
}

const WaitPoint& point(const Diff& d, const std::string& where) {
  for (const WaitPoint& w : d.points) {
    if (w.where == where) return w;
  }
  ADD_FAILURE() << "no wait point " << where;
  static const WaitPoint none;
  return none;
}

std::string reasons(const WaitPoint& w) {
  std::string out;
  for (const std::string& r : w.reasons) out += r + "\n";
  return out;
}

TEST(MigrateDiff, TheSameProgramIsSafeEverywhere) {
  auto a = link(order());
  auto b = link(order());
  Diff d = diff(a, b);
  ASSERT_EQ(d.points.size(), 6u);  // start, 3 steps, 2 undos.
  for (const WaitPoint& w : d.points) EXPECT_TRUE(w.safe) << w.where << ": " << reasons(w);
  EXPECT_EQ(point(d, "step nap (sleep)").kind, WaitKind::kAttempt);
  EXPECT_EQ(point(d, "undo of reserve").kind, WaitKind::kUndo);
}

TEST(MigrateDiff, AStepInsertedAfterTheWaitPointKeepsItSafe) {
  Diff d =
      diff(link(order()), link(order("", "  step notify { do inv.notify(order: id) -> n }\n")));
  EXPECT_TRUE(point(d, "start").safe);
  EXPECT_TRUE(point(d, "step reserve").safe);
  EXPECT_TRUE(point(d, "step nap (sleep)").safe) << reasons(point(d, "step nap (sleep)"));
  const WaitPoint& charge = point(d, "step charge");
  EXPECT_FALSE(charge.safe);
  EXPECT_NE(reasons(charge).find("NEW runs step 'notify'"), std::string::npos) << reasons(charge);
  // Compensating: the undos are the same.
  EXPECT_TRUE(point(d, "undo of charge").safe);
}

TEST(MigrateDiff, AStepInsertedBeforeTheWaitPointPinsIt) {
  Diff d = diff(link(order()), link(order("  step audit { do inv.audit(order: id) }\n")));
  EXPECT_TRUE(point(d, "step reserve").safe);
  const WaitPoint& nap = point(d, "step nap (sleep)");
  EXPECT_FALSE(nap.safe);
  EXPECT_NE(reasons(nap).find("NEW runs step 'audit' (line 4) before this point"),
            std::string::npos)
      << reasons(nap);
}

TEST(MigrateDiff, ARenamedStepPinsItAndWhatComesAfter) {
  Diff d = diff(link(order()), link(order("", "", "book")));
  const WaitPoint& reserve = point(d, "step reserve");
  EXPECT_FALSE(reserve.safe);
  EXPECT_EQ(reserve.reasons.front(), "NEW has no step 'reserve' in saga 'order'");
  EXPECT_FALSE(point(d, "step nap (sleep)").safe);
  EXPECT_FALSE(point(d, "undo of reserve").safe);
  EXPECT_TRUE(point(d, "start").safe);
}

TEST(MigrateDiff, AVariableRemovedBeforeTheWaitPointPinsIt) {
  const std::string with =
      order("  let note = \"for ${id}\"\n", "", "reserve", "release(res: r.id)");
  Diff d = diff(link(with), link(order()));
  const WaitPoint& nap = point(d, "step nap (sleep)");
  EXPECT_FALSE(nap.safe);
  EXPECT_NE(reasons(nap).find("the code before this point differs (OLD line 4, NEW line 4)"),
            std::string::npos)
      << reasons(nap);
  EXPECT_TRUE(point(d, "step reserve").safe);
}

TEST(MigrateDiff, AChangedUndoPinsEveryPointThatMayHaveToRunIt) {
  Diff d = diff(link(order()), link(order("", "", "reserve", "release(res: r.id, why: \"x\")")));
  // Waiting at reserve, nothing is on the log yet: NEW's undo applies.
  EXPECT_TRUE(point(d, "step reserve").safe) << reasons(point(d, "step reserve"));
  for (const char* where :
       {"step nap (sleep)", "step charge", "undo of reserve", "undo of charge"}) {
    const WaitPoint& w = point(d, where);
    EXPECT_FALSE(w.safe) << where;
    EXPECT_NE(reasons(w).find("the undo of step 'reserve' (line 3) differs in NEW"),
              std::string::npos)
        << where << ": " << reasons(w);
  }
}

TEST(MigrateDiff, CompensatingAtAStepNeedsItsUndoAndTheOnesBefore) {
  const std::string changed_refund =
      "service inv { timeout 1s }\n"
      "saga order(id: string) {\n"
      "  step reserve { do inv.reserve(order: id) -> r  undo inv.release(res: r.id) }\n"
      "  step nap { do sleep(for: 1h) }\n"
      "  step charge { do inv.charge(order: id) -> c  undo inv.refund(c: c.id, all: true) }\n"
      "  output { r: r.id, c: c.id }\n"
      "}\n";
  Diff d = diff(link(order()), link(changed_refund));
  EXPECT_TRUE(point(d, "undo of reserve").safe) << reasons(point(d, "undo of reserve"));
  EXPECT_FALSE(point(d, "undo of charge").safe);
  EXPECT_TRUE(point(d, "step nap (sleep)").safe);
  EXPECT_TRUE(point(d, "step charge").safe);
}

// The jump of an `if` around the wait point leads past it: where to does
// not matter for an instance that waits inside, so code after it may grow.
TEST(MigrateDiff, AnIfAroundTheWaitPointMayChangeAfterIt) {
  auto text = [](const std::string& then_after, const std::string& otherwise) {
    return "service inv { timeout 1s }\n"
           "saga order(id: string, big: bool) {\n"
           "  if big {\n"
           "    step nap { do sleep(for: 1h) }\n" +
           then_after +
           "  } else {\n"
           "    step quick { do inv.quick(order: id) }\n" +
           otherwise +
           "  }\n"
           "}\n";
  };
  Diff d = diff(link(text("", "")), link(text("    step more { do inv.more(order: id) }\n",
                                              "    step other { do inv.other(order: id) }\n")));
  EXPECT_TRUE(point(d, "step nap (sleep)").safe) << reasons(point(d, "step nap (sleep)"));
  // The else side comes after the then side: its prefix holds the then side.
  EXPECT_FALSE(point(d, "step quick").safe);
}

TEST(MigrateDiff, ChangedParametersPinEveryPoint) {
  std::string more = order();
  more.replace(more.find("id: string)"), 11, "id: string, vip: bool)");
  Diff d = diff(link(order()), link(more));
  for (const WaitPoint& w : d.points) {
    EXPECT_FALSE(w.safe) << w.where;
    EXPECT_NE(reasons(w).find("the parameters differ"), std::string::npos) << reasons(w);
  }
}

// A trip: a branch that reserves and sleeps, one that charges, [fast_extra]
// at the end of the charging branch and [after] after the block.
std::string trip(const std::string& fast_extra = "", const std::string& after = "") {
  return "service inv { timeout 1s }\n"
         "saga trip(id: string) {\n"
         "  parallel {\n"
         "    branch slow { step reserve { do inv.reserve(order: id) -> r  undo "
         "inv.release(res: r.id) }\n"
         "                  step nap { do sleep(for: 1h) } }\n"
         "    branch fast { step charge { do inv.charge(order: id) -> c } " +
         fast_extra + "}\n  }\n" + after + "  output { r: r.id, c: c.id" +
         (after.empty() ? "" : ", n: n.sent") + " }\n}\n";
}

TEST(MigrateDiff, ParallelBranchesAndTheirJoin) {
  Diff d = diff(link(trip()), link(trip("step extra { do inv.extra(t: id) }")));
  EXPECT_TRUE(point(d, "join of parallel (slow, fast)").safe)
      << reasons(point(d, "join of parallel (slow, fast)"));
  EXPECT_TRUE(point(d, "step nap (sleep)").safe);
  EXPECT_TRUE(point(d, "end of branch slow").safe);
  // The fast branch ended on OLD's code, which NEW changed.
  EXPECT_FALSE(point(d, "end of branch fast").safe);
  EXPECT_TRUE(point(d, "step charge").safe);
}

// A state of OLD waiting in the sleep, as the machine leaves it.
runtime::InstanceState waiting_in_nap(const runtime::LinkedProgram& lp) {
  runtime::InstanceState s =
      runtime::start_state(lp, 0, Value::from_json_text(R"({"id": "o-1"})").value());
  runtime::Fiber& root = s.root();
  uint32_t reserve = 0, nap = 0;
  for (uint32_t i = 0; i < lp.program.steps.size(); ++i) {
    if (lp.program.steps[i].name == "reserve") reserve = i;
    if (lp.program.steps[i].name == "nap") nap = i;
  }
  const auto& names = lp.program.sagas[0].slot_names;
  s.slots[std::find(names.begin(), names.end(), "r") - names.begin()] =
      Value::from_json_text(R"({"id": "R-1"})").value();
  root.completed.push_back({reserve, false, {}});
  bytecode::Instruction in;
  for (uint32_t pc = 0; bytecode::decode(lp.program.code, pc, in); pc += in.size) {
    if (in.op == bytecode::Op::INVOKE && in.a == nap) root.pc = pc;
  }
  root.wait = runtime::Wait::kAction;
  root.step = nap;
  root.attempt = 1;
  root.args = Value::from_json_text(R"({"for": 3600000})").value();
  root.wake_at_ms = 1'700'003'600'000;
  return s;
}

// order() with another saga first (every index and pc moves) and a let
// after the sleep (one more slot).
std::string moved_layout() {
  std::string text = order("", "  let total = 2\n");
  text.insert(text.find("saga order"),
              "saga first(a: string) { step one { do x.one(a: a) -> q  undo x.un(q: q.v) } }\n");
  text.insert(0, "service x { timeout 1s }\n");
  return text;
}

TEST(MigrateTranslate, ANewLayoutGetsEveryPositionRewritten) {
  auto old_p = link(order());
  auto new_p = link(moved_layout());
  ASSERT_EQ(new_p.program.sagas.size(), 2u);
  Diff d = diff(old_p, new_p);
  runtime::InstanceState s = waiting_in_nap(old_p);
  auto moved = translate(d, old_p, new_p, s);
  ASSERT_TRUE(moved.ok()) << moved.status().message();
  const runtime::InstanceState& t = moved.value();
  EXPECT_EQ(t.saga, 1u);
  EXPECT_EQ(t.slots.size(), new_p.program.sagas[1].slot_names.size());
  EXPECT_EQ(t.slots.size(), s.slots.size() + 1);
  const auto& names = new_p.program.sagas[1].slot_names;
  EXPECT_EQ(t.slots[std::find(names.begin(), names.end(), "r") - names.begin()].to_json(),
            nlohmann::json({{"id", "R-1"}}));
  EXPECT_EQ(new_p.program.steps[t.root().step].name, "nap");
  EXPECT_EQ(new_p.program.steps[t.root().completed[0].step].name, "reserve");
  EXPECT_NE(t.root().pc, s.root().pc);
  bytecode::Instruction in;
  ASSERT_TRUE(bytecode::decode(new_p.program.code, t.root().pc, in));
  EXPECT_EQ(in.op, bytecode::Op::INVOKE);
  EXPECT_EQ(in.a, t.root().step);
  EXPECT_EQ(t.root().wake_at_ms, s.root().wake_at_ms);
  EXPECT_EQ(t.root().args, s.root().args);
}

TEST(MigrateTranslate, CompensatingKeepsItsLogAndTheUndoAwaited) {
  auto old_p = link(order());
  auto new_p = link(moved_layout());
  // Charge failed in doubt after the sleep: its refund is awaited, reserve's
  // release is next.
  runtime::InstanceState s = waiting_in_nap(old_p);
  uint32_t charge = 0, nap = s.root().step;
  while (old_p.program.steps[charge].name != "charge") ++charge;
  runtime::Fiber& root = s.root();
  root.completed.push_back({nap, false, {}});
  s.phase = runtime::Phase::kCompensating;
  s.had_effects = true;
  s.error_class = "timeout";
  root.wait = runtime::Wait::kUndo;
  root.step = charge;
  root.attempt = 2;
  root.args = Value::from_json_text(R"({"c": null})").value();
  auto moved = translate(diff(old_p, new_p), old_p, new_p, s);
  ASSERT_TRUE(moved.ok()) << moved.status().message();
  const runtime::Fiber& t = moved->root();
  EXPECT_EQ(new_p.program.steps[t.step].name, "charge");
  EXPECT_EQ(t.pc, new_p.program.steps[t.step].undo_pc);
  EXPECT_EQ(t.attempt, 2u);
  EXPECT_EQ(t.args, root.args);
  ASSERT_EQ(t.completed.size(), 2u);
  EXPECT_EQ(new_p.program.steps[t.completed[0].step].name, "reserve");
  EXPECT_EQ(new_p.program.steps[t.completed[1].step].name, "nap");
  EXPECT_EQ(moved->phase, runtime::Phase::kCompensating);
}

TEST(MigrateTranslate, AnUnsafeWaitPointIsRefusedWithItsReason) {
  auto old_p = link(order());
  auto new_p = link(order("  step audit { do inv.audit(order: id) }\n"));
  auto moved = translate(diff(old_p, new_p), old_p, new_p, waiting_in_nap(old_p));
  ASSERT_FALSE(moved.ok());
  EXPECT_EQ(moved.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(moved.status().message().find("at step nap (sleep): NEW runs step 'audit'"),
            std::string::npos)
      << moved.status().message();
}

class MigrateStore : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("saga-migrate-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    clock_ = std::make_shared<ManualClock>();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Engine> open_engine() {
    EngineOptions options;
    options.database = (dir_ / "sagas.db").string();
    options.durability = Durability::kNormal;
    options.clock = clock_;
    auto engine = Engine::open(options);
    EXPECT_TRUE(engine.ok()) << engine.status().message();
    auto e = std::move(engine).value();
    e->register_action("inv.reserve", [this](const ActionCall& c) {
      ++reserves_;
      return nlohmann::json{{"id", "R-" + c.args["order"].get<std::string>()}};
    });
    e->register_action("inv.charge", [](const ActionCall& c) {
      return nlohmann::json{{"id", "C-" + c.args["order"].get<std::string>()}};
    });
    e->register_action("inv.notify", [this](const ActionCall& c) {
      ++notifies_;
      return nlohmann::json{{"sent", c.args["order"]}};
    });
    for (const char* undo : {"inv.release", "inv.refund"}) {
      e->register_action(undo, [](const ActionCall&) { return nlohmann::json::object(); });
    }
    return e;
  }

  std::unique_ptr<Store> open_store() {
    auto store = open_sqlite_store((dir_ / "sagas.db").string());
    EXPECT_TRUE(store.ok()) << store.status().message();
    return std::move(store).value();
  }

  bool waits_in_nap(Store& store, const std::string& id) {
    auto h = store.history(id);
    if (!h.ok()) return false;
    for (const HistoryEvent& e : h.value()) {
      if (e.kind == "step_completed" && e.step == "reserve") return true;
    }
    return false;
  }

  fs::path dir_;
  std::shared_ptr<ManualClock> clock_;
  std::atomic<int> reserves_{0}, notifies_{0};
};

const std::string kNotifyAfterNap = "  step notify { do inv.notify(order: id) -> n }\n";

std::string order_with_notify() {
  std::string text = order("", kNotifyAfterNap);
  text.replace(text.find("output { r: r.id, c: c.id }"), 27,
               "output { r: r.id, c: c.id, n: n.sent }");
  return text;
}

TEST_F(MigrateStore, InstancesInASleepMoveAndRunToTheEndOnTheNewProgram) {
  const auto old_image = image_of(order());
  const auto new_image = image_of(order_with_notify());
  auto old_p = link(order());
  auto new_p = link(order_with_notify());
  std::vector<std::string> ids;
  {
    auto engine = open_engine();
    auto hash = engine->load_program(old_image);
    ASSERT_TRUE(hash.ok());
    ASSERT_EQ(hash.value(), old_p.hash);
    for (const char* id : {"a", "b"}) {
      auto started = engine->start(hash.value(), "order", {{"id", id}});
      ASSERT_TRUE(started.ok()) << started.status().message();
      ids.push_back(started.value());
    }
    auto store = open_store();
    for (const std::string& id : ids) {
      ASSERT_TRUE(test::eventually([&] { return waits_in_nap(*store, id); })) << id;
    }
    // While the engine that runs them lives, they stay where they are.
    MoveOptions live;
    live.claim_gone = [](const std::string&, int64_t) { return false; };
    auto outcomes = move_instances(*store, diff(old_p, new_p), old_p, new_p, live);
    ASSERT_TRUE(outcomes.ok()) << outcomes.status().message();
    ASSERT_EQ(outcomes->size(), 2u);
    for (const Outcome& o : outcomes.value()) {
      EXPECT_FALSE(o.moved);
      EXPECT_NE(o.why.find("is being run by the engine"), std::string::npos) << o.why;
    }
  }
  auto store = open_store();
  ASSERT_TRUE(store->put_program(new_p.hash, "order.saga", new_image).ok());
  MoveOptions options;
  options.now_ms = clock_->now_ms();
  options.claim_gone = [](const std::string&, int64_t) { return true; };
  // A dry run says the same and writes nothing.
  options.dry_run = true;
  auto dry = move_instances(*store, diff(old_p, new_p), old_p, new_p, options);
  ASSERT_TRUE(dry.ok());
  ASSERT_EQ(dry->size(), 2u);
  EXPECT_TRUE((*dry)[0].moved);
  EXPECT_EQ((*dry)[0].where, "step nap (sleep)");
  EXPECT_EQ(store->get_instance(ids[0]).value()->program_hash, old_p.hash);
  options.dry_run = false;
  auto outcomes = move_instances(*store, diff(old_p, new_p), old_p, new_p, options);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status().message();
  for (const Outcome& o : outcomes.value()) EXPECT_TRUE(o.moved) << o.id << ": " << o.why;
  for (const std::string& id : ids) {
    EXPECT_EQ(store->get_instance(id).value()->program_hash, new_p.hash);
    auto h = store->history(id).value();
    EXPECT_EQ(h.back().kind, "migrated");
    EXPECT_EQ(h.back().message, "migrated from " + old_p.hash + " to " + new_p.hash);
  }
  // Nothing is left on OLD.
  auto again = move_instances(*store, diff(old_p, new_p), old_p, new_p, options);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
  store.reset();

  auto engine = open_engine();
  ASSERT_TRUE(engine->resume().ok());
  clock_->advance(std::chrono::hours(1) + std::chrono::seconds(1));
  for (const std::string& id : ids) {
    auto info = engine->wait(id, std::chrono::seconds(20));
    ASSERT_TRUE(info.ok()) << info.status().message();
    EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
    EXPECT_EQ(info->program_hash, new_p.hash);
    const std::string order_id = info->input["id"];
    EXPECT_EQ(info->output,
              nlohmann::json({{"r", "R-" + order_id}, {"c", "C-" + order_id}, {"n", order_id}}));
  }
  EXPECT_EQ(reserves_.load(), 2);  // Not run again.
  EXPECT_EQ(notifies_.load(), 2);  // NEW's step ran.
}

// A parallel block: the root waits at the join, one branch sleeps, the
// other has ended. All three fibers move (their rows too), and the new
// program's step after the block runs.
TEST_F(MigrateStore, AParallelBlockMovesWithEveryFiber) {
  const std::string old_text = trip();
  const std::string new_text = trip("", kNotifyAfterNap);
  auto old_p = link(old_text);
  auto new_p = link(new_text);
  std::string id;
  {
    auto engine = open_engine();
    auto hash = engine->load_program(image_of(old_text));
    ASSERT_TRUE(hash.ok());
    auto started = engine->start(hash.value(), "trip", {{"id", "t"}});
    ASSERT_TRUE(started.ok());
    id = started.value();
    auto store = open_store();
    ASSERT_TRUE(test::eventually([&] {
      auto h = store->history(id);
      int done = 0;
      for (const HistoryEvent& e : h.ok() ? h.value() : std::vector<HistoryEvent>{}) {
        done += e.kind == "step_completed";
      }
      return done == 2;  // reserve and charge: one branch sleeps, the other ended.
    }));
  }
  auto store = open_store();
  ASSERT_EQ(store->get_instance(id).value()->fibers.size(), 2u);
  ASSERT_TRUE(store->put_program(new_p.hash, "trip.saga", image_of(new_text)).ok());
  MoveOptions options;
  options.now_ms = clock_->now_ms();
  options.claim_gone = [](const std::string&, int64_t) { return true; };
  auto outcomes = move_instances(*store, diff(old_p, new_p), old_p, new_p, options);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status().message();
  ASSERT_EQ(outcomes->size(), 1u);
  EXPECT_TRUE((*outcomes)[0].moved) << (*outcomes)[0].why;
  EXPECT_EQ((*outcomes)[0].where,
            "join of parallel (slow, fast), step nap (sleep), end of branch fast");
  EXPECT_EQ(store->get_instance(id).value()->fibers.size(), 2u);
  store.reset();
  auto engine = open_engine();
  ASSERT_TRUE(engine->resume().ok());
  clock_->advance(std::chrono::hours(1) + std::chrono::seconds(1));
  auto info = engine->wait(id, std::chrono::seconds(20));
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output, nlohmann::json({{"r", "R-t"}, {"c", "C-t"}, {"n", "t"}}));
  EXPECT_EQ(reserves_.load(), 1);
  EXPECT_EQ(notifies_.load(), 1);
}

TEST_F(MigrateStore, TheMoveChecksTheRowItWasComputedFrom) {
  auto engine = open_engine();
  auto old_hash = engine->load_program(image_of(order()));
  ASSERT_TRUE(old_hash.ok());
  auto id = engine->enqueue(old_hash.value(), "order", {{"id", "p"}});
  ASSERT_TRUE(id.ok());
  engine.reset();
  auto store = open_store();
  auto row = store->get_instance(id.value()).value().value();
  InstanceMove move;
  move.id = row.id;
  move.from_program = old_hash.value();
  move.to_program = "0123456789abcdef0123456789abcdef";
  move.expected_checkpoint = row.checkpoint;
  move.event.kind = "migrated";
  auto gone = [](const std::string&, int64_t) { return true; };
  auto held = [](const std::string&, int64_t) { return false; };

  InstanceMove elsewhere = move;
  elsewhere.from_program = "ffffffffffffffffffffffffffffffff";
  Status s = store->move_instance(elsewhere, gone);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("runs on program " + old_hash.value()), std::string::npos);

  InstanceMove changed = move;
  changed.expected_checkpoint = "x";
  s = store->move_instance(changed, gone);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("changed since it was read"), std::string::npos);

  InstanceMove unknown = move;
  unknown.id = "nope";
  EXPECT_EQ(store->move_instance(unknown, gone).code(), StatusCode::kNotFound);

  // Claimed by an engine that still runs: refused, whatever else holds.
  const int64_t now = clock_->now_ms();
  ASSERT_TRUE(store->claim("77.1@elsewhere", now, now + 10'000, nullptr).ok());
  s = store->move_instance(move, held);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("is claimed by the engine 77.1@elsewhere, which still runs"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(store->get_instance(id.value()).value()->program_hash, old_hash.value());

  EXPECT_TRUE(store->move_instance(move, gone).ok());
  auto after = store->get_instance(id.value()).value().value();
  EXPECT_EQ(after.program_hash, move.to_program);
  EXPECT_EQ(after.status, InstanceStatus::kPending);
  EXPECT_EQ(store->history(id.value()).value().back().kind, "migrated");
  // Moved once: it is no longer on the old program.
  EXPECT_EQ(store->move_instance(move, gone).code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace saga::migrate
