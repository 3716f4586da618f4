// Golden tests for diagnostics: each tests/compiler/cases/NAME.saga is compiled
// and its rendered diagnostics (text format, no colour) must equal NAME.expected
// byte for byte. Run with SAGA_UPDATE_GOLDEN=1 to rewrite the .expected files,
// then review the diff. A case with an empty .expected file fails: every case
// exists to show a diagnostic.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "compiler/compile.hpp"

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

fs::path cases_dir() {
  return fs::path(SAGA_SOURCE_DIR) / "tests/compiler/cases";
}

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(cases_dir())) {
    if (entry.path().extension() == ".saga") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class Diagnostics : public ::testing::TestWithParam<std::string> {};

TEST_P(Diagnostics, MatchesGolden) {
  fs::path source_path = cases_dir() / (GetParam() + ".saga");
  // Diagnostics name the file as the user typed it; use the case-relative name.
  saga::SourceFile source(GetParam() + ".saga", slurp(source_path));
  saga::Diagnostics diags(source);
  saga::compiler::compile(source, diags);
  std::string actual = diags.render_text(false);
  fs::path expected_path = cases_dir() / (GetParam() + ".expected");
  if (std::getenv("SAGA_UPDATE_GOLDEN")) {
    std::ofstream(expected_path, std::ios::binary) << actual;
  }
  ASSERT_FALSE(actual.empty()) << "case produced no diagnostic";
  EXPECT_EQ(slurp(expected_path), actual) << "golden mismatch for " << expected_path;
}

INSTANTIATE_TEST_SUITE_P(Cases, Diagnostics, ::testing::ValuesIn(case_names()),
                         [](const auto& info) { return info.param; });

TEST(DiagnosticsJson, SameFindingsAsText) {
  saga::SourceFile source("u.saga", slurp(cases_dir() / "unknown_service.saga"));
  saga::Diagnostics diags(source);
  saga::compiler::compile(source, diags);
  std::string json = diags.render_json();
  EXPECT_NE(json.find("\"message\": \"unknown service 'inventry'\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"help\": \"did you mean 'inventory'?\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"line\": 5"), std::string::npos) << json;
  EXPECT_NE(json.find("\"severity\": \"error\""), std::string::npos) << json;
}

TEST(DiagnosticsFormat, FileLineColumnSourceCaretHelp) {
  saga::SourceFile source("x.saga", "saga s() {\n  let a = uper(\"x\")\n  output a\n}\n");
  saga::Diagnostics diags(source);
  EXPECT_FALSE(saga::compiler::compile(source, diags).has_value());
  EXPECT_EQ(diags.render_text(false),
            "x.saga:2:11: error: unknown function 'uper'\n"
            " 2 |   let a = uper(\"x\")\n"
            "   |           ^~~~\n"
            "help: did you mean 'upper'?\n");
}

// A parallel block has at most bytecode::kMaxBranches (10000) branches: each
// is a fiber of the instance. (Generated: a golden file of 10001 branches
// would be unreadable.)
std::string branches(int n) {
  std::string text = "saga wide() {\n  parallel {\n";
  for (int i = 0; i < n; ++i)
    text += "    branch b" + std::to_string(i) + " { let v" + std::to_string(i) + " = " +
            std::to_string(i) + " }\n";
  return text + "  }\n}\n";
}

TEST(DiagnosticsLimits, ParallelBranches) {
  {
    saga::SourceFile source("wide.saga", branches(10000));
    saga::Diagnostics diags(source);
    auto program = saga::compiler::compile(source, diags);
    ASSERT_TRUE(program) << diags.render_text().substr(0, 1000);
    EXPECT_EQ(program->blocks.at(0).branches.size(), 10000u);
  }
  saga::SourceFile source("wide.saga", branches(10001));
  saga::Diagnostics diags(source);
  EXPECT_FALSE(saga::compiler::compile(source, diags));
  EXPECT_EQ(diags.render_text(false),
            "wide.saga:2:3: error: a 'parallel' block has 10001 branches: the limit is 10000\n"
            " 2 |   parallel {\n"
            "   |   ^~~~~~~~\n"
            "help: each branch runs as a fiber of the instance, checkpointed with it\n");
}

}  // namespace
