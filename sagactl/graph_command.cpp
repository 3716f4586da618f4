// `sagactl graph FILE` and `sagactl show ID --graph`: a saga, or an
// instance's run of it, as a picture (saga/graph.hpp draws it; this file
// reads the program or the instance and prints). docs/graph.md describes
// the formats.
#include <fmt/format.h>

#include <fstream>
#include <iostream>

#include "grammar/suggest.hpp"
#include "runtime/engine/inspect.hpp"
#include "runtime/engine/machine.hpp"
#include "runtime/vm/checkpoint.hpp"
#include "saga/graph.hpp"
#include "sagactl/commands.hpp"
#include "sagactl/program_file.hpp"

namespace saga::cli {

namespace {

// The graph as text in `format`, written to `output` (stdout when empty).
int print_graph(const graph::Graph& g, const std::string& format, const std::string& output) {
  std::string text;
  if (format == "mermaid") {
    text = graph::to_mermaid(g);
  } else if (format == "svg") {
    auto svg = graph::render_svg(graph::to_dot(g));
    if (!svg.ok()) {
      print_error(svg.status().message());
      return svg.status().code() == StatusCode::kNotFound ? kExitMissingProgram : kExitError;
    }
    text = std::move(svg).value();
  } else {
    text = graph::to_dot(g);
  }
  if (output.empty()) {
    std::cout << text;
    return kExitOk;
  }
  std::ofstream out(output, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    print_error(fmt::format("cannot write {}", output));
    return kExitError;
  }
  return kExitOk;
}

}  // namespace

int graph(const GraphArgs& args) {
  auto program = load_program(args.file);
  if (!program) return kExitError;
  auto g = graph::build(*program, args.saga);
  if (!g.ok()) {
    std::vector<std::string> names;
    for (const bytecode::Saga& s : program->sagas) names.push_back(s.name);
    const std::string help = did_you_mean(args.saga, names);
    print_error(fmt::format("{}: {}{}", args.file, g.status().message(),
                            help.empty() ? "" : " (" + help + ")"));
    return kExitUsage;
  }
  return print_graph(g.value(), args.format, args.output);
}

int show_graph(const DbArgs& db, const std::string& id, const GraphArgs& args) {
  auto store = open_reader(db.db);
  if (!store) return kExitError;
  auto rec = store->get_instance(id);
  if (!rec.ok()) {
    print_error(rec.status().message());
    return kExitError;
  }
  if (!rec.value()) {
    print_error(fmt::format("no instance '{}'", id));
    return kExitNotFound;
  }
  const InstanceRecord& r = *rec.value();
  auto linked = runtime::programs_of(*store)(r.program_hash);
  if (!linked.ok()) {
    print_error(fmt::format("instance {}: its program {}: {}", id, r.program_hash,
                            linked.status().message()));
    return kExitError;
  }
  const runtime::LinkedProgram& lp = *linked.value();
  auto g = graph::build(lp.program, r.saga);
  if (!g.ok()) {
    print_error(fmt::format("instance {}: {}", id, g.status().message()));
    return kExitError;
  }

  graph::Trace trace;
  trace.status = to_string(r.status);
  auto history = store->history(id);
  if (!history.ok()) {
    print_error(history.status().message());
    return kExitError;
  }
  for (const HistoryEvent& e : history.value()) {
    trace.history.push_back({e.kind, e.step, e.error_class});
  }
  // Where its fibers wait, from the checkpoint (a finished instance has none
  // that waits; one that cannot be decoded is drawn without).
  if (!r.checkpoint.empty() && !is_terminal(r.status)) {
    std::vector<std::string> fibers;
    for (const FiberRow& f : r.fibers) fibers.push_back(f.state);
    auto state = runtime::decode_checkpoint(lp, r.checkpoint, fibers);
    if (state.ok()) {
      for (const runtime::Fiber& f : state.value().fibers) {
        if (f.wait == runtime::Wait::kJoin) {
          trace.waiting.push_back({graph::Waiting::Kind::kJoin, {}, f.join_block});
        } else if (f.wait == runtime::Wait::kAction || f.wait == runtime::Wait::kUndo) {
          trace.waiting.push_back({f.wait == runtime::Wait::kUndo ? graph::Waiting::Kind::kUndo
                                                                  : graph::Waiting::Kind::kAction,
                                   runtime::step_name(lp, f), graph::kNoIndex});
        }
      }
    } else {
      std::cerr << fmt::format("sagactl: warning: instance {}: {}: drawn without its position\n",
                               id, state.status().message());
    }
  }
  graph::overlay(g.value().sagas[0], trace);
  return print_graph(g.value(), args.format, args.output);
}

}  // namespace saga::cli
