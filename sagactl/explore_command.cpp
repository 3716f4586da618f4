// `sagactl explore`: runs the explorer (runtime/explore) on one saga and
// prints what it found, a violation as a diagnostic with its trace.
#include <fmt/format.h>

#include <iostream>

#include "grammar/diagnostic.hpp"
#include "grammar/source.hpp"
#include "grammar/suggest.hpp"
#include "runtime/explore/explore.hpp"
#include "sagactl/commands.hpp"

namespace saga::cli {
namespace {

// "file:line:col: error: MESSAGE", the source line and a caret at the step,
// as the compiler prints its diagnostics; without the source (a .sagac built
// with --no-source), the position alone.
std::string locate(const bytecode::Program& program, uint32_t step_index,
                   const explore::Violation& v) {
  if (step_index == bytecode::kNone || program.source_text.empty()) {
    const uint32_t line = step_index == bytecode::kNone ? 0 : program.steps[step_index].line;
    const uint32_t col = step_index == bytecode::kNone ? 0 : program.steps[step_index].column;
    std::string out =
        line == 0 ? fmt::format("{}: error: {}\n", program.source_name, v.message)
                  : fmt::format("{}:{}:{}: error: {}\n", program.source_name, line, col, v.message);
    if (!v.help.empty()) out += "  help: " + v.help + "\n";
    return out;
  }
  const bytecode::Step& step = program.steps[step_index];
  SourceFile source(program.source_name, program.source_text);
  Diagnostics diags(source);
  // At the step's name, as the compiler's diagnostics about a step are.
  const std::string_view line = source.line_text(step.line);
  size_t at = line.find(step.name, step.column - 1);
  if (at == std::string_view::npos) at = step.column - 1;
  const auto offset = static_cast<uint32_t>(line.data() - source.text().data() + at);
  diags.error(Span{offset, static_cast<uint32_t>(step.name.size())}, v.message, v.help);
  return diags.render_text(stderr_is_terminal());
}

nlohmann::json to_json(const explore::Report& r, const std::string& saga) {
  nlohmann::json j = {{"saga", saga},
                      {"paths", r.paths},
                      {"statuses", r.statuses},
                      {"longest", r.longest.size()},
                      {"truncated", r.truncated},
                      {"seconds", r.seconds}};
  if (r.violation) {
    j["violation"] = {{"message", r.violation->message},
                      {"faults", r.violation->faults},
                      {"trace", r.violation->trace}};
  }
  return j;
}

}  // namespace

int explore(const ExploreArgs& args) {
  Prepared prepared = prepare_run(args.run);
  if (prepared.exit != kExitOk) return prepared.exit;
  const bytecode::Program& program = prepared.program;
  const uint32_t saga = program.find_saga(prepared.saga);
  if (saga == bytecode::kNone) {
    std::vector<std::string> names;
    for (const bytecode::Saga& s : program.sagas) names.push_back(s.name);
    const std::string help = did_you_mean(prepared.saga, names);
    print_error(fmt::format("{} has no saga '{}'{}", args.run.program, prepared.saga,
                            help.empty() ? "" : " (" + help + ")"));
    return kExitUsage;
  }
  Value input = explore::default_input(program.sagas[saga]);
  if (!args.run.input.empty() || !args.run.input_file.empty()) {
    auto value = Value::from_json(prepared.input);
    if (!value.ok()) {
      print_error("the input: " + value.status().message());
      return kExitUsage;
    }
    input = std::move(value).value();
  }
  if (Status valid = runtime::validate_input(program.sagas[saga], input); !valid.ok()) {
    print_error(valid.message());
    return kExitUsage;
  }
  auto linked = runtime::verify_and_link(program);
  if (!linked.ok()) {
    print_error(linked.status().message());
    return kExitError;
  }
  explore::Options options;
  options.max_faults = args.max_faults;
  options.max_crashes = args.max_crashes;
  options.undo_attempts = args.undo_attempts;
  options.max_paths = args.max_paths;
  const explore::Report report = explore::explore(linked.value(), saga, input, options);

  if (args.json) {
    std::cout << json_text(to_json(report, prepared.saga)) << "\n";
    return report.violation ? kExitError : kExitOk;
  }
  if (report.violation) {
    const explore::Violation& v = *report.violation;
    std::cerr << locate(program, v.step, v);
    std::cerr << fmt::format("  trace ({} fault{}):\n", v.faults, v.faults == 1 ? "" : "s");
    for (size_t i = 0; i < v.trace.size(); ++i) {
      std::cerr << fmt::format("  {:>4}. {}\n", i + 1, v.trace[i]);
    }
  }
  std::string statuses;
  for (const auto& [status, n] : report.statuses) {
    statuses += fmt::format("{}{} {}", statuses.empty() ? "" : ", ", n, status);
  }
  const double rate = report.seconds > 0 ? static_cast<double>(report.paths) / report.seconds : 0;
  std::cout << fmt::format(
      "{}: saga {}: {} paths{} with up to {} fault{} each (failed attempts, cancel, deadline, "
      "{} crash{}), in {:.3f} s ({:.0f} paths/s)\n",
      args.run.program, prepared.saga, report.paths,
      report.truncated ? " (stopped: --max-paths)" : "", args.max_faults,
      args.max_faults == 1 ? "" : "s", args.max_crashes, args.max_crashes == 1 ? "" : "es",
      report.seconds, rate);
  std::cout << fmt::format("  ends: {}\n", statuses.empty() ? "none" : statuses);
  std::cout << fmt::format("  longest path: {} transitions\n", report.longest.size());
  std::cout << (report.violation ? "  1 violation (above)\n" : "  no violation\n");
  return report.violation ? kExitError : kExitOk;
}

}  // namespace saga::cli
