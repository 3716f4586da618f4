// What a benchmark process has used so far: CPU time of all its threads and
// its resident memory, for the figures of engine_bench and recovery_bench.
#pragma once

#include <sys/resource.h>

#include <fstream>
#include <string>

namespace saga::bench {

// User and system CPU seconds of every thread of this process.
inline double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

// The largest resident set this process has had, in MB.
inline double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

// The resident set now (VmRSS of /proc/self/status), in MB; 0 if unknown.
inline double current_rss_mb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

}  // namespace saga::bench
