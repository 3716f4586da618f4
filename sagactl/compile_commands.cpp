// sagactl compile, check, disasm and doc: the compiler's commands.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include <nlohmann/json.hpp>

#include "compiler/compile.hpp"
#include "runtime/bytecode/disasm.hpp"
#include "runtime/bytecode/format.hpp"
#include "sagactl/commands.hpp"
#include "sagactl/program_file.hpp"
#include "stdlib/table.hpp"

namespace saga::cli {

bool stderr_is_terminal() {
  return isatty(STDERR_FILENO) && std::getenv("NO_COLOR") == nullptr;
}

void print_error(const std::string& message) {
  // Messages may quote file names and input: print them as valid UTF-8 without control
  // characters, line by line (a message may have several).
  std::string text;
  std::string_view rest = message;
  for (auto nl = rest.find('\n'); nl != std::string_view::npos; nl = rest.find('\n')) {
    text += printable(rest.substr(0, nl)) + "\n";
    rest.remove_prefix(nl + 1);
  }
  text += printable(rest);
  std::cerr << (stderr_is_terminal() ? "sagactl: \033[1;31merror:\033[0m " : "sagactl: error: ")
            << text << "\n";
}

std::string database_path(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("SAGA_DB"); env && *env) return env;
  return "sagas.db";
}

std::optional<std::string> read_text_file(const std::string& path) {
  std::string error;
  auto text = read_file(path, error);
  if (!text) print_error(error);
  return text;
}

bool is_source(const std::string& path) {
  return path.size() >= 5 && path.compare(path.size() - 5, 5, ".saga") == 0;
}

std::optional<bytecode::Program> compile_file(const std::string& path, bool json, bool embed_source,
                                              std::vector<compiler::Obligation>* obligations) {
  auto text = read_text_file(path);
  if (!text) return std::nullopt;
  SourceFile source(path, std::move(*text));
  Diagnostics diags(source);
  auto program = compiler::compile(source, diags, {embed_source, obligations});
  if (json) {
    std::cout << diags.render_json();
  } else {
    std::cerr << diags.render_text(stderr_is_terminal());
    if (diags.error_count() + diags.warning_count() > 0) {
      std::cerr << fmt::format("{}: {} error{}, {} warning{}\n", path, diags.error_count(),
                               diags.error_count() == 1 ? "" : "s", diags.warning_count(),
                               diags.warning_count() == 1 ? "" : "s");
    }
  }
  return program;
}

std::optional<bytecode::Program> load_program(const std::string& path) {
  if (is_source(path)) return compile_file(path, false, true);
  auto program = bytecode::load_file(path);
  if (!program.ok()) {
    print_error(program.status().message());
    return std::nullopt;
  }
  return std::move(program).value();
}

int compile(const CompileArgs& args) {
  if (!is_source(args.input)) {
    print_error("'" + args.input + "' is not a .saga source file");
    return kExitUsage;
  }
  auto program = compile_file(args.input, args.format == "json", !args.no_source);
  if (!program) return kExitError;
  std::string output = args.output.empty() ? args.input + "c" : args.output;
  Status saved = bytecode::save_file(*program, output);
  if (!saved.ok()) {
    print_error(saved.message());
    return kExitError;
  }
  if (args.format != "json") {
    std::cerr << fmt::format("wrote {} ({} saga{}, program {})\n", output, program->sagas.size(),
                             program->sagas.size() == 1 ? "" : "s",
                             program->hash_hex().substr(0, 12));
  }
  return kExitOk;
}

int check(const std::string& input, const std::string& format) {
  return compile_file(input, format == "json", true) ? kExitOk : kExitError;
}

int check_obligations(const std::string& input, bool json) {
  std::vector<compiler::Obligation> list;
  if (!compile_file(input, false, false, &list)) return kExitError;
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const compiler::Obligation& o : list) {
      out.push_back({{"saga", o.saga},
                     {"service", o.service},
                     {"op", o.op},
                     {"step", o.step},
                     {"call", o.undo ? "undo" : "do"},
                     {"key", o.key},
                     {"why", o.why},
                     {"line", o.line},
                     {"column", o.column}});
    }
    std::cout << nlohmann::json{{"file", input}, {"obligations", out}}.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << fmt::format(
      "{}: {} obligation{} for participants (calls that may come more than "
      "once with one idempotency key)\n",
      input, list.size(), list.size() == 1 ? "" : "s");
  for (const compiler::Obligation& o : list) {
    std::cout << fmt::format("{}:{}:{}: {}.{} ({} of step '{}' in saga {}), key {}\n", input,
                             o.line, o.column, o.service, o.op, o.undo ? "undo" : "do", o.step,
                             o.saga, o.key);
    for (const std::string& why : o.why) std::cout << "    " << why << "\n";
  }
  return kExitOk;
}

int disasm(const std::string& input) {
  auto program = load_program(input);
  if (!program) return kExitError;
  // A program compiled in memory gets its hash when serialized.
  if (program->hash == decltype(program->hash){}) bytecode::serialize(*program);
  std::cout << bytecode::disassemble(*program);
  return kExitOk;
}

int doc(const std::string& topic) {
  std::cout << (topic == "opcodes" ? bytecode::opcode_reference_markdown()
                                   : stdlib::reference_markdown());
  return kExitOk;
}

}  // namespace saga::cli
