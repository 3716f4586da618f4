// The command line of the post-to-reaction latency benchmarks (inbox_bench,
// signal_bench): --samples N, --watch-ms MS (the engine's inbox watch) and
// --dir DIR, and --help printing the benchmark's own usage text.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace saga::bench {

struct LatencyArgs {
  int samples = 30;
  int watch_ms = 50;
  std::string dir;  // Where the database goes; the caller's default until --dir.
};

// Reads argv into `args`. Returns -1 when the benchmark should run, else the
// exit code: 0 after --help (which prints `usage`), 2 for a bad option.
inline int parse_latency_args(int argc, char** argv, const char* name, const char* usage,
                              LatencyArgs& args) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::puts(usage);
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s: %s wants a value (--help)\n", name, a.c_str());
      return 2;
    }
    if (a == "--samples") {
      args.samples = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--watch-ms") {
      args.watch_ms = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--dir") {
      args.dir = argv[++i];
    } else {
      std::fprintf(stderr, "%s: unknown option %s (--help)\n", name, a.c_str());
      return 2;
    }
  }
  return -1;
}

}  // namespace saga::bench
