// The smallest embedding of the runtime: open an engine on a database, load
// a compiled program, provide its action, run one instance, print its output.
//
//   consumer PROGRAM.sagac DATABASE NAME
#include <saga/engine.hpp>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: consumer PROGRAM.sagac DATABASE NAME\n";
    return 2;
  }
  auto engine = saga::Engine::open({.database = argv[2]});
  if (!engine.ok()) {
    std::cerr << engine.status().message() << "\n";
    return 1;
  }
  auto program = engine.value()->load_program_file(argv[1]);
  if (!program.ok()) {
    std::cerr << program.status().message() << "\n";
    return 1;
  }
  engine.value()->register_action("greeter.greet", [](const saga::ActionCall& call) {
    return nlohmann::json{{"text", "hello " + call.args["name"].get<std::string>()}};
  });
  auto id = engine.value()->start(program.value(), "greet", {{"name", argv[3]}});
  if (!id.ok()) {
    std::cerr << id.status().message() << "\n";
    return 1;
  }
  auto done = engine.value()->wait(id.value());
  if (!done.ok()) return 1;
  std::cout << done->output.get<std::string>() << "\n";
  return saga::exit_code_for(done->status);
}
