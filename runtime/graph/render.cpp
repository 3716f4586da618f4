// to_dot() and to_mermaid(): the graph model as text (saga/graph.hpp). Both
// draw the same things the same way: what a node is by its shape, the
// compensation path dashed, and an instance's marks as colours plus a word
// in the label ("now", "failed", "compensated", "x3"), so that the picture
// also reads without colour. Every label passes through the format's
// escaper (text.hpp); node ids are generated ("s0_n3"), never user text.
// docs/graph.md describes both formats.
#include <fmt/format.h>

#include <functional>
#include <map>

#include "runtime/graph/text.hpp"
#include "runtime/value/utf8.hpp"
#include "saga/graph.hpp"

namespace saga::graph {

std::string shorten(std::string_view s, size_t max) {
  std::string text = scrub_utf8(s);
  if (text.size() <= max) return text;
  size_t cut = max > 3 ? max - 3 : 0;
  // Back off continuation bytes so that no character is split.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "...";
}

std::string dot_escape(std::string_view s) {
  std::string out;
  for (char c : scrub_utf8(s)) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '&') {
      out += "&amp;";  // dot reads entities (&lt; ...) in every label.
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string mermaid_escape(std::string_view s) {
  std::string out;
  for (char c : scrub_utf8(s)) {
    switch (c) {
      case '"':
        out += "#quot;";
        break;
      case '#':
        out += "#35;";
        break;
      case '<':
        out += "#lt;";
        break;
      case '>':
        out += "#gt;";
        break;
      case '&':
        out += "#amp;";
        break;
      case '|':
        out += "#124;";
        break;
      case '`':
        out += "#96;";
        break;
      case '\n':
        out += "<br/>";
        break;
      default:
        out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c;
    }
  }
  return out;
}

namespace {

// The colours of a mark: fill, then line.
struct Colours {
  const char* fill;
  const char* line;
};
Colours colours(Mark m) {
  switch (m) {
    case Mark::kTaken:
      return {"#dff0d8", "#3c763d"};
    case Mark::kCurrent:
      return {"#fcf8e3", "#e69500"};
    case Mark::kFailed:
      return {"#f2dede", "#a94442"};
    case Mark::kCompensated:
      return {"#d9edf7", "#31708f"};
    case Mark::kNone:
      break;
  }
  return {"", ""};
}

// The word a mark adds to a node's label.
std::string mark_word(const Node& n) {
  switch (n.mark) {
    case Mark::kCurrent:
      return "[now]";
    case Mark::kFailed:
      return "[failed]";
    case Mark::kCompensated:
      return "[compensated]";
    case Mark::kTaken:
      return n.times > 1 ? fmt::format("[done x{}]", n.times) : "";
    case Mark::kNone:
      break;
  }
  return "";
}

// A node's whole label: the label, the note, the mark's word.
std::string full_label(const Node& n) {
  std::string text = n.label;
  if (!n.note.empty()) text += "\n" + n.note;
  if (std::string w = mark_word(n); !w.empty()) text += "\n" + w;
  return text;
}

// `base` spaces and two more per nesting level.
std::string indent(size_t base, int depth) {
  return std::string(base + 2 * static_cast<size_t>(depth), ' ');
}

std::string node_id(size_t saga, size_t node) {
  return fmt::format("s{}_n{}", saga, node);
}

// Calls `emit_node` for the nodes of each cluster nested in the cluster tree,
// with `open` / `close` around each cluster; `indent` is the depth.
void walk_clusters(const SagaGraph& g, const std::function<void(uint32_t, int)>& emit_node,
                   const std::function<void(uint32_t, int)>& open,
                   const std::function<void(int)>& close, int depth) {
  // Index kNoIndex (the saga itself) is bucket 0, cluster k is bucket k + 1.
  std::vector<std::vector<uint32_t>> nodes(g.clusters.size() + 1), children(g.clusters.size() + 1);
  auto bucket = [&](uint32_t c) { return c < g.clusters.size() ? c + 1 : 0; };
  for (uint32_t i = 0; i < g.nodes.size(); ++i) nodes[bucket(g.nodes[i].cluster)].push_back(i);
  for (uint32_t k = 0; k < g.clusters.size(); ++k) {
    if (g.clusters[k].parent != k) children[bucket(g.clusters[k].parent)].push_back(k);
  }
  // Depth-first with an explicit stack: nesting is as deep as the program's.
  struct Frame {
    uint32_t bucket;
    size_t next = 0;
    int depth;
  };
  std::vector<Frame> stack{{0, 0, depth}};
  for (uint32_t i : nodes[0]) emit_node(i, depth);
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next == children[f.bucket].size()) {
      int d = f.depth;
      stack.pop_back();
      if (!stack.empty()) close(d - 1);
      continue;
    }
    uint32_t k = children[f.bucket][f.next++];
    int d = f.depth;
    open(k, d);
    for (uint32_t i : nodes[k + 1]) emit_node(i, d + 1);
    stack.push_back({k + 1, 0, d + 1});
  }
}

// ---------------------------------------------------------------------------
// dot

std::string dot_node_attrs(const Node& n) {
  std::string shape, style;
  std::string extra;
  switch (n.kind) {
    case NodeKind::kStart:
      shape = "circle";
      style = "filled";
      extra = ", fillcolor=\"#333333\", fontcolor=white, width=0.3, fixedsize=true, label=\"\"";
      break;
    case NodeKind::kStep:
      shape = "box";
      style = "rounded";
      if (n.note.starts_with("pivot")) extra = ", peripheries=2";
      if (n.note.starts_with("retriable")) style += ",bold";
      break;
    case NodeKind::kUndo:
      shape = "box";
      style = "rounded,dashed";
      extra = n.mark == Mark::kNone ? ", color=\"#777777\", fontcolor=\"#444444\"" : "";
      break;
    case NodeKind::kDecision:
      shape = "diamond";
      break;
    case NodeKind::kFork:
      shape = "trapezium";
      break;
    case NodeKind::kJoin:
      shape = "invtrapezium";
      break;
    case NodeKind::kCompleted:
      shape = "oval";
      extra = ", peripheries=2";
      break;
    case NodeKind::kFail:
      shape = "octagon";
      break;
    case NodeKind::kEnd:
      shape = "point";
      break;
    case NodeKind::kCompensated:
      shape = "oval";
      style = "dashed";
      break;
    case NodeKind::kEmit:
      shape = "cds";
      break;
  }
  if (n.mark != Mark::kNone && n.kind != NodeKind::kStart) {
    Colours c = colours(n.mark);
    style += style.empty() ? "filled" : ",filled";
    extra += fmt::format(", fillcolor=\"{}\", color=\"{}\", penwidth=2", c.fill, c.line);
  }
  std::string out = "shape=" + shape;
  if (!style.empty()) out += ", style=\"" + style + "\"";
  if (n.kind != NodeKind::kStart) out += ", label=\"" + dot_escape(full_label(n)) + "\"";
  return out + extra;
}

void dot_saga(std::string& out, const SagaGraph& g, size_t s, bool cluster) {
  std::string pad = cluster ? "    " : "  ";
  if (cluster) {
    out += fmt::format(
        "  subgraph cluster_s{} {{\n    label=\"{}\";\n", s,
        dot_escape("saga " + g.signature + (g.status.empty() ? "" : "  [" + g.status + "]")));
  }
  // A step and its undo side by side: forward on the left, compensation on
  // the right.
  std::map<uint32_t, uint32_t> undo_of_step, undo_of;  // Step index, step node -> undo node.
  for (uint32_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].kind == NodeKind::kUndo) undo_of_step[g.nodes[i].step] = i;
  }
  for (uint32_t i = 0; i < g.nodes.size(); ++i) {
    auto u = undo_of_step.find(g.nodes[i].step);
    if (g.nodes[i].kind == NodeKind::kStep && u != undo_of_step.end()) undo_of[i] = u->second;
  }
  walk_clusters(
      g,
      [&](uint32_t i, int d) {
        std::string in = indent(pad.size(), d);
        out += fmt::format("{}{} [{}];\n", in, node_id(s, i), dot_node_attrs(g.nodes[i]));
        if (auto u = undo_of.find(i); u != undo_of.end()) {
          out +=
              fmt::format("{}{{ rank=same; {}; {}; }}\n", in, node_id(s, i), node_id(s, u->second));
        }
      },
      [&](uint32_t k, int d) {
        std::string in = indent(pad.size(), d);
        out += fmt::format(
            "{}subgraph cluster_s{}_c{} {{\n{}  label=\"{}\"; style=\"rounded\"; "
            "color=\"#999999\";\n",
            in, s, k, in, dot_escape(g.clusters[k].label));
      },
      [&](int d) { out += indent(pad.size(), d) + "}\n"; }, 0);
  for (const Edge& e : g.edges) {
    std::vector<std::string> attrs;
    if (!e.label.empty()) attrs.push_back("label=\"" + dot_escape(e.label) + "\"");
    // The compensation path runs up the picture, beside the steps: an edge
    // between undos is laid out as the forward edge it mirrors (declared
    // from the earlier step's undo, arrow at the tail), and one from a
    // `fail` does not rank its undos below it.
    bool back = false;
    if (e.kind == EdgeKind::kUndo) {
      attrs.push_back("style=dashed");
      attrs.push_back(e.mark == Mark::kNone ? "color=\"#777777\"" : "");
      back = g.nodes[e.from].kind == NodeKind::kUndo;
      attrs.push_back(back ? "dir=back" : "constraint=false");
    }
    if (e.kind == EdgeKind::kLoop) {
      attrs.push_back("style=dotted");
      attrs.push_back("constraint=false");
    }
    if (e.mark != Mark::kNone) {
      attrs.push_back(fmt::format("color=\"{}\"", colours(e.mark).line));
      attrs.push_back("penwidth=2");
    }
    std::string list;
    for (const std::string& a : attrs) {
      if (!a.empty()) list += (list.empty() ? "" : ", ") + a;
    }
    out += fmt::format("{}{} -> {}{};\n", pad, node_id(s, back ? e.to : e.from),
                       node_id(s, back ? e.from : e.to), list.empty() ? "" : " [" + list + "]");
  }
  if (cluster) out += "  }\n";
}

// ---------------------------------------------------------------------------
// mermaid

std::string mermaid_node(const Node& n, const std::string& id) {
  std::string text = "\"" + mermaid_escape(full_label(n)) + "\"";
  switch (n.kind) {
    case NodeKind::kStart:
      return id + "((\"start\"))";
    case NodeKind::kStep:
    case NodeKind::kUndo:  // Told apart by the class `undo` (dashed).
      return id + "(" + text + ")";
    case NodeKind::kDecision:
      return id + "{" + text + "}";
    case NodeKind::kFork:
      return id + "[/" + text + "\\]";
    case NodeKind::kJoin:
      return id + "[\\" + text + "/]";
    case NodeKind::kCompleted:
      return id + "([" + text + "])";
    case NodeKind::kFail:
      return id + "{{" + text + "}}";
    case NodeKind::kEnd:
      return id + "((" + text + "))";
    case NodeKind::kCompensated:
      return id + "([" + text + "])";
    case NodeKind::kEmit:
      return id + ">" + text + "]";
  }
  return id + "[" + text + "]";
}

void mermaid_saga(std::string& out, const SagaGraph& g, size_t s) {
  out += fmt::format(
      "  subgraph s{}[\"{}\"]\n", s,
      mermaid_escape("saga " + g.signature + (g.status.empty() ? "" : "  [" + g.status + "]")));
  out += "    direction TB\n";
  walk_clusters(
      g,
      [&](uint32_t i, int d) {
        out += indent(4, d) + mermaid_node(g.nodes[i], node_id(s, i)) + "\n";
      },
      [&](uint32_t k, int d) {
        out += fmt::format("{}subgraph s{}_c{}[\"{}\"]\n", indent(4, d), s, k,
                           mermaid_escape(g.clusters[k].label));
      },
      [&](int d) { out += indent(4, d) + "end\n"; }, 0);
  out += "  end\n";
}

}  // namespace

std::string to_dot(const Graph& graph) {
  std::string out = "digraph saga {\n";
  out += "  graph [fontname=\"Helvetica\", fontsize=11, labelloc=t";
  if (graph.sagas.size() == 1) {
    const SagaGraph& g = graph.sagas[0];
    out += ", label=\"" +
           dot_escape("saga " + g.signature + (g.status.empty() ? "" : "  [" + g.status + "]")) +
           "\"";
  }
  out += "];\n  node [fontname=\"Helvetica\", fontsize=10];\n";
  out += "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  for (size_t s = 0; s < graph.sagas.size(); ++s) {
    dot_saga(out, graph.sagas[s], s, graph.sagas.size() > 1);
  }
  return out + "}\n";
}

std::string to_mermaid(const Graph& graph) {
  std::string out = "flowchart TB\n";
  for (size_t s = 0; s < graph.sagas.size(); ++s) mermaid_saga(out, graph.sagas[s], s);
  // Edges after every node, numbered in order for linkStyle.
  size_t link = 0;
  std::map<Mark, std::vector<size_t>> marked_links;
  std::vector<size_t> undo_links;
  std::map<Mark, std::vector<std::string>> marked_nodes;
  std::vector<std::string> undo_nodes;
  for (size_t s = 0; s < graph.sagas.size(); ++s) {
    const SagaGraph& g = graph.sagas[s];
    for (const Edge& e : g.edges) {
      const char* arrow = e.kind == EdgeKind::kFlow ? "-->" : "-.->";
      std::string label = e.label.empty() ? "" : "|\"" + mermaid_escape(e.label) + "\"|";
      out += fmt::format("  {} {}{} {}\n", node_id(s, e.from), arrow, label, node_id(s, e.to));
      if (e.mark != Mark::kNone) marked_links[e.mark].push_back(link);
      ++link;
    }
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      if (g.nodes[i].mark != Mark::kNone) {
        marked_nodes[g.nodes[i].mark].push_back(node_id(s, i));
      } else if (g.nodes[i].kind == NodeKind::kUndo || g.nodes[i].kind == NodeKind::kCompensated) {
        undo_nodes.push_back(node_id(s, i));
      }
    }
  }
  out += "  classDef undo stroke-dasharray:4 3,stroke:#777777,color:#444444;\n";
  for (Mark m : {Mark::kTaken, Mark::kCurrent, Mark::kFailed, Mark::kCompensated}) {
    Colours c = colours(m);
    out += fmt::format("  classDef {} fill:{},stroke:{},stroke-width:2px;\n", to_string(m), c.fill,
                       c.line);
  }
  auto join = [](const std::vector<std::string>& ids) {
    std::string s;
    for (const std::string& id : ids) s += (s.empty() ? "" : ",") + id;
    return s;
  };
  if (!undo_nodes.empty()) out += "  class " + join(undo_nodes) + " undo;\n";
  for (const auto& [m, ids] : marked_nodes) {
    out += fmt::format("  class {} {};\n", join(ids), to_string(m));
  }
  for (const auto& [m, links] : marked_links) {
    std::string list;
    for (size_t l : links) list += (list.empty() ? "" : ",") + std::to_string(l);
    out += fmt::format("  linkStyle {} stroke:{},stroke-width:2px;\n", list, colours(m).line);
  }
  return out;
}

}  // namespace saga::graph
