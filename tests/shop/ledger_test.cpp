// The sample participants' ledger (samples/shop/participants.hpp) keeps its
// WAL bounded however long it is written, and gets it back down after a
// reader held a snapshot (which no checkpoint can get past) for a while.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "samples/shop/participants.hpp"

namespace {

namespace fs = std::filesystem;

class LedgerWal : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("saga-ledger-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "shop.ledger").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Applies `n` effects (one transaction each); returns the largest WAL seen.
  int64_t apply(shop::Ledger& ledger, int n) {
    int64_t largest = 0;
    for (int i = 0; i < n; ++i, ++next_) {
      saga::ActionCall call;
      call.action = "inventory.reserve";
      call.instance_id = "instance-" + std::to_string(next_);
      call.step = "reserve";
      call.idempotency_key = call.instance_id + "/reserve";
      call.args = {{"order", "order-" + std::to_string(next_)}, {"items", {"sku-1", "sku-2"}}};
      ledger.apply(
          call, call.args["order"],
          [] {
            return nlohmann::json{{"id", "R-1"}};
          },
          "");
      largest = std::max(largest, ledger.wal_bytes());
    }
    return largest;
  }

  fs::path dir_;
  std::string path_;
  int next_ = 0;
};

// kWalCheckpointPages pages of 4 KiB, and the transaction that crossed them.
constexpr int64_t kBound = (shop::Ledger::kWalCheckpointPages + 64) * 4096;

TEST_F(LedgerWal, StaysBoundedAndShrinksBackAfterAReaderHeldIt) {
  shop::Ledger ledger(path_);
  EXPECT_LE(apply(ledger, 1500), kBound);  // About six times the bound written.

  // Another connection holds a read snapshot: the WAL must grow meanwhile.
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &reader), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM effects;", nullptr, nullptr, nullptr),
            SQLITE_OK);
  EXPECT_GT(apply(ledger, 800), kBound);
  ASSERT_EQ(sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(reader);

  // Once it is gone, the next commit over the bound truncates the file.
  apply(ledger, 300);
  EXPECT_LE(ledger.wal_bytes(), kBound);
  EXPECT_EQ(ledger.stats().effects, 2600);
}

}  // namespace
