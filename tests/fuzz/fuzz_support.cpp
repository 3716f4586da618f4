// The fuzz targets' shared programs and helpers (fuzz_support.hpp).
#include "tests/fuzz/fuzz_support.hpp"

#include <xxhash.h>

#include <map>
#include <memory>

#include "compiler/compile.hpp"
#include "grammar/source.hpp"
#include "runtime/bytecode/format.hpp"

namespace saga::fuzz {

const LinkedProgram& sample(const std::string& relative_path) {
  static std::map<std::string, std::unique_ptr<LinkedProgram>> cache;
  auto& slot = cache[relative_path];
  if (!slot) {
    const std::string path = std::string(SAGA_SOURCE_DIR) + "/" + relative_path;
    auto image = compiler::compile_file_to_image(path);
    if (!image.ok()) {
      std::fprintf(stderr, "fuzz: cannot compile %s: %s\n", path.c_str(),
                   image.status().message().c_str());
      std::abort();
    }
    auto program = bytecode::load(image.value());
    fuzz_check(program.ok(), "a compiled sample loads");
    auto linked = runtime::verify_and_link(std::move(program).value());
    fuzz_check(linked.ok(), "a compiled sample links");
    slot = std::make_unique<LinkedProgram>(std::move(linked).value());
  }
  return *slot;
}

const std::vector<const LinkedProgram*>& samples() {
  static const std::vector<const LinkedProgram*> all = {
      &sample("samples/order.saga"),
      &sample("samples/travel.saga"),
      &sample("samples/fulfil_items.saga"),
      // Format version 4: undo_retry and then: pause.
      &sample("tests/fuzz/operator_policies.saga"),
  };
  return all;
}

uint64_t xxh3(std::string_view bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

}  // namespace saga::fuzz
