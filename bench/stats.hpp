// Order statistics of a benchmark's samples: the median that every figure
// quotes, and the quantiles (p90, p99) beside it.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <string>
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

// One line of a latency benchmark (inbox_bench, signal_bench): "WHAT median
// M ms   p90 P ms   max X ms   (N WHATS)", the samples in milliseconds; empty
// when there are none.
inline std::string latency_line(const char* what, std::vector<double> v, const char* counted) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  return fmt::format("{:<38} median {:7.2f} ms   p90 {:7.2f} ms   max {:7.2f} ms   ({} {})\n", what,
                     quantile_of_sorted(v, 500), quantile_of_sorted(v, 900), v.back(), v.size(),
                     counted);
}

}  // namespace saga::bench
