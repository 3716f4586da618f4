// Tests of runtime/graph (saga/graph.hpp): the graph model built from
// bytecode, the overlay of an instance's run, the dot and Mermaid text and
// their escaping, and SVG through Graphviz.
//
// The golden pictures of the samples are tests/graph/golden/NAME.dot and
// NAME.mmd. After a deliberate change, regenerate them with
//   SAGA_UPDATE_GOLDEN=1 ./build/tests/graph/graph_tests --gtest_filter='Samples/*'
// and review the diff.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "compiler/compile.hpp"
#include "runtime/bytecode/format.hpp"
#include "runtime/graph/text.hpp"
#include "saga/graph.hpp"
#include "tests/bytecode/test_programs.hpp"

namespace saga::graph {
namespace {

namespace fs = std::filesystem;
const std::string kRoot = SAGA_SOURCE_DIR;

bytecode::Program compile_text(const std::string& text, bool embed_source = true) {
  SourceFile source("test.saga", text);
  Diagnostics diags(source);
  compiler::Options options;
  options.embed_source = embed_source;
  auto program = compiler::compile(source, diags, options);
  EXPECT_TRUE(program.has_value()) << diags.render_text();
  return program ? *program : bytecode::Program{};
}

// The program as a .sagac image read back: what `sagactl graph x.sagac` sees.
bytecode::Program through_sagac(bytecode::Program p) {
  auto image = bytecode::serialize(p);
  auto loaded = bytecode::load(image);
  EXPECT_TRUE(loaded.ok()) << loaded.status().message();
  return loaded.ok() ? std::move(loaded).value() : bytecode::Program{};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

SagaGraph one(const bytecode::Program& p) {
  auto g = build(p);
  EXPECT_TRUE(g.ok());
  EXPECT_EQ(g.value().sagas.size(), 1u);
  return g.value().sagas.at(0);
}

// Index of the node with this kind and label (the first), or kNoIndex.
uint32_t find(const SagaGraph& g, NodeKind kind, const std::string& label) {
  for (uint32_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].kind == kind && g.nodes[i].label == label) return i;
  }
  return kNoIndex;
}
uint32_t step(const SagaGraph& g, const std::string& name) {
  return find(g, NodeKind::kStep, name);
}
uint32_t undo(const SagaGraph& g, const std::string& name) {
  return find(g, NodeKind::kUndo, "undo " + name);
}
const Edge* edge(const SagaGraph& g, uint32_t from, uint32_t to, EdgeKind kind = EdgeKind::kFlow) {
  for (const Edge& e : g.edges) {
    if (e.from == from && e.to == to && e.kind == kind) return &e;
  }
  return nullptr;
}
// Where the (last) flow edge leaving `from` goes, or kNoIndex.
uint32_t next_of(const SagaGraph& g, uint32_t from) {
  uint32_t to = kNoIndex;
  for (const Edge& e : g.edges) {
    if (e.from == from && e.kind == EdgeKind::kFlow) to = e.to;
  }
  return to;
}
// The labels of the flow edges leaving `from`, in order.
std::vector<std::string> out_labels(const SagaGraph& g, uint32_t from) {
  std::vector<std::string> labels;
  for (const Edge& e : g.edges) {
    if (e.from == from && e.kind == EdgeKind::kFlow) labels.push_back(e.label);
  }
  return labels;
}

// A structural check of Mermaid text: a flowchart header; every node
// declared once with a quoted label holding no raw quote; subgraphs
// balanced; every edge's endpoints, every `class` id and every linkStyle
// index refer to something declared. Returns the problems, empty when none.
std::vector<std::string> mermaid_problems(const std::string& text) {
  std::vector<std::string> problems;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  if (line != "flowchart TB") problems.push_back("first line: " + line);
  static const std::regex node(
      R"re(^ *(s\d+_n\d+)(\(\(|\(\[|\[/|\[\\|\{\{|\(|\{|\[|>)"([^"]*)"(\)\)|\]\)|\\\]|/\]|\}\}|\)|\}|\])$)re");
  static const std::regex edge(R"re(^ *(s\d+_n\d+) (-->|-\.->)(\|"([^"]*)"\|)? (s\d+_n\d+)$)re");
  static const std::regex subgraph(R"re(^ *subgraph (s\d+(_c\d+)?)\["([^"]*)"\]$)re");
  static const std::regex klass(R"re(^ *class ([a-z0-9_,]+) ([a-z]+);$)re");
  static const std::regex link(R"re(^ *linkStyle ([0-9,]+) .*;$)re");
  std::set<std::string> nodes;
  std::vector<std::pair<std::string, std::string>> edges;
  std::vector<std::string> classed;
  std::vector<int> links;
  int depth = 0;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, subgraph)) {
      ++depth;
    } else if (line == std::string(line.find_first_not_of(' '), ' ') + "end") {
      if (--depth < 0) problems.push_back("end without subgraph");
    } else if (line.find("direction TB") != std::string::npos ||
               line.find("classDef ") != std::string::npos) {
    } else if (std::regex_match(line, m, node)) {
      if (!nodes.insert(m[1]).second) problems.push_back("declared twice: " + m[1].str());
      // The shape must close as it opened.
      static const std::map<std::string, std::string> closes = {
          {"((", "))"}, {"([", "])"}, {"[/", "\\]"}, {"[\\", "/]"}, {"{{", "}}"},
          {"(", ")"},   {"{", "}"},   {"[", "]"},    {">", "]"}};
      if (closes.at(m[2]) != m[4]) problems.push_back("shape does not close: " + line);
    } else if (std::regex_match(line, m, edge)) {
      edges.emplace_back(m[1], m[5]);
    } else if (std::regex_match(line, m, klass)) {
      std::stringstream ids(m[1].str());
      for (std::string id; std::getline(ids, id, ',');) classed.push_back(id);
    } else if (std::regex_match(line, m, link)) {
      std::stringstream ids(m[1].str());
      for (std::string id; std::getline(ids, id, ',');) links.push_back(std::stoi(id));
    } else {
      problems.push_back("unrecognised line: " + line);
    }
  }
  if (depth != 0) problems.push_back("unbalanced subgraphs");
  for (const auto& [from, to] : edges) {
    if (!nodes.count(from)) problems.push_back("edge from undeclared " + from);
    if (!nodes.count(to)) problems.push_back("edge to undeclared " + to);
  }
  for (const std::string& id : classed) {
    if (!nodes.count(id)) problems.push_back("class of undeclared " + id);
  }
  for (int l : links) {
    if (l < 0 || static_cast<size_t>(l) >= edges.size()) {
      problems.push_back("linkStyle of no edge " + std::to_string(l));
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------
// Golden pictures of the samples.

bool update_golden() {
  const char* v = std::getenv("SAGA_UPDATE_GOLDEN");
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

void check_golden(const std::string& path, const std::string& generated) {
  if (update_golden()) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    ASSERT_TRUE(out) << "cannot write " << path;
    out << generated;
    return;
  }
  ASSERT_TRUE(fs::exists(path)) << path << " is missing; run with SAGA_UPDATE_GOLDEN=1";
  EXPECT_EQ(read_file(path), generated)
      << path << " differs: if the change is meant, run with SAGA_UPDATE_GOLDEN=1 and review";
}

class GoldenSample : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenSample, DotAndMermaidMatchTheCommittedPictures) {
  const std::string name = GetParam();
  auto p = compile_text(read_file(kRoot + "/samples/" + name + ".saga"));
  auto g = build(p);
  ASSERT_TRUE(g.ok());
  const std::string dot = to_dot(g.value()), mermaid = to_mermaid(g.value());
  check_golden(kRoot + "/tests/graph/golden/" + name + ".dot", dot);
  check_golden(kRoot + "/tests/graph/golden/" + name + ".mmd", mermaid);
  EXPECT_EQ(mermaid_problems(mermaid), std::vector<std::string>{});
  // The same picture from a .sagac without its source: it is drawn from
  // the bytecode alone.
  auto bare = build(through_sagac(compile_text(read_file(kRoot + "/samples/" + name + ".saga"),
                                               /*embed_source=*/false)));
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(to_dot(bare.value()), dot);
}

INSTANTIATE_TEST_SUITE_P(Samples, GoldenSample,
                         ::testing::Values("order", "travel", "fulfil_items", "hello", "approval"));

// ---------------------------------------------------------------------------
// The model.

TEST(Graph, OrderHasItsStepsBranchesConditionsAndCompensationPath) {
  SagaGraph g = one(compile_text(read_file(kRoot + "/samples/order.saga")));
  const uint32_t start = find(g, NodeKind::kStart, "start");
  const uint32_t reserve = step(g, "reserve"), charge = step(g, "charge");
  const uint32_t ship = step(g, "ship"), standard = step(g, "ship_standard");
  ASSERT_NE(start, kNoIndex);
  ASSERT_NE(reserve, kNoIndex);
  ASSERT_NE(charge, kNoIndex);
  ASSERT_NE(ship, kNoIndex);
  ASSERT_NE(standard, kNoIndex);
  EXPECT_NE(edge(g, start, reserve), nullptr);
  EXPECT_NE(edge(g, reserve, charge), nullptr);
  // charge -> if express -> ship | else ship_standard; both meet at the next if.
  const uint32_t decision = next_of(g, charge);
  ASSERT_NE(decision, kNoIndex);
  EXPECT_EQ(g.nodes[decision].kind, NodeKind::kDecision);
  ASSERT_NE(edge(g, decision, ship), nullptr);
  EXPECT_EQ(edge(g, decision, ship)->label, "express");
  ASSERT_NE(edge(g, decision, standard), nullptr);
  EXPECT_EQ(edge(g, decision, standard)->label, "else");
  const uint32_t meet = next_of(g, ship);
  ASSERT_NE(meet, kNoIndex);
  EXPECT_NE(edge(g, standard, meet), nullptr) << "the two arms of the if meet at one node";
  EXPECT_EQ(out_labels(g, meet),
            (std::vector<std::string>{"shipment.status == \"refused\"", "else"}));
  const uint32_t fail = find(g, NodeKind::kFail, "fail rejected");
  ASSERT_NE(fail, kNoIndex);
  EXPECT_EQ(g.nodes[fail].error_class, "rejected");
  // Annotations: the action, timeout and retry.
  EXPECT_EQ(g.nodes[reserve].note, "inventory.reserve\ntimeout 2s, retry standard (4 attempts)");
  EXPECT_EQ(g.nodes[charge].note, "payment.charge\nretry 3 attempts");
  // Compensation in reverse: ship's and ship_standard's undos lead to charge's,
  // charge's to reserve's, reserve's to the end; the fail enters at the ships.
  EXPECT_NE(edge(g, undo(g, "ship"), undo(g, "charge"), EdgeKind::kUndo), nullptr);
  EXPECT_NE(edge(g, undo(g, "ship_standard"), undo(g, "charge"), EdgeKind::kUndo), nullptr);
  EXPECT_NE(edge(g, undo(g, "charge"), undo(g, "reserve"), EdgeKind::kUndo), nullptr);
  EXPECT_EQ(edge(g, undo(g, "reserve"), undo(g, "charge"), EdgeKind::kUndo), nullptr);
  const uint32_t compensated = find(g, NodeKind::kCompensated, "compensated");
  EXPECT_NE(edge(g, undo(g, "reserve"), compensated, EdgeKind::kUndo), nullptr);
  EXPECT_NE(edge(g, fail, undo(g, "ship"), EdgeKind::kUndo), nullptr);
  EXPECT_NE(edge(g, fail, undo(g, "ship_standard"), EdgeKind::kUndo), nullptr);
  EXPECT_EQ(g.nodes[undo(g, "reserve")].note, "inventory.release");
}

TEST(Graph, ConditionsAreWrittenAsInTheSource) {
  auto p = compile_text(R"(
saga s(a: number, b: bool, c: bool, t: string, xs: list) {
  if a > 1 and not (b or c) { step one { do log(message: "1") } }
  if (a + 1) * 2 == len(xs) or t == "x" { step two { do log(message: "2") } }
  if not b and c and a - (1 - a) < -a { step three { do log(message: "3") } }
  if xs[0].k != null { step four { do log(message: "4") } }
})");
  SagaGraph g = one(p);
  std::vector<std::string> conditions;
  for (const Node& n : g.nodes) {
    if (n.kind != NodeKind::kDecision) continue;
    auto labels = out_labels(g, static_cast<uint32_t>(&n - g.nodes.data()));
    ASSERT_EQ(labels.size(), 2u);
    EXPECT_EQ(labels[1], "else");
    conditions.push_back(labels[0]);
  }
  EXPECT_EQ(conditions, (std::vector<std::string>{
                            "a > 1 and not (b or c)",
                            "(a + 1) * 2 == len(xs) or t == \"x\"",
                            "not b and c and a - (1 - a) < -a",
                            "xs[0].k != null",
                        }));
}

TEST(Graph, LongConditionsAreShortened) {
  std::string name(100, 'a');
  SagaGraph g = one(compile_text("saga s(" + name + ": bool) { if " + name +
                                 " { step one { do log(message: \"1\") } } }"));
  for (const Edge& e : g.edges) {
    if (e.label.starts_with("aaa")) {
      EXPECT_LE(e.label.size(), 60u);
      EXPECT_TRUE(e.label.ends_with("...")) << e.label;
    }
  }
}

TEST(Graph, BlocksLoopsAndStepKinds) {
  auto p = compile_text(R"(
retry forever { attempts: unlimited, backoff: fixed(1s), on: any }
service svc { }
saga s(items: list) {
  foreach item in items { step each_one { do log(message: "${item}") undo log(message: "u") } }
  parallel foreach item in items max 4 { step many { do log(message: "${item}") undo log(message: "u") } }
  parallel {
    branch left { step l { do log(message: "l") undo log(message: "u") } }
    branch right { step r { do log(message: "r") undo log(message: "u") } }
  }
  pivot step commit { do svc.commit(id: 1) }
  retriable step notify { do svc.notify(id: 1) retry forever }
})");
  SagaGraph g = one(p);
  const uint32_t loop = find(g, NodeKind::kFork, "foreach item in items");
  const uint32_t par = find(g, NodeKind::kFork, "parallel foreach item in items max 4");
  const uint32_t fork = find(g, NodeKind::kFork, "parallel");
  ASSERT_NE(loop, kNoIndex);
  ASSERT_NE(par, kNoIndex);
  ASSERT_NE(fork, kNoIndex);
  // The sequential loop goes back for the next item; the parallel one does not.
  int loops = 0;
  for (const Edge& e : g.edges) {
    if (e.kind != EdgeKind::kLoop) continue;
    ++loops;
    EXPECT_EQ(e.to, loop);
    EXPECT_EQ(e.label, "next item");
    EXPECT_EQ(g.nodes[e.from].kind, NodeKind::kJoin);
  }
  EXPECT_EQ(loops, 1);
  // Each branch is a cluster, and joins the same node.
  const uint32_t l = step(g, "l"), r = step(g, "r");
  EXPECT_NE(edge(g, fork, l), nullptr);
  EXPECT_NE(edge(g, fork, r), nullptr);
  ASSERT_NE(g.nodes[l].cluster, kNoIndex);
  EXPECT_EQ(g.clusters[g.nodes[l].cluster].label, "branch left");
  EXPECT_EQ(g.clusters[g.nodes[r].cluster].label, "branch right");
  EXPECT_EQ(g.clusters[g.nodes[step(g, "each_one")].cluster].label, "each item");
  EXPECT_EQ(g.clusters[g.nodes[step(g, "many")].cluster].label, "in parallel, each item");
  const uint32_t join = next_of(g, l);
  ASSERT_NE(join, kNoIndex);
  EXPECT_EQ(g.nodes[join].kind, NodeKind::kJoin);
  EXPECT_NE(edge(g, r, join), nullptr);
  // The undo of the block's steps leads to the steps before the block.
  EXPECT_NE(edge(g, undo(g, "l"), undo(g, "many"), EdgeKind::kUndo), nullptr);
  EXPECT_NE(edge(g, undo(g, "r"), undo(g, "many"), EdgeKind::kUndo), nullptr);
  EXPECT_NE(edge(g, undo(g, "many"), undo(g, "each_one"), EdgeKind::kUndo), nullptr);
  // Step kinds: no undo, and said in the note.
  EXPECT_EQ(undo(g, "commit"), kNoIndex);
  EXPECT_EQ(g.nodes[step(g, "commit")].note, "pivot\nsvc.commit");
  EXPECT_EQ(g.nodes[step(g, "notify")].note,
            "retriable\nsvc.notify\nretry forever (until it succeeds)");
  EXPECT_EQ(mermaid_problems(to_mermaid(build(p).value())), std::vector<std::string>{});
}

TEST(Graph, EverySagaOrTheOneNamed) {
  auto p = compile_text(read_file(kRoot + "/tests/cli/two_sagas.saga"));
  auto all = build(p);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all.value().sagas.size(), 2u);
  EXPECT_EQ(all.value().sagas[0].name, "one");
  EXPECT_EQ(all.value().sagas[1].name, "two");
  const std::string dot = to_dot(all.value());
  EXPECT_NE(dot.find("subgraph cluster_s0 {"), std::string::npos);
  EXPECT_NE(dot.find("subgraph cluster_s1 {"), std::string::npos);
  auto two = build(p, "two");
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two.value().sagas.size(), 1u);
  EXPECT_EQ(two.value().sagas[0].name, "two");
  EXPECT_EQ(to_dot(two.value()).find("cluster_s0 {"), std::string::npos);
  auto none = build(p, "three");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("its sagas: one, two"), std::string::npos)
      << none.status().message();
}

// ---------------------------------------------------------------------------
// Escaping.

TEST(Graph, LabelsAreEscapedForDotAndMermaid) {
  auto p = compile_text(R"(
saga s(t: string) {
  if t == "say \"hi\" <b>&amp; [x] {y} | #1 \\ `z`" { fail rejected "no <script>" }
})");
  Graph g = build(p).value();
  const std::string dot = to_dot(g), mermaid = to_mermaid(g);
  // dot: quotes, backslashes and entities escaped.
  EXPECT_NE(dot.find(R"(label="t == \"say \\\"hi\\\" <b>&amp;amp; [x] {y} | #1 \\\\ `z`\"")"),
            std::string::npos)
      << dot;
  // mermaid: no raw quote, markup or pipe inside a label.
  EXPECT_NE(mermaid.find("|\"t == #quot;say \\#quot;hi\\#quot; #lt;b#gt;#amp;amp; [x] {y} #124; "
                         "#35;1 \\\\ #96;z#96;#quot;\"|"),
            std::string::npos)
      << mermaid;
  EXPECT_EQ(mermaid.find("<script>"), std::string::npos);
  EXPECT_NE(mermaid.find("#lt;script#gt;"), std::string::npos);
  EXPECT_EQ(mermaid_problems(mermaid), std::vector<std::string>{});
  // And dot reads it back: the text arrives in the SVG, escaped as XML.
  auto svg = render_svg(dot);
  ASSERT_TRUE(svg.ok()) << svg.status().message();
  EXPECT_NE(svg.value().find("say \\&quot;hi\\&quot; &lt;b&gt;&amp;amp; [x] {y} | #1 \\\\ `z`"),
            std::string::npos)
      << svg.value();
  EXPECT_EQ(svg.value().find("<script>"), std::string::npos);
}

TEST(Graph, TextThatIsNotUtf8OrHasControlCharactersStillMakesValidLabels) {
  EXPECT_EQ(dot_escape("a\x01"
                       "b\xff"
                       "c\n\"\\"),
            "a b\xEF\xBF\xBD"
            "c\\n\\\"\\\\");
  EXPECT_EQ(mermaid_escape("a\x01"
                           "b\xff"
                           "c\n"),
            "a b\xEF\xBF\xBD"
            "c<br/>");
  // Shortening never splits a character.
  EXPECT_EQ(shorten("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 6), "\xC3\xA9...");
}

// ---------------------------------------------------------------------------
// The overlay.

Trace trace(std::string status, std::vector<TraceEvent> history,
            std::vector<Waiting> waiting = {}) {
  return {std::move(status), std::move(history), std::move(waiting)};
}

TEST(Overlay, ACompletedRunMarksOnlyTheArmItTook) {
  SagaGraph g = one(compile_text(read_file(kRoot + "/samples/order.saga")));
  overlay(g, trace("completed", {{"started", "", ""},
                                 {"step_completed", "reserve", ""},
                                 {"step_completed", "charge", ""},
                                 {"step_completed", "ship_standard", ""},
                                 {"completed", "", ""}}));
  EXPECT_EQ(g.status, "completed");
  EXPECT_EQ(g.nodes[step(g, "reserve")].mark, Mark::kTaken);
  EXPECT_EQ(g.nodes[step(g, "charge")].mark, Mark::kTaken);
  EXPECT_EQ(g.nodes[step(g, "ship_standard")].mark, Mark::kTaken);
  EXPECT_EQ(g.nodes[step(g, "ship")].mark, Mark::kNone);
  EXPECT_EQ(g.nodes[find(g, NodeKind::kCompleted, "completed")].mark, Mark::kTaken);
  EXPECT_EQ(g.nodes[find(g, NodeKind::kFail, "fail rejected")].mark, Mark::kNone);
  for (const Edge& e : g.edges) {
    const bool to_ship = e.to == step(g, "ship") || e.from == step(g, "ship");
    if (e.kind == EdgeKind::kFlow && to_ship) {
      EXPECT_EQ(e.mark, Mark::kNone);
    }
    if (e.kind == EdgeKind::kUndo) {
      EXPECT_EQ(e.mark, Mark::kNone);
    }
    if (e.to == step(g, "ship_standard")) {
      EXPECT_EQ(e.mark, Mark::kTaken);
    }
  }
  for (const Node& n : g.nodes) {
    if (n.kind == NodeKind::kUndo) {
      EXPECT_EQ(n.mark, Mark::kNone) << n.label;
    }
  }
  const std::string dot = to_dot(Graph{{g}});
  EXPECT_NE(dot.find("[completed]"), std::string::npos);
}

TEST(Overlay, ACompensatedRunMarksTheFailAndTheUndos) {
  SagaGraph g = one(compile_text(read_file(kRoot + "/samples/order.saga")));
  overlay(g, trace("compensated", {{"started", "", ""},
                                   {"step_completed", "reserve", ""},
                                   {"step_completed", "charge", ""},
                                   {"step_completed", "ship", ""},
                                   {"compensating", "", "rejected"},
                                   {"undo_completed", "ship", ""},
                                   {"undo_completed", "charge", ""},
                                   {"undo_completed", "reserve", ""},
                                   {"compensated", "", "rejected"}}));
  const uint32_t fail = find(g, NodeKind::kFail, "fail rejected");
  EXPECT_EQ(g.nodes[fail].mark, Mark::kFailed);
  EXPECT_EQ(g.nodes[find(g, NodeKind::kCompleted, "completed")].mark, Mark::kNone);
  for (const char* s : {"ship", "charge", "reserve"}) {
    EXPECT_EQ(g.nodes[undo(g, s)].mark, Mark::kCompensated) << s;
  }
  EXPECT_EQ(g.nodes[undo(g, "ship_standard")].mark, Mark::kNone);
  EXPECT_EQ(edge(g, fail, undo(g, "ship"), EdgeKind::kUndo)->mark, Mark::kCompensated);
  EXPECT_EQ(edge(g, fail, undo(g, "ship_standard"), EdgeKind::kUndo)->mark, Mark::kNone);
  EXPECT_EQ(edge(g, undo(g, "ship"), undo(g, "charge"), EdgeKind::kUndo)->mark, Mark::kCompensated);
  EXPECT_EQ(edge(g, undo(g, "ship_standard"), undo(g, "charge"), EdgeKind::kUndo)->mark,
            Mark::kNone);
  const uint32_t end = find(g, NodeKind::kCompensated, "compensated");
  EXPECT_EQ(g.nodes[end].mark, Mark::kCompensated);
  EXPECT_EQ(edge(g, undo(g, "reserve"), end, EdgeKind::kUndo)->mark, Mark::kCompensated);
}

TEST(Overlay, AStepThatFailedEndsThePath) {
  SagaGraph g = one(compile_text(read_file(kRoot + "/samples/order.saga")));
  overlay(g, trace("compensated", {{"step_completed", "reserve", ""},
                                   {"attempt_failed", "charge", "unavailable"},
                                   {"step_failed", "charge", "rejected"},
                                   {"compensating", "", "rejected"},
                                   {"undo_completed", "reserve", ""}}));
  EXPECT_EQ(g.nodes[step(g, "charge")].mark, Mark::kFailed);
  // Nothing after the failed step is on the path, not even the fail of the
  // same class further down.
  EXPECT_EQ(g.nodes[find(g, NodeKind::kFail, "fail rejected")].mark, Mark::kNone);
  for (const Edge& e : g.edges) {
    if (e.from == step(g, "charge")) {
      EXPECT_EQ(e.mark, Mark::kNone);
    }
  }
  EXPECT_NE(to_dot(Graph{{g}}).find("charge\\npayment.charge\\nretry 3 attempts\\n[failed]"),
            std::string::npos);
}

TEST(Overlay, WhereARunningInstanceWaitsIsCurrent) {
  SagaGraph g = one(compile_text(read_file(kRoot + "/samples/order.saga")));
  overlay(g, trace("running", {{"started", "", ""}, {"step_completed", "reserve", ""}},
                   {{Waiting::Kind::kAction, "charge", kNoIndex}}));
  EXPECT_EQ(g.nodes[step(g, "charge")].mark, Mark::kCurrent);
  EXPECT_EQ(g.nodes[step(g, "reserve")].mark, Mark::kTaken);
  for (const Node& n : g.nodes) {
    if (n.kind == NodeKind::kDecision) {
      EXPECT_EQ(n.mark, Mark::kNone);
    }
  }
  EXPECT_EQ(edge(g, step(g, "reserve"), step(g, "charge"))->mark, Mark::kTaken);
  EXPECT_NE(to_mermaid(Graph{{g}}).find("[now]"), std::string::npos);
}

TEST(Overlay, BranchesLoopsAndAStuckUndo) {
  auto p = compile_text(R"(
saga s(items: list) {
  parallel {
    branch a { foreach item in items { step each_one { do log(message: "x") undo log(message: "u") } } }
    branch b { step other { do log(message: "y") undo log(message: "u") } }
  }
  fail "no"
})");
  SagaGraph g = one(p);
  overlay(g, trace("stuck",
                   {{"step_completed", "a/each_one[0]", ""},
                    {"step_completed", "a/each_one[1]", ""},
                    {"step_completed", "a/each_one[2]", ""},
                    {"step_completed", "b/other", ""},
                    {"compensating", "", "failed"},
                    {"undo_completed", "b/other", ""},
                    {"undo_failed", "a/each_one[2]", "type"},
                    {"stuck", "a/each_one[2]", "type"}},
                   {{Waiting::Kind::kUndo, "a/each_one[2]", kNoIndex}}));
  EXPECT_EQ(g.nodes[step(g, "each_one")].mark, Mark::kTaken);
  EXPECT_EQ(g.nodes[step(g, "each_one")].times, 3u);
  EXPECT_EQ(g.nodes[step(g, "other")].mark, Mark::kTaken);
  EXPECT_EQ(g.nodes[undo(g, "other")].mark, Mark::kCompensated);
  EXPECT_EQ(g.nodes[undo(g, "each_one")].mark, Mark::kFailed) << "a stuck undo stays failed";
  EXPECT_EQ(g.nodes[find(g, NodeKind::kFail, "fail failed")].mark, Mark::kFailed);
  EXPECT_EQ(g.nodes[find(g, NodeKind::kCompensated, "compensated")].mark, Mark::kNone);
  EXPECT_NE(to_dot(Graph{{g}}).find("[done x3]"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Every program the tests have: never a crash, always valid text.

std::vector<bytecode::Program> every_program() {
  std::vector<bytecode::Program> out{bytecode::test::order_program()};
  for (const char* dir : {"samples", "tests"}) {
    for (const auto& entry : fs::recursive_directory_iterator(kRoot + "/" + dir)) {
      if (entry.path().extension() != ".saga") continue;
      std::string text = read_file(entry.path().string());
      SourceFile source(entry.path().filename().string(), text);
      Diagnostics diags(source);
      if (auto p = compiler::compile(source, diags)) out.push_back(std::move(*p));
    }
  }
  return out;
}

TEST(EveryProgram, IsDrawnAsValidDotAndMermaidWithAndWithoutARun) {
  Graph all;
  size_t programs = 0;
  for (const bytecode::Program& p : every_program()) {
    ++programs;
    auto g = build(p);
    ASSERT_TRUE(g.ok()) << p.source_name;
    for (SagaGraph& s : g.value().sagas) {
      // A run of every step, twice, and an undo of each, waiting at the last.
      Trace t{.status = "compensating"};
      for (const Node& n : s.nodes) {
        if (n.kind == NodeKind::kStep) {
          t.history.push_back({"step_completed", "x/" + n.label + "[0]", ""});
          t.history.push_back({"step_completed", n.label + "[1]", ""});
          t.history.push_back({"undo_completed", n.label, ""});
          t.waiting = {{Waiting::Kind::kUndo, n.label, kNoIndex},
                       {Waiting::Kind::kJoin, "", n.block}};
        }
      }
      SagaGraph marked = s;
      overlay(marked, t);
      all.sagas.push_back(std::move(s));
      all.sagas.push_back(std::move(marked));
    }
    EXPECT_EQ(mermaid_problems(to_mermaid(g.value())), std::vector<std::string>{}) << p.source_name;
  }
  EXPECT_GT(programs, 15u) << "the sweep found the test programs";
  EXPECT_EQ(mermaid_problems(to_mermaid(all)), std::vector<std::string>{});
  // One run of dot for all of them: it accepts the text and draws SVG.
  auto svg = render_svg(to_dot(all));
  ASSERT_TRUE(svg.ok()) << svg.status().message();
  EXPECT_NE(svg.value().find("<svg"), std::string::npos);
  EXPECT_NE(svg.value().find("order_fulfillment"), std::string::npos);
}

TEST(Svg, WithoutDotOnThePathTheErrorNamesTheProgramAndThePackage) {
  const char* old = std::getenv("PATH");
  std::string saved = old ? old : "";
  ::setenv("PATH", "/nonexistent", 1);
  auto svg = render_svg("digraph { a -> b }");
  ::setenv("PATH", saved.c_str(), 1);
  ASSERT_FALSE(svg.ok());
  EXPECT_EQ(svg.status().code(), StatusCode::kNotFound);
  EXPECT_NE(svg.status().message().find("'dot'"), std::string::npos);
  EXPECT_NE(svg.status().message().find("graphviz"), std::string::npos);
  // With it, the same text renders.
  auto ok = render_svg("digraph { a -> b }");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_NE(ok.value().find("<svg"), std::string::npos);
  // Text dot refuses is an error, not an empty picture.
  auto bad = render_svg("digraph { a -> }");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInternal);
}

// An emit is a node of its own on the path, labelled with its type and the
// record; compensation passes through it (it is not undone).
TEST(Graph, EmitIsANodeOnThePath) {
  auto p = compile_text(R"(
service svc { }
saga s(id: string) {
  step a { do svc.a(id: id) -> x undo svc.undo_a(id: id) }
  emit order.placed { order: id, x: x }
  step b { do svc.b(id: id) undo svc.undo_b(id: id) }
})");
  SagaGraph g = one(p);
  const uint32_t e = find(g, NodeKind::kEmit, "emit order.placed");
  ASSERT_NE(e, kNoIndex);
  EXPECT_EQ(g.nodes[e].note, "{order: id, x: x}");
  EXPECT_NE(edge(g, step(g, "a"), e), nullptr);
  EXPECT_NE(edge(g, e, step(g, "b")), nullptr);
  EXPECT_NE(edge(g, undo(g, "b"), undo(g, "a"), EdgeKind::kUndo), nullptr);
  const std::string dot = to_dot(build(p).value());
  EXPECT_NE(dot.find("shape=cds"), std::string::npos) << dot;
  const std::string mmd = to_mermaid(build(p).value());
  EXPECT_NE(mmd.find(">\"emit order.placed"), std::string::npos) << mmd;
  EXPECT_TRUE(mermaid_problems(mmd).empty());
}

}  // namespace
}  // namespace saga::graph
