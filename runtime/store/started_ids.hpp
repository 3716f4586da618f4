// How both stores keep EventRecord::started (saga/store.hpp) in one column:
// the instance ids separated by single spaces (an id has none). Internal
// to runtime/store.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace saga::store {

inline std::string join_started(const std::vector<std::string>& ids) {
  std::string out;
  for (const std::string& id : ids) out += (out.empty() ? "" : " ") + id;
  return out;
}

inline std::vector<std::string> split_started(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const size_t space = text.find(' ');
    out.emplace_back(text.substr(0, space));
    text = space == std::string_view::npos ? std::string_view{} : text.substr(space + 1);
  }
  return out;
}

}  // namespace saga::store
