// Pictures of sagas (`sagactl graph`, `sagactl show ID --graph`, the web
// view): a small graph model built from a verified bytecode program, an
// optional overlay of one instance's run, and its text as Graphviz dot or
// Mermaid.
//
// Invariant: the picture is a pure function of the program (and of the
// instance's history and waits, for the overlay). It reads the bytecode, not
// the source, so a .sagac file without its source draws the same graph, and
// nothing here needs the compiler, a store, a clock or Asio. Only
// render_svg() runs a program (Graphviz's dot) and is kept apart from the
// rest. The formats are described in docs/graph.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "saga/status.hpp"

namespace saga::bytecode {
struct Program;
}

namespace saga::graph {

inline constexpr uint32_t kNoIndex = 0xFFFFFFFF;

enum class NodeKind : uint8_t {
  kStart,        // Where the saga begins.
  kStep,         // A step's `do` (label: the step; note: action, timeout, retry).
  kUndo,         // A step's `undo`, on the compensation path.
  kDecision,     // An `if`: its edges carry the condition and `else`.
  kFork,         // Start of a `parallel` block or a `foreach` loop.
  kJoin,         // Where the block's branches (or the loop's iterations) meet.
  kCompleted,    // `output` (or the end of the saga): the instance completes.
  kFail,         // `fail CLASS ...`: the saga fails and compensates.
  kEnd,          // The end of a branch or loop body (only when nothing follows).
  kCompensated,  // The end of the compensation path.
  kEmit,         // `emit TYPE { ... }` (label: "emit TYPE"; note: the data).
};

// What an instance's run did at a node or edge (the overlay); kNone in a
// plain picture.
enum class Mark : uint8_t {
  kNone,
  kTaken,        // On the path the instance took (a step that completed).
  kCurrent,      // Where the instance is now: an attempt, a backoff, an undo.
  kFailed,       // A step whose last attempt failed, or an undo that gave up.
  kCompensated,  // An undo that completed.
};
const char* to_string(Mark mark);

struct Node {
  NodeKind kind = NodeKind::kStep;
  std::string label;            // First line: the step's name, "if", "parallel", ...
  std::string note;             // Further lines ('\n'-separated), may be empty.
  uint32_t step = kNoIndex;     // kStep, kUndo: index into Program::steps.
  uint32_t block = kNoIndex;    // kFork, kJoin: index into Program::blocks.
  uint32_t cluster = kNoIndex;  // Innermost branch or loop body holding it.
  std::string error_class;      // kFail: the class it fails with.
  Mark mark = Mark::kNone;
  uint32_t times = 0;  // Overlay: how many times the step completed (loops).
};

enum class EdgeKind : uint8_t {
  kFlow,  // Forward: what runs next.
  kLoop,  // A sequential `foreach` goes back for the next item.
  kUndo,  // The compensation path: dashed, from an undo to the one run after it.
};

struct Edge {
  uint32_t from = 0, to = 0;  // Node indexes.
  EdgeKind kind = EdgeKind::kFlow;
  std::string label;  // A condition, "else", "next item", "fail", or empty.
  Mark mark = Mark::kNone;
};

// A branch of a `parallel` block or the body of a `foreach`, drawn as a box
// around its nodes.
struct Cluster {
  std::string label;  // "branch flight", "each item in items".
  uint32_t parent = kNoIndex;
};

// The picture of one saga.
struct SagaGraph {
  std::string name;
  std::string signature;  // "order_fulfillment(order_id: string, ...)".
  std::vector<Node> nodes;
  std::vector<Edge> edges;
  std::vector<Cluster> clusters;
  std::string status;  // Overlay: the instance's status; empty in a plain picture.
};

struct Graph {
  std::vector<SagaGraph> sagas;
};

// The picture of every saga of `program`, in program order, or of the one
// named `saga` (kNotFound, naming the sagas there are, when there is none).
// `program` must be verified (bytecode::verify): what the loader and the
// compiler hand out. Never fails otherwise.
Result<Graph> build(const bytecode::Program& program, std::string_view saga = {});

// One instance's run, as the overlay needs it: events from its history and
// what its fibers wait for now.
struct TraceEvent {
  std::string kind;  // A history event kind (saga/events.def).
  std::string step;  // As the history names it: "flight/flight", "reserve[2]".
  std::string error_class;
};
struct Waiting {
  enum class Kind : uint8_t { kAction, kUndo, kJoin };
  Kind kind = Kind::kAction;
  std::string step;           // kAction, kUndo: as the history names it.
  uint32_t block = kNoIndex;  // kJoin.
};
struct Trace {
  std::string status;  // The instance's status ("completed", "stuck", ...).
  std::vector<TraceEvent> history;
  std::vector<Waiting> waiting;
};

// Marks `saga` with `trace`: the steps that completed and the edges between
// them (taken), where the instance waits (current), what failed, which undos
// ran (compensated) and the compensation edges between them.
void overlay(SagaGraph& saga, const Trace& trace);

// The graph as Graphviz dot text (one `digraph`, a cluster per saga when
// there are several) and as a Mermaid `flowchart` (a subgraph per saga).
// Labels are escaped for each format; long ones are shortened.
std::string to_dot(const Graph& graph);
std::string to_mermaid(const Graph& graph);

// Runs Graphviz (`dot -Tsvg`, found on PATH, started with an argument vector,
// never a shell) on `dot_text` and returns the SVG. kNotFound, naming the
// program and the Debian package, when there is no `dot` on PATH; kInternal
// with dot's exit status when it fails (its messages go to stderr).
Result<std::string> render_svg(const std::string& dot_text);

}  // namespace saga::graph
