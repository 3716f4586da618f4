// The inspect view (inspect.hpp). Every text read from the store passes
// through scrub_utf8: a database written by an older build may hold bytes
// that are not UTF-8 in an error message, and one such byte must not make
// the whole view (or `sagactl ls --json` of the whole database) unprintable.
#include "runtime/engine/inspect.hpp"

#include <fmt/format.h>

#include "runtime/bytecode/format.hpp"
#include "runtime/engine/machine.hpp"
#include "runtime/value/utf8.hpp"
#include "runtime/vm/checkpoint.hpp"
#include "saga/records_json.hpp"
#include "stdlib/functions.hpp"

namespace saga::runtime {

nlohmann::json json_or_text(const std::string& text) {
  if (text.empty()) return nullptr;
  auto parsed = nlohmann::json::parse(text, nullptr, false);
  if (parsed.is_discarded()) return scrub_utf8(text);
  return parsed;
}

ProgramLookup programs_of(Store& store) {
  return [&store](const std::string& hash) -> Result<std::shared_ptr<const LinkedProgram>> {
    auto image = store.get_program(hash);
    if (!image.ok()) return image.status();
    auto loaded = bytecode::load(image.value());
    if (!loaded.ok()) return loaded.status();
    auto linked = verify_and_link(std::move(loaded).value());
    if (!linked.ok()) return linked.status();
    return std::make_shared<const LinkedProgram>(std::move(linked).value());
  };
}

namespace {

// A compensation log, newest entry first: {step, in_doubt} for a step, and
// {parallel: [log, ...]} for a group (each log newest first too).
nlohmann::json log_json(const bytecode::Program& p, const std::vector<Completed>& log) {
  nlohmann::json out = nlohmann::json::array();
  for (auto it = log.rbegin(); it != log.rend(); ++it) {
    if (it->step == bytecode::kNone) {
      nlohmann::json branches = nlohmann::json::array();
      for (const std::vector<Completed>& branch : it->detail->group)
        branches.push_back(log_json(p, branch));
      out.push_back({{"parallel", branches}});
    } else {
      out.push_back({{"step", it->detail->name.empty() ? p.steps[it->step].name : it->detail->name},
                     {"in_doubt", it->in_doubt}});
    }
  }
  return out;
}

// What each fiber waits for: an action, an undo, or the fibers of a block.
nlohmann::json waits_json(const LinkedProgram& lp, const InstanceState& s) {
  const bytecode::Program& p = lp.program;
  nlohmann::json out = nlohmann::json::array();
  for (const Fiber& f : s.fibers) {
    if (f.wait == Wait::kNone) continue;
    nlohmann::json w = {{"fiber", f.id}};
    if (f.wait == Wait::kJoin) {
      w["kind"] = "join";
      w["block"] = f.join_block;
      w["step"] = f.detail->prefix + f.detail->suffix;
    } else {
      const bytecode::Step& step = p.steps[f.step];
      const bool undo = f.wait == Wait::kUndo;
      w["kind"] = undo ? "undo" : waits_for_signal(lp, f) ? "signal" : "action";
      if (const Value* name = f.args.find("name"); name && waits_for_signal(lp, f)) {
        // wake_at is its timeout. An `await event` waits for the event's type.
        const std::string_view n = name->is_string() ? name->as_string() : std::string_view();
        if (n.starts_with(bytecode::kEventSignalPrefix)) {
          w["kind"] = "event";
          // Its types, separated by commas.
          w["event"] = n.substr(bytecode::kEventSignalPrefix.size());
          const Value* where = f.args.find("where");
          w["where"] = where ? where->to_json() : nlohmann::json::object();
        } else {
          w["signal"] = name->to_json();
        }
      }
      w["step"] = step_name(lp, f);
      w["action"] = p.actions[undo ? step.undo_action : step.action].name;
      w["attempt"] = f.attempt;
      w["wake_at"] = f.wake_at_ms ? stdlib::format_iso8601_ms(f.wake_at_ms) : "";
    }
    out.push_back(std::move(w));
  }
  return out;
}

// The fields decoded from the checkpoint: variables, compensation stack (top
// first) and what the instance's fibers wait for.
void add_checkpoint(nlohmann::json& out, const LinkedProgram& linked, const InstanceRecord& r) {
  const bytecode::Program& p = linked.program;
  std::vector<std::string> fibers;
  for (const FiberRow& f : r.fibers) fibers.push_back(f.state);
  auto state = decode_checkpoint(linked, r.checkpoint, fibers);
  if (!state.ok()) {
    out["checkpoint_error"] = scrub_utf8(state.status().message());
    return;
  }
  const InstanceState& s = state.value();
  nlohmann::json vars = nlohmann::json::object();
  const auto& names = p.sagas[s.saga].slot_names;
  for (size_t i = 0; i < names.size() && i < s.slots.size(); ++i) {
    vars[names[i]] = json_or_text(s.slots[i].to_json_text());
  }
  out["variables"] = vars;
  out["compensation_stack"] = log_json(p, s.root().completed);
  out["waiting"] = waits_json(linked, s);
}

}  // namespace

Result<nlohmann::json> inspect(Store& store, const std::string& id, const ProgramLookup& program) {
  auto rec = store.get_instance(id);
  if (!rec.ok()) return rec.status();
  if (!rec.value()) return Status(StatusCode::kNotFound, fmt::format("no instance '{}'", id));
  const InstanceRecord& r = *rec.value();
  // The summary's fields (saga/records_json.hpp), then the instance's own.
  nlohmann::json out = records::instance_summary(r);
  out["input"] = json_or_text(r.input_json);
  out["output"] = json_or_text(r.output_json);
  if (!r.checkpoint.empty()) {
    auto linked = program(r.program_hash);
    if (linked.ok()) {
      add_checkpoint(out, *linked.value(), r);
    } else {
      out["checkpoint_error"] = scrub_utf8(linked.status().message());
    }
  }
  // Messages not consumed yet (signals no await has taken, commands on
  // their way), when there are any.
  if (!r.inbox.empty()) {
    nlohmann::json inbox = nlohmann::json::array();
    for (const InboxMessage& m : r.inbox) {
      inbox.push_back({{"id", m.id},
                       {"kind", m.kind},
                       {"posted", stdlib::format_iso8601_ms(m.posted_ms)},
                       {"payload", json_or_text(m.payload_json)}});
    }
    out["inbox"] = inbox;
  }
  auto events = store.history(id);
  if (!events.ok()) return events.status();
  nlohmann::json history = nlohmann::json::array();
  for (const HistoryEvent& e : events.value()) history.push_back(records::history_event(e));
  out["history"] = history;
  auto letters = store.dead_letters(id);
  if (!letters.ok()) return letters.status();
  nlohmann::json dead = nlohmann::json::array();
  for (const DeadLetterEntry& d : records::entries_of(r, letters.value(), events.value())) {
    dead.push_back(records::dead_letter(d));
  }
  out["dead_letters"] = dead;
  return out;
}

}  // namespace saga::runtime
