// Tests of the .sagac writer and loader (runtime/bytecode/format.cpp): exact
// round trips, the program hash, and that every damaged or truncated image is
// refused with a clean status. Many tests edit a valid image and then reseal it
// (recompute hash and checksum) so that the edit reaches the checks behind the
// checksum, as a buggy or hostile writer would.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "runtime/bytecode/assembler.hpp"
#include "runtime/bytecode/format.hpp"
#include "tests/bytecode/test_programs.hpp"

namespace saga::bytecode {
namespace {

using test::order_program;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(Format, RoundTripKeepsEveryField) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  Result<Program> loaded = load(image);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  test::expect_same_program(p, *loaded);

  // Serializing the loaded program gives the same bytes again.
  Program again = *loaded;
  EXPECT_EQ(serialize(again), image);
}

TEST(Format, HashIsStableAndFilledIn) {
  Program a = order_program(), b = order_program();
  EXPECT_EQ(a.hash, (std::array<uint8_t, 16>{}));
  serialize(a);
  serialize(b);
  EXPECT_NE(a.hash, (std::array<uint8_t, 16>{}));
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(a.hash_hex().size(), 32u);
  EXPECT_EQ(serialize(a), serialize(b));
}

TEST(Format, HashIgnoresDebugSections) {
  Program a = order_program();
  Program b = order_program();
  b.source_name = "renamed.saga";
  b.source_text = "// the same program with other comments and spacing\n";
  for (LineEntry& e : b.lines) e.line += 3;
  std::vector<uint8_t> image_a = serialize(a), image_b = serialize(b);
  EXPECT_NE(image_a, image_b);
  EXPECT_EQ(a.hash, b.hash);

  Result<Program> loaded = load(image_b);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->hash, a.hash);
}

TEST(Format, HashChangesWithAnythingThatAffectsExecution) {
  Program base = order_program();
  serialize(base);

  Program code = order_program();
  code.code[code.sagas[0].entry_pc] = static_cast<uint8_t>(Op::NOP);  // OBJECT -> NOP.
  serialize(code);
  EXPECT_NE(code.hash, base.hash);

  Program constant = order_program();
  constant.constants.back().string += "!";
  serialize(constant);
  EXPECT_NE(constant.hash, base.hash);

  Program policy = order_program();
  policy.policies[0].retry_on.push_back("rejected");
  serialize(policy);
  EXPECT_NE(policy.hash, base.hash);

  Program route = order_program();
  route.services[0].routes[1].method = "POST";
  serialize(route);
  EXPECT_NE(route.hash, base.hash);
}

TEST(Format, StrippedFileWithoutDebugSectionsLoads) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  std::vector<test::SectionRecord> records = test::sections(image);
  ASSERT_EQ(records.size(), 10u);
  ASSERT_EQ(records[8].kind, 9u);  // Lines, then source: cut both.
  image.erase(image.begin() + static_cast<std::ptrdiff_t>(records[8].offset),
              image.end() - test::kTrailerSize);
  test::put_u32(image, test::kSectionCountOffset, 8);
  test::reseal(image);

  Result<Program> loaded = load(image);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->hash, p.hash);  // The identity survives stripping.
  EXPECT_TRUE(loaded->lines.empty());
  EXPECT_TRUE(loaded->source_name.empty());
  EXPECT_TRUE(loaded->source_text.empty());
  EXPECT_EQ(loaded->code, p.code);
}

TEST(Format, EverySingleByteFlipFailsCleanly) {
  Program p = order_program();
  const std::vector<uint8_t> image = serialize(p);
  for (size_t i = 0; i < image.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xFF}) {
      std::vector<uint8_t> damaged = image;
      damaged[i] ^= mask;
      Result<Program> r = load(damaged);
      ASSERT_FALSE(r.ok()) << "flip of byte " << i << " with mask " << int(mask);
      const std::string& m = r.status().message();
      if (i < 8) {
        EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
        EXPECT_EQ(m, "not a .sagac file (bad magic)");
      } else if (i < 10) {  // The format version.
        EXPECT_TRUE(r.status().code() == StatusCode::kUnsupported ||
                    r.status().code() == StatusCode::kCorrupt)
            << m;
        EXPECT_TRUE(contains(m, "format")) << m;
      } else {
        EXPECT_EQ(r.status().code(), StatusCode::kCorrupt) << "byte " << i << ": " << m;
        EXPECT_EQ(m, "checksum mismatch: the file is corrupted") << "byte " << i;
      }
    }
  }
}

TEST(Format, EveryTruncationFailsCleanly) {
  Program p = order_program();
  const std::vector<uint8_t> image = serialize(p);
  for (size_t n = 0; n < image.size(); ++n) {
    Result<Program> r = load(std::span<const uint8_t>(image.data(), n));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes";
    EXPECT_EQ(r.status().code(), StatusCode::kCorrupt) << n;
    EXPECT_FALSE(r.status().message().empty()) << n;
  }
  // A short prefix of the magic is truncated, anything else is not a .sagac file.
  EXPECT_TRUE(contains(load(std::span<const uint8_t>(image.data(), 20)).status().message(),
                       "file is truncated"));
}

TEST(Format, ResealedTruncationsAreReportedAsTruncated) {
  // Cut the file anywhere after the header and write a valid checksum for
  // what is left: only the lengths can tell that something is missing.
  Program p = order_program();
  const std::vector<uint8_t> image = serialize(p);
  const size_t body = image.size() - test::kTrailerSize;
  for (size_t cut = test::kHeaderSize; cut < body; ++cut) {
    std::vector<uint8_t> damaged(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(cut));
    damaged.resize(cut + test::kTrailerSize);
    test::reseal(damaged, /*rehash=*/false);
    Result<Program> r = load(damaged);
    ASSERT_FALSE(r.ok()) << "cut at " << cut;
    EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
    EXPECT_TRUE(contains(r.status().message(), "truncated")) << cut << ": " << r.status().message();
  }
}

TEST(Format, ResealedByteCorruptionNeverCrashes) {
  // Every byte after the header, changed and resealed (hash and checksum):
  // the loader must answer with a status, never crash, read out of bounds or
  // allocate wildly. Run under ASan/UBSan to make "never" meaningful.
  Program p = order_program();
  const std::vector<uint8_t> image = serialize(p);
  const size_t body = image.size() - test::kTrailerSize;
  size_t refused = 0, accepted = 0;
  for (size_t i = test::kHeaderSize; i < body; ++i) {
    for (uint8_t mask : {0x01, 0x10, 0x80, 0xFF}) {
      std::vector<uint8_t> damaged = image;
      damaged[i] ^= mask;
      test::reseal(damaged);
      Result<Program> r = load(damaged);
      if (r.ok()) {
        ++accepted;  // E.g. a changed character in a name or in the source.
      } else {
        ++refused;
        EXPECT_EQ(r.status().code(), StatusCode::kCorrupt) << r.status().message();
        EXPECT_FALSE(r.status().message().empty());
      }
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(accepted, 0u);
}

TEST(Format, RandomResealedMutationsNeverCrash) {
  // Several random byte changes at once (fixed seed, so failures reproduce),
  // resealed so that they reach the structural checks and the verifier.
  Program p = order_program();
  const std::vector<uint8_t> image = serialize(p);
  const size_t body = image.size() - test::kTrailerSize;
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<size_t> where(test::kHeaderSize, body - 1);
  std::uniform_int_distribution<int> byte(0, 255), how_many(2, 8);
  for (int round = 0; round < 3000; ++round) {
    std::vector<uint8_t> damaged = image;
    for (int n = how_many(rng); n > 0; --n) damaged[where(rng)] = static_cast<uint8_t>(byte(rng));
    test::reseal(damaged);
    Result<Program> r = load(damaged);
    if (!r.ok()) {
      EXPECT_FALSE(r.status().message().empty());
    }
  }
}

TEST(Format, BadMagic) {
  std::string text = "order.saga is a text file, not bytecode";
  std::vector<uint8_t> bytes(text.begin(), text.end());
  Result<Program> r = load(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(r.status().message(), "not a .sagac file (bad magic)");

  EXPECT_EQ(load(std::span<const uint8_t>()).status().message(), "not a .sagac file (bad magic)");
}

TEST(Format, NewerFormatVersionIsUnsupported) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  test::put_u16(image, test::kVersionOffset, kFormatVersion + 1);
  test::reseal(image);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(r.status().message(),
            fmt::format("compiled by a newer Saga (format {}, this runtime reads up to {})",
                        kFormatVersion + 1, kFormatVersion));
}

TEST(Format, VersionZeroIsCorrupt) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  test::put_u16(image, test::kVersionOffset, 0);
  test::reseal(image);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_TRUE(contains(r.status().message(), "format version 0"));
}

TEST(Format, MoreOpcodesThanThisRuntimeIsUnsupported) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  test::put_u32(image, test::kOpCountOffset, kOpCount + 1);
  test::reseal(image);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_TRUE(contains(r.status().message(), std::to_string(kOpCount + 1) + " opcodes"))
      << r.status().message();
}

TEST(Format, OpcodeBeyondTheWritersTableIsCorrupt) {
  // The order program uses COMPLETE, the last-but-one opcode. A writer that
  // claims to know fewer opcodes cannot have written it.
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  test::put_u32(image, test::kOpCountOffset, static_cast<uint32_t>(Op::COMPLETE));
  test::reseal(image);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_TRUE(contains(r.status().message(), "beyond the writer's instruction set"))
      << r.status().message();
}

TEST(Format, UnknownFlagsAreCorrupt) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  test::put_u16(image, 10, 1);
  test::reseal(image);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "flags")) << r.status().message();
}

TEST(Format, HashMismatchIsCorrupt) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  image[test::kHashOffset + 5] ^= 0x40;
  test::reseal(image, /*rehash=*/false);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_TRUE(contains(r.status().message(), "program hash mismatch")) << r.status().message();
}

TEST(Format, UnknownSectionKind) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  std::vector<test::SectionRecord> records = test::sections(image);
  test::put_u32(image, records.back().offset, 11);
  test::reseal(image);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "unknown section kind 11");
}

TEST(Format, DuplicateSection) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  std::vector<test::SectionRecord> records = test::sections(image);
  test::put_u32(image, records[1].offset, 1);  // functions -> a second constants.
  test::reseal(image);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "duplicate section 'constants'");
}

TEST(Format, MissingSection) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  std::vector<test::SectionRecord> records = test::sections(image);
  const test::SectionRecord& steps = records[5];
  ASSERT_EQ(steps.kind, 6u);
  image.erase(image.begin() + static_cast<std::ptrdiff_t>(steps.offset),
              image.begin() + static_cast<std::ptrdiff_t>(steps.offset + 8 + steps.length));
  test::put_u32(image, test::kSectionCountOffset, 9);
  test::reseal(image);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "missing section 'steps'");
}

TEST(Format, SectionsOutOfOrder) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  std::vector<test::SectionRecord> records = test::sections(image);
  // Swap the last two records (lines, source): source comes before lines.
  auto at = [&](size_t offset) { return image.begin() + static_cast<std::ptrdiff_t>(offset); };
  std::vector<uint8_t> lines(at(records[8].offset), at(records[9].offset));
  std::vector<uint8_t> source(at(records[9].offset), image.end() - test::kTrailerSize);
  std::vector<uint8_t> swapped(image.begin(), at(records[8].offset));
  swapped.insert(swapped.end(), source.begin(), source.end());
  swapped.insert(swapped.end(), lines.begin(), lines.end());
  swapped.resize(swapped.size() + test::kTrailerSize);
  image = swapped;
  test::reseal(image);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "out of order")) << r.status().message();
}

TEST(Format, SectionLengthPastTheEndIsTruncation) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  std::vector<test::SectionRecord> records = test::sections(image);
  const test::SectionRecord& code = records[7];
  ASSERT_EQ(code.kind, 8u);
  test::put_u32(image, code.offset + 4, 0xFFFFFFF0u);
  test::reseal(image, /*rehash=*/false);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(),
                       "file is truncated (expected 4294967280 bytes of section 'code'"))
      << r.status().message();
}

TEST(Format, HugeCountIsRefusedWithoutAllocating) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  std::vector<test::SectionRecord> records = test::sections(image);
  test::put_u32(image, records[0].offset + 8, 0xFFFFFFFFu);  // Constant count.
  test::reseal(image);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_TRUE(contains(r.status().message(), "section 'constants'")) << r.status().message();
  EXPECT_TRUE(contains(r.status().message(), "4294967295 constants")) << r.status().message();
}

TEST(Format, EnumOutOfRange) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  std::vector<test::SectionRecord> records = test::sections(image);
  image[records[0].offset + 12] = 9;  // Kind of constant 0.
  test::reseal(image);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "unknown constant kind 9")) << r.status().message();
}

// Step kinds, unlimited attempts and `on: any` are written as format 3
// (the kinds one byte per step after the steps); a program without them
// keeps the version it had.
TEST(Format, StepKindsRoundTripInFormat3) {
  Program p = order_program();
  const std::vector<uint8_t> plain = serialize(p);
  EXPECT_EQ(plain[test::kVersionOffset], 1);
  p.steps[2].kind = StepKind::Retriable;  // say: a log, no undo.
  std::vector<uint8_t> image = serialize(p);
  EXPECT_EQ(image[test::kVersionOffset], 3);
  Result<Program> loaded = load(image);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  test::expect_same_program(p, *loaded);

  Program unlimited = order_program();
  unlimited.policies[0].attempts = kUnlimitedAttempts;
  EXPECT_EQ(serialize(unlimited)[test::kVersionOffset], 3);
  Program any = order_program();
  any.policies[0].retry_on = {std::string(kAnyClass)};
  EXPECT_EQ(serialize(any)[test::kVersionOffset], 3);
}

TEST(Format, UnknownStepKindIsCorrupt) {
  Program p = order_program();
  p.steps[2].kind = StepKind::Pivot;
  std::vector<uint8_t> image = serialize(p);
  for (const test::SectionRecord& r : test::sections(image)) {
    if (r.kind != static_cast<uint32_t>(SectionKind::kSteps)) continue;
    image[r.offset + 8 + r.length - 1] = 7;  // The last step's kind.
  }
  test::reseal(image);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "unknown step kind 7")) << r.status().message();
}

// An undo's own policy and `then: pause` are written as format 4 (a u8
// then per policy after the policies, a u32 undo policy per step after the
// kinds), and only then.
TEST(Format, UndoPoliciesAndPausesRoundTripInFormat4) {
  Program p = order_program();
  p.steps[0].undo_retry = 0;  // reserve, which has an undo.
  std::vector<uint8_t> image = serialize(p);
  EXPECT_EQ(image[test::kVersionOffset], 4);
  Result<Program> loaded = load(image);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->steps[0].undo_retry, 0u);
  EXPECT_EQ(loaded->steps[1].undo_retry, kNone);

  Program pausing = order_program();
  pausing.policies[0].then = Then::Pause;
  image = serialize(pausing);
  EXPECT_EQ(image[test::kVersionOffset], 4);
  loaded = load(image);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->policies[0].then, Then::Pause);
  // An older image: the built-in undo policy, policies that fail.
  Program older = order_program();
  loaded = load(serialize(older));
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->policies[0].then, Then::Fail);
  EXPECT_EQ(loaded->steps[0].undo_retry, kNone);
}

TEST(Format, UnknownThenIsCorrupt) {
  Program p = order_program();
  p.policies.back().then = Then::Pause;
  std::vector<uint8_t> image = serialize(p);
  for (const test::SectionRecord& r : test::sections(image)) {
    if (r.kind != static_cast<uint32_t>(SectionKind::kPolicies)) continue;
    image[r.offset + 8 + r.length - 1] = 7;  // The last policy's then.
  }
  test::reseal(image);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "unknown then 7")) << r.status().message();
}

// The verifier: an undo policy in range, on a step with an undo, never one
// that pauses.
TEST(Format, AnUndoPolicyIsVerified) {
  Program p = order_program();
  p.steps[0].undo_retry = 99;
  Result<Program> r = load(serialize(p));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "undo retry policy 99 is out of range"))
      << r.status().message();
  p = order_program();
  p.steps[0].undo_retry = 0;
  p.policies[0].then = Then::Pause;
  r = load(serialize(p));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "its undo retry policy ends in a pause"))
      << r.status().message();
  p = order_program();
  for (Step& s : p.steps) {
    if (s.undo_pc == kNone) s.undo_retry = 0;
  }
  r = load(serialize(p));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "has an undo retry policy but no undo"))
      << r.status().message();
}

// Neither a pivot nor a retriable step is compensated, so one with an undo
// is refused.
TEST(Format, APivotWithAnUndoIsRefused) {
  Program p = order_program();
  p.steps[0].kind = StepKind::Pivot;  // reserve, which has an undo.
  Result<Program> r = load(serialize(p));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "step 'reserve': a pivot step has an undo"))
      << r.status().message();
}

// Strings of a program reach JSON text and the database: a file whose
// checksum is right but whose strings are not UTF-8 is refused.
TEST(Format, StringsThatAreNotUtf8AreCorrupt) {
  Program p = order_program();
  bool changed = false;
  for (Constant& c : p.constants) {
    if (c.kind == Constant::Kind::String && !changed) {
      c.string += "\xff";
      changed = true;
    }
  }
  ASSERT_TRUE(changed) << "the test program has no string constant";
  Result<Program> r = load(serialize(p));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_TRUE(contains(r.status().message(), "is not UTF-8 (byte 0xff")) << r.status().message();
  Program q = order_program();
  q.steps[0].name = "r\xc3";  // A truncated sequence in a name.
  EXPECT_FALSE(load(serialize(q)).ok());
}

TEST(Format, BytesAfterTheLastSection) {
  Program p = order_program();
  std::vector<uint8_t> image = serialize(p);
  image.insert(image.end() - test::kTrailerSize, {1, 2, 3});
  test::reseal(image);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "3 unexpected bytes after the last section");
}

TEST(Format, LoadRunsTheVerifier) {
  // serialize() writes whatever it is given; load() must refuse it.
  Program p = order_program();
  p.code[p.sagas[1].entry_pc + 2] = 7;  // OBJECT; LOAD 7 in ping, which has one slot.
  std::vector<uint8_t> image = serialize(p);
  Result<Program> r = load(image);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(r.status().message(), "saga 'ping': pc " + std::to_string(p.sagas[1].entry_pc + 1) +
                                      " (LOAD): slot 7 is out of range (saga 'ping' has 1 slots)");
}

class FormatFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("saga_format_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(FormatFile, SaveAndLoadFile) {
  Program p = order_program();
  const std::string path = (dir_ / "order.sagac").string();
  Status saved = save_file(p, path);
  ASSERT_TRUE(saved.ok()) << saved.message();
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  Result<Program> loaded = load_file(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  test::expect_same_program(p, *loaded);

  // Saving again replaces the file atomically.
  p.source_text.clear();
  ASSERT_TRUE(save_file(p, path).ok());
  EXPECT_TRUE(load_file(path)->source_text.empty());
}

TEST_F(FormatFile, MissingFileNamesThePath) {
  const std::string path = (dir_ / "missing.sagac").string();
  Result<Program> r = load_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_TRUE(contains(r.status().message(), path)) << r.status().message();
}

TEST_F(FormatFile, CorruptFileNamesThePath) {
  Program p = order_program();
  const std::string path = (dir_ / "order.sagac").string();
  ASSERT_TRUE(save_file(p, path).ok());
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(40);
    char byte = static_cast<char>(f.get());
    f.seekp(40);
    f.put(static_cast<char>(~byte));
  }
  Result<Program> r = load_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(r.status().message(), path + ": checksum mismatch: the file is corrupted");
}

TEST_F(FormatFile, SaveIntoMissingDirectoryFails) {
  Program p = order_program();
  const std::string path = (dir_ / "no" / "such" / "dir.sagac").string();
  Status s = save_file(p, path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_TRUE(contains(s.message(), path)) << s.message();
}

}  // namespace
}  // namespace saga::bytecode
