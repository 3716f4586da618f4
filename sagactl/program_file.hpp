// Reading programs for sagactl: a .saga file is compiled in memory (its
// diagnostics printed), a .sagac file is loaded and verified.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compiler/compile.hpp"
#include "runtime/bytecode/program.hpp"

namespace saga::cli {

// Reads a whole file (a .saga source, or run's --input-file) of at most
// saga::kMaxFileBytes (16 MiB, grammar/source.hpp); prints why it cannot.
std::optional<std::string> read_text_file(const std::string& path);
bool is_source(const std::string& path);
// Compiles; prints diagnostics (text to stderr, or JSON to stdout). Fills
// `obligations`, when given, for a file without errors.
std::optional<bytecode::Program> compile_file(
    const std::string& path, bool json, bool embed_source,
    std::vector<compiler::Obligation>* obligations = nullptr);
// Compiles a .saga or loads a .sagac; prints what went wrong.
std::optional<bytecode::Program> load_program(const std::string& path);

}  // namespace saga::cli
