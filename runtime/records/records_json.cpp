// The JSON records of saga/records_json.hpp. Each record is built here and
// only here; runtime/engine/inspect.cpp builds the instance detail from these
// pieces, and docs/json.md lists their fields in this order.
#include "saga/records_json.hpp"

#include "runtime/bytecode/format.hpp"
#include "runtime/engine/inspect.hpp"
#include "runtime/value/utf8.hpp"
#include "saga/engine.hpp"
#include "stdlib/functions.hpp"

namespace saga::records {

namespace {
std::string time_text(int64_t ms) {
  return ms == 0 ? std::string() : stdlib::format_iso8601_ms(ms);
}
}  // namespace

nlohmann::json instance_summary(const InstanceRecord& r) {
  return {{"id", scrub_utf8(r.id)},
          {"saga", scrub_utf8(r.saga)},
          {"program", r.program_hash},
          {"status", to_string(r.status)},
          {"created", time_text(r.created_ms)},
          {"updated", time_text(r.updated_ms)},
          {"error_class", scrub_utf8(r.error_class)},
          {"error_message", scrub_utf8(r.error_message)}};
}

nlohmann::json history_event(const HistoryEvent& e) {
  return {{"time", time_text(e.time_ms)},
          {"kind", scrub_utf8(e.kind)},
          {"step", scrub_utf8(e.step)},
          {"attempt", e.attempt},
          {"error_class", scrub_utf8(e.error_class)},
          {"message", scrub_utf8(e.message)},
          {"data", runtime::json_or_text(e.data_json)}};
}

nlohmann::json dead_letter(const DeadLetterEntry& d) {
  return {{"instance", scrub_utf8(d.letter.instance_id)},
          {"saga", scrub_utf8(d.saga)},
          {"status", to_string(d.status)},
          {"step", scrub_utf8(d.letter.step)},
          {"time", time_text(d.letter.time_ms)},
          {"error_class", scrub_utf8(d.letter.error_class)},
          {"message", scrub_utf8(d.letter.message)},
          {"attempts", d.attempts},
          // When an operator retried or skipped the undo; null while open.
          {"resolved", d.letter.resolved_ms != 0 ? nlohmann::json(time_text(d.letter.resolved_ms))
                                                 : nlohmann::json(nullptr)}};
}

nlohmann::json event_record(const EventRecord& e) {
  auto ids = [](const std::vector<std::string>& list) {
    nlohmann::json out = nlohmann::json::array();
    for (const std::string& id : list) out.push_back(scrub_utf8(id));
    return out;
  };
  return {{"seq", e.seq},
          {"source", scrub_utf8(e.source)},
          {"id", scrub_utf8(e.id)},
          {"type", scrub_utf8(e.type)},
          {"received", time_text(e.received_ms)},
          {"matched", e.matched},
          {"started", ids(e.started)},
          {"woke", ids(e.woke)},
          {"note", scrub_utf8(e.note)},
          {"event", runtime::json_or_text(e.event_json)}};
}

nlohmann::json outbox_event(const OutboxEvent& e) {
  auto time_or_null = [](int64_t ms) {
    return ms != 0 ? nlohmann::json(time_text(ms)) : nlohmann::json(nullptr);
  };
  return {{"id", scrub_utf8(e.id)},
          {"instance", scrub_utf8(e.instance_id)},
          {"seq", e.seq},
          {"type", scrub_utf8(e.type)},
          {"source", scrub_utf8(e.source)},
          {"time", time_text(e.time_ms)},
          {"data", runtime::json_or_text(e.data_json)},
          {"state", delivery_state(e)},
          {"attempts", e.attempts},
          {"next_due", time_or_null(e.next_due_ms)},
          {"delivered", time_or_null(e.delivered_ms)},
          {"last_error", scrub_utf8(e.last_error)}};
}

nlohmann::json program(const ProgramInfo& p, const std::vector<std::string>& sagas,
                       const std::string& error) {
  nlohmann::json names = nlohmann::json::array();
  for (const std::string& s : sagas) names.push_back(scrub_utf8(s));
  nlohmann::json out = {{"hash", p.hash},
                        {"name", scrub_utf8(p.name)},
                        {"created", time_text(p.created_ms)},
                        {"sagas", names}};
  if (!error.empty()) out["error"] = scrub_utf8(error);
  return out;
}

Result<nlohmann::json> program_list(Store& store) {
  auto programs = store.list_programs();
  if (!programs.ok()) return programs.status();
  nlohmann::json out = nlohmann::json::array();
  for (const ProgramInfo& p : programs.value()) {
    std::vector<std::string> sagas;
    std::string error;
    auto image = store.get_program(p.hash);
    if (image.ok()) {
      auto loaded = bytecode::load(image.value());
      if (loaded.ok()) {
        for (const auto& s : loaded.value().sagas) sagas.push_back(s.name);
      } else {
        error = loaded.status().message();
      }
    } else {
      error = image.status().message();
    }
    out.push_back(program(p, sagas, error));
  }
  return out;
}

std::vector<DeadLetterEntry> entries_of(const InstanceRecord& r,
                                        const std::vector<DeadLetter>& letters,
                                        const std::vector<HistoryEvent>& history) {
  std::vector<DeadLetterEntry> out;
  for (const DeadLetter& d : letters) {
    DeadLetterEntry e{d, r.saga, r.status, 0};
    // As the store's listing does: the attempt of the step's last `stuck` event.
    for (const HistoryEvent& h : history) {
      if (h.kind == "stuck" && h.step == d.step) e.attempts = h.attempt;
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<nlohmann::json> instance_detail(Store& store, const std::string& id) {
  return inspect_instance(store, id);
}

std::string text(const nlohmann::json& record) {
  return record.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace saga::records
