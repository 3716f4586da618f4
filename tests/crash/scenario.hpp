// The scenario of the order crash test (tests/crash): which calls of which
// orders fail and how, and what each order must therefore end as. The child
// process (crash_child.cpp) injects the failures through a shop::Planner; the
// test (order_crash_test.cpp) derives its expectations from the same rules.
// Every rule depends only on the order number and the attempt, so a call that
// is delivered again after a crash meets the same fate.
//
// Orders are "order-0001" ... numbered from 1; n below is that number.
#pragma once

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "samples/shop/participants.hpp"

namespace crash {

// How an order ends, and why.
enum class Fate {
  kCompleted,
  kReserveRejected,         // n % 50 == 1: reserve rejected -> `failed`, nothing to compensate.
  kChargeRejected,          // n % 10 == 7: charge rejected -> `compensated`: reserve undone.
  kShipRefused,             // n % 10 == 3: the carrier answers "refused" -> the saga fails
                            // `rejected`: ship, charge, reserve undone.
  kShipLostReply,           // n % 10 == 5: ship takes effect but its reply is lost
                            // (unavailable, no retry) -> in doubt: ship, charge, reserve undone.
  kShipDown,                // n % 10 == 9: ship unavailable before any effect -> in doubt: its
                            // undo finds nothing to undo (an orphan); charge, reserve undone.
  kChargeLostThenDeclined,  // n % 10 == 4: the first charge takes effect but its reply is
                            // lost (unavailable, retried); the retry is answered `rejected`
                            // (a participant that declines a repeated key) -> the step stays
                            // in doubt: `compensated` (rejected), charge and reserve undone.
};

inline Fate fate_of(int n) {
  if (n % 50 == 1) return Fate::kReserveRejected;
  switch (n % 10) {
    case 7:
      return Fate::kChargeRejected;
    case 3:
      return Fate::kShipRefused;
    case 5:
      return Fate::kShipLostReply;
    case 9:
      return Fate::kShipDown;
    case 4:
      return Fate::kChargeLostThenDeclined;
    default:
      return Fate::kCompleted;
  }
}

// Failures that a retry policy absorbs (they do not change the fate):
// n % 13 == 0: the first reserve attempt takes effect but its reply is lost
//   (unavailable); the retry must be answered from the ledger (deduplicated).
inline bool reserve_reply_lost(int n) {
  return n % 13 == 0 && fate_of(n) != Fate::kReserveRejected;
}
// n % 11 == 0: the first charge attempt is unavailable before any effect;
//   retried after the policy's fixed 1 s backoff (a durable timer).
inline bool charge_first_attempt_down(int n) {
  return n % 11 == 0;
}
// n % 10 == 6 (else completed): the payment participant answers a repeated
//   charge key `rejected` instead of its first response. Only a kill while
//   the charge is out makes the engine repeat it: such an order ends
//   `compensated` (rejected) with charge and reserve undone, as
//   kChargeLostThenDeclined; any other ends completed. Which one depends on
//   where the kills land, so the test accepts both and counts them.
inline bool charge_rejects_repeats(int n) {
  return n % 10 == 6 && n % 50 != 1;
}

inline std::string order_id(int n) {
  char text[16];
  std::snprintf(text, sizeof text, "order-%04d", n);
  return text;
}

// 0 when `id` is not "order-NNNN".
inline int order_number(const std::string& id) {
  if (id.rfind("order-", 0) != 0) return 0;
  return std::atoi(id.c_str() + 6);
}

// The input of order n. Amounts and item counts vary, so both shipping
// branches of samples/order.saga run (express: amount > 100 and <= 3 items).
inline nlohmann::json order_input(int n) {
  nlohmann::json items = nlohmann::json::array();
  for (int i = 0; i <= n % 5; ++i) items.push_back("sku-" + std::to_string((n * 7 + i) % 50));
  return {{"order_id", order_id(n)},
          {"customer", "customer-" + std::to_string(n % 7)},
          {"amount", 25 + (n * 37) % 200},
          {"items", items}};
}

// The name of the shipping step order n runs.
inline std::string ship_step(int n) {
  nlohmann::json in = order_input(n);
  bool express = in["amount"].get<int>() > 100 && in["items"].size() <= 3;
  return express ? "ship" : "ship_standard";
}

// The planner the child gives its participants.
inline shop::Planner planner() {
  return [](const saga::ActionCall& call, const std::string& order) {
    using Outcome = shop::Plan::Outcome;
    shop::Plan plan;
    int n = order_number(order);
    if (n == 0 || call.compensation) return plan;  // Undos never fail.
    auto fail = [&](Outcome outcome, const char* error_class) {
      plan.outcome = outcome;
      plan.error_class = error_class;
    };
    Fate fate = fate_of(n);
    if (call.action == "inventory.reserve") {
      if (fate == Fate::kReserveRejected) fail(Outcome::kFailBeforeEffect, "rejected");
      if (reserve_reply_lost(n) && call.attempt == 1)
        fail(Outcome::kFailAfterEffect, "unavailable");
    } else if (call.action == "payment.charge") {
      if (fate == Fate::kChargeLostThenDeclined)
        fail(call.attempt == 1 ? Outcome::kFailAfterEffect : Outcome::kFailBeforeEffect,
             call.attempt == 1 ? "unavailable" : "rejected");
      else if (fate == Fate::kChargeRejected)
        fail(Outcome::kFailBeforeEffect, "rejected");
      else if (charge_first_attempt_down(n) && call.attempt == 1)
        fail(Outcome::kFailBeforeEffect, "unavailable");
      plan.reject_repeats = charge_rejects_repeats(n);
    } else {  // shipping.express / shipping.standard
      if (fate == Fate::kShipRefused) plan.refuse_shipment = true;
      if (fate == Fate::kShipLostReply) fail(Outcome::kFailAfterEffect, "unavailable");
      if (fate == Fate::kShipDown) fail(Outcome::kFailBeforeEffect, "unavailable");
    }
    return plan;
  };
}

}  // namespace crash
