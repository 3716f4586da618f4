// Incoming events on the command line: `sagactl worker --program FILE`
// (the programs whose triggers the worker serves) and `sagactl events ls`
// (what arrived: docs/events.md, "Events in").
#include <fmt/format.h>

#include <iostream>

#include "runtime/bytecode/format.hpp"
#include "runtime/value/utf8.hpp"
#include "saga/engine.hpp"
#include "saga/records_json.hpp"
#include "sagactl/commands.hpp"
#include "sagactl/program_file.hpp"

namespace saga::cli {

bool serve_programs(Engine& engine, const std::vector<std::string>& files) {
  for (const std::string& file : files) {
    auto program = load_program(file);
    if (!program) return false;
    if (program->triggers.empty()) {
      print_error(fmt::format(
          "--program {}: the program has no trigger ('on TYPE start SAGA(...)'), so it would "
          "serve no event",
          file));
      return false;
    }
    auto hash = engine.load_program(bytecode::serialize(*program));
    Status s = hash.ok() ? engine.serve_triggers(hash.value()) : hash.status();
    if (!s.ok()) {
      print_error(fmt::format("--program {}: {}", file, s.message()));
      return false;
    }
    for (const bytecode::Trigger& t : program->triggers) {
      std::cerr << fmt::format("serving: on {} start {} ({})\n", t.type,
                               program->sagas[t.saga].name, file);
    }
  }
  return true;
}

int events_ls(const DbArgs& args, size_t limit, bool unmatched) {
  auto store = open_reader(args.db);
  if (!store) return kExitError;
  auto events = store->list_events(limit, unmatched);
  if (!events.ok()) {
    print_error(events.status().message());
    return kExitError;
  }
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const EventRecord& e : events.value()) out.push_back(records::event_record(e));
    std::cout << records::text(out);
    return kExitOk;
  }
  const int64_t now = now_ms();
  std::cout << fmt::format("{:<24}  {:<24}  {:<20}  {:<8}  {:<8}  {}\n", "SOURCE", "ID", "TYPE",
                           "AGE", "MATCHED", "STARTED");
  for (const EventRecord& e : events.value()) {
    // What it did: the instances it started, then those whose await took it.
    std::string started;
    for (const std::string& id : e.started) started += (started.empty() ? "" : " ") + id;
    for (const std::string& id : e.woke) started += (started.empty() ? "woke " : " woke ") + id;
    if (started.empty()) started = e.note.empty() ? "-" : "- (" + e.note + ")";
    std::cout << scrub_utf8(fmt::format("{:<24}  {:<24}  {:<20}  {:<8}  {:<8}  {}\n", e.source,
                                        e.id, e.type, age_text(now - e.received_ms),
                                        e.matched ? "yes" : "no", started));
  }
  return kExitOk;
}

}  // namespace saga::cli
