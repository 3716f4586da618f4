// Fuzz target: checkpoints (an instance's and its child fibers', in the
// format of checkpoint_input.hpp) through the decoder, against the sample
// programs. Properties: nothing crashes; a checkpoint that decodes encodes
// to one that decodes to the same state; and a decoded state is safe to run:
// the saga machine resumes it and drives it through a few dozen outcomes,
// every state on the way encoding and decoding to itself. The decoder's
// checks are what make a stored instance safe to resume; this is their test.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/engine/machine.hpp"
#include "runtime/vm/checkpoint.hpp"
#include "tests/fuzz/checkpoint_input.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/fuzz/machine_driver.hpp"

namespace {

using saga::runtime::InstanceState;
using saga::runtime::LinkedProgram;

// The state encoded as the store keeps it, decoded again: the same state.
void check_round_trip(const LinkedProgram& lp, const InstanceState& s) {
  const saga::fuzz::Encoded e = saga::fuzz::encode(s);
  auto back = saga::runtime::decode_checkpoint(lp, e.instance, e.fibers);
  if (!back.ok()) {
    std::fprintf(stderr, "fuzz: re-encoded state refused: %s\n", back.status().message().c_str());
  }
  saga::fuzz::fuzz_check(back.ok(), "a state encodes to a checkpoint that decodes");
  saga::fuzz::fuzz_check(back.value() == s, "a checkpoint decodes to the state it encodes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  saga::fuzz::CheckpointInput input;
  if (!saga::fuzz::parse_checkpoint_input(text, input)) return 0;
  const auto& programs = saga::fuzz::samples();
  const LinkedProgram& lp = *programs[input.program % programs.size()];
  auto decoded = saga::runtime::decode_checkpoint(lp, input.instance, input.fibers);
  if (!decoded.ok()) return 0;
  InstanceState state = std::move(decoded).value();
  check_round_trip(lp, state);

  saga::fuzz::FixedContext ctx;
  saga::runtime::Env env = saga::fuzz::driving_env(ctx);
  // The outcomes come from the input's own bytes, so that the fuzzer steers
  // them too.
  size_t next = 0;
  auto pick = [&]() -> uint8_t { return size == 0 ? 0 : data[next++ % size]; };
  saga::runtime::Decision first = saga::runtime::resumed(lp, state, env);
  saga::fuzz::drive(
      lp, state, std::move(first), env, pick,
      [&](const InstanceState& s) { check_round_trip(lp, s); }, 48);
  return 0;
}
