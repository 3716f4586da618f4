// What the fuzz targets share: the programs they run inputs against
// (compiled once from samples/), a function context with fixed time and
// randomness, and the check that stops a target at a broken property.
//
// Every target in this folder is a libFuzzer entry point
// (LLVMFuzzerTestOneInput). Built with SAGA_FUZZ (clang), libFuzzer drives
// it; built without (GCC, every CI build), replay_main.cpp feeds it the seeds
// and the regressions. A property a target checks (a compiled program
// verifies, a decoded checkpoint encodes to itself) fails through
// fuzz_check(), which aborts: libFuzzer records the input, and the replay
// test fails.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/vm/vm.hpp"
#include "stdlib/functions.hpp"

namespace saga::fuzz {

using runtime::LinkedProgram;

// Aborts with `what` when `ok` is false: a property the code promises is
// broken by this input.
inline void fuzz_check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz: property broken: %s\n", what);
  std::abort();
}

// Pure functions see a fixed time and fixed random bytes, so that one input
// always runs the same way.
class FixedContext final : public stdlib::FunctionContext {
 public:
  int64_t now_ms() override { return 1'767'225'600'000; }  // 2026-01-01.
  void random_bytes(std::span<uint8_t> out) override {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i * 37 + 11);
  }
};

// A sample compiled and linked, by its path under the repository
// (samples/order.saga). Compiling a sample must succeed; a target cannot run
// without its programs.
const LinkedProgram& sample(const std::string& relative_path);

// The samples the checkpoint and input targets use, in a fixed order: an
// input's first byte picks one.
const std::vector<const LinkedProgram*>& samples();

// XXH3-64 of `bytes`, for targets that seal what they forge.
uint64_t xxh3(std::string_view bytes);

}  // namespace saga::fuzz
