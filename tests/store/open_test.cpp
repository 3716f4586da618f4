// Opening a database with the SQLite store (runtime/store/sqlite_store.cpp,
// schema.cpp): a new file gets the latest schema; files that are not Saga
// databases, newer schemas, locked, read-only and unopenable files are refused
// with the documented code and message and are left unchanged; migrations run
// in order, in one transaction, and a failing one changes nothing.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "runtime/store/schema.hpp"
#include "runtime/store/sqlite_db.hpp"
#include "tests/store/store_test_util.hpp"

namespace saga::store {
namespace {

using test::contains;
using test::create_transition;
using test::make_record;
using test::open_or_die;
using test::RawDb;
using test::submit_and_wait;
using test::TempDir;

Status open_status(const std::string& path, const StoreOptions& options = {}) {
  Result<std::unique_ptr<Store>> r = open_sqlite_store(path, options);
  return r.ok() ? Status::Ok() : r.status();
}

// Makes a Saga database with one instance in it and closes it.
void make_saga_db(const std::string& path) {
  auto store = open_or_die(path);
  ASSERT_TRUE(store);
  ASSERT_TRUE(submit_and_wait(*store, create_transition(make_record("a"))).ok());
}

TEST(SqliteStoreOpen, NewFileGetsTheLatestSchema) {
  TempDir dir;
  const std::string path = dir.file("new.db");
  auto store = open_or_die(path);
  ASSERT_TRUE(store);
  store.reset();
  RawDb raw(path);
  EXPECT_EQ(raw.query("PRAGMA user_version"), std::to_string(latest_schema_version()));
  EXPECT_EQ(raw.query("PRAGMA application_id"), std::to_string(kApplicationId));
  EXPECT_EQ(raw.query("PRAGMA journal_mode"), "wal");
  for (const char* table : {"programs", "instances", "history", "dead_letters"}) {
    EXPECT_EQ(
        raw.query(std::string("SELECT count(*) FROM sqlite_master WHERE name = '") + table + "'"),
        "1")
        << table;
  }
  // Opening again is a no-op migration.
  store = open_or_die(path);
  EXPECT_TRUE(store);
}

TEST(SqliteStoreOpen, AnEmptyFileIsANewDatabase) {
  TempDir dir;
  const std::string path = dir.file("empty.db");
  std::ofstream(path).close();
  EXPECT_TRUE(open_status(path).ok());
}

TEST(SqliteStoreOpen, NewerSchemaIsUnsupported) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  make_saga_db(path);
  const int newer = latest_schema_version() + 1;
  {
    RawDb raw(path);
    ASSERT_EQ(raw.exec("PRAGMA user_version = " + std::to_string(newer)), SQLITE_OK);
  }
  Status s = open_status(path);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_EQ(s.message(), fmt::format("database was created by a newer Saga (schema {}; this build "
                                     "knows up to {}): {}",
                                     newer, latest_schema_version(), path));
  RawDb raw(path);
  EXPECT_EQ(raw.query("PRAGMA user_version"), std::to_string(newer));
}

TEST(SqliteStoreOpen, NonSqliteFileIsNotASagaDatabase) {
  TempDir dir;
  const std::string path = dir.file("notes.txt");
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 200; ++i) out << "these are my notes, not a database\n";
  }
  const auto size = std::filesystem::file_size(path);
  Status s = open_status(path);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_EQ(s.message(), "not a Saga database: file is not a database: " + path);
  EXPECT_EQ(std::filesystem::file_size(path), size);
}

TEST(SqliteStoreOpen, OtherApplicationsDatabaseIsRefusedAndUntouched) {
  TempDir dir;
  const std::string path = dir.file("app.db");
  {
    RawDb raw(path);
    ASSERT_EQ(raw.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
                       "INSERT INTO users (name) VALUES ('ada');"),
              SQLITE_OK);
  }
  Status s = open_status(path);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(contains(s.message(), "not a Saga database")) << s.message();
  EXPECT_TRUE(contains(s.message(), path)) << s.message();
  RawDb raw(path);
  EXPECT_EQ(raw.query("PRAGMA journal_mode"), "delete");  // Not switched to WAL.
  EXPECT_EQ(raw.query("PRAGMA application_id"), "0");
  EXPECT_EQ(raw.query("SELECT name FROM users"), "ada");
}

TEST(SqliteStoreOpen, ForeignApplicationIdIsRefused) {
  TempDir dir;
  const std::string path = dir.file("app.db");
  {
    RawDb raw(path);
    ASSERT_EQ(raw.exec("PRAGMA application_id = 1234"), SQLITE_OK);
  }
  Status s = open_status(path);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(contains(s.message(), "not a Saga database: its application_id is 0x000004d2"))
      << s.message();
}

TEST(SqliteStoreOpen, LockedDatabaseIsBusyAfterTheTimeout) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  make_saga_db(path);
  RawDb other(path);
  ASSERT_EQ(other.exec("BEGIN EXCLUSIVE"), SQLITE_OK);
  StoreOptions options;
  options.busy_timeout_ms = 100;
  auto start = std::chrono::steady_clock::now();
  Status s = open_status(path, options);
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.code(), StatusCode::kBusy);
  EXPECT_EQ(s.message(), "database is locked by another process: " + path);
  EXPECT_GE(waited, std::chrono::milliseconds(90));  // It did wait for the lock.
  ASSERT_EQ(other.exec("ROLLBACK"), SQLITE_OK);
  EXPECT_TRUE(open_status(path, options).ok());
}

TEST(SqliteStoreOpen, LockedNewDatabaseIsBusy) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  RawDb other(path);  // Rollback-journal mode: the lock also blocks readers.
  ASSERT_EQ(other.exec("BEGIN EXCLUSIVE"), SQLITE_OK);
  StoreOptions options;
  options.busy_timeout_ms = 50;
  Status s = open_status(path, options);
  EXPECT_EQ(s.code(), StatusCode::kBusy);
  EXPECT_EQ(s.message(), "database is locked by another process: " + path);
}

// Two stores that open one new file at once (a worker and `sagactl start`
// started together): one switches the file to WAL mode while the other
// looks at it. SQLite fails that switch with SQLITE_BUSY without calling
// the busy handler; the store waits for it as for any other lock, so both
// opens succeed.
TEST(SqliteStoreOpen, TwoOpenersOfANewFileBothSucceed) {
  TempDir dir;
  for (int round = 0; round < 40; ++round) {
    const std::string path = dir.file(fmt::format("x{}.db", round));
    Status first, second;
    std::thread a([&] { first = open_status(path); });
    std::thread b([&] { second = open_status(path); });
    a.join();
    b.join();
    ASSERT_TRUE(first.ok()) << "round " << round << ": " << first.message();
    ASSERT_TRUE(second.ok()) << "round " << round << ": " << second.message();
  }
}

// Runs `fn` where file permissions apply: in a child process that drops to
// the user "nobody" when the test runs as root (root ignores permissions).
// Returns the Status that `fn` returned, carried through a pipe.
Status without_privileges(const std::function<Status()>& fn) {
  if (geteuid() != 0) return fn();
  int fds[2];
  if (pipe(fds) != 0) return {StatusCode::kInternal, "pipe failed"};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    int code = 100;
    std::string message = "could not drop privileges";
    if (setgid(65534) == 0 && setuid(65534) == 0) {
      Status s = fn();
      code = static_cast<int>(s.code());
      message = s.message();
    }
    std::string out = std::to_string(code) + "\n" + message;
    (void)!write(fds[1], out.data(), out.size());
    _exit(0);
  }
  close(fds[1]);
  std::string in;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) in.append(buf, n);
  close(fds[0]);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  size_t nl = in.find('\n');
  if (nl == std::string::npos) return {StatusCode::kInternal, "child said nothing: " + in};
  int code = std::stoi(in.substr(0, nl));
  if (code == 100) return {StatusCode::kInternal, in.substr(nl + 1)};
  return {static_cast<StatusCode>(code), in.substr(nl + 1)};
}

// A directory that the unprivileged user may enter.
void open_up(const std::string& dir) {
  std::filesystem::permissions(
      dir, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
               std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
               std::filesystem::perms::others_exec);
}

TEST(SqliteStoreOpen, ReadOnlyFileIsAnIoError) {
  TempDir dir;
  open_up(dir.path());
  const std::string path = dir.file("x.db");
  make_saga_db(path);
  // Only the file is read-only: SQLite may create its -wal and -shm files.
  chmod(dir.path().c_str(), 0777);
  chmod(path.c_str(), 0444);
  Status s = without_privileges([&] { return open_status(path); });
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.message();
  EXPECT_EQ(s.message(), "database is read-only: " + path);
  chmod(path.c_str(), 0644);
  RawDb raw(path);
  EXPECT_EQ(raw.query("SELECT count(*) FROM instances"), "1");
}

TEST(SqliteStoreOpen, ReadOnlyDirectoryIsAnIoError) {
  TempDir dir;
  open_up(dir.path());
  const std::string sub = dir.file("ro");
  std::filesystem::create_directory(sub);
  const std::string path = sub + "/x.db";
  make_saga_db(path);  // Closed cleanly: no -wal or -shm file is left.
  ASSERT_FALSE(std::filesystem::exists(path + "-wal"));
  chmod(path.c_str(), 0666);  // The file itself is writable by anyone.
  chmod(sub.c_str(), 0555);
  Status s = without_privileges([&] { return open_status(path); });
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.message();
  EXPECT_EQ(s.message(),
            "database is read-only (its directory or -shm file is not writable): " + path);

  // A new database in that directory cannot even be created.
  const std::string fresh = sub + "/new.db";
  s = without_privileges([&] { return open_status(fresh); });
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.message();
  EXPECT_TRUE(contains(s.message(), "cannot open database")) << s.message();
  EXPECT_TRUE(contains(s.message(), fresh)) << s.message();
  chmod(sub.c_str(), 0755);
}

// ---- Readers (StoreOptions::read_only): sagactl ls and show ---------------

void make_v1_db(const std::string& path);

StoreOptions reader() {
  StoreOptions o;
  o.read_only = true;
  return o;
}

TEST(SqliteStoreReader, NeverCreatesADatabase) {
  TempDir dir;
  const std::string path = dir.file("missing.db");
  Status s = open_status(path, reader());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "no such database: " + path);
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(SqliteStoreReader, AMissingDirectoryIsNamed) {
  TempDir dir;
  const std::string path = dir.file("no/such") + "/x.db";
  for (const StoreOptions& options : {reader(), StoreOptions{}}) {
    Status s = open_status(path, options);
    EXPECT_EQ(s.code(), StatusCode::kNotFound);
    EXPECT_EQ(s.message(), "the directory of the database does not exist: " + dir.file("no/such") +
                               " (database " + path + ")");
  }
}

TEST(SqliteStoreReader, ReadsAFileItMayNotWriteAndRefusesWrites) {
  TempDir dir;
  open_up(dir.path());
  const std::string path = dir.file("x.db");
  make_saga_db(path);
  chmod(dir.path().c_str(), 0777);
  chmod(path.c_str(), 0444);
  Status s = without_privileges([&]() -> Status {
    auto store = open_sqlite_store(path, reader());
    if (!store.ok()) return store.status();
    auto list = store.value()->list_instances(std::nullopt, 10);
    if (!list.ok()) return list.status();
    if (list->size() != 1) return {StatusCode::kInternal, "expected one instance"};
    Status refused;
    store.value()->submit(create_transition(make_record("b")),
                          [&](Status st) { refused = std::move(st); });
    if (refused.code() != StatusCode::kInvalidArgument) {
      return {StatusCode::kInternal, "a read-only store took a transition: " + refused.message()};
    }
    InboxMessage m{"m-1", "a", "cancel", "", 1, 0};
    return store.value()->post(m);
  });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();
  EXPECT_TRUE(contains(s.message(), "opened read-only and cannot post a message")) << s.message();
  chmod(path.c_str(), 0644);
}

TEST(SqliteStoreReader, DoesNotWaitForAWriter) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  make_saga_db(path);
  RawDb other(path);
  ASSERT_EQ(other.exec("BEGIN IMMEDIATE"), SQLITE_OK);
  ASSERT_EQ(other.exec("UPDATE instances SET updated_ms = 1"), SQLITE_OK);
  StoreOptions options = reader();
  options.busy_timeout_ms = 60'000;  // A reader that waited would hang the test.
  auto store = open_sqlite_store(path, options);
  ASSERT_TRUE(store.ok()) << store.status().message();
  auto list = store.value()->list_instances(std::nullopt, 10);
  ASSERT_TRUE(list.ok()) << list.status().message();
  EXPECT_EQ(list->size(), 1u);
  EXPECT_EQ(other.exec("ROLLBACK"), SQLITE_OK);
}

// A reader reads an older schema as it is (a version 1 file has no fibers
// table), and never migrates it; a file stamped as Saga's without any
// schema has nothing to read.
TEST(SqliteStoreReader, ReadsAnOlderSchemaWithoutMigratingIt) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  make_v1_db(path);
  auto store = open_sqlite_store(path, reader());
  ASSERT_TRUE(store.ok()) << store.status().message();
  auto kept = store.value()->get_instance("kept");
  ASSERT_TRUE(kept.ok()) << kept.status().message();
  ASSERT_TRUE(kept.value());
  EXPECT_TRUE(kept.value()->fibers.empty());
  store.value().reset();
  RawDb raw(path);
  EXPECT_EQ(raw.query("PRAGMA user_version"), "1");
  ASSERT_EQ(raw.exec("PRAGMA user_version = 0"), SQLITE_OK);
  Status s = open_status(path, reader());
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_TRUE(contains(s.message(), "a command that writes")) << s.message();
}

TEST(SqliteStoreReader, NotASagaDatabaseIsRefused) {
  TempDir dir;
  const std::string path = dir.file("empty.db");
  std::ofstream(path).close();
  Status s = open_status(path, reader());
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.message();
  EXPECT_EQ(std::filesystem::file_size(path), 0u);
}

// A full disk may surface as an I/O error (SQLite extending the -shm file at
// open: code 4874); it is reported as a full disk.
TEST(SqliteStoreErrors, AFullDiskIsNamedWhateverTheCode) {
  for (int rc : {SQLITE_IOERR_SHMSIZE, SQLITE_IOERR_WRITE, SQLITE_CANTOPEN, SQLITE_FULL}) {
    Status s = describe_sqlite_error(rc, ENOSPC, "disk I/O error", "/x.db", "opening");
    EXPECT_EQ(s.code(), StatusCode::kIoError);
    EXPECT_EQ(s.message(), "database is full (disk or quota): /x.db") << rc;
  }
  Status other =
      describe_sqlite_error(SQLITE_IOERR_READ, EIO, "disk I/O error", "/x.db", "reading");
  EXPECT_TRUE(contains(other.message(), "I/O error while reading")) << other.message();
}

// The same on a real full file system: a small tmpfs, mounted in a mount
// namespace of a child process of its own (root only; skipped otherwise).
TEST(SqliteStoreErrors, OpeningOnAFullDiskSaysTheDiskIsFull) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small file system";
  TempDir dir;
  const std::string mnt = dir.file("small");
  std::filesystem::create_directory(mnt);
  const std::string path = mnt + "/x.db";
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string out = "skip";
    if (unshare(CLONE_NEWNS) == 0 &&
        mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
        mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") == 0) {
      {
        // A database from before, then the disk fills up.
        auto store = open_sqlite_store(path);
        if (store.ok()) store.value().reset();
      }
      std::filesystem::remove(path + "-wal");
      std::filesystem::remove(path + "-shm");
      std::ofstream fill(mnt + "/fill", std::ios::binary);
      std::string block(4096, 'x');
      while (fill.write(block.data(), block.size())) {
      }
      fill.close();
      for (const StoreOptions& options : {StoreOptions{}, reader()}) {
        Status s = open_status(path, options);
        out = std::to_string(static_cast<int>(s.code())) + "|" + s.message() + "\n";
        (void)!write(fds[1], out.data(), out.size());
      }
      _exit(0);
    }
    (void)!write(fds[1], out.data(), out.size());
    _exit(0);
  }
  close(fds[1]);
  std::string in;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) in.append(buf, n);
  close(fds[0]);
  waitpid(pid, nullptr, 0);
  if (in == "skip") GTEST_SKIP() << "cannot mount a tmpfs here";
  const std::string full = std::to_string(static_cast<int>(StatusCode::kIoError)) +
                           "|database is full (disk or quota): " + path;
  EXPECT_EQ(in, full + "\n" + full + "\n");
}

// A database of schema 1 with data, opened with a raw connection.
void make_v1_db(const std::string& path) {
  Connection conn;
  ASSERT_TRUE(conn.open(path, true, 1000).ok());
  ASSERT_TRUE(migrate(conn, migrations().first(1)).ok());
  ASSERT_TRUE(conn.exec("INSERT INTO instances (id, status) VALUES ('kept', 1)", "test").ok());
}

// Schema 3 turns the cancel_requested flag of a pending or running
// instance into a `cancel` message in its inbox (and only theirs: a
// finished instance's stale flag is dropped); nothing else changes.
TEST(SqliteStoreMigrations, ACancelRequestOfAnOlderDatabaseBecomesAMessage) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  {
    Connection conn;
    ASSERT_TRUE(conn.open(path, true, 1000).ok());
    ASSERT_TRUE(migrate(conn, migrations().first(2)).ok());
    ASSERT_TRUE(conn.exec("INSERT INTO instances (id, status, cancel_requested, updated_ms) "
                          "VALUES ('asked', 1, 1, 42), ('quiet', 1, 0, 0), ('done', 3, 1, 0)",
                          "test")
                    .ok());
  }
  auto store = open_sqlite_store(path);
  ASSERT_TRUE(store.ok()) << store.status().message();
  auto asked = store.value()->get_instance("asked");
  ASSERT_TRUE(asked.ok() && asked.value());
  ASSERT_EQ(asked.value()->inbox.size(), 1u);
  EXPECT_EQ(asked.value()->inbox[0].kind, "cancel");
  EXPECT_EQ(asked.value()->inbox[0].posted_ms, 42);
  EXPECT_EQ(asked.value()->status, InstanceStatus::kRunning);
  auto quiet = store.value()->get_instance("quiet");
  ASSERT_TRUE(quiet.ok() && quiet.value());
  EXPECT_TRUE(quiet.value()->inbox.empty());
  auto since = store.value()->inbox_since(0, 10);
  ASSERT_TRUE(since.ok());
  EXPECT_EQ(since->size(), 1u);  // Not the finished one's.
}

TEST(SqliteStoreMigrations, VersionsAreConsecutiveFromOne) {
  int expected = 1;
  for (const Migration& m : migrations()) {
    EXPECT_EQ(m.version, expected++) << m.summary;
    EXPECT_NE(std::string(m.summary), "");
  }
  EXPECT_EQ(latest_schema_version(), expected - 1);
}

TEST(SqliteStoreMigrations, NextVersionIsOneMoreEntry) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  make_v1_db(path);
  std::vector<Migration> list(migrations().begin(), migrations().end());
  const int next = latest_schema_version() + 1;
  list.push_back({next, "test: leases",
                  "ALTER TABLE instances ADD COLUMN lease_owner TEXT;"
                  "CREATE INDEX instances_by_lease ON instances(lease_owner);"});
  Connection conn;
  ASSERT_TRUE(conn.open(path, false, 1000).ok());
  Status s = migrate(conn, list);
  ASSERT_TRUE(s.ok()) << s.message();
  RawDb raw(path);
  EXPECT_EQ(raw.query("PRAGMA user_version"), std::to_string(next));
  EXPECT_EQ(raw.query("SELECT id FROM instances WHERE lease_owner IS NULL"), "kept");
  // Running it again does nothing.
  EXPECT_TRUE(migrate(conn, list).ok());
  // This build refuses the migrated file: it is newer than it knows.
  conn.close();
  EXPECT_EQ(open_status(path).code(), StatusCode::kUnsupported);
}

TEST(SqliteStoreMigrations, AFailingMigrationChangesNothing) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  make_v1_db(path);
  {
    Connection conn;  // Up to this build's schema first.
    ASSERT_TRUE(conn.open(path, false, 1000).ok());
    ASSERT_TRUE(migrate(conn, migrations()).ok());
  }
  std::vector<Migration> list(migrations().begin(), migrations().end());
  const int v = latest_schema_version();
  list.push_back({v + 1, "good", "CREATE TABLE timers (instance TEXT, due INTEGER);"});
  list.push_back({v + 2, "bad", "ALTER TABLE no_such_table ADD COLUMN x;"});
  Connection conn;
  ASSERT_TRUE(conn.open(path, false, 1000).ok());
  Status s = migrate(conn, list);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "migrating the schema to version " + std::to_string(v + 2)))
      << s.message();
  RawDb raw(path);
  EXPECT_EQ(raw.query("PRAGMA user_version"), std::to_string(v));
  EXPECT_EQ(raw.query("SELECT count(*) FROM sqlite_master WHERE name = 'timers'"), "0");
  EXPECT_EQ(raw.query("SELECT id FROM instances"), "kept");
}

TEST(SqliteStoreMigrations, StampedButEmptyDatabaseIsMigratedFromZero) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  {
    RawDb raw(path);
    ASSERT_EQ(raw.exec("PRAGMA application_id = " + std::to_string(kApplicationId)), SQLITE_OK);
  }
  EXPECT_TRUE(open_status(path).ok());
  RawDb raw(path);
  EXPECT_EQ(raw.query("PRAGMA user_version"), std::to_string(latest_schema_version()));
}

}  // namespace
}  // namespace saga::store
