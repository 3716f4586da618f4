// overlay(): one instance's run drawn on its saga's graph (saga/graph.hpp).
//
// Steps and undos are marked from the history (the engine writes one event
// per thing that happened, naming the step as its key does: "flight/flight",
// "reserve[2]") and from what the fibers wait for now. The nodes between
// steps (decisions, forks, joins, ends) leave no event; one is on the path
// when the path enters it from a node on the path and it leads, through
// such nodes only, to a step the instance ran or to the end it reached. So
// of the two arms of an `if`, only the one whose step ran is marked, and a
// failed or waiting step is where its path stops.
#include <deque>
#include <functional>
#include <map>

#include "saga/graph.hpp"

namespace saga::graph {

namespace {

// The step's own name in a history name: after the branch prefix
// ("a/b/"), before the loop indexes ("[0][3]").
std::string_view plain_step(std::string_view name) {
  if (auto slash = name.rfind('/'); slash != std::string_view::npos) name.remove_prefix(slash + 1);
  if (auto bracket = name.find('['); bracket != std::string_view::npos)
    name = name.substr(0, bracket);
  return name;
}

bool failing_status(std::string_view s) {
  return s == "compensating" || s == "compensated" || s == "failed" || s == "stuck" ||
         s == "cancelled";
}

}  // namespace

void overlay(SagaGraph& g, const Trace& trace) {
  g.status = trace.status;
  std::map<std::string, uint32_t, std::less<>> step_node, undo_node;
  std::map<uint32_t, uint32_t> join_node;
  for (uint32_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.kind == NodeKind::kStep) step_node.emplace(n.label, i);
    if (n.kind == NodeKind::kUndo) undo_node.emplace(n.label.substr(5), i);  // "undo NAME".
    if (n.kind == NodeKind::kJoin) join_node.emplace(n.block, i);
  }
  std::vector<bool> ran(g.nodes.size(), false);  // Any event: the path reached it.
  std::string error_class;
  for (const TraceEvent& e : trace.history) {
    if ((e.kind == "compensating" || e.kind == "failed") && !e.error_class.empty()) {
      error_class = e.error_class;
    }
    if (e.step.empty()) continue;
    std::string_view name = plain_step(e.step);
    const bool undo = e.kind.starts_with("undo_") || e.kind == "stuck";
    const auto& table = undo ? undo_node : step_node;
    auto it = table.find(name);
    if (it == table.end()) continue;
    Node& n = g.nodes[it->second];
    ran[it->second] = true;
    if (e.kind == "step_completed") {
      ++n.times;
      if (n.mark == Mark::kNone) n.mark = Mark::kTaken;
    } else if (e.kind == "step_failed" || e.kind == "step_abandoned" || e.kind == "stuck") {
      // A later iteration's failure outweighs earlier successes; an undo
      // that gave up is failed.
      n.mark = Mark::kFailed;
    } else if (e.kind == "undo_completed") {
      n.mark = Mark::kCompensated;
    }
  }
  for (const Waiting& w : trace.waiting) {
    uint32_t node = kNoIndex;
    if (w.kind == Waiting::Kind::kJoin) {
      if (auto j = join_node.find(w.block); j != join_node.end()) node = j->second;
    } else {
      const auto& table = w.kind == Waiting::Kind::kUndo ? undo_node : step_node;
      if (auto it = table.find(plain_step(w.step)); it != table.end()) node = it->second;
    }
    // A stuck instance still "waits" at the undo that gave up: it stays failed.
    if (node == kNoIndex || g.nodes[node].mark == Mark::kFailed) continue;
    g.nodes[node].mark = Mark::kCurrent;
    ran[node] = true;
  }

  // The forward path.
  std::vector<std::vector<uint32_t>> out(g.nodes.size());
  for (uint32_t e = 0; e < g.edges.size(); ++e) {
    if (g.edges[e].kind == EdgeKind::kFlow) out[g.edges[e].from].push_back(e);
  }
  // Whether a node between steps leads to what the instance ran.
  std::vector<int8_t> leads(g.nodes.size(), -1);
  std::function<bool(uint32_t)> leads_to_run = [&](uint32_t x) -> bool {
    const Node& n = g.nodes[x];
    switch (n.kind) {
      case NodeKind::kStep:
        return ran[x];
      case NodeKind::kCompleted:
        return trace.status == "completed";
      case NodeKind::kFail:
        return failing_status(trace.status) && n.error_class == error_class;
      case NodeKind::kJoin:
        if (n.mark == Mark::kCurrent) return true;
        break;
      default:
        break;
    }
    if (leads[x] >= 0) return leads[x] != 0;
    leads[x] = 0;  // Guards a cycle; the flow edges have none.
    bool any = false;
    for (uint32_t e : out[x]) any = leads_to_run(g.edges[e].to) || any;
    leads[x] = any ? 1 : 0;
    return any;
  };
  std::vector<bool> on_path(g.nodes.size(), false);
  std::deque<uint32_t> queue;
  for (uint32_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].kind == NodeKind::kStart && !trace.history.empty()) {
      on_path[i] = true;
      queue.push_back(i);
    }
  }
  while (!queue.empty()) {
    uint32_t x = queue.front();
    queue.pop_front();
    // The path stops at a step that failed or still runs, and at a join
    // that waits for its fibers.
    if (g.nodes[x].mark == Mark::kFailed || g.nodes[x].mark == Mark::kCurrent) continue;
    for (uint32_t e : out[x]) {
      uint32_t to = g.edges[e].to;
      if (!leads_to_run(to)) continue;
      g.edges[e].mark = Mark::kTaken;
      if (!on_path[to]) {
        on_path[to] = true;
        queue.push_back(to);
      }
    }
  }
  for (uint32_t i = 0; i < g.nodes.size(); ++i) {
    Node& n = g.nodes[i];
    if (!on_path[i] || n.mark != Mark::kNone) continue;
    n.mark = n.kind == NodeKind::kFail ? Mark::kFailed : Mark::kTaken;
  }

  // The compensation path: between undos that ran, from the fail that
  // began it, and to its end once every undo is done.
  const bool compensated = trace.status == "compensated" || trace.status == "cancelled";
  for (uint32_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].kind == NodeKind::kCompensated && compensated)
      g.nodes[i].mark = Mark::kCompensated;
  }
  for (Edge& e : g.edges) {
    if (e.kind != EdgeKind::kUndo) continue;
    const Node& from = g.nodes[e.from];
    const Node& to = g.nodes[e.to];
    // From a fail the path reached, or from an undo that completed.
    const bool from_done =
        from.kind == NodeKind::kFail ? on_path[e.from] : from.mark == Mark::kCompensated;
    const bool to_ran = to.kind == NodeKind::kCompensated ? compensated : to.mark != Mark::kNone;
    if (from_done && to_ran) e.mark = Mark::kCompensated;
  }
}

}  // namespace saga::graph
