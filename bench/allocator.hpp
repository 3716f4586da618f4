// Which malloc the benchmark process runs on, for the header line of every
// benchmark: throughput depends on it (CMakeLists.txt, saga_allocator).
#pragma once

#include <dlfcn.h>

#include <cstddef>
#include <string>

namespace saga::bench {

// "jemalloc 5.3.0-..." when jemalloc provides malloc (linked or LD_PRELOADed),
// else "the C library's malloc".
inline std::string allocator_name() {
  using Mallctl = int (*)(const char*, void*, size_t*, void*, size_t);
  auto mallctl = reinterpret_cast<Mallctl>(dlsym(RTLD_DEFAULT, "mallctl"));
  if (mallctl == nullptr) return "the C library's malloc";
  const char* version = nullptr;
  size_t size = sizeof(version);
  if (mallctl("version", &version, &size, nullptr, 0) != 0 || version == nullptr) return "jemalloc";
  return std::string("jemalloc ") + version;
}

}  // namespace saga::bench
