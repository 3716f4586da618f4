// The checkpoint target's input format (checkpoint_input.hpp).
#include "tests/fuzz/checkpoint_input.hpp"

#include "runtime/vm/checkpoint.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace saga::fuzz {

std::string seal(uint8_t version, std::string_view body) {
  std::string out(1, static_cast<char>(version));
  const uint64_t sum = xxh3(body);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(sum >> (8 * i)));
  out.append(body);
  return out;
}

bool parse_checkpoint_input(std::string_view data, CheckpointInput& out) {
  if (data.size() < 2) return false;
  out.program = static_cast<uint8_t>(data[0]);
  const uint8_t version = static_cast<uint8_t>(data[1]);
  data.remove_prefix(2);
  size_t cut = data.find(kFiberSeparator);
  out.instance = seal(version, data.substr(0, cut));
  while (cut != std::string_view::npos) {
    data.remove_prefix(cut + kFiberSeparator.size());
    cut = data.find(kFiberSeparator);
    out.fibers.push_back(seal(runtime::kCheckpointVersion, data.substr(0, cut)));
  }
  return true;
}

std::string make_checkpoint_input(uint8_t program, std::string_view instance,
                                  const std::vector<std::string>& fibers) {
  // A sealed checkpoint is its version byte, 8 bytes of checksum, the body.
  std::string out;
  out.push_back(static_cast<char>(program));
  out.push_back(instance.at(0));
  out.append(instance.substr(9));
  for (const std::string& f : fibers) {
    out.append(kFiberSeparator);
    out.append(std::string_view(f).substr(9));
  }
  return out;
}

}  // namespace saga::fuzz
