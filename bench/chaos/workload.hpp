// The chaos run's workload (bench/chaos): which saga of chaos.saga instance n
// runs, with what input, and what each saga's steps are, for the checks
// (check.cpp) to know which effects and undos may exist and in which order
// the undos must run. Everything here depends only on the run's seed and n,
// so a run is replayed with --seed.
//
// Sagas are numbered from 1; order_id is "chaos-NNNNN", which every request
// to a participant carries (the `order` argument), so an effect in a
// participant's database names the instance it belongs to even when its
// Idempotency-Key were wrong.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace chaos {

enum class Kind { kOrder, kFanout, kTimed };

inline const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kOrder:
      return "order";
    case Kind::kFanout:
      return "fanout";
    case Kind::kTimed:
      return "timed";
  }
  return "?";
}

// The deadline of `timed` in chaos.saga; a wait above it must never complete.
constexpr int kTimedDeadlineMs = 1500;

// One saga of the run.
struct Saga {
  int n = 0;
  Kind kind = Kind::kOrder;
  nlohmann::json input;
  bool refuse = false;     // order: fails `rejected` after every effect.
  bool long_wait = false;  // timed: waits longer than its deadline.
  bool cancel = false;     // The run cancels it a moment after enqueueing it.
};

inline std::string order_id(int n) {
  char text[24];
  std::snprintf(text, sizeof text, "chaos-%05d", n);
  return text;
}

// Saga n of a run with `seed`: half orders, 30% fanouts, 20% timed; 8% of
// the orders refuse, a quarter of the timed ones wait past their deadline,
// and 3% of all are cancelled.
inline Saga saga_of(uint64_t seed, int n) {
  std::mt19937_64 rng(seed * 1'000'003 + static_cast<uint64_t>(n));
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  auto between = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Saga s;
  s.n = n;
  double pick = std::uniform_real_distribution<double>(0, 1)(rng);
  s.kind = pick < 0.5 ? Kind::kOrder : pick < 0.8 ? Kind::kFanout : Kind::kTimed;
  const std::string id = order_id(n);
  nlohmann::json items = nlohmann::json::array();
  for (int i = 0, count = between(1, 5); i < count; ++i) {
    items.push_back("sku-" + std::to_string(n) + "-" + std::to_string(i));
  }
  s.input = {{"order_id", id},
             {"customer", "customer-" + std::to_string(n % 97)},
             {"amount", between(5, 250)}};
  switch (s.kind) {
    case Kind::kOrder:
      s.refuse = chance(0.08);
      s.input["items"] = items;
      s.input["refuse"] = s.refuse;
      break;
    case Kind::kFanout:
      s.input["items"] = items;
      break;
    case Kind::kTimed:
      s.long_wait = chance(0.25);
      s.input["wait"] = s.long_wait ? kTimedDeadlineMs * 2 : between(10, 100);
      break;
  }
  s.cancel = chance(0.03);
  return s;
}

// A step with an effect at a participant, as chaos.saga declares it.
// `path` is the step's part of the idempotency key ("<instance>/<path>"; an
// undo's adds "/undo"). Undo order: every step of a higher `stage` is undone
// before any of a lower one (a later block before an earlier one), and in
// one `lane` (a branch or an iteration) a higher `pos` before a lower one.
struct StepSpec {
  std::string path;
  std::string role;  // The participant: inventory, payment, shipping.
  std::string op, undo_op;
  std::string ref_arg;  // The undo's argument naming the do's result id.
  int stage = 0;
  std::string lane;
  int pos = 0;
};

// The steps with an effect that saga `s` runs when nothing fails, in
// program order.
inline std::vector<StepSpec> steps_of(const Saga& s) {
  std::vector<StepSpec> out;
  switch (s.kind) {
    case Kind::kOrder: {
      const bool express = s.input["amount"].get<int>() > 100;
      out.push_back({"reserve", "inventory", "reserve", "release", "reservation", 1, "", 0});
      out.push_back({"charge", "payment", "charge", "refund", "payment", 2, "", 0});
      out.push_back({express ? "ship" : "ship_standard", "shipping",
                     express ? "express" : "standard", "cancel", "id", 3, "", 0});
      break;
    }
    case Kind::kFanout: {
      for (size_t i = 0; i < s.input["items"].size(); ++i) {
        std::string lane = "pick[" + std::to_string(i) + "]";
        out.push_back({lane, "inventory", "reserve", "release", "reservation", 1, lane, 0});
      }
      out.push_back({"pay/hold", "inventory", "reserve", "release", "reservation", 2, "pay", 1});
      out.push_back({"pay/charge_all", "payment", "charge", "refund", "payment", 2, "pay", 2});
      out.push_back({"ship/dispatch", "shipping", "standard", "cancel", "id", 2, "ship", 1});
      break;
    }
    case Kind::kTimed:
      out.push_back({"hold_stock", "inventory", "reserve", "release", "reservation", 1, "", 0});
      out.push_back({"pay", "payment", "charge", "refund", "payment", 3, "", 0});
      break;
  }
  return out;
}

// Whether the undo of `a` must run before the undo of `b` (both of one
// instance): a later stage first, and in one lane the later step first.
inline bool undo_before(const StepSpec& a, const StepSpec& b) {
  if (a.stage != b.stage) return a.stage > b.stage;
  return !a.lane.empty() && a.lane == b.lane && a.pos > b.pos;
}

// What a completed instance's output must say, from the do-results of its
// steps (path -> the participant's response).
inline nlohmann::json expected_output(const Saga& s,
                                      const std::map<std::string, nlohmann::json>& result) {
  auto at = [&](const std::string& path, const char* field) {
    auto it = result.find(path);
    return it == result.end() ? nlohmann::json() : it->second.value(field, nlohmann::json());
  };
  const std::string id = order_id(s.n);
  switch (s.kind) {
    case Kind::kOrder: {
      const std::string ship = steps_of(s)[2].path;
      return {{"order", id}, {"receipt", at("charge", "id")}, {"tracking", at(ship, "tracking")}};
    }
    case Kind::kFanout:
      return {{"order", id},
              {"receipt", at("pay/charge_all", "id")},
              {"tracking", at("ship/dispatch", "tracking")},
              {"picked", s.input["items"].size()}};
    case Kind::kTimed:
      return {{"order", id}, {"receipt", at("pay", "id")}};
  }
  return nullptr;
}

}  // namespace chaos
