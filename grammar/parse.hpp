// The parser's entry point: .saga text in, AST and syntax diagnostics out.
// The PEGTL grammar itself (saga_grammar.hpp) is included only by parse.cpp so
// that no other translation unit pays for PEGTL's templates.
#pragma once

#include "grammar/ast.hpp"
#include "grammar/diagnostic.hpp"
#include "grammar/source.hpp"

namespace saga::grammar {

// Parses `src` into `out` and reports syntax errors to `diags` in the common
// format ("expected ..."). After a syntax error inside a top-level item the
// parser skips to the next line that starts with `service`, `retry` or `saga`
// and goes on, so a file with several broken items reports each of them; the
// items that parsed are kept in `out`. Returns true when there was no syntax
// error. Never throws for any input.
bool parse(const SourceFile& src, ast::File& out, Diagnostics& diags);

}  // namespace saga::grammar
