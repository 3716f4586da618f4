// The disassembler behind `sagactl disasm`, and the generator of
// docs/opcodes.md. Both are driven by opcodes.def, so they cannot drift from
// the instruction set.
#pragma once

#include <string>

#include "runtime/bytecode/program.hpp"

namespace saga::bytecode {

// A readable listing: the program header (source name, hash, format), then per
// saga its signature, deadline and slots, and its code with one instruction a
// line (pc, opcode, operands, and a comment naming the constant, variable,
// function or step). Whenever the source line changes, the line is printed
// first as "; order.saga:12 |   step reserve {" (the text comes from the
// program's source section when present). Undo blocks follow their saga, each
// under the name of its step. Services, policies and steps are listed as tables.
std::string disassemble(const Program& program);

// A constant as the listing writes it, a JSON literal: null, true, 100, 0.1,
// "text" (escaped, DEL included). The pictures of runtime/graph write
// constants in conditions the same way.
std::string constant_literal(const Constant& c);

// The opcode reference in Markdown (docs/opcodes.md), one section per opcode
// with operands, stack effect, flags, synopsis and documentation.
std::string opcode_reference_markdown();

}  // namespace saga::bytecode
