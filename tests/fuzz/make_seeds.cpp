// Writes the seeds of the binary fuzz targets, which are generated rather
// than kept in the repository (they would go stale with the formats): for
// fuzz_sagac, each sample's .sagac image without its checksum; for
// fuzz_checkpoint, the checkpoints of real runs of each sample, taken after
// every decision of the saga machine (the driver of machine_driver.hpp, with
// a fixed sequence of outcomes per run). Usage: make_seeds OUT_DIR, which
// gets OUT_DIR/sagac and OUT_DIR/checkpoint.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/bytecode/format.hpp"
#include "runtime/engine/machine.hpp"
#include "runtime/vm/checkpoint.hpp"
#include "tests/fuzz/checkpoint_input.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/fuzz/machine_driver.hpp"

namespace {

namespace fs = std::filesystem;

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// An input each sample saga accepts.
saga::Value input_for(const saga::bytecode::Saga& saga) {
  saga::Value in = saga::Value::object();
  for (const auto& p : saga.params) {
    saga::Value v;
    switch (p.type) {
      case saga::bytecode::Type::String:
        v = saga::Value("x-1");
        break;
      case saga::bytecode::Type::Number:
        v = saga::Value(2.0);
        break;
      case saga::bytecode::Type::Bool:
        v = saga::Value(true);
        break;
      case saga::bytecode::Type::List:
        v = saga::Value::list({saga::Value::object({{"sku", "a"}, {"qty", 1}}),
                               saga::Value::object({{"sku", "b"}, {"qty", 2}})});
        break;
      case saga::bytecode::Type::Object:
        v = saga::Value::object({{"name", "N"}, {"email", "n@example.com"}});
        break;
      default:
        v = saga::Value("any");
        break;
    }
    in.set_field(p.name, std::move(v));
  }
  return in;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUT_DIR\n");
    return 2;
  }
  const fs::path out = argv[1];
  fs::create_directories(out / "sagac");
  fs::create_directories(out / "checkpoint");
  const auto& programs = saga::fuzz::samples();
  int checkpoints = 0;
  for (size_t p = 0; p < programs.size(); ++p) {
    const saga::fuzz::LinkedProgram& lp = *programs[p];
    saga::bytecode::Program copy = lp.program;
    std::vector<uint8_t> image = saga::bytecode::serialize(copy);
    image.resize(image.size() - 8);  // fuzz_sagac appends the checksum itself.
    write(out / "sagac" / ("sample-" + std::to_string(p)), std::string(image.begin(), image.end()));
    // Runs that succeed, fail at different steps, time out, are cancelled.
    const std::vector<std::vector<uint8_t>> scripts = {
        {0}, {0, 0, 2}, {3, 0, 2, 0, 0, 3, 3}, {5, 0, 250, 0, 1}, {0, 4, 4, 2, 251, 0}};
    for (uint32_t s = 0; s < lp.program.sagas.size(); ++s) {
      for (size_t run = 0; run < scripts.size(); ++run) {
        saga::fuzz::FixedContext ctx;
        saga::runtime::Env env = saga::fuzz::driving_env(ctx);
        const auto& script = scripts[run];
        size_t next = 0;
        auto pick = [&]() -> uint8_t { return next < script.size() ? script[next++] : 0; };
        saga::runtime::InstanceState state =
            saga::runtime::start_state(lp, s, input_for(lp.program.sagas[s]));
        saga::runtime::Decision first = saga::runtime::begin(lp, state, env);
        int seen = 0;
        saga::fuzz::drive(
            lp, state, std::move(first), env, pick,
            [&](const saga::runtime::InstanceState& st) {
              const saga::fuzz::Encoded e = saga::fuzz::encode(st);
              write(
                  out / "checkpoint" /
                      ("p" + std::to_string(p) + "-s" + std::to_string(s) + "-r" +
                       std::to_string(run) + "-" + std::to_string(seen++)),
                  saga::fuzz::make_checkpoint_input(static_cast<uint8_t>(p), e.instance, e.fibers));
              ++checkpoints;
            },
            32);
      }
    }
  }
  std::printf("make_seeds: %zu .sagac images and %d checkpoints in %s\n", programs.size(),
              checkpoints, out.c_str());
  return 0;
}
