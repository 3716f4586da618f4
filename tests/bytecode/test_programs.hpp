// Shared fixtures for the bytecode tests (format, verifier, disassembler): a
// realistic program built with the Assembler the way the compiler would build
// it, and a field-by-field comparison of two Programs. The helpers that edit
// .sagac images are in image_edit.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/bytecode/program.hpp"
#include "tests/bytecode/image_edit.hpp"

namespace saga::bytecode::test {

// The source text the order program claims to be compiled from; its line
// numbers match the program's line table.
extern const char* const kOrderSource;

// Two sagas over three services, exercising every table and field:
//   order_fulfillment(order_id: string, customer: string, amount: number,
//   items: list): steps reserve and charge (both with undo blocks, one with a
//   named and one with an inline retry policy), a conditional with a join,
//   a CALL, a FAIL branch and a COMPLETE;
//   ping(target): one step invoking the standard-library action "log".
// The constant pool holds constants of every kind. The program verifies.
Program order_program();

// EXPECTs every field of `actual` to equal the same field of `expected`
// (doubles compared by their bits), naming the field on failure.
void expect_same_program(const Program& expected, const Program& actual);

}  // namespace saga::bytecode::test
