// Grammar tests for input that parses: the AST shape and spans of
// samples/order.saga, then tables of expressions, strings, numbers, statements,
// services and configuration values with the tree each must produce (printed by
// ast_dump.hpp), and the PEGTL analyze<>() check of the grammar. Covers
// grammar/saga_grammar.hpp and the actions in grammar/parse.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <tao/pegtl/contrib/analyze.hpp>

#include "grammar/saga_grammar.hpp"
#include "tests/grammar/ast_dump.hpp"

namespace saga::grammar::test {
namespace {

std::string read_sample(const std::string& name) {
  std::ifstream in(std::string(SAGA_SOURCE_DIR) + "/samples/" + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// --- The grammar itself -----------------------------------------------------

TEST(Grammar, AnalyzeFindsNoProblems) {
  // analyze<>() reports rules that could loop without consuming input.
  EXPECT_EQ(tao::pegtl::analyze<peg::file>(), 0u);  // Prints any problem it finds.
}

TEST(Grammar, ReservedWords) {
  for (const char* w :
       {"service", "retry", "saga", "step", "do", "undo", "timeout", "let", "if", "else", "fail",
        "output", "deadline", "true", "false", "null", "and", "or", "not"}) {
    EXPECT_TRUE(peg::is_reserved_word(w)) << w;
  }
  for (const char* w : {"url", "breaker", "bulkhead", "op", "services", "Step", "x", ""}) {
    EXPECT_FALSE(peg::is_reserved_word(w)) << w;
  }
}

// --- samples/ ------------------------------------------------------------------

TEST(Samples, EverySampleParses) {
  size_t count = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(SAGA_SOURCE_DIR) + "/samples")) {
    if (entry.path().extension() != ".saga") continue;
    ++count;
    Parsed p(read_sample(entry.path().filename().string()), entry.path().filename().string());
    EXPECT_TRUE(p.ok) << entry.path() << "\n" << p.diags.render_text();
    EXPECT_FALSE(p.file.sagas.empty()) << entry.path();
  }
  EXPECT_GE(count, 1u);
}

// --- samples/order.saga -----------------------------------------------------

class SampleTest : public ::testing::Test {
 protected:
  SampleTest() : p(read_sample("order.saga"), "order.saga") {}
  Parsed p;
};

TEST_F(SampleTest, ParsesWithoutErrors) {
  EXPECT_TRUE(p.ok) << p.diags.render_text();
  EXPECT_EQ(p.diags.all().size(), 0u);
  EXPECT_EQ(p.file.services.size(), 3u);
  EXPECT_EQ(p.file.policies.size(), 1u);
  EXPECT_EQ(p.file.sagas.size(), 1u);
}

TEST_F(SampleTest, Services) {
  ASSERT_EQ(p.file.services.size(), 3u);
  const ast::Service& inventory = p.file.services[0];
  EXPECT_EQ(inventory.name, "inventory");
  EXPECT_EQ(p.text(inventory.name_span), "inventory");
  EXPECT_TRUE(inventory.has_url);
  EXPECT_EQ(inventory.url, "http://127.0.0.1:8081");
  EXPECT_EQ(p.text(inventory.url_span), "\"http://127.0.0.1:8081\"");
  EXPECT_EQ(dump(inventory.timeout), "(dur 2s 2000)");
  EXPECT_EQ(inventory.breaker, nullptr);
  EXPECT_EQ(inventory.bulkhead, nullptr);
  ASSERT_EQ(inventory.clauses.size(), 2u);
  EXPECT_EQ(inventory.clauses[0].first, "url");
  EXPECT_EQ(p.text(inventory.clauses[0].second), "url");
  EXPECT_EQ(inventory.clauses[1].first, "timeout");
  EXPECT_EQ(p.text(inventory.clauses[1].second), "timeout");
  EXPECT_EQ(p.text(inventory.span),
            "service inventory { url \"http://127.0.0.1:8081\"  timeout 2s }");

  const ast::Service& payment = p.file.services[1];
  EXPECT_EQ(payment.name, "payment");
  EXPECT_EQ(dump(payment.timeout), "(dur 3s 3000)");
  ASSERT_NE(payment.breaker, nullptr);
  EXPECT_EQ(p.text(payment.breaker->span), "{ failures: 5, reset: 30s, probes: 2 }");
  ASSERT_EQ(payment.breaker->fields.size(), 3u);
  EXPECT_EQ(payment.breaker->fields[0].key, "failures");
  EXPECT_EQ(p.text(payment.breaker->fields[0].key_span), "failures");
  EXPECT_EQ(dump(payment.breaker->fields[0].value), "5");
  EXPECT_EQ(dump(payment.breaker->fields[1].value), "(dur 30s 30000)");
  EXPECT_EQ(dump(payment.bulkhead), "16");
  std::vector<std::string> clauses;
  for (const auto& [kw, span] : payment.clauses) clauses.push_back(kw);
  EXPECT_EQ(clauses, (std::vector<std::string>{"url", "timeout", "breaker", "bulkhead"}));

  const ast::Service& shipping = p.file.services[2];
  EXPECT_EQ(shipping.name, "shipping");
  EXPECT_FALSE(shipping.has_url);
  ASSERT_EQ(shipping.clauses.size(), 1u);
  EXPECT_EQ(shipping.clauses[0].first, "timeout");
  EXPECT_EQ(dump(shipping.timeout), "(dur 5s 5000)");
  EXPECT_EQ(p.text(shipping.span), "service shipping  { timeout 5s }");
}

TEST_F(SampleTest, RetryPolicy) {
  ASSERT_EQ(p.file.policies.size(), 1u);
  const ast::RetryPolicy& r = p.file.policies[0];
  EXPECT_EQ(r.name, "standard");
  EXPECT_EQ(p.text(r.name_span), "standard");
  ASSERT_EQ(r.body.fields.size(), 4u);
  EXPECT_EQ(r.body.fields[0].key, "attempts");
  EXPECT_EQ(dump(r.body.fields[0].value), "4");
  EXPECT_EQ(r.body.fields[1].key, "backoff");
  EXPECT_EQ(dump(r.body.fields[1].value), "(call exponential (dur 200ms 200) 2 (dur 5s 5000))");
  EXPECT_EQ(p.text(r.body.fields[1].value->name_span), "exponential");
  EXPECT_EQ(p.text(r.body.fields[1].value->span), "exponential(200ms, 2.0, 5s)");
  EXPECT_EQ(dump(r.body.fields[2].value), "full");
  // Reserved words are fine as configuration values.
  EXPECT_EQ(dump(r.body.fields[3].value), "[timeout unavailable]");
  EXPECT_EQ(p.text(r.body.span).front(), '{');
  EXPECT_EQ(p.text(r.body.span).back(), '}');
  EXPECT_EQ(p.text(r.span).substr(0, 15), "retry standard ");
}

TEST_F(SampleTest, SagaHeader) {
  const ast::Saga& s = p.file.sagas[0];
  EXPECT_EQ(s.name, "order_fulfillment");
  EXPECT_EQ(p.text(s.name_span), "order_fulfillment");
  ASSERT_EQ(s.params.size(), 4u);
  EXPECT_EQ(s.params[0].name, "order_id");
  EXPECT_EQ(s.params[0].type, "string");
  EXPECT_EQ(p.text(s.params[0].name_span), "order_id");
  EXPECT_EQ(p.text(s.params[0].type_span), "string");
  EXPECT_EQ(s.params[2].name, "amount");
  EXPECT_EQ(s.params[2].type, "number");
  EXPECT_EQ(s.params[3].type, "list");
  EXPECT_EQ(p.text(s.span).substr(0, 23), "saga order_fulfillment(");
  EXPECT_EQ(p.text(s.span).back(), '}');
  EXPECT_EQ(s.span.offset + s.span.length, p.src.text().find_last_of('}') + 1);
}

TEST_F(SampleTest, Statements) {
  const ast::Block& body = p.file.sagas[0].body;
  std::vector<ast::StmtKind> kinds;
  for (const ast::Stmt& s : body) kinds.push_back(s.kind);
  using K = ast::StmtKind;
  EXPECT_EQ(kinds,
            (std::vector<K>{K::Deadline, K::Step, K::Step, K::Let, K::If, K::If, K::Output}));
  EXPECT_EQ(dump(body[0].expr), "(dur 10m 600000)");
  EXPECT_EQ(p.text(body[0].span), "deadline 10m");
  EXPECT_EQ(dump(body[3]), "(let express (and (> amount 100) (<= (call len items) 3)))");
  EXPECT_EQ(p.text(body[3].name_span), "express");
  EXPECT_EQ(p.text(body[3].span), "let express = amount > 100 and len(items) <= 3");
  EXPECT_EQ(dump(body[6]),
            "(output {order:order_id receipt:(. receipt id) tracking:(. shipment tracking)})");
  EXPECT_EQ(p.text(body[6].expr->key_spans[1]), "receipt");
}

TEST_F(SampleTest, StepReserve) {
  const ast::Stmt& stmt = p.file.sagas[0].body[1];
  ASSERT_EQ(stmt.kind, ast::StmtKind::Step);
  const ast::Step& step = *stmt.step;
  EXPECT_EQ(step.name, "reserve");
  EXPECT_EQ(p.text(step.name_span), "reserve");
  EXPECT_EQ(p.text(step.span).substr(0, 14), "step reserve {");
  EXPECT_EQ(p.text(step.span).back(), '}');
  EXPECT_EQ(stmt.span.offset, step.span.offset);
  ASSERT_NE(step.action, nullptr);
  EXPECT_EQ(step.action->target, "inventory.reserve");
  EXPECT_EQ(p.text(step.action->target_span), "inventory.reserve");
  EXPECT_EQ(p.text(step.action->span), "inventory.reserve(order: order_id, items: items)");
  ASSERT_EQ(step.action->args.size(), 2u);
  EXPECT_EQ(step.action->args[0].name, "order");
  EXPECT_EQ(p.text(step.action->args[0].name_span), "order");
  EXPECT_EQ(dump(step.action->args[0].value), "order_id");
  EXPECT_EQ(step.bind, "reservation");
  EXPECT_EQ(p.text(step.bind_span), "reservation");
  ASSERT_NE(step.undo, nullptr);
  EXPECT_EQ(dump_call(*step.undo), "inventory.release(reservation:(. reservation id))");
  EXPECT_EQ(dump(step.timeout), "(dur 2s 2000)");
  EXPECT_EQ(step.timeout->number, 2000);
  ASSERT_NE(step.retry, nullptr);
  EXPECT_EQ(step.retry->name, "standard");
  EXPECT_EQ(step.retry->inline_policy, nullptr);
  EXPECT_EQ(p.text(step.retry->span), "standard");
  std::vector<std::string> clauses;
  for (const auto& [kw, span] : step.clauses) clauses.push_back(kw + "@" + p.text(span));
  EXPECT_EQ(clauses,
            (std::vector<std::string>{"do@do", "undo@undo", "timeout@timeout", "retry@retry"}));
}

TEST_F(SampleTest, StepChargeInterpolationAndInlineRetry) {
  const ast::Step& step = *p.file.sagas[0].body[2].step;
  EXPECT_EQ(step.name, "charge");
  EXPECT_EQ(dump_call(*step.action),
            "payment.charge(customer:customer amount:amount currency:\"EUR\")");
  ASSERT_NE(step.undo, nullptr);
  const ast::Expr& reason = *step.undo->args[1].value;
  EXPECT_EQ(reason.kind, ast::ExprKind::Interp);
  EXPECT_EQ(dump(reason), "(interp \"order \" order_id \" cancelled\")");
  EXPECT_EQ(p.text(reason.span), "\"order ${order_id} cancelled\"");
  EXPECT_EQ(p.text(reason.items[0]->span), "order ");
  EXPECT_EQ(p.text(reason.items[1]->span), "order_id");
  EXPECT_EQ(p.text(reason.items[2]->span), " cancelled");
  EXPECT_EQ(step.timeout, nullptr);
  ASSERT_NE(step.retry, nullptr);
  EXPECT_TRUE(step.retry->name.empty());
  ASSERT_NE(step.retry->inline_policy, nullptr);
  const ast::Config& cfg = *step.retry->inline_policy;
  ASSERT_EQ(cfg.fields.size(), 3u);
  EXPECT_EQ(dump(cfg.fields[1].value), "(call fixed (dur 1s 1000))");
  EXPECT_EQ(dump(cfg.fields[2].value), "[unavailable]");
  EXPECT_EQ(p.text(cfg.span), "{ attempts: 3, backoff: fixed(1s), on: [unavailable] }");
  EXPECT_EQ(p.text(step.retry->span), p.text(cfg.span));
}

TEST_F(SampleTest, IfElseAndFail) {
  const ast::Block& body = p.file.sagas[0].body;
  const ast::Stmt& branch = body[4];
  EXPECT_EQ(dump(branch.expr), "express");
  ASSERT_NE(branch.then_block, nullptr);
  ASSERT_NE(branch.else_block, nullptr);
  EXPECT_EQ((*branch.then_block)[0].step->name, "ship");
  EXPECT_EQ((*branch.else_block)[0].step->name, "ship_standard");
  EXPECT_EQ(p.text(branch.span).substr(0, 11), "if express ");
  EXPECT_EQ(p.text(branch.span).back(), '}');

  const ast::Stmt& check = body[5];
  EXPECT_EQ(dump(check),
            "(if (== (. shipment status) \"refused\") "
            "{(fail rejected (interp \"carrier refused order \" order_id))})");
  EXPECT_EQ(check.else_block, nullptr);
  const ast::Stmt& fail = (*check.then_block)[0];
  EXPECT_EQ(fail.name, "rejected");
  EXPECT_EQ(p.text(fail.name_span), "rejected");
  EXPECT_EQ(p.text(fail.span), "fail rejected \"carrier refused order ${order_id}\"");
}

// --- Expressions --------------------------------------------------------------

// Parses `let x = <expr>` inside a saga and returns the value's tree.
constexpr const char* kLetPrefix = "saga t() { let x = ";

struct ExprCase {
  const char* input;
  const char* tree;
};

class ExprTest : public ::testing::TestWithParam<ExprCase> {};

TEST_P(ExprTest, Tree) {
  const ExprCase& c = GetParam();
  Parsed p(std::string(kLetPrefix) + c.input + "\n}");
  ASSERT_TRUE(p.ok) << c.input << "\n" << p.diags.render_text();
  ASSERT_EQ(p.file.sagas.size(), 1u);
  ASSERT_EQ(p.file.sagas[0].body.size(), 1u);
  EXPECT_EQ(dump(p.file.sagas[0].body[0].expr), c.tree) << c.input;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ExprTest,
    ::testing::Values(
        // Literals.
        ExprCase{"null", "null"}, ExprCase{"true", "true"}, ExprCase{"false", "false"},
        ExprCase{"12", "12"}, ExprCase{"2.5", "2.5"}, ExprCase{"1e3", "1000"},
        ExprCase{"1.5E-2", "0.014999999999999999"}, ExprCase{"0", "0"}, ExprCase{"007", "7"},
        // Durations: milliseconds in `number`, spelling in `text`.
        ExprCase{"200ms", "(dur 200ms 200)"}, ExprCase{"2s", "(dur 2s 2000)"},
        ExprCase{"10m", "(dur 10m 600000)"}, ExprCase{"1h", "(dur 1h 3600000)"},
        ExprCase{"1d", "(dur 1d 86400000)"}, ExprCase{"1.5s", "(dur 1.5s 1500)"},
        ExprCase{"0ms", "(dur 0ms 0)"},
        // Names, fields, indexes, calls.
        ExprCase{"a", "a"}, ExprCase{"url", "url"}, ExprCase{"op", "op"},
        ExprCase{"breaker", "breaker"}, ExprCase{"_x9", "_x9"}, ExprCase{"a.b.c", "(. (. a b) c)"},
        ExprCase{"x.timeout", "(. x timeout)"}, ExprCase{"x.if.else", "(. (. x if) else)"},
        ExprCase{"a . b", "(. a b)"}, ExprCase{"a[0]", "(idx a 0)"},
        ExprCase{"a[i + 1].b", "(. (idx a (+ i 1)) b)"},
        ExprCase{"a.b[c][d]", "(idx (idx (. a b) c) d)"}, ExprCase{"f()", "(call f)"},
        ExprCase{"len(items)", "(call len items)"}, ExprCase{"f(1, 2,)", "(call f 1 2)"},
        ExprCase{"f(g(x), [1])", "(call f (call g x) [1])"}, ExprCase{"f(x).y", "(. (call f x) y)"},
        // Lists and objects.
        ExprCase{"[]", "[]"}, ExprCase{"[1, 2, 3]", "[1 2 3]"}, ExprCase{"[1, 2,]", "[1 2]"},
        ExprCase{"[[1], []]", "[[1] []]"}, ExprCase{"{}", "{}"},
        ExprCase{"{a: 1, \"b c\": 2,}", "{a:1 b c:2}"},
        ExprCase{"{timeout: 1, if: 2, null: 3}", "{timeout:1 if:2 null:3}"},
        ExprCase{"{a: {b: [x]}}", "{a:{b:[x]}}"},
        // Precedence and associativity.
        ExprCase{"1 + 2 * 3", "(+ 1 (* 2 3))"}, ExprCase{"(1 + 2) * 3", "(* (+ 1 2) 3)"},
        ExprCase{"a - b - c", "(- (- a b) c)"}, ExprCase{"a / b % c * d", "(* (% (/ a b) c) d)"},
        ExprCase{"-a * b", "(* (neg a) b)"}, ExprCase{"- -a", "(neg (neg a))"},
        ExprCase{"-a.b", "(neg (. a b))"}, ExprCase{"-5", "(neg 5)"}, ExprCase{"a-1", "(- a 1)"},
        ExprCase{"a -1", "(- a 1)"}, ExprCase{"a + b == c * d", "(== (+ a b) (* c d))"},
        ExprCase{"a != b", "(!= a b)"}, ExprCase{"a < b", "(< a b)"},
        ExprCase{"a <= b", "(<= a b)"}, ExprCase{"a > b", "(> a b)"},
        ExprCase{"a >= b", "(>= a b)"}, ExprCase{"not a == b", "(not (== a b))"},
        ExprCase{"not not a", "(not (not a))"}, ExprCase{"a and not b", "(and a (not b))"},
        ExprCase{"a or b and c", "(or a (and b c))"},
        ExprCase{"a and b or c and d", "(or (and a b) (and c d))"},
        ExprCase{"a or b or c", "(or (or a b) c)"}, ExprCase{"(a or b) and c", "(and (or a b) c)"},
        ExprCase{"((((a))))", "a"}, ExprCase{"a < (b < c)", "(< a (< b c))"},
        ExprCase{"nothing and order", "(and nothing order)"},  // Keywords only as whole words.
        ExprCase{"a/*c*/+/*d*/b", "(+ a b)"}, ExprCase{"a // comment\n + b", "(+ a b)"},
        ExprCase{"a\n.b\n[0]", "(idx (. a b) 0)"}));

struct SpanCase {
  const char* input;
  const char* span_text;  // The text the top expression's span covers.
};

class ExprSpanTest : public ::testing::TestWithParam<SpanCase> {};

TEST_P(ExprSpanTest, Span) {
  const SpanCase& c = GetParam();
  Parsed p(std::string(kLetPrefix) + c.input + "\n}");
  ASSERT_TRUE(p.ok) << p.diags.render_text();
  EXPECT_EQ(p.text(p.file.sagas[0].body[0].expr->span), c.span_text) << c.input;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ExprSpanTest,
    ::testing::Values(SpanCase{"a + b  ", "a + b"}, SpanCase{"a.b /*x*/ ", "a.b"},
                      SpanCase{"-a", "-a"}, SpanCase{"not  a", "not  a"},
                      SpanCase{"f(x, y)", "f(x, y)"}, SpanCase{"[1, 2]", "[1, 2]"},
                      SpanCase{"{a: 1}", "{a: 1}"}, SpanCase{"(a + b)", "a + b"},
                      SpanCase{"(a) + b", "a) + b"},  // No node for parentheses.
                      SpanCase{"x[1]", "x[1]"}, SpanCase{"200ms", "200ms"},
                      SpanCase{"\"a${b}c\"", "\"a${b}c\""}, SpanCase{"a.b.c", "a.b.c"},
                      SpanCase{"a or b and c", "a or b and c"}));

TEST(ExprDetail, NameSpansAndKeys) {
  Parsed p(std::string(kLetPrefix) + "f(a).field + {k: 1, \"q k\": 2}\n}");
  ASSERT_TRUE(p.ok) << p.diags.render_text();
  const ast::Expr& sum = *p.file.sagas[0].body[0].expr;
  const ast::Expr& field = *sum.items[0];
  EXPECT_EQ(field.kind, ast::ExprKind::Field);
  EXPECT_EQ(p.text(field.name_span), "field");
  EXPECT_EQ(p.text(field.items[0]->name_span), "f");
  const ast::Expr& obj = *sum.items[1];
  ASSERT_EQ(obj.keys.size(), 2u);
  EXPECT_EQ(obj.keys[1], "q k");
  EXPECT_EQ(p.text(obj.key_spans[0]), "k");
  EXPECT_EQ(p.text(obj.key_spans[1]), "\"q k\"");
}

// --- Strings --------------------------------------------------------------------

class StringTest : public ::testing::TestWithParam<ExprCase> {};

TEST_P(StringTest, Decodes) {
  const ExprCase& c = GetParam();
  Parsed p(std::string(kLetPrefix) + c.input + "\n}");
  ASSERT_TRUE(p.ok) << c.input << "\n" << p.diags.render_text();
  EXPECT_EQ(dump(p.file.sagas[0].body[0].expr), c.tree) << c.input;
}

INSTANTIATE_TEST_SUITE_P(
    Table, StringTest,
    ::testing::Values(
        ExprCase{R"("")", R"("")"}, ExprCase{R"("plain text")", R"("plain text")"},
        ExprCase{R"("a\"b")", "\"a\"b\""}, ExprCase{R"("a\\b")", "\"a\\b\""},
        ExprCase{R"("a\/b")", R"("a/b")"}, ExprCase{R"("a\nb\tc\rd")", "\"a\nb\tc\rd\""},
        ExprCase{R"("\$5 and \${x}")", R"("$5 and ${x}")"},
        ExprCase{R"("cost $5, $ x")", R"("cost $5, $ x")"},  // '$' without '{' is literal.
        ExprCase{R"("end $")", R"("end $")"},
        ExprCase{R"("\u00e9\u20AC\u0041")",
                 "\"\xC3\xA9\xE2\x82\xAC"
                 "A\""},
        ExprCase{R"("\ud800")", "\"\xEF\xBF\xBD\""},  // A lone surrogate becomes U+FFFD.
        ExprCase{"\"caf\xC3\xA9 // not a comment /* nor this\"",
                 "\"caf\xC3\xA9 // not a comment /* nor this\""},
        ExprCase{"\"tab\there\"", "\"tab\there\""},
        // Interpolation: pieces alternate with expressions, empty pieces are left out.
        ExprCase{R"("a ${b} c")", R"((interp "a " b " c"))"}, ExprCase{R"("${b}")", "(interp b)"},
        ExprCase{R"("${a}${b}")", "(interp a b)"},
        ExprCase{R"("x${ a + 1 }y")", R"((interp "x" (+ a 1) "y"))"},
        ExprCase{R"("\n${a}\t")", "(interp \"\n\" a \"\t\")"},
        ExprCase{R"("a ${ "b ${c}" } d")", R"((interp "a " (interp "b " c) " d"))"},
        ExprCase{R"("${ {k: 1}.k }")", "(interp (. {k:1} k))"},
        ExprCase{R"("${f("}")}")", R"((interp (call f "}")))"}));

TEST(StringDetail, InterpolationPieceSpans) {
  Parsed p(std::string(kLetPrefix) + R"("ab${x}c\nd${y}")" + "\n}");
  ASSERT_TRUE(p.ok) << p.diags.render_text();
  const ast::Expr& s = *p.file.sagas[0].body[0].expr;
  ASSERT_EQ(s.items.size(), 4u);
  EXPECT_EQ(p.text(s.items[0]->span), "ab");
  EXPECT_EQ(p.text(s.items[1]->span), "x");
  EXPECT_EQ(p.text(s.items[2]->span), "c\\nd");  // The raw text; the value is decoded.
  EXPECT_EQ(s.items[2]->text, "c\nd");
  EXPECT_EQ(p.text(s.items[3]->span), "y");
}

// --- Statements -------------------------------------------------------------------

struct StmtCase {
  const char* body;  // The saga body, without braces.
  const char* tree;  // dump() of the body block.
};

class StmtTest : public ::testing::TestWithParam<StmtCase> {};

TEST_P(StmtTest, Tree) {
  const StmtCase& c = GetParam();
  Parsed p(std::string("saga t() {") + c.body + "}");
  ASSERT_TRUE(p.ok) << c.body << "\n" << p.diags.render_text();
  ASSERT_EQ(p.file.sagas.size(), 1u);
  EXPECT_EQ(dump(p.file.sagas[0].body), c.tree) << c.body;
}

INSTANTIATE_TEST_SUITE_P(
    Table, StmtTest,
    ::testing::Values(
        StmtCase{"", "{}"}, StmtCase{"  // only a comment\n", "{}"},
        StmtCase{"let a = 1 let b = a", "{(let a 1) (let b a)}"},
        StmtCase{"let url = 1 let op = url", "{(let url 1) (let op url)}"},  // Context words.
        // Words of statements .saga lacks (emit, while, ...) are ordinary names, and so
        // are the context words of parallel and foreach where they start no statement.
        StmtCase{"let emit = 1 let parallel = emit output [parallel, x.await, {try: 1}]",
                 "{(let emit 1) (let parallel emit) (output [parallel (. x await) {try:1}])}"},
        // emit: a dotted type and a record; `emit` stays a name elsewhere.
        StmtCase{"emit order.placed { order: id, n: 1 } emit x {}",
                 "{(emit order.placed {order:id n:1}) (emit x {})}"},
        StmtCase{"let emit = 1 emit emit.emit { emit: emit }",
                 "{(let emit 1) (emit emit.emit {emit:emit})}"},
        StmtCase{"step foreach { do while.for(parallel: 1) -> await }",
                 "{(step foreach do while.for(parallel:1) -> await)}"},
        StmtCase{"let foreach = 1 let branch = foreach let in = branch let max = in",
                 "{(let foreach 1) (let branch foreach) (let in branch) (let max in)}"},
        StmtCase{
            "step branch { do parallel.foreach(in: 1, max: 2) -> branch } output branch.max",
            "{(step branch do parallel.foreach(in:1 max:2) -> branch) (output (. branch max))}"},
        // parallel blocks and branches.
        StmtCase{"parallel { branch a { let x = 1 } branch b { } }",
                 "{(parallel {(branch a {(let x 1)}) (branch b {})})}"},
        StmtCase{"parallel{branch a{}}", "{(parallel {(branch a {})})}"},
        // Anything is parsed inside `parallel { }` and a branch anywhere: the compiler
        // names what does not belong there.
        StmtCase{"parallel { }", "{(parallel {})}"},
        StmtCase{"parallel { let x = 1 }", "{(parallel {(let x 1)})}"},
        StmtCase{"branch b { }", "{(branch b {})}"},
        StmtCase{"parallel { branch a { parallel { branch b { if x { } } } } }",
                 "{(parallel {(branch a {(parallel {(branch b {(if x {})})})})})}"},
        // foreach and parallel foreach.
        StmtCase{"foreach item in items { step s { do x.y(sku: item.sku) -> r } }",
                 "{(foreach item items {(step s do x.y(sku:(. item sku)) -> r)})}"},
        StmtCase{"foreach i in f(xs).list[0] + [1, 2] { }",
                 "{(foreach i (+ (idx (. (call f xs) list) 0) [1 2]) {})}"},
        StmtCase{"parallel foreach item in items max 8 { }",
                 "{(parallel foreach item items max 8 {})}"},
        StmtCase{"parallel foreach item in items { }", "{(parallel foreach item items {})}"},
        StmtCase{"foreach item in items max 8 { }", "{(foreach item items max 8 {})}"},
        StmtCase{"parallel foreach i in xs max n + 1 { }",
                 "{(parallel foreach i xs max (+ n 1) {})}"},
        StmtCase{"foreach max in max max 2 { }", "{(foreach max max max 2 {})}"},
        StmtCase{"foreach a in xs { foreach b in a { parallel { branch c { } } } }",
                 "{(foreach a xs {(foreach b a {(parallel {(branch c {})})})})}"},
        StmtCase{"parallel { branch a { parallel foreach i in xs { } } }",
                 "{(parallel {(branch a {(parallel foreach i xs {})})})}"},
        // await signal: its clauses in order, each optional but the name; nested
        // awaits in an else block; `await` and `signal` are names elsewhere.
        StmtCase{"await signal approve timeout 48h -> d",
                 "{(await signal approve timeout (dur 48h 172800000) -> d)}"},
        StmtCase{"await signal go", "{(await signal go)}"},
        StmtCase{"await signal go -> x else { let y = 1 }",
                 "{(await signal go -> x else {(let y 1)})}"},
        StmtCase{"await signal a timeout 1s else { await signal b timeout 2s -> c else { } }",
                 "{(await signal a timeout (dur 1s 1000) else {(await signal b timeout (dur 2s "
                 "2000) -> c else {})})}"},
        StmtCase{"let await = 1 let signal = await", "{(let await 1) (let signal await)}"},
        StmtCase{"fail msg await signal go", "{(fail msg) (await signal go)}"},
        // await event: a type as a trigger writes it, then an optional `where`
        // condition (an expression that ends before `timeout`); `event` and
        // `where` are names elsewhere.
        StmtCase{"await event payment.completed where event.data.order == id timeout 10m -> p",
                 "{(await event payment.completed where (== (. (. event data) order) id) "
                 "timeout (dur 10m 600000) -> p)}"},
        StmtCase{"await event a-b.c_d timeout 1s", "{(await event a-b.c_d timeout (dur 1s 1000))}"},
        // The arrow ends the condition: it is no minus.
        StmtCase{"await event x where event.id == a - 1 -> v",
                 "{(await event x where (== (. event id) (- a 1)) -> v)}"},
        StmtCase{"await event a.ok , a.failed,a.x where a == 1",
                 "{(await event a.ok a.failed a.x where (== a 1))}"},
        StmtCase{"await event x where a == 1 and b == c else { }",
                 "{(await event x where (and (== a 1) (== b c)) else {})}"},
        StmtCase{"let event = 1 let where = event", "{(let event 1) (let where event)}"},
        StmtCase{"fail msg await event go", "{(fail msg) (await event go)}"},
        // A name after `fail` is not its class when it starts one of these statements.
        StmtCase{"fail msg parallel { branch a { } }", "{(fail msg) (parallel {(branch a {})})}"},
        StmtCase{"fail msg foreach x in xs { }", "{(fail msg) (foreach x xs {})}"},
        StmtCase{"fail msg branch b { }", "{(fail msg) (branch b {})}"},
        StmtCase{"fail cls foreach", "{(fail cls foreach)}"},
        StmtCase{"fail cls parallel", "{(fail cls parallel)}"},
        StmtCase{"output a output {}", "{(output a) (output {})}"},
        StmtCase{"deadline 10m", "{(deadline (dur 10m 600000))}"},
        StmtCase{"deadline -5s", "{(deadline (neg (dur 5s 5000)))}"},
        StmtCase{"if a { }", "{(if a {})}"},
        StmtCase{"if a { let b = 1 } else { let c = 2 }", "{(if a {(let b 1)} else {(let c 2)})}"},
        StmtCase{"if a {} else if b {} else {}", "{(if a {} else {(if b {} else {})})}"},
        StmtCase{"if a {} else if b {} else if c { output 1 }",
                 "{(if a {} else {(if b {} else {(if c {(output 1)})})})}"},
        StmtCase{"if a { if b { if c {} } }", "{(if a {(if b {(if c {})})})}"},
        StmtCase{"if ({k: 1}).k {}", "{(if (. {k:1} k) {})}"},
        // fail: a class is a name directly followed by an expression start.
        StmtCase{"fail \"boom\"", "{(fail \"boom\")}"}, StmtCase{"fail msg", "{(fail msg)}"},
        StmtCase{"fail rejected \"no ${x}\"", "{(fail rejected (interp \"no \" x))}"},
        StmtCase{"fail rejected msg", "{(fail rejected msg)}"},
        StmtCase{"fail e 42", "{(fail e 42)}"}, StmtCase{"fail e [1]", "{(fail e [1])}"},
        StmtCase{"fail e {a: 1}", "{(fail e {a:1})}"},
        StmtCase{"fail e not x", "{(fail e (not x))}"}, StmtCase{"fail e true", "{(fail e true)}"},
        StmtCase{"fail a - b", "{(fail (- a b))}"}, StmtCase{"fail f(x)", "{(fail (call f x))}"},
        StmtCase{"fail a.b", "{(fail (. a b))}"}, StmtCase{"fail a + b", "{(fail (+ a b))}"},
        StmtCase{"fail a and b", "{(fail (and a b))}"},
        StmtCase{"fail msg\nlet x = 1", "{(fail msg) (let x 1)}"},
        StmtCase{"fail msg step s {}", "{(fail msg) (step s)}"},
        // Steps.
        StmtCase{"step s {}", "{(step s)}"}, StmtCase{"step s { do log() }", "{(step s do log())}"},
        StmtCase{"step s { do a.b.c(x: 1,) -> r }", "{(step s do a.b.c(x:1) -> r)}"},
        StmtCase{"step s { do a . b (x: 1) }", "{(step s do a.b(x:1))}"},
        StmtCase{"step s { do http.get(url: u, timeout: 5s, if: 1) }",
                 "{(step s do http.get(url:u timeout:(dur 5s 5000) if:1))}"},
        StmtCase{"step s { do timer.sleep(for: 5s) }",
                 "{(step s do timer.sleep(for:(dur 5s 5000)))}"},
        StmtCase{"step s { retry fast undo x.y() timeout 1s do x.z() }",
                 "{(step s do x.z() undo x.y() timeout (dur 1s 1000) retry fast)}"},
        StmtCase{"step s { timeout 1s retry { attempts: 2 } }",
                 "{(step s timeout (dur 1s 1000) retry {...})}"},
        StmtCase{"step op { do op.op(op: op) }", "{(step op do op.op(op:op))}"},
        StmtCase{"step s { undo_retry slow undo x.y() retry { attempts: 2, then: pause } }",
                 "{(step s undo x.y() retry {...} undo_retry slow)}"},
        StmtCase{"step s { undo_retry { attempts: 1 } }", "{(step s undo_retry {...})}"},
        StmtCase{"undo_retry slow step s {}", "{(undo_retry slow) (step s)}"},
        StmtCase{"let undo_retry = 1", "{(let undo_retry 1)}"},
        StmtCase{"step s { do x.y(a: 1) } step t { do x.y(a: s) }",
                 "{(step s do x.y(a:1)) (step t do x.y(a:s))}"}));

TEST(StmtDetail, StepClausesAndDuplicates) {
  Parsed p("saga t() { step s { timeout 1s do a.b() undo c.d() timeout 2s } }");
  ASSERT_TRUE(p.ok) << p.diags.render_text();
  const ast::Step& step = *p.file.sagas[0].body[0].step;
  std::vector<std::string> clauses;
  for (const auto& [kw, span] : step.clauses) clauses.push_back(kw);
  EXPECT_EQ(clauses, (std::vector<std::string>{"timeout", "do", "undo", "timeout"}));
  EXPECT_EQ(dump(step.timeout), "(dur 2s 2000)");  // The later clause wins.
  EXPECT_EQ(p.text(step.clauses[3].second), "timeout");
  EXPECT_EQ(step.clauses[3].second.offset, p.src.text().rfind("timeout"));
}

TEST(StmtDetail, MissingDoIsNotASyntaxError) {
  Parsed p("saga t() { step s { undo a.b() } }");
  EXPECT_TRUE(p.ok) << p.diags.render_text();
  EXPECT_EQ(p.file.sagas[0].body[0].step->action, nullptr);
  EXPECT_NE(p.file.sagas[0].body[0].step->undo, nullptr);
}

TEST(StmtDetail, ElseIfSpans) {
  Parsed p("saga t() { if a { } else if b { } }");
  ASSERT_TRUE(p.ok) << p.diags.render_text();
  const ast::Stmt& outer = p.file.sagas[0].body[0];
  EXPECT_EQ(p.text(outer.span), "if a { } else if b { }");
  ASSERT_NE(outer.else_block, nullptr);
  ASSERT_EQ(outer.else_block->size(), 1u);
  EXPECT_EQ(p.text((*outer.else_block)[0].span), "if b { }");
}

TEST(StmtDetail, ParallelAndForeachSpans) {
  Parsed p(
      "saga t(xs) {\n"
      "  parallel {\n"
      "    branch flight { step a { do s.a() } }\n"
      "  }\n"
      "  parallel  foreach item in xs max 8 { let y = item }\n"
      "  foreach z in xs { }\n"
      "}");
  ASSERT_TRUE(p.ok) << p.diags.render_text();
  const ast::Block& body = p.file.sagas[0].body;
  ASSERT_EQ(body.size(), 3u);
  EXPECT_EQ(body[0].kind, ast::StmtKind::Parallel);
  EXPECT_EQ(p.text(body[0].span), "parallel {\n    branch flight { step a { do s.a() } }\n  }");
  const ast::Stmt& branch = (*body[0].body)[0];
  EXPECT_EQ(branch.kind, ast::StmtKind::Branch);
  EXPECT_EQ(p.text(branch.span), "branch flight { step a { do s.a() } }");
  EXPECT_EQ(p.text(branch.name_span), "flight");
  ASSERT_EQ(branch.body->size(), 1u);
  EXPECT_EQ((*branch.body)[0].step->name, "a");

  const ast::Stmt& loop = body[1];
  EXPECT_EQ(loop.kind, ast::StmtKind::Foreach);
  EXPECT_TRUE(loop.parallel);
  EXPECT_EQ(p.text(loop.span), "parallel  foreach item in xs max 8 { let y = item }");
  EXPECT_EQ(p.text(loop.name_span), "item");
  EXPECT_EQ(p.text(loop.expr->span), "xs");
  EXPECT_EQ(p.text(loop.max_span), "max");
  EXPECT_EQ(p.text(loop.max->span), "8");

  EXPECT_FALSE(body[2].parallel);
  EXPECT_EQ(body[2].max, nullptr);
  EXPECT_EQ(p.text(body[2].span), "foreach z in xs { }");
}

TEST(StmtDetail, StatementSpansExcludeTrailingTrivia) {
  Parsed p("saga t() { let a = 1   // c\n  fail x \"m\" /* c */ output a\n}");
  ASSERT_TRUE(p.ok) << p.diags.render_text();
  const ast::Block& body = p.file.sagas[0].body;
  EXPECT_EQ(p.text(body[0].span), "let a = 1");
  EXPECT_EQ(p.text(body[1].span), "fail x \"m\"");
  EXPECT_EQ(p.text(body[2].span), "output a");
}

// --- Services, policies, configuration values -----------------------------------

TEST(Service, AllClauses) {
  Parsed p(
      "service s {\n"
      "  op release = DELETE \"/reservations/${reservation}\"\n"
      "  url \"http://h:1/\\u0041\"\n"
      "  bulkhead 4 breaker { failures: 5 } timeout 1s\n"
      "  op get = GET \"/x\"\n"
      "}");
  ASSERT_TRUE(p.ok) << p.diags.render_text();
  const ast::Service& s = p.file.services[0];
  EXPECT_EQ(s.url, "http://h:1/A");  // Decoded.
  ASSERT_EQ(s.routes.size(), 2u);
  const ast::Route& r = s.routes[0];
  EXPECT_EQ(r.op, "release");
  EXPECT_EQ(p.text(r.op_span), "release");
  EXPECT_EQ(r.method, "DELETE");
  EXPECT_EQ(p.text(r.method_span), "DELETE");
  EXPECT_EQ(r.path, "/reservations/${reservation}");  // Raw text between the quotes.
  EXPECT_EQ(p.text(r.path_span), "/reservations/${reservation}");
  EXPECT_EQ(p.text(r.span), "op release = DELETE \"/reservations/${reservation}\"");
  EXPECT_EQ(s.routes[1].op, "get");
  std::vector<std::string> clauses;
  for (const auto& [kw, span] : s.clauses) clauses.push_back(kw);
  EXPECT_EQ(clauses,
            (std::vector<std::string>{"op", "url", "bulkhead", "breaker", "timeout", "op"}));
  EXPECT_EQ(dump(s.bulkhead), "4");
  EXPECT_EQ(dump(s.timeout), "(dur 1s 1000)");
}

TEST(Service, DuplicateClausesOverwriteAndAreRecorded) {
  Parsed p("service s { url \"a\" url \"b\" timeout 1s timeout 2s }");
  ASSERT_TRUE(p.ok) << p.diags.render_text();
  const ast::Service& s = p.file.services[0];
  EXPECT_EQ(s.url, "b");
  EXPECT_EQ(dump(s.timeout), "(dur 2s 2000)");
  ASSERT_EQ(s.clauses.size(), 4u);
  EXPECT_EQ(s.clauses[1].first, "url");
  EXPECT_EQ(s.clauses[1].second.offset, p.src.text().find("url \"b\""));
}

TEST(Service, ContextWordsCanBeNames) {
  Parsed p(
      "service url { } service breaker { } retry op { } saga bulkhead(url, op: string) {"
      " step breaker { do url.op(op: url) -> bulkhead } }");
  ASSERT_TRUE(p.ok) << p.diags.render_text();
  EXPECT_EQ(p.file.services[0].name, "url");
  EXPECT_EQ(p.file.services[1].name, "breaker");
  EXPECT_EQ(p.file.policies[0].name, "op");
  EXPECT_EQ(p.file.sagas[0].name, "bulkhead");
  EXPECT_EQ(p.file.sagas[0].params[1].name, "op");
  EXPECT_EQ(p.file.sagas[0].params[0].type, "");
}

struct ConfigCase {
  const char* value;
  const char* tree;
};

class ConfigValueTest : public ::testing::TestWithParam<ConfigCase> {};

TEST_P(ConfigValueTest, Tree) {
  const ConfigCase& c = GetParam();
  Parsed p(std::string("retry r { v: ") + c.value + " }");
  ASSERT_TRUE(p.ok) << c.value << "\n" << p.diags.render_text();
  ASSERT_EQ(p.file.policies[0].body.fields.size(), 1u);
  EXPECT_EQ(dump(p.file.policies[0].body.fields[0].value), c.tree) << c.value;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ConfigValueTest,
    ::testing::Values(ConfigCase{"4", "4"}, ConfigCase{"2.0", "2"}, ConfigCase{"-1", "(neg 1)"},
                      ConfigCase{"- 2s", "(neg (dur 2s 2000))"},
                      ConfigCase{"250ms", "(dur 250ms 250)"}, ConfigCase{"\"text\"", "\"text\""},
                      ConfigCase{"full", "full"}, ConfigCase{"timeout", "timeout"},
                      ConfigCase{"true", "true"}, ConfigCase{"null", "null"},
                      ConfigCase{"[]", "[]"},
                      ConfigCase{"[timeout, unavailable,]", "[timeout unavailable]"},
                      ConfigCase{"[[1], [if, else]]", "[[1] [if else]]"},
                      ConfigCase{"fixed(1s)", "(call fixed (dur 1s 1000))"},
                      ConfigCase{"exponential(200ms, 2.0, 5s)",
                                 "(call exponential (dur 200ms 200) 2 (dur 5s 5000))"},
                      ConfigCase{"f()", "(call f)"}, ConfigCase{"not(x)", "(call not x)"},
                      ConfigCase{"f(g([a]), -3)", "(call f (call g [a]) (neg 3))"}));

TEST(Config, ReservedKeysAndTrailingComma) {
  Parsed p("retry r { timeout: 1s, if: 2, on: [timeout], }  retry e {}");
  ASSERT_TRUE(p.ok) << p.diags.render_text();
  const ast::Config& c = p.file.policies[0].body;
  ASSERT_EQ(c.fields.size(), 3u);
  EXPECT_EQ(c.fields[0].key, "timeout");
  EXPECT_EQ(c.fields[1].key, "if");
  EXPECT_TRUE(p.file.policies[1].body.fields.empty());
  EXPECT_EQ(p.text(p.file.policies[1].body.span), "{}");
}

// --- Files --------------------------------------------------------------------------

TEST(File, EmptyAndCommentsOnly) {
  for (const char* text : {"", "   \n\t\r\n", "// c", "/* c */", "/**/ // x\n/* a\n b */\n"}) {
    Parsed p(text);
    EXPECT_TRUE(p.ok) << text << p.diags.render_text();
    EXPECT_TRUE(p.file.sagas.empty());
  }
}

TEST(File, SeveralSagasAndCrlf) {
  Parsed p(
      "saga a() {\r\n  let x = 1\r\n}\r\nsaga b(p) { output p }\r\nservice s {}\r\nsaga c() {}");
  ASSERT_TRUE(p.ok) << p.diags.render_text();
  ASSERT_EQ(p.file.sagas.size(), 3u);
  EXPECT_EQ(p.file.sagas[1].name, "b");
  EXPECT_EQ(p.file.sagas[2].name, "c");
  EXPECT_EQ(p.file.services.size(), 1u);
  EXPECT_EQ(p.text(p.file.sagas[0].span), "saga a() {\r\n  let x = 1\r\n}");
}

TEST(File, ParamsTrailingCommaAndTypes) {
  Parsed p("saga a(x: string, y, z: any,) {}");
  ASSERT_TRUE(p.ok) << p.diags.render_text();
  const auto& params = p.file.sagas[0].params;
  ASSERT_EQ(params.size(), 3u);
  EXPECT_EQ(params[1].name, "y");
  EXPECT_EQ(params[1].type, "");
  EXPECT_EQ(params[2].type, "any");
}

// `pivot` and `retriable` are keywords only directly before `step`, and
// `idempotent` only as a service clause: elsewhere all three are names.
TEST(File, StepKindsAndIdempotentAreContextWords) {
  Parsed p(R"(service s { idempotent [a, b] }
service t { idempotent }
saga x() {
  let pivot = 1
  let retriable = 2
  step idempotent { do s.a() }
  pivot step p { do s.p() }
  retriable  step r { do s.r() }
})");
  ASSERT_TRUE(p.ok) << p.diags.render_text();
  EXPECT_FALSE(p.file.services[0].idempotent_all);
  ASSERT_EQ(p.file.services[0].idempotent_ops.size(), 2u);
  EXPECT_EQ(p.file.services[0].idempotent_ops[1].first, "b");
  EXPECT_EQ(p.text(p.file.services[0].idempotent_ops[1].second), "b");
  EXPECT_TRUE(p.file.services[1].idempotent_all);
  const ast::Block& body = p.file.sagas[0].body;
  ASSERT_EQ(body.size(), 5u);
  EXPECT_EQ(body[1].name, "retriable");
  EXPECT_EQ(body[2].step->kind, ast::StepKind::Plain);
  EXPECT_EQ(body[3].step->kind, ast::StepKind::Pivot);
  EXPECT_EQ(p.text(body[3].step->kind_span), "pivot");
  EXPECT_EQ(p.text(body[3].span), "pivot step p { do s.p() }");
  EXPECT_EQ(body[4].step->kind, ast::StepKind::Retriable);
  EXPECT_EQ(p.text(body[4].step->kind_span), "retriable");
}

TEST(File, ParseAppendsToExistingFile) {
  SourceFile a("a.saga", "saga a() {}");
  SourceFile b("b.saga", "saga b() {}");
  ast::File file;
  Diagnostics da(a), db(b);
  EXPECT_TRUE(parse(a, file, da));
  EXPECT_TRUE(parse(b, file, db));
  ASSERT_EQ(file.sagas.size(), 2u);
  EXPECT_EQ(file.sagas[1].name, "b");
}

}  // namespace
}  // namespace saga::grammar::test
