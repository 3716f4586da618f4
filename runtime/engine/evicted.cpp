// The set of evicted instances (evicted.hpp).
#include "runtime/engine/evicted.hpp"

#include <algorithm>
#include <functional>
#include <limits>

#include "stdlib/functions.hpp"

namespace saga::runtime {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // Upper case too: it would not format back to the same id.
}

bool is_dash_at(size_t i) {
  return i == 8 || i == 13 || i == 18 || i == 23;
}

}  // namespace

std::optional<InstanceKey> InstanceKey::parse(std::string_view id) {
  if (id.size() != 36) return std::nullopt;
  InstanceKey k;
  size_t nibble = 0;
  for (size_t i = 0; i < id.size(); ++i) {
    if (is_dash_at(i)) {
      if (id[i] != '-') return std::nullopt;
      continue;
    }
    int d = hex_digit(id[i]);
    if (d < 0) return std::nullopt;
    k.bytes[nibble / 2] = static_cast<uint8_t>(k.bytes[nibble / 2] | (d << (nibble % 2 ? 0 : 4)));
    ++nibble;
  }
  // Only what the engine's own formatter spells back the same (a UUIDv7
  // with the RFC variant) is a key.
  if (k.text() != id) return std::nullopt;
  return k;
}

// The engine's ids are stdlib::format_uuid_v7 of their creation time (the
// first 48 bits) and random bytes: spelled by the same function.
std::string InstanceKey::text() const {
  int64_t ms = 0;
  for (int i = 0; i < 6; ++i) ms = (ms << 8) | bytes[i];
  return stdlib::format_uuid_v7(ms, bytes);
}

uint32_t EvictedSet::add(const InstanceKey& key, int64_t due, bool forward,
                         std::unique_ptr<Engine::DoneCallback> on_done) {
  const uint32_t epoch = ++last_epoch_;
  entries_[key] = Entry{due, epoch, forward, std::move(on_done)};
  heap_.push_back(Slot{due, key});
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
  return epoch;
}

const EvictedSet::Entry* EvictedSet::find(const InstanceKey& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

std::optional<EvictedSet::Entry> EvictedSet::take(const InstanceKey& key, uint32_t epoch) {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.epoch != epoch) return std::nullopt;
  Entry e = std::move(it->second);
  entries_.erase(it);
  // Its heap slot stays until it comes up; a heap that is mostly such slots
  // (many cancelled) is rebuilt, so it never holds more than twice the set.
  if (heap_.size() > 2 * entries_.size() + 64) {
    std::erase_if(heap_, [this](const Slot& s) { return !live(s); });
    std::make_heap(heap_.begin(), heap_.end(), std::greater<>());
  }
  return e;
}

void EvictedSet::postpone(const InstanceKey& key, uint32_t epoch, int64_t due) {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.epoch != epoch) return;
  it->second.due = due;
  heap_.push_back(Slot{due, key});
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
}

bool EvictedSet::live(const Slot& s) const {
  auto it = entries_.find(s.key);
  return it != entries_.end() && it->second.due == s.due;
}

void EvictedSet::take_due(int64_t now, size_t limit, std::vector<Due>& out) {
  size_t taken = 0;
  while (!heap_.empty() && heap_.front().due <= now && taken < limit) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    Slot s = heap_.back();
    heap_.pop_back();
    if (!live(s)) continue;
    out.push_back(Due{s.key, entries_.find(s.key)->second.epoch});
    ++taken;
  }
}

int64_t EvictedSet::next_due() {
  while (!heap_.empty() && !live(heap_.front())) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    heap_.pop_back();
  }
  return heap_.empty() ? std::numeric_limits<int64_t>::max() : heap_.front().due;
}

}  // namespace saga::runtime
