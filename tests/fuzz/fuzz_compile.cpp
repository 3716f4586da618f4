// Fuzz target: .saga source text through the parser, the checker and the
// code generator, and the diagnostics rendered as text and JSON. Properties:
// nothing crashes or hangs; a program the compiler accepts serializes, loads
// back (the loader re-verifies it) and disassembles: the compiler never
// emits bytecode its own verifier refuses.
#include <cstddef>
#include <cstdint>
#include <string>

#include "compiler/compile.hpp"
#include "grammar/diagnostic.hpp"
#include "grammar/source.hpp"
#include "runtime/bytecode/disasm.hpp"
#include "runtime/bytecode/format.hpp"
#include "tests/fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  saga::SourceFile source("fuzz.saga", std::string(reinterpret_cast<const char*>(data), size));
  saga::Diagnostics diags(source);
  auto program = saga::compiler::compile(source, diags);
  (void)diags.render_text();
  (void)diags.render_json();
  if (!program) return 0;
  std::vector<uint8_t> image = saga::bytecode::serialize(*program);
  auto loaded = saga::bytecode::load(image);
  saga::fuzz::fuzz_check(loaded.ok(), "a program the compiler accepts loads and verifies");
  (void)saga::bytecode::disassemble(loaded.value());
  return 0;
}
