// Fuzz target: .sagac images through the loader, the verifier, the linker and
// the disassembler. The input is an image without its last 8 bytes: the
// target recomputes the header's program hash and appends the checksum
// (bytecode::test::reseal), so mutations reach the section parsers and the
// verifier instead of stopping at the checksum, as a buggy or hostile writer's
// file would. Properties: nothing crashes; a program that loads links and
// disassembles, and serializes to an image that loads again.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "runtime/bytecode/disasm.hpp"
#include "runtime/bytecode/format.hpp"
#include "saga/graph.hpp"
#include "tests/bytecode/test_programs.hpp"
#include "tests/fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> image(data, data + size);
  image.resize(size + 8);  // The trailer that reseal() fills in.
  saga::bytecode::test::reseal(image);
  auto program = saga::bytecode::load(image);
  if (!program.ok()) return 0;
  (void)saga::bytecode::disassemble(program.value());
  auto graph = saga::graph::build(program.value());
  saga::fuzz::fuzz_check(graph.ok(), "a loaded program is drawn");
  for (saga::graph::SagaGraph& g : graph.value().sagas) {
    saga::graph::Trace trace{.status = "compensating"};
    for (const saga::graph::Node& n : g.nodes) {
      trace.history.push_back({"step_completed", n.label, ""});
      trace.history.push_back({"undo_completed", n.label, ""});
    }
    saga::graph::overlay(g, trace);
  }
  (void)saga::graph::to_dot(graph.value());
  (void)saga::graph::to_mermaid(graph.value());
  std::vector<uint8_t> again = saga::bytecode::serialize(program.value());
  auto reloaded = saga::bytecode::load(again);
  saga::fuzz::fuzz_check(reloaded.ok(), "a loaded program written again loads");
  // Linking may refuse a function this runtime lacks; it must not crash.
  (void)saga::runtime::link(std::move(program).value());
  return 0;
}
