// sagactl dlq ls: the dead letters of every instance (README, "Seeing what
// runs"), and the age and clock helpers that ls --stalled shares.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "runtime/value/utf8.hpp"
#include "saga/records_json.hpp"
#include "sagactl/commands.hpp"

namespace saga::cli {

// "1h 5m", "3m 20s", "12s": how long ago, for people.
std::string age_text(int64_t ms) {
  const int64_t s = std::max<int64_t>(ms, 0) / 1000;
  if (s >= 86400) return fmt::format("{}d {}h", s / 86400, s % 86400 / 3600);
  if (s >= 3600) return fmt::format("{}h {}m", s / 3600, s % 3600 / 60);
  if (s >= 60) return fmt::format("{}m {}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int dlq_ls(const DbArgs& args, size_t limit) {
  auto store = open_reader(args.db);
  if (!store) return kExitError;
  auto letters = store->list_dead_letters(limit);
  if (!letters.ok()) {
    print_error(letters.status().message());
    return kExitError;
  }
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const DeadLetterEntry& d : letters.value()) out.push_back(records::dead_letter(d));
    std::cout << records::text(out);
    return kExitOk;
  }
  const int64_t now = now_ms();
  std::cout << fmt::format("{:<36}  {:<16}  {:<16}  {:>8}  {:<8}  {}\n", "INSTANCE", "SAGA", "STEP",
                           "ATTEMPTS", "AGE", "ERROR");
  for (const DeadLetterEntry& d : letters.value()) {
    std::cout << scrub_utf8(fmt::format("{:<36}  {:<16}  {:<16}  {:>8}  {:<8}  {}: {}\n",
                                        d.letter.instance_id, d.saga, d.letter.step, d.attempts,
                                        age_text(now - d.letter.time_ms), d.letter.error_class,
                                        d.letter.message));
  }
  return kExitOk;
}

}  // namespace saga::cli
