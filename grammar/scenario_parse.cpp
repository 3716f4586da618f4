// The scenario test file parser (scenario.hpp): runs the grammar of
// scenario_grammar.hpp and builds the model from PEGTL actions. Apart from
// grammar/parse.cpp, the only translation unit that includes PEGTL.
//
// The grammar never backtracks over a rule whose action has run with
// something left to undo: each clause collects its parts in the Builder's
// slots (a target, a JSON value, a duration, the replies so far) and the
// action of the whole clause moves them into the test being parsed, or into
// the file's defaults outside a test. A syntax error is thrown by the control
// as a SyntaxError holding the offset and the row of the message table; the
// parse stops at the first one (a test file is small, and what follows an
// error in it rarely parses).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <type_traits>

#include <tao/pegtl.hpp>

#include "grammar/scenario.hpp"
#include "grammar/scenario_grammar.hpp"

namespace saga::scenario {
namespace {

namespace pegtl = tao::pegtl;

struct SyntaxError {
  uint32_t offset;
  const peg::ErrorText* text;
  bool string_open = false;  // At the opening '"' of an unterminated string, to the line's end.
};

template <typename Rule>
struct control : pegtl::normal<Rule> {
  template <typename ParseInput, typename... States>
  [[noreturn]] static void raise(const ParseInput& in, States&&... /*unused*/) {
    static_assert(peg::error_text<Rule>.message != nullptr,
                  "every must<> point of the scenario grammar needs a row in its message table");
    const char* at = in.current();
    if constexpr (std::is_same_v<Rule, peg::string_close>) {
      // The string holds no '"', so the last one before here opened it.
      while (at > in.begin() && *--at != '"') {
      }
    }
    throw SyntaxError{static_cast<uint32_t>(at - in.begin()), &peg::error_text<Rule>,
                      std::is_same_v<Rule, peg::string_close>};
  }

  // Lists and objects count towards peg::kMaxJsonNesting, so that deep
  // input is an error instead of overflowing the stack.
  static constexpr bool kNests =
      std::is_same_v<Rule, peg::json_object> || std::is_same_v<Rule, peg::json_array>;
  template <typename ParseInput, typename State>
  static void start(const ParseInput& in, State& b) {
    if constexpr (kNests) {
      if (++b.depth > peg::kMaxJsonNesting) {
        throw SyntaxError{static_cast<uint32_t>(in.current() - in.begin()),
                          &peg::error_text<peg::too_deep>};
      }
    }
  }
  template <typename ParseInput, typename State>
  static void success(const ParseInput&, State& b) {
    if constexpr (kNests) --b.depth;
  }
  template <typename ParseInput, typename State>
  static void failure(const ParseInput&, State& b) {
    if constexpr (kNests) --b.depth;
  }
};

struct Builder {
  explicit Builder(const char* text) : base(text) {}

  const char* base;
  File file;
  Diagnostics* diags = nullptr;
  bool in_test = false;
  size_t depth = 0;     // Lists and objects open (control<>::start).
  bool during = false;  // `cancel during`, not `cancel after`.

  // Slots of the clause being parsed.
  Target target;
  nlohmann::json value;  // The last JSON value that ended a clause part.
  bool has_value = false;
  uint64_t duration = 0;
  std::string saga;
  Span saga_span, input_span;
  std::vector<Answer> replies;
  Answer reply;
  std::vector<CallPattern> calls;
  std::vector<EventPattern> events;
  EventPattern event;
  std::string word;  // A status, an error class.
  std::optional<std::string> text;
  Span word_span;

  template <typename Input>
  Span span(const Input& in) const {
    return Span{static_cast<uint32_t>(in.begin() - base), static_cast<uint32_t>(in.size())};
  }
  template <typename Input>
  Span from(const Input& in, uint32_t start) const {
    const auto end = static_cast<uint32_t>(in.end() - base);
    return Span{start, end - start};
  }
  Test& test() { return file.tests.back(); }

  // A JSON text the grammar matched; nlohmann decodes it (strings' escapes,
  // numbers), so a value means what any JSON reader says it means.
  template <typename Input>
  nlohmann::json decode(const Input& in) {
    try {
      return nlohmann::json::parse(in.begin(), in.end(), nullptr, true, /*ignore_comments=*/true);
    } catch (const nlohmann::json::exception& e) {
      // What the grammar accepts but JSON does not: bytes that are not
      // UTF-8, a control character in a string.
      diags->error(span(in), "this is not valid JSON",
                   "strings must be UTF-8 without control characters (write \\t, \\n)");
      return nullptr;
    }
  }
  template <typename Input>
  std::string decode_string(const Input& in) {
    nlohmann::json j = decode(in);
    return j.is_string() ? j.get<std::string>() : std::string();
  }
};

template <typename Rule>
struct action : pegtl::nothing<Rule> {};

// The longest duration a test may write: 10^12 ms (about 31 years), the
// bound the runtime puts on a backoff (bytecode::backoff_ms).
constexpr double kMaxDurationMs = 1e12;

// A duration in milliseconds from a number and its unit (the grammar
// matched digits, an optional fraction and the unit); past kMaxDurationMs
// (a number of any length: strtod saturates, never throws), nullopt.
std::optional<uint64_t> duration_ms(std::string_view text) {
  size_t unit = 0;
  while (unit < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[unit])) || text[unit] == '.')) {
    ++unit;
  }
  const double n = std::strtod(std::string(text.substr(0, unit)).c_str(), nullptr);
  const std::string_view u = text.substr(unit);
  const double scale = u == "ms"  ? 1
                       : u == "s" ? 1e3
                       : u == "m" ? 60e3
                       : u == "h" ? 3600e3
                                  : 86400e3;
  if (!(n * scale <= kMaxDurationMs)) return std::nullopt;
  return static_cast<uint64_t>(std::llround(n * scale));
}

struct duration_action {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    const std::optional<uint64_t> ms = duration_ms(in.string_view());
    if (!ms) {
      b.diags->error(b.span(in), "this duration is too long", "at most 10^12 ms, about 31 years");
    }
    b.duration = ms.value_or(0);
  }
};
template <>
struct action<peg::after_duration> : duration_action {};
template <>
struct action<peg::cancel_duration> : duration_action {};
template <>
struct action<peg::elapsed_duration> : duration_action {};

struct target_action {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.target.span = b.span(in);
    b.target.key = *in.begin() == '"';
    b.target.name = b.target.key ? b.decode_string(in) : in.string();
  }
};
template <>
struct action<peg::answer_target> : target_action {};
template <>
struct action<peg::cancel_target> : target_action {};
template <>
struct action<peg::call_target> : target_action {};

struct value_action {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.value = b.decode(in);
    b.has_value = true;
  }
};
template <>
struct action<peg::ok_result> : value_action {};
template <>
struct action<peg::output_value> : value_action {};
template <>
struct action<peg::call_args> : value_action {};

template <>
struct action<peg::program_path> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.file.program = b.decode_string(in);
    b.file.program_span = b.span(in);
  }
};

template <>
struct action<peg::saga_name> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.saga = in.string();
    b.saga_span = b.span(in);
  }
};

template <>
struct action<peg::input> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.value = b.decode(in);
    b.input_span = b.span(in);
  }
};

template <>
struct action<peg::start_clause> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    Start s{b.saga, b.saga_span, std::move(b.value), b.input_span, b.span(in)};
    if (!b.in_test) {
      if (b.file.start) {
        b.diags->error(s.span, "a second 'start' for every test: the first would have no effect");
      }
      b.file.start = std::move(s);
    } else {
      if (b.test().start) {
        b.diags->error(s.span, "a second 'start' in this test: a test starts one saga");
      }
      b.test().start = std::move(s);
    }
  }
};

template <>
struct action<peg::fail_class> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.reply.error_class = in.string();
  }
};
template <>
struct action<peg::fail_message> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.reply.message = b.decode_string(in);
  }
};
template <>
struct action<peg::unsent> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.reply.unsent = true;
  }
};
template <>
struct action<peg::ok_reply> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.reply.kind = Answer::Kind::kOk;
    b.reply.result = b.has_value ? std::move(b.value) : nlohmann::json();
  }
};
template <>
struct action<peg::fail_reply> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.reply.kind = Answer::Kind::kFail;
  }
};
template <>
struct action<peg::never_reply> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.reply.kind = Answer::Kind::kNever;
  }
};
template <>
struct action<peg::kw_after> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.has_value = false;
  }
};
template <>
struct action<peg::kw_ok> : action<peg::kw_after> {};

template <>
struct action<peg::reply> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.reply.span = b.span(in);
    // `after` was written when the reply does not start with its kind.
    const std::string_view text = in.string_view();
    b.reply.after_ms = text.rfind("after", 0) == 0 ? b.duration : 0;
    b.replies.push_back(std::move(b.reply));
    b.reply = Answer{};
  }
};

template <>
struct action<peg::kw_answer> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.replies.clear();
    b.reply = Answer{};
  }
};

template <>
struct action<peg::answer_clause> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    AnswerRule rule{std::move(b.target), std::move(b.replies), b.span(in)};
    std::vector<AnswerRule>& rules = b.in_test ? b.test().answers : b.file.answers;
    for (const AnswerRule& r : rules) {
      if (r.target.name == rule.target.name && r.target.key == rule.target.key) {
        b.diags->error(
            rule.target.span,
            "a second answer for '" + rule.target.name + "': the first would have no effect",
            "give one answer per attempt in one clause: answer X fail timeout then ok {...}");
      }
    }
    rules.push_back(std::move(rule));
    b.replies.clear();
  }
};

template <>
struct action<peg::kw_cancel> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.during = false;
  }
};
template <>
struct action<peg::kw_during> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.during = true;
  }
};

template <>
struct action<peg::cancel_clause> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    Cancel c;
    c.span = b.span(in);
    c.during = b.during;
    if (c.during) {
      c.target = std::move(b.target);
    } else {
      c.after_ms = b.duration;
    }
    if (b.test().cancel)
      b.diags->error(c.span, "a second 'cancel' in this test: a saga is cancelled once");
    b.test().cancel = std::move(c);
  }
};

template <>
struct action<peg::kw_expect> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.has_value = false;
    b.calls.clear();
    b.events.clear();
    b.text.reset();
  }
};

struct word_action {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.word = in.string();
    b.word_span = b.span(in);
  }
};
template <>
struct action<peg::status_name> : word_action {};
template <>
struct action<peg::error_class> : word_action {};
template <>
struct action<peg::error_message> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.text = b.decode_string(in);
  }
};

template <>
struct action<peg::call_pattern> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    CallPattern c{std::move(b.target), std::nullopt, b.span(in)};
    if (b.has_value) c.args = std::move(b.value);
    b.has_value = false;
    b.calls.push_back(std::move(c));
  }
};
template <>
struct action<peg::event_kind> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.event = EventPattern{in.string(), std::nullopt, {}};
  }
};
template <>
struct action<peg::event_step> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.event.step = *in.begin() == '"' ? b.decode_string(in) : in.string();
  }
};
template <>
struct action<peg::event_pattern> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.event.span = b.span(in);
    b.events.push_back(std::move(b.event));
  }
};

// Each kind of expectation, from the slots its parts filled.
template <Expect::Kind K>
struct expect_action {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    Expect e;
    e.kind = K;
    const std::string_view text = in.string_view();
    const size_t value = text.find_first_of(" \t\r\n/");
    const auto head = static_cast<uint32_t>(value == std::string_view::npos ? 0 : value);
    e.value_span = Span{static_cast<uint32_t>(in.begin() - b.base) + head,
                        static_cast<uint32_t>(in.size()) - head};
    if constexpr (K == Expect::Kind::kStatus || K == Expect::Kind::kError) {
      e.value_span = b.word_span;
      e.status = b.word;
      e.error_class = b.word;
      e.error_message = b.text;
    } else if constexpr (K == Expect::Kind::kOutput) {
      e.output = std::move(b.value);
    } else if constexpr (K == Expect::Kind::kCalls || K == Expect::Kind::kUndos) {
      e.calls = std::move(b.calls);
    } else if constexpr (K == Expect::Kind::kHistory) {
      e.history = std::move(b.events);
    } else {
      e.elapsed_ms = b.duration;
    }
    b.test().expects.push_back(std::move(e));
  }
};
template <>
struct action<peg::expect_status> : expect_action<Expect::Kind::kStatus> {};
template <>
struct action<peg::expect_output> : expect_action<Expect::Kind::kOutput> {};
template <>
struct action<peg::expect_error> : expect_action<Expect::Kind::kError> {};
template <>
struct action<peg::expect_calls> : expect_action<Expect::Kind::kCalls> {};
template <>
struct action<peg::expect_undos> : expect_action<Expect::Kind::kUndos> {};
template <>
struct action<peg::expect_history> : expect_action<Expect::Kind::kHistory> {};
template <>
struct action<peg::expect_elapsed> : expect_action<Expect::Kind::kElapsed> {};

template <>
struct action<peg::expect_clause> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    Expect& e = b.test().expects.back();
    e.span = b.span(in);
    for (size_t i = 0; i + 1 < b.test().expects.size(); ++i) {
      if (b.test().expects[i].kind == e.kind) {
        b.diags->error(e.span, std::string("a second 'expect ") + to_string(e.kind) +
                                   "' in this test: one of them would have no effect");
      }
    }
  }
};

template <>
struct action<peg::kw_test> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.file.tests.emplace_back();
    b.test().span = b.span(in);
    b.in_test = true;
  }
};
template <>
struct action<peg::test_name> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.test().name = b.decode_string(in);
    b.test().name_span = b.span(in);
  }
};
template <>
struct action<peg::test_decl> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.in_test = false;
  }
};

}  // namespace

const char* to_string(Expect::Kind kind) {
  switch (kind) {
    case Expect::Kind::kStatus:
      return "status";
    case Expect::Kind::kOutput:
      return "output";
    case Expect::Kind::kError:
      return "error";
    case Expect::Kind::kCalls:
      return "calls";
    case Expect::Kind::kUndos:
      return "undos";
    case Expect::Kind::kHistory:
      return "history";
    case Expect::Kind::kElapsed:
      return "elapsed";
  }
  return "?";
}

File parse_scenarios(const SourceFile& source, Diagnostics& diags) {
  Builder b(source.text().data());
  b.diags = &diags;
  pegtl::memory_input<pegtl::tracking_mode::lazy> in(source.text().data(), source.text().size(),
                                                     source.name());
  try {
    pegtl::parse<peg::file, action, control>(in, b);
  } catch (const SyntaxError& e) {
    // At the token where the parser stood: past whitespace and comments.
    uint32_t at = e.offset;
    const std::string& text = source.text();
    while (at < text.size() && !e.string_open) {
      if (std::isspace(static_cast<unsigned char>(text[at]))) {
        ++at;
      } else if (text.compare(at, 2, "//") == 0) {
        while (at < text.size() && text[at] != '\n') ++at;
      } else {
        break;
      }
    }
    uint32_t len = 0;
    while (at + len < text.size() && text[at + len] != '\n' &&
           (e.string_open ||
            (!std::isspace(static_cast<unsigned char>(text[at + len])) && len < 40))) {
      ++len;
    }
    diags.error(Span{at, std::max<uint32_t>(len, 1)}, e.text->message,
                e.text->help ? e.text->help : "");
  }
  diags.sort();
  return std::move(b.file);
}

}  // namespace saga::scenario
