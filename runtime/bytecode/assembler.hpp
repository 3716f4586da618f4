// The Assembler: how the compiler (and tests) write bytecode. It appends
// instructions with operand widths taken from opcodes.def, interns constants,
// function names and actions, resolves forward jumps through labels, and keeps
// the pc -> source line table. It never produces an instruction whose operand
// kinds disagree with the table (that is a programming error and aborts).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/bytecode/program.hpp"

namespace saga::bytecode {

class Assembler {
 public:
  explicit Assembler(Program& program) : program_(program) {}

  struct Label {
    uint32_t id = 0;
  };

  // Interning: equal values share one index.
  uint32_t constant(const Constant& value);
  uint32_t string(std::string_view text);
  uint32_t number(double value);
  uint32_t function(std::string_view name);
  uint32_t action(std::string_view name, uint32_t service);

  uint32_t pc() const { return static_cast<uint32_t>(program_.code.size()); }

  // Sets the source position recorded for the instructions emitted next.
  void at(uint32_t line, uint32_t column);

  // Emits an instruction without jump operands.
  void emit(Op op, uint32_t a = 0, uint32_t b = 0);

  // Labels for jumps: emit_jump() may refer to a label bound later.
  Label make_label();
  void bind(Label label);
  // [b]: the second operand of a jump that has one (AWAIT's step).
  void emit_jump(Op op, Label target, uint32_t b = 0);

  // Patches every jump. Every label used must have been bound.
  void finish();

 private:
  Program& program_;
  std::unordered_map<std::string, uint32_t> strings_;
  std::unordered_map<uint64_t, uint32_t> numbers_;  // Keyed by the double's bits.
  std::unordered_map<std::string, uint32_t> functions_;
  std::unordered_map<std::string, uint32_t> actions_;
  std::vector<int64_t> label_pcs_;  // -1 until bound.
  struct Fixup {
    uint32_t operand_pc;  // Where the i32 offset is written.
    uint32_t next_pc;     // Offsets are relative to the next instruction.
    uint32_t label;
  };
  std::vector<Fixup> fixups_;
  uint32_t line_ = 0, column_ = 0;
};

}  // namespace saga::bytecode
