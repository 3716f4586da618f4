// The golden test of docs/opcodes.md: the committed reference must be exactly
// what opcode_reference_markdown() generates from runtime/bytecode/opcodes.def.
//
// After changing opcodes.def (or the generator), regenerate the file with
//   SAGA_UPDATE_GOLDEN=1 ./build/tests/bytecode/bytecode_tests --gtest_filter='OpcodeDoc.*'
// which rewrites docs/opcodes.md instead of comparing, then review the diff.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "runtime/bytecode/disasm.hpp"

namespace saga::bytecode {
namespace {

const std::string kGoldenPath = std::string(SAGA_SOURCE_DIR) + "/docs/opcodes.md";

bool update_golden() {
  const char* v = std::getenv("SAGA_UPDATE_GOLDEN");
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

TEST(OpcodeDoc, CommittedReferenceIsUpToDate) {
  const std::string generated = opcode_reference_markdown();
  if (update_golden()) {
    std::ofstream out(kGoldenPath, std::ios::binary | std::ios::trunc);
    ASSERT_TRUE(out) << "cannot write " << kGoldenPath;
    out << generated;
    ASSERT_TRUE(out.good());
    GTEST_SKIP() << "rewrote " << kGoldenPath;
  }
  std::ifstream in(kGoldenPath, std::ios::binary);
  ASSERT_TRUE(in) << kGoldenPath << " is missing; run with SAGA_UPDATE_GOLDEN=1 to create it";
  std::stringstream committed;
  committed << in.rdbuf();
  EXPECT_EQ(committed.str(), generated)
      << kGoldenPath
      << " is stale: run the bytecode tests with SAGA_UPDATE_GOLDEN=1 and commit the result";
}

TEST(OpcodeDoc, EveryOpcodeHasARowAndASection) {
  const std::string doc = opcode_reference_markdown();
  for (uint32_t i = 0; i < kOpCount; ++i) {
    const OpInfo& info = kOpInfo[i];
    std::string name(info.name);
    EXPECT_NE(doc.find("| " + std::to_string(i) + " | [" + name + "]"), std::string::npos) << name;
    EXPECT_NE(doc.find("\n### " + name + "\n"), std::string::npos) << name;
    EXPECT_NE(doc.find(std::string(info.doc)), std::string::npos) << name;
  }
  EXPECT_NE(doc.find("opcodes.def"), std::string::npos);
  EXPECT_NE(doc.find("do not edit"), std::string::npos);
}

TEST(OpcodeDoc, StackEffectsAndFlagsComeFromTheTable) {
  const std::string doc = opcode_reference_markdown();
  // Variadic pops are written as the operand they depend on.
  EXPECT_NE(doc.find("| [LIST](#list) | Count | a → 1 |"), std::string::npos);
  EXPECT_NE(doc.find("| [CALL](#call) | Func, Count | b → 1 |"), std::string::npos);
  EXPECT_NE(doc.find("| [JUMP_IF_FALSE](#jump_if_false) | Jump | 1 → 0 | jumps, branches |"),
            std::string::npos);
  EXPECT_NE(doc.find("yields, undo-only"), std::string::npos);
}

}  // namespace
}  // namespace saga::bytecode
