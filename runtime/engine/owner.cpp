// Owner identity (owner.hpp), read from /proc.
#include "runtime/engine/owner.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace saga::runtime {
namespace {

// The start time of a running process in clock ticks since boot (field 22
// of /proc/PID/stat), or -1 when there is no such process or it has exited
// but not been reaped yet (state Z or X: a killed engine whose parent has not
// waited for it is as dead as one that is gone).
int64_t process_start_ticks(long pid) {
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string text;
  if (!std::getline(stat, text)) return -1;
  // The command name (field 2) may hold spaces; fields resume after its ')'.
  auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return -1;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i == 3 && (field == "Z" || field == "X")) return -1;
    if (i == 22) return std::stoll(field);
  }
  return -1;
}

std::string host_name() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return name;
}

}  // namespace

std::string this_owner() {
  long pid = static_cast<long>(getpid());
  return fmt::format("{}.{}@{}", pid, process_start_ticks(pid), host_name());
}

bool owner_dead(const std::string& owner) {
  auto at = owner.find('@');
  auto dot = owner.find('.');
  if (at == std::string::npos || dot == std::string::npos || dot > at) return false;
  if (owner.substr(at + 1) != host_name()) return false;
  try {
    long pid = std::stol(owner.substr(0, dot));
    int64_t start = std::stoll(owner.substr(dot + 1, at - dot - 1));
    return process_start_ticks(pid) != start;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace saga::runtime
