// Fuzz target: a saga's input as JSON text (what `sagactl run --input` and
// Engine::start take) through nlohmann's parser, the conversion to a Value,
// the check against each sample saga's parameters, and the start of an
// instance. Properties: nothing crashes; the two ways text becomes a Value
// (Value::from_json_text, and nlohmann::json then Value::from_json) agree;
// a Value's text and binary encodings read back as the same Value; input
// that validate_input() accepts starts an instance whose checkpoint decodes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "runtime/engine/machine.hpp"
#include "runtime/vm/checkpoint.hpp"
#include "saga/value.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/fuzz/machine_driver.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto direct = saga::Value::from_json_text(text);
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  auto value = saga::Value::from_json(json);
  if (!value.ok()) return 0;
  // from_json_text may refuse what nlohmann accepts (its limits on depth and
  // numbers are ours), never the other way round with a different value.
  if (direct.ok()) {
    saga::fuzz::fuzz_check(direct.value() == value.value(), "both JSON readers agree");
  }
  const saga::Value& v = value.value();
  auto reread = saga::Value::from_json_text(v.to_json_text());
  saga::fuzz::fuzz_check(reread.ok() && reread.value() == v, "a Value's JSON text reads back");
  std::string bytes;
  saga::encode(v, bytes);
  std::string_view in = bytes;
  auto decoded = saga::decode(in);
  saga::fuzz::fuzz_check(decoded.ok() && decoded.value() == v && in.empty(),
                         "a Value's binary encoding reads back");

  saga::fuzz::FixedContext ctx;
  for (const saga::fuzz::LinkedProgram* lp : saga::fuzz::samples()) {
    for (uint32_t saga = 0; saga < lp->program.sagas.size(); ++saga) {
      if (!saga::runtime::validate_input(lp->program.sagas[saga], v).ok()) continue;
      saga::runtime::InstanceState state = saga::runtime::start_state(*lp, saga, v);
      saga::runtime::Env env;
      env.now_ms = ctx.now_ms();
      env.functions = &ctx;
      (void)saga::runtime::begin(*lp, state, env);
      const saga::fuzz::Encoded e = saga::fuzz::encode(state);
      auto back = saga::runtime::decode_checkpoint(*lp, e.instance, e.fibers);
      saga::fuzz::fuzz_check(back.ok() && back.value() == state,
                             "a started instance's checkpoint decodes to it");
    }
  }
  return 0;
}
