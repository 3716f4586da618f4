// "Did you mean ...?" suggestions for misspelled names, for the help: line of
// any diagnostic (the compiler's, sagactl's, the scenario runner's).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace saga {

// Returns the candidate closest to `name` by edit distance (insertions,
// deletions, substitutions and swaps of neighbours), or "" when none is close
// enough: at most 1 edit for names up to 4 characters, else at most a third of
// the length.
std::string closest(std::string_view name, const std::vector<std::string>& candidates);

// "did you mean 'x'?" for the closest candidate, or "" when there is none.
std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace saga
