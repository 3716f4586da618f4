// The scenario runner behind `sagactl test`: checks a parsed test file
// (grammar/scenario.hpp) against the program it tests, and runs each test
// through the real saga machine and VM, with the test's answers standing in
// for the services and virtual time standing in for the clock.
//
// Invariant: the runner decides only what the world does, the way the engine
// would see it happen: when each attempt's answer arrives (its `after`, or its
// timeout when it comes later or never), when the deadline and a cancel come,
// in the order of virtual time. Everything the saga does (retries, backoffs,
// the in-doubt rule, compensation, the output) is the machine's own decision
// (runtime/engine/machine.hpp, driven through runtime/sim), so a test that
// passes here says what the engine will do with the same answers. Time moves
// only from one event to the next: a 48-hour timeout takes no real time, and
// the jitter of backoffs and uuid() come from a fixed seed, so every run of
// a test gives the same result.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "grammar/diagnostic.hpp"
#include "grammar/scenario.hpp"
#include "runtime/bytecode/program.hpp"
#include "runtime/vm/vm.hpp"

namespace saga::scenario {

// Reports what in `file` cannot mean anything for `program` (an unknown
// saga, action, step, status or event kind, an input that does not fit the
// saga, a test that starts nothing or expects nothing, an answer for an
// action the engine performs itself), with did-you-mean help, into `diags`.
void check(const File& file, const bytecode::Program& program, Diagnostics& diags);

// A failed expectation (or what stopped the test), at its clause, with the
// lines of a diff ("- expected", "+ actual", "  both") when there is one.
struct Failure {
  Diagnostic diagnostic;
  std::vector<std::string> diff;
};

struct TestResult {
  std::vector<Failure> failures;     // Empty: the test passed.
  std::vector<Diagnostic> warnings;  // An answer never used, ...
  std::string status;                // The instance's status at the end.
  int64_t elapsed_ms = 0;            // Virtual time from the start to the last transition.
  uint64_t transitions = 0;
  double seconds = 0;  // Real time the test took.
  bool passed() const { return failures.empty(); }
};

// The most transitions one test may take; a saga that goes on past it (an
// undo answered `fail` forever would stop at its policy well before) fails
// the test instead of running forever.
inline constexpr uint64_t kMaxTransitions = 100'000;

// Runs `test` of `file` (checked: check() reported no error) on `program`.
TestResult run_test(const runtime::LinkedProgram& program, const File& file, const Test& test);

// The lines of a diff from `expected` to `actual` (a longest common
// subsequence, by `same`): "- " for a line only expected, "+ " for one only
// there, "  " for a line in both (shown as it actually is). Lists too long to
// align in 16 MB (4 million pairs) are shown whole, expected then actual.
std::vector<std::string> diff_lines(
    const std::vector<std::string>& expected, const std::vector<std::string>& actual,
    const std::function<bool(size_t expected, size_t actual)>& same);

// Whether `actual` holds what `pattern` says: every field of an object
// pattern present with a matching value (objects compared the same way),
// any other value equal (numbers by value).
bool json_matches(const nlohmann::json& pattern, const nlohmann::json& actual);

}  // namespace saga::scenario
