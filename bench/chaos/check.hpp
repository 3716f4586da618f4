// The end of the chaos run (bench/chaos): what must hold, checked from the
// participants' own SQLite databases (their `effects` and `calls` tables,
// read with plain SQL) and from the saga store (read through saga::Store as
// `sagactl ls` and `show` read it), after every process has stopped.
//
// The checks are written so that a one-line bug in the runtime fails them:
//   * lost or duplicated instances: exactly one instance per saga enqueued;
//   * terminal: every instance completed, compensated, failed or cancelled,
//     or stuck with a dead letter;
//   * effects applied twice: every effect's key is "<instance>/<step>" of a
//     step its saga has, at the service that step calls, and no two effects
//     share a request (a key that changed across retries or resumes would
//     apply one twice under two keys);
//   * completed: every step's effect once, none undone, no undo called, and
//     the output made of what the participants answered first;
//   * not completed: every effect undone, by the undo of its own step (an
//     in-doubt step whose reply was lost, or answered with an error to a
//     repeated key, included), with the do's result as argument when the
//     step had completed; a completed step's undo was called;
//   * undos in order: a later block before an earlier one, and in one branch
//     or iteration the later step first, in the store's history and by the
//     participants' clocks;
//   * no undo without its do: an undo that found nothing to undo (an orphan)
//     only for a step that may have been sent (in doubt by its attempts'
//     classes, interrupted by a kill, or seen by the participant), and never
//     for a step whose every attempt was refused without effect;
//   * the saga's own rules: a refused order and a timed saga that waits past
//     its deadline never complete.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace chaos {

struct CheckInputs {
  std::string store_path;
  std::map<std::string, std::string> participant_dbs;  // Role -> its SQLite file.
  uint64_t seed = 0;
  int sagas = 0;  // Sagas 1..sagas were enqueued.
};

// What the checks found, and the figures they counted on the way.
struct CheckReport {
  std::map<std::string, std::map<std::string, int>> by_kind;  // Kind -> status -> count.
  std::map<std::string, int> by_outcome;                      // "status (class)" -> count.
  int instances = 0, resumed_instances = 0, resumed_events = 0;
  int attempts_failed = 0, completed_after_retries = 0;
  int kept_in_doubt = 0;  // Steps answered `rejected` after an attempt in doubt, compensated.
  int stuck = 0, dead_letters = 0;
  // From the participants' databases.
  int64_t effects = 0, undone = 0, undos = 0, orphan_undos = 0, tombstones = 0;
  std::map<std::string, int64_t> calls_by_outcome;  // applied, dedup, injected, ...
  std::vector<std::string> violations;
};

CheckReport check_run(const CheckInputs& in);

}  // namespace chaos
