// The full round trip on the samples: compile -> write -> load (which
// verifies) -> disassemble, plus the errors a damaged file must produce.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "compiler/compile.hpp"
#include "runtime/bytecode/disasm.hpp"
#include "runtime/bytecode/format.hpp"
#include "runtime/bytecode/verify.hpp"

namespace {

namespace fs = std::filesystem;

saga::bytecode::Program compile_sample(const std::string& rel) {
  std::ifstream in(std::string(SAGA_SOURCE_DIR) + "/" + rel);
  std::ostringstream s;
  s << in.rdbuf();
  saga::SourceFile source(rel, s.str());
  saga::Diagnostics diags(source);
  auto p = saga::compiler::compile(source, diags);
  EXPECT_TRUE(p) << diags.render_text();
  return p ? std::move(*p) : saga::bytecode::Program{};
}

class RoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(RoundTrip, CompileWriteLoadVerifyDisassemble) {
  auto program = compile_sample(GetParam());
  fs::path path =
      fs::temp_directory_path() / ("roundtrip-" + std::to_string(::getpid()) + ".sagac");
  ASSERT_TRUE(saga::bytecode::save_file(program, path.string()).ok());
  auto loaded = saga::bytecode::load_file(path.string());
  fs::remove(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_TRUE(saga::bytecode::verify(*loaded).ok());
  EXPECT_EQ(loaded->hash, program.hash);
  EXPECT_EQ(loaded->code, program.code);
  EXPECT_EQ(loaded->source_text, program.source_text);
  ASSERT_EQ(loaded->steps.size(), program.steps.size());
  // The listing names every step and shows source lines from the embedded text.
  std::string listing = saga::bytecode::disassemble(*loaded);
  for (const auto& step : program.steps) {
    EXPECT_NE(listing.find(step.name), std::string::npos) << step.name;
  }
  EXPECT_NE(listing.find("INVOKE"), std::string::npos);
  EXPECT_NE(listing.find(program.hash_hex()), std::string::npos);
  // Saving again gives the same bytes: the format is deterministic.
  auto again = saga::bytecode::serialize(*loaded);
  EXPECT_EQ(again, saga::bytecode::serialize(program));
}

INSTANTIATE_TEST_SUITE_P(Samples, RoundTrip,
                         ::testing::Values("samples/order.saga", "samples/travel.saga",
                                           "samples/approval.saga"),
                         [](const auto& info) { return fs::path(info.param).stem().string(); });

// --- Programs with parallel blocks and foreach loops ---------------------------

saga::bytecode::Program compile_text(const std::string& text) {
  saga::SourceFile source("blocks.saga", text);
  saga::Diagnostics diags(source);
  auto p = saga::compiler::compile(source, diags);
  EXPECT_TRUE(p) << diags.render_text();
  return p ? std::move(*p) : saga::bytecode::Program{};
}

// The format version in a .sagac header (u16, little endian, after the magic).
uint16_t format_version(const std::vector<uint8_t>& image) {
  return static_cast<uint16_t>(image.at(8) | (image.at(9) << 8));
}

constexpr const char* kBlocks = R"(
service s { }
saga trip(id: string, items: list) {
  step first { do s.a(id: id) -> f  undo s.undo(id: f) }
  parallel {
    branch left { step l { do s.l() -> x  undo s.undo(id: x) } }
    branch right {
      parallel foreach item in items max 4 {
        step reserve { do s.reserve(sku: item) -> r  undo s.release(id: r) }
      }
    }
  }
  foreach n in r { step note { do log(message: "${n}") } }
  output { x: x, r: r }
}
)";

TEST(RoundTripBlocks, CompileWriteLoadVerify) {
  auto program = compile_text(kBlocks);
  ASSERT_EQ(program.blocks.size(), 3u);
  auto image = saga::bytecode::serialize(program);
  EXPECT_EQ(format_version(image), 2);  // Blocks need format 2.
  auto loaded = saga::bytecode::load(image);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_TRUE(saga::bytecode::verify(*loaded).ok());
  EXPECT_EQ(loaded->hash, program.hash);
  ASSERT_EQ(loaded->blocks.size(), program.blocks.size());
  for (size_t i = 0; i < program.blocks.size(); ++i) {
    const auto& a = program.blocks[i];
    const auto& b = loaded->blocks[i];
    EXPECT_EQ(a.kind, b.kind) << i;
    EXPECT_EQ(a.saga, b.saga) << i;
    EXPECT_EQ(a.item_slot, b.item_slot) << i;
    EXPECT_EQ(a.max, b.max) << i;
    EXPECT_EQ(a.collect, b.collect) << i;
    ASSERT_EQ(a.branches.size(), b.branches.size()) << i;
    for (size_t j = 0; j < a.branches.size(); ++j) {
      EXPECT_EQ(a.branches[j].name, b.branches[j].name);
      EXPECT_EQ(a.branches[j].entry_pc, b.branches[j].entry_pc);
    }
  }
  EXPECT_EQ(loaded->sagas[0].slot_names, program.sagas[0].slot_names);
  EXPECT_EQ(saga::bytecode::serialize(*loaded), image);
}

TEST(RoundTripBlocks, ProgramsWithoutBlocksStayFormat1) {
  auto program = compile_sample("samples/order.saga");
  EXPECT_TRUE(program.blocks.empty());
  EXPECT_EQ(format_version(saga::bytecode::serialize(program)), 1);
}

TEST(RoundTripBlocks, DisassemblyShowsForkJoinEndAndTheBranches) {
  auto program = compile_text(kBlocks);
  saga::bytecode::serialize(program);
  // What `sagactl disasm` prints.
  const std::string listing = saga::bytecode::disassemble(program);
  for (const char* text :
       {"format 2", "FORK", "JOIN", "END", "branch left of block 0", "branch right of block 0",
        "loop body n of block 1", "loop body item of block 2", "parallel: branches left@",
        "foreach item  max 4  body@", "collect r (each item) -> r", "r (each item)"}) {
    EXPECT_NE(listing.find(text), std::string::npos) << text << "\n" << listing;
  }
}

TEST(DamagedFile, CorruptedByteIsRejected) {
  auto program = compile_sample("samples/order.saga");
  auto image = saga::bytecode::serialize(program);
  image[image.size() / 2] ^= 0x40;
  auto loaded = saga::bytecode::load(image);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), saga::StatusCode::kCorrupt);
  EXPECT_NE(loaded.status().message().find("checksum"), std::string::npos)
      << loaded.status().message();
}

TEST(DamagedFile, TruncatedFileIsRejected) {
  auto program = compile_sample("samples/order.saga");
  auto image = saga::bytecode::serialize(program);
  for (size_t keep : {size_t{0}, size_t{7}, size_t{20}, image.size() / 3, image.size() - 1}) {
    auto loaded = saga::bytecode::load(std::span(image.data(), keep));
    ASSERT_FALSE(loaded.ok()) << keep;
    EXPECT_FALSE(loaded.status().message().empty());
  }
}

TEST(DamagedFile, SameProgramSameHashDifferentProgramDifferentHash) {
  auto a = compile_sample("samples/order.saga");
  auto b = compile_sample("samples/order.saga");
  auto c = compile_sample("samples/travel.saga");
  saga::bytecode::serialize(a);
  saga::bytecode::serialize(b);
  saga::bytecode::serialize(c);
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_NE(a.hash, c.hash);
}

}  // namespace
