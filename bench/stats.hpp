// Order statistics of a benchmark's samples: the median that every figure
// quotes, and the quantiles (p90, p99) beside it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace saga::bench {

// The sample at quantile `permille` / 1000 (500: the median, 990: p99) of
// samples sorted ascending: index size * permille / 1000 in integers, the
// last one at most; 0 when there are none.
inline double quantile_of_sorted(const std::vector<double>& sorted, size_t permille) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, sorted.size() * permille / 1000)];
}

// The median of `v` (the upper one of an even count); 0 when it is empty.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return quantile_of_sorted(v, 500);
}

}  // namespace saga::bench
