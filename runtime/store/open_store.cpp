// open_store() (saga/store.hpp): the one place that turns a database URL into
// a Store. sagactl, the engine and the benchmarks all come through here, so a
// new kind of store is one more branch below and nothing else.
#include <fmt/format.h>

#include <cctype>
#include <string>
#include <thread>

#include "saga/store.hpp"

namespace saga {

Result<std::string> store_kind(const std::string& url, std::string* path) {
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) {
    return std::string("postgresql");
  }
  if (url.rfind("sqlite:", 0) == 0) {
    std::string rest = url.substr(7);
    // sqlite:///abs/path and sqlite://rel are spelled like URLs; sqlite:path is not.
    if (rest.rfind("//", 0) == 0) rest = rest.substr(2);
    if (path != nullptr) *path = rest;
    return std::string("sqlite");
  }
  // A scheme is letters, digits, '+', '-' and '.', starting with a letter,
  // followed by "://". Anything else is a path, colons and all.
  auto colon = url.find("://");
  if (colon != std::string::npos && colon > 0 && std::isalpha(static_cast<unsigned char>(url[0]))) {
    bool scheme = true;
    for (size_t i = 0; i < colon; ++i) {
      char c = url[i];
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
        scheme = false;
      }
    }
    if (scheme) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("unknown database URL scheme '{}' in '{}': use a file path, "
                                "sqlite:PATH or postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE",
                                url.substr(0, colon), url.substr(0, colon + 3) + "..."));
    }
  }
  if (path != nullptr) *path = url;
  return std::string("sqlite");
}

Result<std::unique_ptr<Store>> open_store(const std::string& url, const StoreOptions& options) {
  std::string path;
  Result<std::string> kind = store_kind(url, &path);
  if (!kind.ok()) return kind.status();
  if (*kind == "postgresql") return open_postgres_store(url, options);
  return open_sqlite_store(path, options);
}

// A store that does not notify: its callers poll, at `timeout`.
uint64_t Store::wait_for_work(uint64_t seen, std::chrono::milliseconds timeout) {
  std::this_thread::sleep_for(timeout);
  return seen;
}

}  // namespace saga
