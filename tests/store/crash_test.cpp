// Crash safety of the SQLite store (runtime/store/sqlite_store.cpp): a child
// process runs a small "engine" against the store, resuming the unfinished
// instances it finds and creating new ones, and reports every transition whose
// done callback said Ok through a pipe. The parent SIGKILLs it after a random
// number of acknowledgements (including none, which kills it while it opens
// or migrates), several rounds on the same file. After each round the parent
// reopens the database and checks that SQLite's integrity check passes, that
// every acknowledged transition is there, and that each instance row agrees
// with its history (a transition is all or nothing). Each instance also gets
// one inbox message, posted before its version-2 transition and consumed by
// it: after every kill the message is consumed exactly when that transition
// is stored (consumed once, never lost, never consumed without it).
//
// Kill points are chosen by a seeded generator; set SAGA_CRASH_SEED to replay.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <random>
#include <semaphore>
#include <string>

#include "tests/store/store_test_util.hpp"

namespace saga::store {
namespace {

using test::RawDb;
using test::TempDir;

// One acknowledgement, written to the pipe in one write() (smaller than
// PIPE_BUF, so it is atomic even when the writer is killed).
struct Ack {
  char id[24];
  uint64_t version;
};

// Each transition writes version v into the checkpoint and appends two events,
// so an instance at version v has exactly 2 * (v + 1) history events.
constexpr uint64_t kLastVersion = 7;  // Then the instance completes.
constexpr int kInFlight = 32;

std::string checkpoint_for(uint64_t version) {
  std::string c = "v=" + std::to_string(version) + ";";
  c.resize(100, '.');
  return c;
}

uint64_t version_of(const std::string& checkpoint) {
  return std::strtoull(checkpoint.c_str() + 2, nullptr, 10);
}

// The child: never returns.
[[noreturn]] void run_engine(const std::string& path, int round, int ack_fd) {
  StoreOptions options;
  options.durability = Durability::kFull;
  Result<std::unique_ptr<Store>> opened = open_sqlite_store(path, options);
  if (!opened.ok()) {
    std::fprintf(stderr, "child: %s\n", opened.status().message().c_str());
    _exit(2);
  }
  Store& store = **opened;
  std::counting_semaphore<kInFlight> slots(kInFlight);

  auto step = [&](InstanceRecord r, bool create) {
    slots.acquire();
    Transition t;
    uint64_t version = create ? 0 : version_of(r.checkpoint) + 1;
    r.checkpoint = checkpoint_for(version);
    r.status = version >= kLastVersion ? InstanceStatus::kCompleted : InstanceStatus::kRunning;
    r.updated_ms = static_cast<int64_t>(version);
    t.instance = r;
    t.create = create;
    if (version == 2) {
      // Posted again after a kill that lost the transition: refused as a
      // duplicate, and the one posted before is consumed.
      InboxMessage m{r.id + "-m", r.id, "cancel", "", 1, 0};
      Status posted = store.post(m);
      if (!posted.ok() && posted.code() != StatusCode::kInvalidArgument) _exit(6);
      t.consumed = {m.id};
    }
    for (int e = 0; e < 2; ++e) {
      HistoryEvent ev;
      ev.kind = e == 0 ? "step_started" : "step_completed";
      ev.attempt = static_cast<uint32_t>(version);
      ev.data_json = std::to_string(version);
      t.events.push_back(std::move(ev));
    }
    Ack ack{};
    std::snprintf(ack.id, sizeof ack.id, "%s", r.id.c_str());
    ack.version = version;
    store.submit(std::move(t), [ack, ack_fd, &slots](Status s) {
      if (s.ok()) {
        if (write(ack_fd, &ack, sizeof ack) != sizeof ack) _exit(3);
      } else {
        std::fprintf(stderr, "child: %s\n", s.message().c_str());
        _exit(4);
      }
      slots.release();
    });
    return r;
  };

  // Resume what a previous round left unfinished, one transition at a time
  // per instance (as the engine does: the next one after the commit).
  Result<std::vector<InstanceRecord>> unfinished = store.list_unfinished();
  if (!unfinished.ok()) _exit(5);
  std::vector<InstanceRecord> live = std::move(unfinished).value();
  for (int n = 0;; ++n) {
    InstanceRecord r;
    r.id = "r" + std::to_string(round) + "-" + std::to_string(n);
    r.program_hash = "0123456789abcdef0123456789abcdef";
    r.saga = "Crash";
    live.push_back(step(r, true));
    store.flush();  // The next transition of each instance needs the previous commit.
    std::vector<InstanceRecord> next;
    for (InstanceRecord& i : live) {
      if (version_of(i.checkpoint) < kLastVersion) next.push_back(step(i, false));
    }
    live = std::move(next);
  }
}

TEST(SqliteStoreCrash, KilledWriterLosesNoAcknowledgedTransition) {
  TempDir dir;
  const std::string path = dir.file("crash.db");
  uint32_t seed = 20240611;
  if (const char* s = std::getenv("SAGA_CRASH_SEED")) seed = std::strtoul(s, nullptr, 10);
  std::mt19937 rng(seed);
  std::map<std::string, uint64_t> acked;  // Highest acknowledged version per instance.
  constexpr int kRounds = 8;

  for (int round = 0; round < kRounds; ++round) {
    // Round 0 dies before its first acknowledgement (during open/migration).
    const int kill_after = round == 0 ? 0 : std::uniform_int_distribution<int>(1, 1500)(rng);
    SCOPED_TRACE("seed " + std::to_string(seed) + ", round " + std::to_string(round) +
                 ", killed after " + std::to_string(kill_after) + " acks");
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      run_engine(path, round, fds[1]);
    }
    close(fds[1]);

    int count = 0;
    auto read_ack = [&]() -> bool {
      Ack ack;
      size_t got = 0;
      while (got < sizeof ack) {
        ssize_t n = read(fds[0], reinterpret_cast<char*>(&ack) + got, sizeof ack - got);
        if (n <= 0) return false;
        got += static_cast<size_t>(n);
      }
      uint64_t& v = acked[ack.id];
      v = std::max(v, ack.version);
      ++count;
      return true;
    };
    while (count < kill_after && read_ack()) {
    }
    kill(pid, SIGKILL);
    while (read_ack()) {  // What the child acknowledged before it died.
    }
    close(fds[0]);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
        << "the child stopped by itself (status " << wstatus << ")";

    {
      RawDb raw(path);
      EXPECT_EQ(raw.query("PRAGMA integrity_check"), "ok");
    }
    Result<std::unique_ptr<Store>> reopened = open_sqlite_store(path);
    ASSERT_TRUE(reopened.ok()) << reopened.status().message();
    Store& store = **reopened;
    for (const auto& [id, version] : acked) {
      Result<std::optional<InstanceRecord>> r = store.get_instance(id);
      ASSERT_TRUE(r.ok() && r->has_value()) << "acknowledged instance " << id << " is missing";
      const uint64_t stored = version_of((*r)->checkpoint);
      EXPECT_GE(stored, version) << id;
      Result<std::vector<HistoryEvent>> h = store.history(id);
      ASSERT_TRUE(h.ok());
      ASSERT_EQ(h->size(), 2 * (stored + 1)) << id << " row and history disagree";
      EXPECT_EQ(h->back().attempt, stored) << id;
      RawDb raw(path);
      const std::string consumed = raw.query(
          "SELECT count(*) FROM inbox JOIN instances ON instances.num = inbox.instance "
          "WHERE instances.id = '" +
          id + "' AND consumed_ms <> 0");
      EXPECT_EQ(consumed, stored >= 2 ? "1" : "0") << id << " at version " << stored;
      if (stored >= 2) {
        EXPECT_TRUE((*r)->inbox.empty()) << id;
      }
    }
  }
  EXPECT_GT(acked.size(), 0u);
  std::printf("[          ] %d rounds (seed %u): %zu acknowledged instances checked\n", kRounds,
              seed, acked.size());
}

}  // namespace
}  // namespace saga::store
