// Fuzz target: a scenario test file (`sagactl test`, grammar/scenario.hpp)
// through its parser and the rendering of its diagnostics, the checks against
// each sample saga, and, for a sample that accepts it, its tests run in
// virtual time (runtime/scenario). Properties: nothing crashes; a test ends
// within the runner's bound; a test gives the same result twice.
#include <cstddef>
#include <cstdint>
#include <string>

#include "grammar/diagnostic.hpp"
#include "grammar/scenario.hpp"
#include "runtime/scenario/runner.hpp"
#include "tests/fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace saga;
  SourceFile source("fuzz.saga.test", std::string(reinterpret_cast<const char*>(data), size));
  Diagnostics diags(source);
  const scenario::File file = scenario::parse_scenarios(source, diags);
  (void)diags.render_text();
  if (diags.has_errors()) return 0;
  for (const fuzz::LinkedProgram* lp : fuzz::samples()) {
    Diagnostics checked(source);
    scenario::check(file, lp->program, checked);
    (void)checked.render_text();
    if (checked.has_errors()) continue;
    // A few tests per input keep an input well under libFuzzer's 1 s.
    for (size_t i = 0; i < file.tests.size() && i < 4; ++i) {
      const scenario::TestResult a = scenario::run_test(*lp, file, file.tests[i]);
      const scenario::TestResult b = scenario::run_test(*lp, file, file.tests[i]);
      fuzz::fuzz_check(a.transitions <= scenario::kMaxTransitions + 1,
                       "a test ends within the runner's bound");
      fuzz::fuzz_check(a.status == b.status && a.elapsed_ms == b.elapsed_ms &&
                           a.transitions == b.transitions && a.failures.size() == b.failures.size(),
                       "a test gives the same result twice");
    }
  }
  return 0;
}
