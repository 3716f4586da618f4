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
                         ::testing::Values("samples/order.saga", "samples/travel.saga"),
                         [](const auto& info) { return fs::path(info.param).stem().string(); });

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
