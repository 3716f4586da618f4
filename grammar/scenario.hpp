// The model of a scenario test file (`order.saga.test`, run by `sagactl
// test`): tests that start a saga with an input, answer its actions
// (results, failures, delays, one answer per attempt), may cancel it, and
// expect a status, an output, an error, the calls and undos in order, the
// history and the virtual time it took. docs/testing.md describes the
// language; grammar/scenario_grammar.hpp is its grammar, parsed by
// parse_scenarios() below. runtime/scenario checks a file against the
// program it tests and runs it.
//
// Every clause keeps its Span, so that what the runner reports (a failed
// expectation, an unknown action, an answer never used) points at the line
// of the test file, in the format of grammar/diagnostic.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "grammar/diagnostic.hpp"
#include "grammar/source.hpp"

namespace saga::scenario {

// What a call is named by: an action ("inventory.reserve") or the call's
// key without the instance ("reserve[1]", "flight/flight", "charge/undo"),
// which tells apart the iterations and branches that call one action.
struct Target {
  std::string name;
  bool key = false;  // Written as a string: a call's key.
  Span span;
};

// How one attempt of a call is answered.
struct Answer {
  enum class Kind : uint8_t { kOk, kFail, kNever };
  Kind kind = Kind::kOk;
  nlohmann::json result;    // kOk: the action's result (null when none is written).
  std::string error_class;  // kFail.
  std::string message;      // kFail; empty: a message naming the class.
  bool unsent = false;      // kFail: the request certainly never reached the service.
  uint64_t after_ms = 0;    // The answer arrives this long after the call.
  Span span;
};

// `answer TARGET A1 then A2 ...`: attempt n gets the n-th answer; the last
// one answers every later attempt.
struct AnswerRule {
  Target target;
  std::vector<Answer> answers;
  Span span;
};

// `start SAGA {input}`.
struct Start {
  std::string saga;
  Span saga_span;
  nlohmann::json input;
  Span input_span;
  Span span;
};

// `cancel after DURATION` (virtual time from the start) or `cancel during
// TARGET` (while the first call it names is out).
struct Cancel {
  bool during = false;
  uint64_t after_ms = 0;
  Target target;
  Span span;
};

// `TARGET {args}` in `expect calls [...]`: args, when written, need only
// hold the fields written (a subset, compared field by field).
struct CallPattern {
  Target target;
  std::optional<nlohmann::json> args;
  Span span;
};

// `KIND` or `KIND STEP` in `expect history [...]`.
struct EventPattern {
  std::string kind;
  std::optional<std::string> step;
  Span span;
};

struct Expect {
  enum class Kind : uint8_t { kStatus, kOutput, kError, kCalls, kUndos, kHistory, kElapsed };
  Kind kind = Kind::kStatus;
  Span span;        // From `expect` to the end of the clause.
  Span value_span;  // The status, the output, the error class, the list, the duration.
  std::string status;
  nlohmann::json output;
  std::string error_class;
  std::optional<std::string> error_message;  // A part of the message.
  std::vector<CallPattern> calls;            // kCalls and kUndos.
  std::vector<EventPattern> history;
  uint64_t elapsed_ms = 0;
};

struct Test {
  std::string name;
  Span name_span;
  Span span;  // The `test` keyword.
  std::optional<Start> start;
  std::vector<AnswerRule> answers;
  std::optional<Cancel> cancel;
  std::vector<Expect> expects;
};

struct File {
  std::optional<std::string> program;  // `program "order.saga"`, relative to the test file.
  Span program_span;
  // Written outside any test: what every test of the file starts with and
  // how it answers, unless the test says otherwise.
  std::optional<Start> start;
  std::vector<AnswerRule> answers;
  std::vector<Test> tests;
};

// What `expect`, in the name of a kind, writes: "status", "calls", ...
const char* to_string(Expect::Kind kind);

// Parses a test file; syntax errors go to `diags` (the format of
// grammar/diagnostic.hpp, with a help line where one helps) and the model
// holds what parsed before the first one.
File parse_scenarios(const SourceFile& source, Diagnostics& diags);

}  // namespace saga::scenario
