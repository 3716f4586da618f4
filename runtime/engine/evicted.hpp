// The instances an engine evicted from memory: those whose every fiber waits
// in a long timer (a sleep, a backoff) with nothing out and everything
// committed. The store holds all of such an instance (that is what resume()
// reads after a crash), so the engine keeps only its id and its due time
// here, and loads it again from the store when it is due, or when it is
// cancelled (engine.cpp, "Eviction"). Used by runtime/engine/engine.cpp only,
// under the engine's mutex: nothing here locks.
//
// An entry costs about 100 bytes where a resident waiting instance costs
// about 1,750 (bench/README.md, "Memory: a million waiting"): a 48-byte hash
// node (the id as its 16 bytes, the due time, an epoch, start_async()'s
// callback when there is one), a bucket, and a 24-byte heap slot with its
// share of the vector's spare room.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "saga/engine.hpp"

namespace saga::runtime {

// An instance id as its 16 bytes. The engine's ids are UUIDv7s in canonical
// form (lowercase, 8-4-4-4-12: stdlib::format_uuid_v7); an id in any other
// form has no key, and its instance is never evicted.
struct InstanceKey {
  std::array<uint8_t, 16> bytes{};

  static std::optional<InstanceKey> parse(std::string_view id);
  std::string text() const;
  bool operator==(const InstanceKey&) const = default;
};

struct InstanceKeyHash {
  // UUIDv7's last 8 bytes are random: a hash as it is.
  size_t operator()(const InstanceKey& k) const noexcept {
    uint64_t h = 0;
    for (int i = 8; i < 16; ++i) h = (h << 8) | k.bytes[i];
    return static_cast<size_t>(h);
  }
};

class EvictedSet {
 public:
  struct Entry {
    int64_t due = 0;       // When it must be loaded again (its earliest timer or deadline).
    uint32_t epoch = 0;    // Which eviction: a reload loads only the one it was asked for.
    bool forward = false;  // In the forward phase, so that a cancel applies to it.
    std::unique_ptr<Engine::DoneCallback> on_done;  // start_async()'s, if any.
  };
  // A due entry handed out by take_due(): its id and which eviction it is.
  struct Due {
    InstanceKey key;
    uint32_t epoch;
  };

  // Adds an instance (not already in the set); returns its epoch.
  uint32_t add(const InstanceKey& key, int64_t due, bool forward,
               std::unique_ptr<Engine::DoneCallback> on_done);
  const Entry* find(const InstanceKey& key) const;
  bool contains(const InstanceKey& key) const { return find(key) != nullptr; }
  // Removes the entry of `key` if it is still eviction `epoch`, and returns it.
  std::optional<Entry> take(const InstanceKey& key, uint32_t epoch);
  // Moves the due time of eviction `epoch` of `key` (a reload to try again).
  void postpone(const InstanceKey& key, uint32_t epoch, int64_t due);
  // Appends to `out` up to `limit` entries due at `now`, earliest first. They
  // stay in the set (wait() and active() still count them) until take()n;
  // each is handed out once per due time.
  void take_due(int64_t now, size_t limit, std::vector<Due>& out);
  // The earliest due time of an entry not handed out yet; INT64_MAX if none.
  int64_t next_due();
  size_t size() const { return entries_.size(); }
  // Heap slots, live or left behind (for tests: never above twice size()
  // plus 64).
  size_t slots() const { return heap_.size(); }

 private:
  struct Slot {
    int64_t due;
    InstanceKey key;
    bool operator>(const Slot& o) const { return due > o.due; }
  };
  // Whether a heap slot is still what its entry waits for (an entry taken,
  // or postponed, leaves its old slot behind, skipped when it comes up).
  bool live(const Slot& s) const;

  std::unordered_map<InstanceKey, Entry, InstanceKeyHash> entries_;
  std::vector<Slot> heap_;  // A min-heap on due (std::push_heap with greater).
  uint32_t last_epoch_ = 0;
};

}  // namespace saga::runtime
