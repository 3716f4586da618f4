// One JSON shape per record, everywhere: `sagactl ls/show/dlq ls --json` and
// the JSON API under /api/ print the records these functions build, and
// nothing else builds them. docs/json.md documents every field; a change of
// shape is a change of this file and of that page.
//
// Times are ISO 8601 UTC strings with milliseconds ("2026-12-01T19:00:00.123Z").
// Every text read from the store is scrubbed to UTF-8 (U+FFFD for bad bytes),
// and stored JSON (input, output, event data) is embedded as JSON, or as a
// string when it does not parse.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "saga/store.hpp"

namespace saga::records {

// An instance in a listing: id, saga, program, status, created, updated,
// error_class, error_message.
nlohmann::json instance_summary(const InstanceRecord& r);

// One history event: time, kind, step, attempt, error_class, message, data.
nlohmann::json history_event(const HistoryEvent& e);

// A dead letter: instance, saga, status (of the instance), step, time,
// error_class, message, attempts (of the undo that gave up; 0 when unknown).
nlohmann::json dead_letter(const DeadLetterEntry& d);

// A program: hash, name, created, sagas (their names; empty when the stored
// image cannot be read, with "error" saying why).
nlohmann::json program(const ProgramInfo& p, const std::vector<std::string>& sagas,
                       const std::string& error = {});

// An incoming event as recorded (sagactl events ls --json, GET /api/events):
// seq, source, id, type, received, matched, started (instance ids), note,
// event (the whole CloudEvent, as JSON).
nlohmann::json event_record(const EventRecord& e);

// An outbox row (sagactl outbox ls --json): id, instance, seq, type, source,
// time, data, state (pending, delivered or dead), attempts, next_due and
// delivered (null when none), last_error.
nlohmann::json outbox_event(const OutboxEvent& e);

// Every stored program as a record, its sagas read from its image.
Result<nlohmann::json> program_list(Store& store);

// The dead letters of one instance as entries (saga, status and attempts
// filled in from the record and its history).
std::vector<DeadLetterEntry> entries_of(const InstanceRecord& r,
                                        const std::vector<DeadLetter>& letters,
                                        const std::vector<HistoryEvent>& history);

// The instance detail (`sagactl show --json`, GET /api/instances/{id}): the
// summary's fields, input, output, the decoded checkpoint (variables,
// compensation_stack, waiting; or checkpoint_error), history and
// dead_letters. kNotFound for an unknown id.
Result<nlohmann::json> instance_detail(Store& store, const std::string& id);

// The text of a record as the CLI and the API print it: indented by two
// spaces, one trailing newline, invalid UTF-8 replaced.
std::string text(const nlohmann::json& record);

}  // namespace saga::records
