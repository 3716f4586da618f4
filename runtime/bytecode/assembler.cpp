// Instruction encoding, interning and jump patching for the Assembler.
#include "runtime/bytecode/assembler.hpp"

#include <cstdlib>
#include <cstring>

namespace saga::bytecode {

static void put(std::vector<uint8_t>& code, uint32_t value, uint32_t width) {
  for (uint32_t i = 0; i < width; ++i) code.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

uint32_t Assembler::constant(const Constant& value) {
  switch (value.kind) {
    case Constant::Kind::String:
      return string(value.string);
    case Constant::Kind::Number:
      return number(value.number);
    default:
      break;
  }
  for (uint32_t i = 0; i < program_.constants.size(); ++i) {
    if (program_.constants[i] == value) return i;
  }
  program_.constants.push_back(value);
  return static_cast<uint32_t>(program_.constants.size() - 1);
}

uint32_t Assembler::string(std::string_view text) {
  auto [it, added] = strings_.try_emplace(std::string(text), 0);
  if (added) {
    it->second = static_cast<uint32_t>(program_.constants.size());
    Constant c;
    c.kind = Constant::Kind::String;
    c.string = std::string(text);
    program_.constants.push_back(std::move(c));
  }
  return it->second;
}

uint32_t Assembler::number(double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  auto [it, added] = numbers_.try_emplace(bits, 0);
  if (added) {
    it->second = static_cast<uint32_t>(program_.constants.size());
    Constant c;
    c.kind = Constant::Kind::Number;
    c.number = value;
    program_.constants.push_back(c);
  }
  return it->second;
}

uint32_t Assembler::function(std::string_view name) {
  auto [it, added] = functions_.try_emplace(std::string(name), 0);
  if (added) {
    it->second = static_cast<uint32_t>(program_.functions.size());
    program_.functions.emplace_back(name);
  }
  return it->second;
}

uint32_t Assembler::action(std::string_view name, uint32_t service) {
  auto [it, added] = actions_.try_emplace(std::string(name), 0);
  if (added) {
    it->second = static_cast<uint32_t>(program_.actions.size());
    program_.actions.push_back({std::string(name), service});
  }
  return it->second;
}

void Assembler::at(uint32_t line, uint32_t column) {
  line_ = line;
  column_ = column;
}

void Assembler::emit(Op op, uint32_t a, uint32_t b) {
  const OpInfo& info = op_info(op);
  if (info.flags & kJumps) std::abort();  // Jumps go through emit_jump().
  if (program_.lines.empty() || program_.lines.back().line != line_ ||
      program_.lines.back().column != column_) {
    program_.lines.push_back({pc(), line_, column_});
  }
  program_.code.push_back(static_cast<uint8_t>(op));
  put(program_.code, a, operand_width(info.a));
  put(program_.code, b, operand_width(info.b));
}

Assembler::Label Assembler::make_label() {
  label_pcs_.push_back(-1);
  return {static_cast<uint32_t>(label_pcs_.size() - 1)};
}

void Assembler::bind(Label label) {
  label_pcs_[label.id] = pc();
}

void Assembler::emit_jump(Op op, Label target, uint32_t b) {
  const OpInfo& info = op_info(op);
  if (!(info.flags & kJumps) || (info.b == Operand::None && b != 0)) std::abort();
  if (program_.lines.empty() || program_.lines.back().line != line_ ||
      program_.lines.back().column != column_) {
    program_.lines.push_back({pc(), line_, column_});
  }
  program_.code.push_back(static_cast<uint8_t>(op));
  uint32_t operand_pc = pc();
  put(program_.code, 0, 4);
  put(program_.code, b, operand_width(info.b));
  fixups_.push_back({operand_pc, pc(), target.id});
}

void Assembler::finish() {
  for (const Fixup& f : fixups_) {
    int64_t target = label_pcs_[f.label];
    if (target < 0) std::abort();  // A label was used but never bound.
    auto offset = static_cast<uint32_t>(static_cast<int32_t>(target - f.next_pc));
    for (uint32_t i = 0; i < 4; ++i)
      program_.code[f.operand_pc + i] = static_cast<uint8_t>(offset >> (8 * i));
  }
  fixups_.clear();
}

}  // namespace saga::bytecode
