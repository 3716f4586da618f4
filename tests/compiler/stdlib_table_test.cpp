// Tests of the built-in actions' table (stdlib/actions.def, stdlib/table.hpp):
// the rows are well formed, and check_action_arg(), which the compiler calls for
// constant arguments and the runtime for computed ones, accepts and refuses
// what the table says, with the message the user sees.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>

#include "runtime/bytecode/program.hpp"
#include "stdlib/table.hpp"

namespace saga::stdlib {
namespace {

using Kind = ArgView::Kind;

TEST(ActionTable, RowsAreWellFormed) {
  for (const ActionInfo& a : kActions) {
    std::set<std::string_view> names;
    EXPECT_FALSE(a.args().empty()) << a.name;
    for (const ArgSpec& arg : a.args()) {
      EXPECT_TRUE(names.insert(arg.name).second) << a.name << ": " << arg.name << " twice";
      EXPECT_EQ(a.find_arg(arg.name), &arg);
      EXPECT_LE(arg.limits.min, arg.limits.max) << a.name << ": " << arg.name;
      EXPECT_EQ(arg.kind == ArgKind::kOneOf, !arg.limits.choices.empty())
          << a.name << ": " << arg.name;
    }
    EXPECT_EQ(a.find_arg("no_such_argument"), nullptr);
  }
}

TEST(ActionTable, TheEnginePerformsSleepLogAndSignalOnly) {
  for (const ActionInfo& a : kActions) {
    const bool engine = a.name == "sleep" || a.name == "log" || a.name == "signal";
    EXPECT_EQ(by_engine(a.performer), engine) << a.name;
  }
}

TEST(ActionTable, SleepTakesDurationsUpToTheLimit) {
  const ArgSpec* spec = find_action("sleep")->find_arg("for");
  ASSERT_NE(spec, nullptr);
  EXPECT_EQ(spec->presence, ArgPresence::kRequired);
  EXPECT_EQ(spec->kind, ArgKind::kDuration);
  EXPECT_EQ(spec->limits.min, 0);
  EXPECT_EQ(spec->limits.max, static_cast<double>(kMaxDurationMs));
  EXPECT_EQ(describe(*spec), "a duration from 0ms to 10000d");
  EXPECT_EQ(describe(*find_action("log")->find_arg("level")), "one of debug, info, warn, error");
}

// The action an await step calls: what the bytecode names it, performed by
// the engine as a wait for a signal.
TEST(ActionTable, TheSignalActionIsTheAwaitStepsAction) {
  const ActionInfo* a = find_action(saga::bytecode::kSignalAction);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->performer, Performer::kSignal);
  EXPECT_EQ(describe(*a->find_arg("timeout")), "a duration from 1ms to 10000d");
}

struct ArgCase {
  const char* action;
  const char* arg;
  ArgView value;
  const char* error;  // "" when the value is acceptable.
};

void PrintTo(const ArgCase& c, std::ostream* os) {
  *os << c.action << "(" << c.arg << ":)";
}

class CheckActionArg : public ::testing::TestWithParam<ArgCase> {};

TEST_P(CheckActionArg, Says) {
  const ArgCase& c = GetParam();
  EXPECT_EQ(check_action_arg(c.action, c.arg, c.value), c.error);
}

constexpr double kMax = static_cast<double>(kMaxDurationMs);

INSTANTIATE_TEST_SUITE_P(
    Table, CheckActionArg,
    ::testing::Values(
        // sleep(for:): a number of milliseconds from 0 to kMaxDurationMs.
        ArgCase{"sleep", "for", {Kind::kNumber, 30000}, ""},
        ArgCase{"sleep", "for", {Kind::kNumber, 0}, ""},
        ArgCase{"sleep", "for", {Kind::kNumber, 0.5}, ""},
        ArgCase{"sleep", "for", {Kind::kNumber, kMax}, ""},
        ArgCase{"sleep",
                "for",
                {Kind::kNumber, -1000},
                "sleep(for:) must be a duration from 0ms to 10000d, got -1000 (-1s)"},
        ArgCase{"sleep",
                "for",
                {Kind::kNumber, -0.5},
                "sleep(for:) must be a duration from 0ms to 10000d, got -0.5"},
        ArgCase{"sleep",
                "for",
                {Kind::kNumber, kMax + 1},
                "sleep(for:) must be a duration from 0ms to 10000d, got 864000000001"},
        ArgCase{"sleep",
                "for",
                {Kind::kNumber, 1e300},
                "sleep(for:) must be a duration from 0ms to 10000d, got 1e+300"},
        ArgCase{"sleep",
                "for",
                {Kind::kNumber, std::numeric_limits<double>::quiet_NaN()},
                "sleep(for:) must be a duration from 0ms to 10000d, got nan"},
        ArgCase{"sleep",
                "for",
                {Kind::kString, 0, "abc"},
                "sleep(for:) must be a duration from 0ms to 10000d, got 'abc'"},
        ArgCase{"sleep",
                "for",
                {Kind::kNull},
                "sleep(for:) must be a duration from 0ms to 10000d, got null"},
        ArgCase{"sleep",
                "for",
                {Kind::kBool},
                "sleep(for:) must be a duration from 0ms to 10000d, got a boolean"},
        // log(level:): one of the levels, exactly; null is absent (info).
        ArgCase{"log", "level", {Kind::kString, 0, "warn"}, ""},
        ArgCase{"log", "level", {Kind::kString, 0, "debug"}, ""},
        ArgCase{"log", "level", {Kind::kNull}, ""},
        ArgCase{"log",
                "level",
                {Kind::kString, 0, "fatal"},
                "log(level:) must be one of debug, info, warn, error, got 'fatal'"},
        ArgCase{"log",
                "level",
                {Kind::kString, 0, "WARN"},
                "log(level:) must be one of debug, info, warn, error, got 'WARN'"},
        ArgCase{"log",
                "level",
                {Kind::kString, 0, "war"},
                "log(level:) must be one of debug, info, warn, error, got 'war'"},
        ArgCase{"log",
                "level",
                {Kind::kString, 0, ""},
                "log(level:) must be one of debug, info, warn, error, got ''"},
        ArgCase{"log",
                "level",
                {Kind::kNumber, 3},
                "log(level:) must be one of debug, info, warn, error, got 3"},
        ArgCase{"log", "message", {Kind::kObject}, ""},
        ArgCase{"log", "message", {Kind::kNull}, ""},
        // http.*: a string url, an object of headers.
        ArgCase{"http.get", "url", {Kind::kString, 0, "http://h/"}, ""},
        ArgCase{"http.get", "url", {Kind::kNumber, 5}, "http.get(url:) must be a string, got 5"},
        ArgCase{"http.post", "url", {Kind::kNull}, "http.post(url:) must be a string, got null"},
        ArgCase{"http.post", "headers", {Kind::kObject}, ""},
        ArgCase{"http.put",
                "headers",
                {Kind::kList},
                "http.put(headers:) must be an object, got a list"},
        ArgCase{"http.delete", "headers", {Kind::kNull}, ""},
        ArgCase{"http.post", "body", {Kind::kList}, ""},
        // exec: a string command, a list of arguments, any stdin.
        ArgCase{"exec", "cmd", {Kind::kList}, "exec(cmd:) must be a string, got a list"},
        ArgCase{"exec", "args", {Kind::kString, 0, "-l"}, "exec(args:) must be a list, got '-l'"},
        ArgCase{"exec", "stdin", {Kind::kNumber, 1}, ""},
        // What the table does not know is not judged.
        ArgCase{"sleep", "seconds", {Kind::kString, 0, "x"}, ""},
        ArgCase{"inventory.reserve", "order", {Kind::kNull}, ""}));

TEST(CheckActionArgText, LongStringsAreCutAtACharacterBoundary) {
  const std::string level(100, 'x');
  EXPECT_EQ(
      check_action_arg("log", "level", {Kind::kString, 0, level}),
      "log(level:) must be one of debug, info, warn, error, got '" + std::string(40, 'x') + "...'");
  std::string accents;
  for (int i = 0; i < 30; ++i) accents += "\xc3\xa9";  // 60 bytes of "é".
  const std::string message = check_action_arg("log", "level", {Kind::kString, 0, accents});
  EXPECT_NE(message.find("got '" + accents.substr(0, 40) + "...'"), std::string::npos) << message;
  // And not in the middle of one: 39 bytes would split the 20th "é".
  EXPECT_EQ(message.find(accents.substr(0, 39) + "..."), std::string::npos);
}

}  // namespace
}  // namespace saga::stdlib
