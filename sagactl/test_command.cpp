// `sagactl test FILE...`: runs the scenario tests of .saga.test files
// (runtime/scenario) and prints what a test runner prints: a line per test,
// each failure as a diagnostic at its expectation with a diff, and the
// closing `N passed, N failed`; --junit writes the same as JUnit XML.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "grammar/diagnostic.hpp"
#include "grammar/scenario.hpp"
#include "runtime/scenario/runner.hpp"
#include "runtime/value/markup.hpp"
#include "sagactl/commands.hpp"
#include "sagactl/program_file.hpp"

namespace saga::cli {
namespace {

// --filter: a pattern with `*` (any run) and `?` (one character) matches a
// whole test name; one without them matches any name that contains it.
bool name_matches(const std::string& pattern, const std::string& name) {
  if (pattern.find_first_of("*?") == std::string::npos) {
    return name.find(pattern) != std::string::npos;
  }
  // Glob matching with backtracking to the last `*`.
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p, ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// What JUnit XML needs of each test.
struct CaseReport {
  std::string name;
  uint32_t line = 0;
  double seconds = 0;
  bool error = false;   // The file could not run (<error>), rather than a failed test.
  std::string message;  // The first failure.
  std::string text;     // Everything printed about it.
  bool failed() const { return !message.empty(); }
};
struct SuiteReport {
  std::string file;
  std::vector<CaseReport> cases;
};

// Text as XML 1.0 character data or an attribute value: markup characters
// escaped, and what XML cannot hold (control characters, bytes that are
// not UTF-8) replaced, line by line, as the diagnostics print them.
std::string xml_escape(const std::string& text) {
  std::string clean;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    clean += printable(std::string_view(text).substr(start, nl - start));
    if (nl < text.size()) clean += '\n';
    start = nl + 1;
  }
  return escape_markup(clean);
}

bool write_junit(const std::string& path, const std::vector<SuiteReport>& suites) {
  size_t tests = 0, failures = 0, errors = 0;
  double seconds = 0;
  for (const SuiteReport& s : suites) {
    for (const CaseReport& c : s.cases) {
      ++tests;
      failures += c.failed() && !c.error;
      errors += c.error;
      seconds += c.seconds;
    }
  }
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  xml += fmt::format(
      "<testsuites name=\"sagactl test\" tests=\"{}\" failures=\"{}\" errors=\"{}\" "
      "time=\"{:.6f}\">\n",
      tests, failures, errors, seconds);
  for (const SuiteReport& s : suites) {
    size_t f = 0, e = 0;
    double t = 0;
    for (const CaseReport& c : s.cases) {
      f += c.failed() && !c.error;
      e += c.error;
      t += c.seconds;
    }
    xml += fmt::format(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.6f}\">\n",
        xml_escape(s.file), s.cases.size(), f, e, t);
    for (const CaseReport& c : s.cases) {
      xml += fmt::format(
          "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" line=\"{}\" time=\"{:.6f}\"",
          xml_escape(c.name), xml_escape(s.file), xml_escape(s.file), c.line, c.seconds);
      if (!c.failed()) {
        xml += "/>\n";
        continue;
      }
      const char* tag = c.error ? "error" : "failure";
      xml += fmt::format(">\n      <{} message=\"{}\">{}</{}>\n    </testcase>\n", tag,
                         xml_escape(c.message), xml_escape(c.text), tag);
    }
    xml += "  </testsuite>\n";
  }
  xml += "</testsuites>\n";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << xml;
  out.close();
  if (!out) {
    print_error(fmt::format("cannot write the JUnit report '{}'", path));
    return false;
  }
  return true;
}

// The saga file a test file tests: its `program` (relative to the test
// file), else the test file's own name without `.test`.
std::optional<std::string> program_path(const std::string& test_file, const scenario::File& file) {
  if (file.program) {
    return (std::filesystem::path(test_file).parent_path() / *file.program).string();
  }
  if (test_file.size() > 10 && test_file.ends_with(".saga.test")) {
    return test_file.substr(0, test_file.size() - 5);
  }
  return std::nullopt;
}

// Runs the tests of one file; adds what happened to `suite` and the counts.
// Returns false when the file or its program has errors (nothing ran).
bool run_file(const std::string& path, const TestArgs& args, SuiteReport& suite, size_t& passed,
              size_t& failed, size_t& selected) {
  auto could_not_run = [&](const std::string& why) {
    suite.cases.push_back(CaseReport{"(file)", 1, 0, true, why, why});
    return false;
  };
  if (is_source(path) || path.ends_with(".sagac")) {
    const std::string why = fmt::format(
        "{} is a saga, not a test file: sagactl test reads FILE.saga.test (docs/testing.md)", path);
    print_error(why);
    return could_not_run(why);
  }
  auto text = read_text_file(path);
  if (!text) return could_not_run("cannot read " + path);
  SourceFile source(path, std::move(*text));
  Diagnostics diags(source);
  const scenario::File file = scenario::parse_scenarios(source, diags);
  if (diags.has_errors()) {
    std::cerr << diags.render_text(stderr_is_terminal());
    return could_not_run(diags.render_text(false));
  }
  const std::optional<std::string> program_file = program_path(path, file);
  if (!program_file) {
    Diagnostics d(source);
    d.error(Span{0, 0}, "cannot tell which saga file this tests",
            "name the file after its saga (order.saga.test tests order.saga), or write "
            "`program \"order.saga\"` at its top");
    std::cerr << d.render_text(stderr_is_terminal());
    return could_not_run(d.render_text(false));
  }
  std::optional<bytecode::Program> program = load_program(*program_file);
  if (!program) return could_not_run("the program " + *program_file + " has errors");
  scenario::check(file, *program, diags);
  std::cerr << diags.render_text(stderr_is_terminal());
  if (diags.has_errors()) return could_not_run(diags.render_text(false));
  auto linked = runtime::verify_and_link(std::move(*program));
  if (!linked.ok()) {
    print_error(linked.status().message());
    return could_not_run(linked.status().message());
  }
  for (const scenario::Test& test : file.tests) {
    if (!args.filter.empty() && !name_matches(args.filter, test.name)) continue;
    ++selected;
    const scenario::TestResult r = scenario::run_test(linked.value(), file, test);
    const uint32_t line = source.locate(test.span.offset).line;
    CaseReport report{test.name, line, r.seconds, false, {}, {}};
    for (const scenario::Failure& f : r.failures) {
      if (report.message.empty()) report.message = f.diagnostic.message;
      report.text += render_diagnostic(source, f.diagnostic);
      for (const std::string& d : f.diff) report.text += "    " + d + "\n";
    }
    for (const Diagnostic& w : r.warnings) report.text += render_diagnostic(source, w);
    std::cout << fmt::format("{} {}:{}: {}\n", r.passed() ? "ok  " : "FAIL", path, line,
                             printable(test.name));
    std::cout << report.text;
    (r.passed() ? passed : failed) += 1;
    suite.cases.push_back(std::move(report));
  }
  return true;
}

}  // namespace

int test(const TestArgs& args) {
  std::vector<SuiteReport> suites;
  size_t passed = 0, failed = 0, selected = 0;
  bool errors = false;
  for (const std::string& path : args.files) {
    suites.push_back(SuiteReport{path, {}});
    if (!run_file(path, args, suites.back(), passed, failed, selected)) errors = true;
  }
  std::cout << fmt::format("{} passed, {} failed\n", passed, failed);
  if (!args.junit.empty() && !write_junit(args.junit, suites)) return kExitError;
  if (errors) return kExitTestFile;
  if (!args.filter.empty() && selected == 0) {
    print_error(fmt::format("no test matches --filter '{}'", args.filter));
    return kExitUsage;
  }
  return failed == 0 ? kExitOk : kExitError;
}

}  // namespace saga::cli
