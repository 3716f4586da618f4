// The compiler's public entry point: .saga source in, verified Program out.
//
//   parse (grammar/) -> check (check.cpp: names, scopes, policies) ->
//   codegen (codegen.cpp: bytecode through the Assembler) -> verify
//
// Errors and warnings go to a Diagnostics collector; the compiler keeps going
// after an error so that one run reports all of them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/diagnostic.hpp"
#include "grammar/source.hpp"
#include "runtime/bytecode/program.hpp"
#include "saga/status.hpp"

namespace saga::compiler {

// A call a participant author must make safe to repeat: a call of a service
// operation, not declared `idempotent`, that a run may make more than once
// with one idempotency key (retried, sent again after a crash while in doubt)
// or that compensates. `sagactl check --obligations` lists them.
struct Obligation {
  std::string saga;
  std::string service, op;
  std::string step;  // The step's name; an undo's obligation names its step.
  bool undo = false;
  std::string key;               // The key's form: "<instance>/flight/book[i]/undo".
  std::vector<std::string> why;  // "retried: up to 4 attempts on timeout, unavailable", ...
  uint32_t line = 0, column = 0;
};

struct Options {
  // Embed the source text in the program's debug section, so `sagactl disasm`
  // and runtime errors can show source lines without the .saga file.
  bool embed_source = true;
  // When set, filled with the file's obligations (only when it has no errors).
  std::vector<Obligation>* obligations = nullptr;
};

// Compiles `source`. Returns the program when there were no errors (warnings
// allowed); diagnostics are sorted by position. The program has passed the
// bytecode verifier, and its hash is computed when it is serialized.
std::optional<bytecode::Program> compile(const SourceFile& source, Diagnostics& diags,
                                         const Options& options = {});

// For hosts, tests and benchmarks that compile in memory what they load into
// an engine: the .sagac image of `text` (named `name` in diagnostics), or
// kInvalidArgument with the rendered diagnostics as the message.
Result<std::vector<uint8_t>> compile_to_image(const std::string& name, std::string_view text);

// The same for a .saga file; kIoError when it cannot be read or is larger than
// saga::kMaxFileBytes (grammar/source.hpp).
Result<std::vector<uint8_t>> compile_file_to_image(const std::string& path);

}  // namespace saga::compiler
