// Helpers shared by the SQLite store tests (tests/store/*_test.cpp): a
// temporary directory removed at the end of a test, instance records with
// every field filled in, a synchronous submit, and a raw SQLite connection for
// looking at the file behind the store's back, as another process would.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <future>
#include <string>
#include <utility>

#include "saga/store.hpp"

namespace saga::store::test {

// A fresh directory under $TMPDIR (or /tmp), deleted with its contents.
class TempDir {
 public:
  TempDir() {
    std::string base = std::filesystem::temp_directory_path() / "saga-store-XXXXXX";
    char* made = mkdtemp(base.data());
    EXPECT_NE(made, nullptr) << "mkdtemp failed";
    path_ = base;
  }
  ~TempDir() {
    std::error_code ec;
    // Tests may have removed write permission; give it back before deleting.
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// An instance with every field set to something distinctive.
inline InstanceRecord make_record(const std::string& id) {
  InstanceRecord r;
  r.id = id;
  r.program_hash = "0123456789abcdef0123456789abcdef";
  r.saga = "Order";
  r.status = InstanceStatus::kRunning;
  r.input_json = R"({"order":"A-1","amount":12.5})";
  r.output_json = "";
  r.error_class = "";
  r.error_message = "";
  r.checkpoint = std::string("\x01\x00\x02\xff", 4) + " checkpoint of " + id;  // Binary.
  r.wake_at_ms = 0;
  r.created_ms = 1700000000000;
  r.updated_ms = 1700000000001;
  return r;
}

inline HistoryEvent make_event(const std::string& kind, const std::string& step, uint32_t attempt) {
  HistoryEvent e;
  e.time_ms = 1700000000100 + attempt;
  e.kind = kind;
  e.step = step;
  e.attempt = attempt;
  e.data_json = R"({"k":1})";
  return e;
}

inline Transition create_transition(const InstanceRecord& r) {
  Transition t;
  t.instance = r;
  t.create = true;
  t.events.push_back(make_event("started", "", 0));
  return t;
}

inline void expect_same(const InstanceRecord& a, const InstanceRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.program_hash, b.program_hash);
  EXPECT_EQ(a.saga, b.saga);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.input_json, b.input_json);
  EXPECT_EQ(a.output_json, b.output_json);
  EXPECT_EQ(a.error_class, b.error_class);
  EXPECT_EQ(a.error_message, b.error_message);
  EXPECT_EQ(a.checkpoint, b.checkpoint);
  EXPECT_EQ(a.wake_at_ms, b.wake_at_ms);
  EXPECT_TRUE(a.inbox == b.inbox) << a.inbox.size() << " vs " << b.inbox.size() << " messages";
  EXPECT_EQ(a.created_ms, b.created_ms);
  EXPECT_EQ(a.updated_ms, b.updated_ms);
}

inline void expect_same(const HistoryEvent& a, const HistoryEvent& b) {
  EXPECT_EQ(a.time_ms, b.time_ms);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.attempt, b.attempt);
  EXPECT_EQ(a.error_class, b.error_class);
  EXPECT_EQ(a.message, b.message);
  EXPECT_EQ(a.data_json, b.data_json);
}

inline InstanceRecord get(Store& store, const std::string& id) {
  Result<std::optional<InstanceRecord>> r = store.get_instance(id);
  EXPECT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r.ok() && r->has_value()) << "no instance " << id;
  return r.ok() && r->has_value() ? **r : InstanceRecord{};
}

// Submits one transition and waits for its done; returns the status given.
inline Status submit_and_wait(Store& store, Transition t) {
  std::promise<Status> promise;
  std::future<Status> future = promise.get_future();
  store.submit(std::move(t), [&promise](Status s) { promise.set_value(std::move(s)); });
  return future.get();
}

inline std::unique_ptr<Store> open_or_die(const std::string& path,
                                          const StoreOptions& options = {}) {
  Result<std::unique_ptr<Store>> r = open_sqlite_store(path, options);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? std::move(r).value() : nullptr;
}

// A plain SQLite connection to the same file: "another process".
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    int rc = sqlite3_open(path.c_str(), &db_);
    EXPECT_EQ(rc, SQLITE_OK) << path;
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  // Runs SQL; returns the SQLite result code.
  int exec(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  }
  // The first column of the first row as text ("" when there is none).
  std::string query(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
      const auto* p = sqlite3_column_text(st, 0);
      if (p != nullptr) out = reinterpret_cast<const char*>(p);
    }
    sqlite3_finalize(st);
    return out;
  }
  sqlite3* get() { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace saga::store::test
