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

}  // namespace
