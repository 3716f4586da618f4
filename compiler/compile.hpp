// The compiler's public entry point: .saga source in, verified Program out.
//
//   parse (grammar/) -> check (check.cpp: names, scopes, policies) ->
//   codegen (codegen.cpp: bytecode through the Assembler) -> verify
//
// Errors and warnings go to a Diagnostics collector; the compiler keeps going
// after an error so that one run reports all of them.
#pragma once

#include <optional>

#include "grammar/diagnostic.hpp"
#include "grammar/source.hpp"
#include "runtime/bytecode/program.hpp"

namespace saga::compiler {

struct Options {
  // Embed the source text in the program's debug section, so `sagactl disasm`
  // and runtime errors can show source lines without the .saga file.
  bool embed_source = true;
};

// Compiles `source`. Returns the program when there were no errors (warnings
// allowed); diagnostics are sorted by position. The program has passed the
// bytecode verifier, and its hash is computed when it is serialized.
std::optional<bytecode::Program> compile(const SourceFile& source, Diagnostics& diags,
                                         const Options& options = {});

}  // namespace saga::compiler
