// Operator spellings for the AST (grammar/operators.def): the parser reads
// them, diagnostics and debug output print them.
#include "grammar/ast.hpp"

namespace saga::ast {

namespace {

struct OperatorRow {
  BinaryOp op;
  std::string_view spelling;
};

constexpr OperatorRow kOperators[] = {
#define OPERATOR(name, spelling, opcode) {BinaryOp::name, spelling},
#include "grammar/operators.def"
#undef OPERATOR
};

}  // namespace

const char* to_string(BinaryOp op) {
  for (const OperatorRow& row : kOperators) {
    if (row.op == op) return row.spelling.data();
  }
  return "?";
}

std::optional<BinaryOp> binary_op_at(std::string_view text) {
  std::optional<BinaryOp> best;
  size_t best_size = 0;
  for (const OperatorRow& row : kOperators) {
    if (row.spelling.size() > best_size && text.starts_with(row.spelling)) {
      best = row.op;
      best_size = row.spelling.size();
    }
  }
  return best;
}

const char* to_string(UnaryOp op) {
  return op == UnaryOp::Neg ? "-" : "not";
}

}  // namespace saga::ast
