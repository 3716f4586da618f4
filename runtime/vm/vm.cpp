// The interpreter loop and the helpers that prepare an instance. Dispatch is
// one switch over the Op enum generated from opcodes.def, with no default
// case: this file is compiled with -Werror=switch, so adding a row to the
// table without teaching the interpreter fails the build.
#include "runtime/vm/vm.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/bytecode/verify.hpp"
#include "runtime/value/ops.hpp"

namespace saga::runtime {

using bytecode::Op;

Result<LinkedProgram> link(bytecode::Program program) {
  LinkedProgram out;
  for (const std::string& name : program.functions) {
    const stdlib::FunctionImpl* f = stdlib::find_function_impl(name);
    if (!f) {
      return Status(StatusCode::kUnsupported,
                    fmt::format("program {} calls function '{}', which this runtime does not "
                                "provide (compiled by a newer Saga?)",
                                program.source_name, name));
    }
    out.functions.push_back(f);
  }
  for (const bytecode::Constant& c : program.constants) {
    switch (c.kind) {
      case bytecode::Constant::Kind::Null:
        out.constants.emplace_back();
        break;
      case bytecode::Constant::Kind::Bool:
        out.constants.emplace_back(c.boolean);
        break;
      case bytecode::Constant::Kind::Number:
        out.constants.emplace_back(c.number);
        break;
      case bytecode::Constant::Kind::String:
        out.constants.emplace_back(c.string);
        out.awaits_events = out.awaits_events || c.string.starts_with(bytecode::kEventSignalPrefix);
        break;
    }
  }
  out.hash = program.hash_hex();
  out.program = std::move(program);
  return out;
}

Result<LinkedProgram> verify_and_link(bytecode::Program program) {
  std::vector<int32_t> depths;
  Status verified = bytecode::verify(program, &depths);
  if (!verified.ok()) return verified;
  auto linked = link(std::move(program));
  if (!linked.ok()) return linked.status();
  linked->depth_at = std::move(depths);
  return linked;
}

Fiber* InstanceState::fiber(uint32_t id) {
  return const_cast<Fiber*>(static_cast<const InstanceState&>(*this).fiber(id));
}

// Fibers are kept in id order (children are appended with growing ids and
// removed without reordering), so a lookup is a binary search.
const Fiber* InstanceState::fiber(uint32_t id) const {
  auto it = std::lower_bound(fibers.begin(), fibers.end(), id,
                             [](const Fiber& f, uint32_t i) { return f.id < i; });
  return it != fibers.end() && it->id == id ? &*it : nullptr;
}

const Value& load_slot(const InstanceState& state, const Fiber& fiber, uint32_t slot) {
  for (const Fiber* f = &fiber; f->id != 0;) {
    for (const auto& [s, v] : f->detail->locals) {
      if (s == slot) return v;
    }
    f = state.fiber(f->parent);
    if (f == nullptr) break;  // A checkpoint's structure was validated; unreachable.
  }
  return state.slots[slot];
}

void store_slot(InstanceState& state, Fiber& fiber, uint32_t slot, Value v) {
  if (fiber.id == 0) {
    state.slots[slot] = std::move(v);
    return;
  }
  auto& locals = fiber.detail.mut().locals;
  for (auto& [s, old] : locals) {
    if (s == slot) {
      old = std::move(v);
      return;
    }
  }
  locals.emplace_back(slot, std::move(v));
}

InstanceState start_state(const LinkedProgram& program, uint32_t saga, const Value& input) {
  const bytecode::Saga& s = program.program.sagas[saga];
  InstanceState state;
  state.saga = saga;
  state.fibers.emplace_back();
  state.root().pc = s.entry_pc;
  state.slots.resize(s.slot_names.size());
  for (size_t i = 0; i < s.params.size(); ++i) {
    if (const Value* v = input.find(s.params[i].name)) state.slots[i] = *v;
  }
  return state;
}

static bool has_type(const Value& v, bytecode::Type t) {
  switch (t) {
    case bytecode::Type::Any:
      return true;
    case bytecode::Type::String:
      return v.is_string();
    case bytecode::Type::Number:
      return v.is_number();
    case bytecode::Type::Bool:
      return v.is_bool();
    case bytecode::Type::List:
      return v.is_list();
    case bytecode::Type::Object:
      return v.is_object();
  }
  return false;
}

Status validate_input(const bytecode::Saga& saga, const Value& input) {
  if (!input.is_object()) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("the input of saga '{}' must be a JSON object, got {}", saga.name,
                              kind_name(input.kind())));
  }
  for (const bytecode::Param& p : saga.params) {
    const Value* v = input.find(p.name);
    if (!v) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("the input of saga '{}' is missing '{}' ({})", saga.name, p.name,
                                bytecode::to_string(p.type)));
    }
    if (!has_type(*v, p.type)) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("input field '{}' must be a {}, got {}", p.name,
                                bytecode::to_string(p.type), kind_name(v->kind())));
    }
  }
  for (const Value::Member& m : input.object_members()) {
    bool known = false;
    for (const bytecode::Param& p : saga.params) known = known || p.name == m.first;
    if (!known) {
      std::string names;
      for (const bytecode::Param& p : saga.params) names += (names.empty() ? "" : ", ") + p.name;
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("saga '{}' has no parameter '{}' (parameters: {})", saga.name,
                                m.first, names.empty() ? "none" : names));
    }
  }
  return Status::Ok();
}

namespace {

inline uint32_t read_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
inline uint32_t read_u16(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8;
}

// Stops the instance with a runtime error located at `pc`.
Stop runtime_error(const LinkedProgram& lp, InstanceState& state, uint32_t pc, RuntimeError error) {
  bytecode::LineEntry at = lp.program.line_at(pc);
  state.error_class = std::move(error.error_class);
  state.error_message =
      at.line ? fmt::format("{}:{}: {}", lp.program.source_name, at.line, error.message)
              : std::move(error.message);
  return Stop::kFail;
}

}  // namespace

#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"

Stop run(const LinkedProgram& lp, InstanceState& state, Fiber& fiber, stdlib::FunctionContext& ctx,
         std::vector<Emitted>* emitted) {
  const std::vector<uint8_t>& code = lp.program.code;
  const std::vector<Value>& constants = lp.constants;
  std::vector<Value>& stack = fiber.stack;
  const bool root = fiber.id == 0;
  uint32_t pc = fiber.pc;

  // The verifier proved every operand in range, every jump on a boundary,
  // the stack depth right on every path and that code never falls off the
  // end, so the loop decodes without bounds checks.
  for (;;) {
    const uint8_t* p = code.data() + pc;
    auto op = static_cast<Op>(p[0]);
    uint32_t at = pc;
    pc += bytecode::instruction_size(op);
    auto fail_with = [&](OpResult&& r) {
      fiber.pc = at;
      return runtime_error(lp, state, at, std::move(r).take_error());
    };
    switch (op) {
      case Op::NOP:
        break;
      case Op::CONST:
        stack.push_back(constants[read_u32(p + 1)]);
        break;
      case Op::PUSH_NULL:
        stack.emplace_back();
        break;
      case Op::PUSH_TRUE:
        stack.emplace_back(true);
        break;
      case Op::PUSH_FALSE:
        stack.emplace_back(false);
        break;
      case Op::LOAD:
        stack.push_back(root ? state.slots[read_u16(p + 1)]
                             : load_slot(state, fiber, read_u16(p + 1)));
        break;
      case Op::STORE:
        store_slot(state, fiber, read_u16(p + 1), std::move(stack.back()));
        stack.pop_back();
        break;
      case Op::POP:
        stack.pop_back();
        break;
      case Op::FIELD: {
        OpResult r = ops::field(stack.back(), constants[read_u32(p + 1)].as_string());
        if (!r.ok()) return fail_with(std::move(r));
        stack.back() = std::move(r).value();
        break;
      }
      case Op::INDEX: {
        Value i = std::move(stack.back());
        stack.pop_back();
        OpResult r = ops::index(stack.back(), i);
        if (!r.ok()) return fail_with(std::move(r));
        stack.back() = std::move(r).value();
        break;
      }
      case Op::LIST: {
        uint32_t n = read_u16(p + 1);
        Value::List items(std::make_move_iterator(stack.end() - n),
                          std::make_move_iterator(stack.end()));
        stack.resize(stack.size() - n);
        OpResult r = ops::make_list(std::move(items));
        if (!r.ok()) return fail_with(std::move(r));
        stack.push_back(std::move(r).value());
        break;
      }
      case Op::OBJECT:
        stack.push_back(Value::object());
        break;
      case Op::SET_FIELD: {
        Value v = std::move(stack.back());
        stack.pop_back();
        OpResult r = ops::set_field(std::move(stack.back()), constants[read_u32(p + 1)].as_string(),
                                    std::move(v));
        if (!r.ok()) return fail_with(std::move(r));
        stack.back() = std::move(r).value();
        break;
      }
      case Op::ADD: {
        Value b = std::move(stack.back());
        stack.pop_back();
        OpResult r = ops::add(std::move(stack.back()), b);
        if (!r.ok()) return fail_with(std::move(r));
        stack.back() = std::move(r).value();
        break;
      }
#define SAGA_BINARY(OPNAME, FN)                  \
  case Op::OPNAME: {                             \
    Value b = std::move(stack.back());           \
    stack.pop_back();                            \
    OpResult r = FN(stack.back(), b);            \
    if (!r.ok()) return fail_with(std::move(r)); \
    stack.back() = std::move(r).value();         \
    break;                                       \
  }
        SAGA_BINARY(SUB, ops::sub)
        SAGA_BINARY(MUL, ops::mul)
        SAGA_BINARY(DIV, ops::div)
        SAGA_BINARY(MOD, ops::mod)
        SAGA_BINARY(LT, ops::lt)
        SAGA_BINARY(LE, ops::le)
        SAGA_BINARY(GT, ops::gt)
        SAGA_BINARY(GE, ops::ge)
#undef SAGA_BINARY
      case Op::NEG: {
        OpResult r = ops::neg(stack.back());
        if (!r.ok()) return fail_with(std::move(r));
        stack.back() = std::move(r).value();
        break;
      }
      case Op::NOT: {
        OpResult r = ops::logical_not(stack.back());
        if (!r.ok()) return fail_with(std::move(r));
        stack.back() = std::move(r).value();
        break;
      }
      case Op::EQ:
      case Op::NE: {
        Value b = std::move(stack.back());
        stack.pop_back();
        bool equal = stack.back() == b;
        stack.back() = Value(op == Op::EQ ? equal : !equal);
        break;
      }
      case Op::CONCAT: {
        uint32_t n = read_u16(p + 1);
        Value text = ops::concat_text(std::span<const Value>(stack.data() + stack.size() - n, n));
        stack.resize(stack.size() - n);
        stack.push_back(std::move(text));
        break;
      }
      case Op::CALL: {
        const stdlib::FunctionImpl& f = *lp.functions[read_u32(p + 1)];
        uint32_t n = read_u16(p + bytecode::operand_b_offset(Op::CALL));
        OpResult r = stdlib::call_function(
            f, std::span<const Value>(stack.data() + stack.size() - n, n), ctx);
        if (!r.ok()) return fail_with(std::move(r));
        stack.resize(stack.size() - n);
        stack.push_back(std::move(r).value());
        break;
      }
      case Op::JUMP:
        pc += static_cast<int32_t>(read_u32(p + 1));
        break;
      case Op::JUMP_IF_FALSE: {
        OpResult r = ops::condition(stack.back());
        if (!r.ok()) return fail_with(std::move(r));
        stack.pop_back();
        if (!r->as_bool()) pc += static_cast<int32_t>(read_u32(p + 1));
        break;
      }
      case Op::INVOKE:
      case Op::UNDO:
        fiber.args = std::move(stack.back());
        stack.pop_back();
        fiber.step = read_u32(p + 1);
        fiber.wait = op == Op::INVOKE ? Wait::kAction : Wait::kUndo;
        fiber.attempt = 1;
        fiber.earlier_attempt_in_doubt = false;
        fiber.pc = pc;
        return op == Op::INVOKE ? Stop::kInvoke : Stop::kUndo;
      case Op::AWAIT:
        // As INVOKE: the machine waits for the signal (or the timeout) and
        // pushes its data; the else target is read back from the code.
        fiber.args = std::move(stack.back());
        stack.pop_back();
        fiber.step = read_u32(p + 5);
        fiber.wait = Wait::kAction;
        fiber.attempt = 1;
        fiber.earlier_attempt_in_doubt = false;
        fiber.pc = pc;
        return Stop::kInvoke;
      case Op::RETURN:
        fiber.pc = pc;
        return Stop::kReturned;
      case Op::COMPLETE:
        state.output = std::move(stack.back());
        stack.pop_back();
        fiber.pc = pc;
        return Stop::kComplete;
      case Op::FAIL:
        state.error_class = std::string(constants[read_u32(p + 1)].as_string());
        state.error_message = stack.back().to_text();
        stack.pop_back();
        fiber.pc = pc;
        return Stop::kFail;
      case Op::FORK: {
        const uint32_t b = read_u32(p + 1);
        Value items = std::move(stack.back());
        stack.pop_back();
        if (lp.program.blocks[b].kind == bytecode::Block::Kind::Foreach && !items.is_list()) {
          return fail_with(OpResult(
              type_error(fmt::format("foreach needs a list, got {}", kind_name(items.kind())))));
        }
        fiber.join_block = b;
        if (!items.is_null()) fiber.detail.mut().items = std::move(items);
        fiber.pc = pc;  // At the JOIN.
        return Stop::kFork;
      }
      case Op::JOIN:
        // The machine moves a fiber past its JOIN when the block is done; a
        // fiber never runs into one.
        fiber.pc = at;
        return runtime_error(lp, state, at,
                             RuntimeError{"error", "internal error: ran into a JOIN"});
      case Op::END:
        fiber.pc = pc;
        return Stop::kEnd;
      case Op::EMIT:
        if (emitted) {
          emitted->push_back(
              Emitted{std::string(constants[read_u32(p + 1)].as_string()), std::move(stack.back()),
                      fmt::format("{}emit@{}{}", fiber.detail->prefix, at, fiber.detail->suffix)});
        }
        stack.pop_back();
        break;
    }
  }
}

#pragma GCC diagnostic pop

}  // namespace saga::runtime
