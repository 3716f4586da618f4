// The .sagac writer and loader: turns a Program into the bytes of a .sagac file
// and back. The compiler (through sagactl compile) writes files with
// serialize()/save_file(); the runtime, the store and `sagactl disasm` read them
// with load()/load_file(). docs/sagac-format.md specifies every byte written
// here; keep the two in step.
//
// The loader treats its input as hostile: every length and count is checked
// against the bytes that are actually left before anything is read or
// allocated, every enum value is range-checked, and the finished Program goes
// through verify(). No input makes it read out of bounds, throw or crash.
#include "runtime/bytecode/format.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string_view>

#include "runtime/bytecode/verify.hpp"
#include "runtime/value/utf8.hpp"

namespace saga::bytecode {
namespace {

// The first eight bytes of every .sagac file. 0x1a (Ctrl-Z) and "\r\n" are
// mangled by text-mode transfers, so such damage shows up as a bad magic.
constexpr uint8_t kMagic[8] = {'S', 'A', 'G', 'A', 'C', 0x1a, '\r', '\n'};

// magic(8) + version(2) + flags(2) + opcode count(4) + section count(4) + hash(16).
constexpr size_t kHeaderSize = 36;
constexpr size_t kVersionOffset = 8;
constexpr size_t kFlagsOffset = 10;
constexpr size_t kOpCountOffset = 12;
constexpr size_t kSectionCountOffset = 16;
constexpr size_t kHashOffset = 20;
// The XXH3-64 checksum of everything before it.
constexpr size_t kTrailerSize = 8;
// Every section starts with u32 kind and u32 payload length.
constexpr size_t kSectionHeaderSize = 8;

constexpr uint32_t kFirstKind = static_cast<uint32_t>(SectionKind::kConstants);
constexpr uint32_t kLastKind = static_cast<uint32_t>(SectionKind::kSource);
// Sections up to and including kCode are required and hashed; kLines and
// kSource are debug information that a stripped file may leave out.
constexpr uint32_t kLastRequiredKind = static_cast<uint32_t>(SectionKind::kCode);

const char* section_name(uint32_t kind) {
  switch (static_cast<SectionKind>(kind)) {
    case SectionKind::kConstants:
      return "constants";
    case SectionKind::kFunctions:
      return "functions";
    case SectionKind::kActions:
      return "actions";
    case SectionKind::kPolicies:
      return "policies";
    case SectionKind::kServices:
      return "services";
    case SectionKind::kSteps:
      return "steps";
    case SectionKind::kSagas:
      return "sagas";
    case SectionKind::kCode:
      return "code";
    case SectionKind::kLines:
      return "lines";
    case SectionKind::kSource:
      return "source";
  }
  return "?";
}

Status corrupt(std::string message) {
  return {StatusCode::kCorrupt, std::move(message)};
}

uint16_t get_u16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

uint32_t get_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

uint64_t get_u64(const uint8_t* p) {
  return static_cast<uint64_t>(get_u32(p)) | (static_cast<uint64_t>(get_u32(p + 4)) << 32);
}

// The program hash: XXH3-128 of the hashed section records, seeded with the
// format version so that the same bytes under a different instruction
// semantics get a different identity. Stored in canonical (big-endian) order,
// which makes hash_hex() match what `xxhsum -H2` prints for the same input.
std::array<uint8_t, 16> program_hash(const uint8_t* data, size_t size, uint16_t version) {
  XXH128_hash_t h = XXH3_128bits_withSeed(data, size, version);
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, h);
  std::array<uint8_t, 16> out{};
  std::memcpy(out.data(), canonical.digest, out.size());
  return out;
}

// ---------------------------------------------------------------------------
// Writing

// Appends little-endian fixed-width values to a byte vector. Strings are a u32
// length followed by the bytes; doubles are their IEEE-754 bits as a u64.
// Strings and sections must be shorter than 4 GiB: the compiler's inputs are
// far below that, and a file that broke the limit would be refused by load().
class Writer {
 public:
  explicit Writer(std::vector<uint8_t>& out) : out_(out) {}

  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void f64(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    u64(bits);
  }
  void str(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void count(size_t n) { u32(static_cast<uint32_t>(n)); }

  // Starts a section record; end_section() fills in its length.
  size_t begin_section(SectionKind kind) {
    u32(static_cast<uint32_t>(kind));
    u32(0);
    return out_.size();
  }
  void end_section(size_t payload_start) {
    auto length = static_cast<uint32_t>(out_.size() - payload_start);
    for (int i = 0; i < 4; ++i)
      out_[payload_start - 4 + i] = static_cast<uint8_t>(length >> (8 * i));
  }

 private:
  void put(uint64_t v, int width) {
    for (int i = 0; i < width; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t>& out_;
};

// Writes one complete section record. The comment on each case is the
// payload's encoding in the notation of docs/sagac-format.md; read_section()
// mirrors it field by field.

void write_section(Writer& w, SectionKind kind, const Program& p) {
  size_t start = w.begin_section(kind);
  switch (kind) {
    case SectionKind::kConstants:
      // vec<constant>; constant = u8 kind, then nothing (null), u8 0/1
      // (bool), f64 (number) or str (string).
      w.count(p.constants.size());
      for (const Constant& c : p.constants) {
        w.u8(static_cast<uint8_t>(c.kind));
        switch (c.kind) {
          case Constant::Kind::Null:
            break;
          case Constant::Kind::Bool:
            w.u8(c.boolean ? 1 : 0);
            break;
          case Constant::Kind::Number:
            w.f64(c.number);
            break;
          case Constant::Kind::String:
            w.str(c.string);
            break;
        }
      }
      break;
    case SectionKind::kFunctions:
      // vec<str>: the names CALL's Func operand indexes.
      w.count(p.functions.size());
      for (const std::string& f : p.functions) w.str(f);
      break;
    case SectionKind::kActions:
      // vec<action>; action = str name, u32 service (or kNoService).
      w.count(p.actions.size());
      for (const Action& a : p.actions) {
        w.str(a.name);
        w.u32(a.service);
      }
      break;
    case SectionKind::kPolicies:
      // vec<policy>; policy = str name, u32 attempts, u8 backoff, u64
      // initial_ms, f64 factor, u64 step_ms, u64 max_ms, u8 jitter,
      // vec<str> retry_on.
      w.count(p.policies.size());
      for (const RetryPolicy& r : p.policies) {
        w.str(r.name);
        w.u32(r.attempts);
        w.u8(static_cast<uint8_t>(r.backoff));
        w.u64(r.initial_ms);
        w.f64(r.factor);
        w.u64(r.step_ms);
        w.u64(r.max_ms);
        w.u8(static_cast<uint8_t>(r.jitter));
        w.count(r.retry_on.size());
        for (const std::string& on : r.retry_on) w.str(on);
      }
      // Version 4: u8 then per policy, in policy order (no count).
      if (format_version(p) >= 4) {
        for (const RetryPolicy& r : p.policies) w.u8(static_cast<uint8_t>(r.then));
      }
      break;
    case SectionKind::kServices:
      // vec<service>; service = str name, str url, u64 timeout_ms, u32
      // breaker_failures, u64 breaker_reset_ms, u32 breaker_probes, u32
      // bulkhead, vec<route>; route = str op, str method, str path.
      w.count(p.services.size());
      for (const Service& s : p.services) {
        w.str(s.name);
        w.str(s.url);
        w.u64(s.timeout_ms);
        w.u32(s.breaker_failures);
        w.u64(s.breaker_reset_ms);
        w.u32(s.breaker_probes);
        w.u32(s.bulkhead);
        w.count(s.routes.size());
        for (const Route& r : s.routes) {
          w.str(r.op);
          w.str(r.method);
          w.str(r.path);
        }
      }
      break;
    case SectionKind::kSteps:
      // vec<step>; step = str name, u32 saga, u32 action, u32 undo_action,
      // u32 undo_pc, u32 result_slot, u64 timeout_ms, u32 retry, u32 line,
      // u32 column.
      w.count(p.steps.size());
      for (const Step& s : p.steps) {
        w.str(s.name);
        w.u32(s.saga);
        w.u32(s.action);
        w.u32(s.undo_action);
        w.u32(s.undo_pc);
        w.u32(s.result_slot);
        w.u64(s.timeout_ms);
        w.u32(s.retry);
        w.u32(s.line);
        w.u32(s.column);
      }
      // Version 3: u8 kind per step, in step order (no count: one per step).
      if (format_version(p) >= 3) {
        for (const Step& s : p.steps) w.u8(static_cast<uint8_t>(s.kind));
      }
      // Version 4: u32 undo_retry per step, in step order (no count).
      if (format_version(p) >= 4) {
        for (const Step& s : p.steps) w.u32(s.undo_retry);
      }
      break;
    case SectionKind::kSagas:
      // vec<saga>; saga = str name, vec<param>, vec<str> slot_names, u32
      // entry_pc, u64 deadline_ms, u32 line, u32 column; param = str name,
      // u8 type.
      w.count(p.sagas.size());
      for (const Saga& s : p.sagas) {
        w.str(s.name);
        w.count(s.params.size());
        for (const Param& param : s.params) {
          w.str(param.name);
          w.u8(static_cast<uint8_t>(param.type));
        }
        w.count(s.slot_names.size());
        for (const std::string& slot : s.slot_names) w.str(slot);
        w.u32(s.entry_pc);
        w.u64(s.deadline_ms);
        w.u32(s.line);
        w.u32(s.column);
      }
      // Version 2: vec<block>; block = u8 kind, u32 saga, vec<branch>, u32
      // item_slot, u32 max, vec<collect>, u32 line, u32 column; branch = str
      // name, u32 entry_pc; collect = u32 body, u32 list.
      if (format_version(p) >= 2) {
        w.count(p.blocks.size());
        for (const Block& b : p.blocks) {
          w.u8(static_cast<uint8_t>(b.kind));
          w.u32(b.saga);
          w.count(b.branches.size());
          for (const Branch& br : b.branches) {
            w.str(br.name);
            w.u32(br.entry_pc);
          }
          w.u32(b.item_slot);
          w.u32(b.max);
          w.count(b.collect.size());
          for (const Block::Collect& c : b.collect) {
            w.u32(c.body);
            w.u32(c.list);
          }
          w.u32(b.line);
          w.u32(b.column);
        }
      }
      // Version 5: vec<trigger>; trigger = str type, u32 saga, vec<arg>, u32
      // line, u32 column; arg = str param, u8 is_path, str value.
      if (format_version(p) >= 5) {
        w.count(p.triggers.size());
        for (const Trigger& t : p.triggers) {
          w.str(t.type);
          w.u32(t.saga);
          w.count(t.args.size());
          for (const TriggerArg& a : t.args) {
            w.str(a.param);
            w.u8(a.is_path ? 1 : 0);
            w.str(a.value);
          }
          w.u32(t.line);
          w.u32(t.column);
        }
      }
      break;
    case SectionKind::kCode:
      // The payload is the code itself; the section length is its size.
      for (uint8_t byte : p.code) w.u8(byte);
      break;
    case SectionKind::kLines:
      // vec<line>; line = u32 pc, u32 line, u32 column.
      w.count(p.lines.size());
      for (const LineEntry& e : p.lines) {
        w.u32(e.pc);
        w.u32(e.line);
        w.u32(e.column);
      }
      break;
    case SectionKind::kSource:
      // str name, str text.
      w.str(p.source_name);
      w.str(p.source_text);
      break;
  }
  w.end_section(start);
}

// ---------------------------------------------------------------------------
// Reading

// Reads little-endian values from one section's payload. The first failure
// (running out of bytes, a count that cannot fit, a bad enum value) is kept
// and every later read returns zero, so parsers check ok() once per entry
// instead of after every field. Nothing is allocated before its size has been
// checked against the bytes left.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, uint32_t kind) : data_(data), size_(size), kind_(kind) {}

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  size_t left() const { return size_ - pos_; }

  uint8_t u8() { return need(1) ? data_[pos_++] : 0; }
  uint32_t u32() {
    if (!need(4)) return 0;
    uint32_t v = get_u32(data_ + pos_);
    pos_ += 4;
    return v;
  }
  uint64_t u64() {
    if (!need(8)) return 0;
    uint64_t v = get_u64(data_ + pos_);
    pos_ += 8;
    return v;
  }
  double f64() {
    uint64_t bits = u64();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  // Every string of a program is UTF-8 (the compiler refuses other
  // sources): names and messages reach JSON text and the database.
  std::string str() {
    uint32_t n = u32();
    if (!need(n)) return {};
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    if (size_t bad = first_invalid_utf8(s); bad != std::string::npos) {
      fail(fmt::format("the string at offset {} is not UTF-8 (byte {:#04x} at offset {})", pos_,
                       static_cast<unsigned char>(s[bad]), pos_ + bad));
      return {};
    }
    pos_ += n;
    return s;
  }
  void bytes(std::vector<uint8_t>& out, size_t n) {
    if (!need(n)) return;
    out.assign(data_ + pos_, data_ + pos_ + n);
    pos_ += n;
  }

  // Reads an element count. Each element takes at least `min_size` bytes,
  // so a count that could not fit in what is left is an error; this keeps a
  // corrupted count from turning into a huge allocation.
  uint32_t count(size_t min_size, const char* what) {
    uint32_t n = u32();
    if (ok() && static_cast<uint64_t>(n) * min_size > left()) {
      fail(fmt::format("{} {} need at least {} bytes, {} left", n, what,
                       static_cast<uint64_t>(n) * min_size, left()));
      return 0;
    }
    return ok() ? n : 0;
  }

  // Reads a one-byte enum value and checks it is at most `max`.
  template <class E>
  E enum8(E max, const char* what, size_t index) {
    uint8_t v = u8();
    if (ok() && v > static_cast<uint8_t>(max)) {
      fail(fmt::format("entry {} has an unknown {} {}", index, what, v));
      return E{};
    }
    return static_cast<E>(v);
  }

  void fail(const std::string& rule) {
    if (ok()) error_ = fmt::format("section '{}' is malformed: {}", section_name(kind_), rule);
  }

 private:
  bool need(size_t n) {
    if (!ok()) return false;
    if (n > left()) {
      error_ = fmt::format("section '{}' is truncated (needs {} more bytes at offset {}, {} left)",
                           section_name(kind_), n, pos_, left());
      return false;
    }
    return true;
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  uint32_t kind_;
  std::string error_;
};

// Smallest encoding of one element of each table, used to bound counts.
constexpr size_t kMinConstant = 1;    // kind
constexpr size_t kMinString = 4;      // length
constexpr size_t kMinAction = 4 + 4;  // name, service
constexpr size_t kMinPolicy = 4 + 4 + 1 + 8 + 8 + 8 + 8 + 1 + 4;
constexpr size_t kMinRoute = 4 + 4 + 4;
constexpr size_t kMinService = 4 + 4 + 8 + 4 + 8 + 4 + 4 + 4;
constexpr size_t kMinStep = 4 + 4 * 5 + 8 + 4 * 3;
constexpr size_t kMinParam = 4 + 1;
constexpr size_t kMinSaga = 4 + 4 + 4 + 4 + 8 + 4 + 4;
constexpr size_t kMinLine = 4 * 3;

// Parses one section payload into `p`, in the encoding write_section()
// documents. Enum bytes are range-checked here, so that a Program never holds
// an enum value outside its type; indexes between tables are left to verify().
// Each loop also stops at the first error, and every payload must be consumed
// exactly.
constexpr size_t kMinBlock = 1 + 4 + 4 + 4 + 4 + 4 + 4 + 4;
constexpr size_t kMinBranch = 4 + 4;
constexpr size_t kMinCollect = 4 + 4;
constexpr size_t kMinTrigger = 4 + 4 + 4 + 4 + 4;
constexpr size_t kMinTriggerArg = 4 + 1 + 4;

void read_section(Reader& r, uint32_t kind, Program& p, uint16_t version) {
  switch (static_cast<SectionKind>(kind)) {
    case SectionKind::kConstants: {
      uint32_t n = r.count(kMinConstant, "constants");
      p.constants.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i) {
        Constant c;
        c.kind = r.enum8(Constant::Kind::String, "constant kind", i);
        switch (c.kind) {
          case Constant::Kind::Null:
            break;
          case Constant::Kind::Bool: {
            // Only 0 and 1, so that every boolean has one encoding.
            uint8_t b = r.u8();
            if (r.ok() && b > 1) r.fail(fmt::format("entry {} has an invalid boolean {}", i, b));
            c.boolean = b == 1;
            break;
          }
          case Constant::Kind::Number:
            c.number = r.f64();
            break;
          case Constant::Kind::String:
            c.string = r.str();
            break;
        }
        p.constants.push_back(std::move(c));
      }
      break;
    }
    case SectionKind::kFunctions: {
      uint32_t n = r.count(kMinString, "functions");
      p.functions.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i) p.functions.push_back(r.str());
      break;
    }
    case SectionKind::kActions: {
      uint32_t n = r.count(kMinAction, "actions");
      p.actions.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i) {
        Action a;
        a.name = r.str();
        a.service = r.u32();
        p.actions.push_back(std::move(a));
      }
      break;
    }
    case SectionKind::kPolicies: {
      uint32_t n = r.count(kMinPolicy, "policies");
      p.policies.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i) {
        RetryPolicy policy;
        policy.name = r.str();
        policy.attempts = r.u32();
        policy.backoff = r.enum8(Backoff::Exponential, "backoff", i);
        policy.initial_ms = r.u64();
        policy.factor = r.f64();
        policy.step_ms = r.u64();
        policy.max_ms = r.u64();
        policy.jitter = r.enum8(Jitter::Equal, "jitter", i);
        uint32_t on = r.count(kMinString, "error classes");
        policy.retry_on.reserve(on);
        for (uint32_t j = 0; j < on && r.ok(); ++j) policy.retry_on.push_back(r.str());
        p.policies.push_back(std::move(policy));
      }
      if (version < 4) break;
      for (uint32_t i = 0; i < p.policies.size() && r.ok(); ++i) {
        p.policies[i].then = r.enum8(Then::Pause, "then", i);
      }
      break;
    }
    case SectionKind::kServices: {
      uint32_t n = r.count(kMinService, "services");
      p.services.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i) {
        Service s;
        s.name = r.str();
        s.url = r.str();
        s.timeout_ms = r.u64();
        s.breaker_failures = r.u32();
        s.breaker_reset_ms = r.u64();
        s.breaker_probes = r.u32();
        s.bulkhead = r.u32();
        uint32_t routes = r.count(kMinRoute, "routes");
        s.routes.reserve(routes);
        for (uint32_t j = 0; j < routes && r.ok(); ++j) {
          Route route;
          route.op = r.str();
          route.method = r.str();
          route.path = r.str();
          s.routes.push_back(std::move(route));
        }
        p.services.push_back(std::move(s));
      }
      break;
    }
    case SectionKind::kSteps: {
      uint32_t n = r.count(kMinStep, "steps");
      p.steps.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i) {
        Step s;
        s.name = r.str();
        s.saga = r.u32();
        s.action = r.u32();
        s.undo_action = r.u32();
        s.undo_pc = r.u32();
        s.result_slot = r.u32();
        s.timeout_ms = r.u64();
        s.retry = r.u32();
        s.line = r.u32();
        s.column = r.u32();
        p.steps.push_back(std::move(s));
      }
      if (version < 3) break;
      for (uint32_t i = 0; i < p.steps.size() && r.ok(); ++i) {
        p.steps[i].kind = r.enum8(StepKind::Retriable, "step kind", i);
      }
      if (version < 4) break;
      for (uint32_t i = 0; i < p.steps.size() && r.ok(); ++i) p.steps[i].undo_retry = r.u32();
      break;
    }
    case SectionKind::kSagas: {
      uint32_t n = r.count(kMinSaga, "sagas");
      p.sagas.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i) {
        Saga s;
        s.name = r.str();
        uint32_t params = r.count(kMinParam, "parameters");
        s.params.reserve(params);
        for (uint32_t j = 0; j < params && r.ok(); ++j) {
          Param param;
          param.name = r.str();
          param.type = r.enum8(Type::Object, "parameter type", i);
          s.params.push_back(std::move(param));
        }
        uint32_t slots = r.count(kMinString, "slot names");
        s.slot_names.reserve(slots);
        for (uint32_t j = 0; j < slots && r.ok(); ++j) s.slot_names.push_back(r.str());
        s.entry_pc = r.u32();
        s.deadline_ms = r.u64();
        s.line = r.u32();
        s.column = r.u32();
        p.sagas.push_back(std::move(s));
      }
      if (version < 2) break;
      uint32_t blocks = r.count(kMinBlock, "blocks");
      p.blocks.reserve(blocks);
      for (uint32_t i = 0; i < blocks && r.ok(); ++i) {
        Block b;
        b.kind = r.enum8(Block::Kind::Foreach, "block kind", i);
        b.saga = r.u32();
        uint32_t branches = r.count(kMinBranch, "branches");
        b.branches.reserve(branches);
        for (uint32_t j = 0; j < branches && r.ok(); ++j) {
          Branch br;
          br.name = r.str();
          br.entry_pc = r.u32();
          b.branches.push_back(std::move(br));
        }
        b.item_slot = r.u32();
        b.max = r.u32();
        uint32_t collect = r.count(kMinCollect, "collected slots");
        b.collect.reserve(collect);
        for (uint32_t j = 0; j < collect && r.ok(); ++j) {
          Block::Collect c;
          c.body = r.u32();
          c.list = r.u32();
          b.collect.push_back(c);
        }
        b.line = r.u32();
        b.column = r.u32();
        p.blocks.push_back(std::move(b));
      }
      if (version < 5) break;
      uint32_t triggers = r.count(kMinTrigger, "triggers");
      p.triggers.reserve(triggers);
      for (uint32_t i = 0; i < triggers && r.ok(); ++i) {
        Trigger t;
        t.type = r.str();
        t.saga = r.u32();
        uint32_t args = r.count(kMinTriggerArg, "trigger arguments");
        t.args.reserve(args);
        for (uint32_t j = 0; j < args && r.ok(); ++j) {
          TriggerArg a;
          a.param = r.str();
          uint8_t is_path = r.u8();
          if (r.ok() && is_path > 1) {
            r.fail(fmt::format("trigger {} has an invalid argument kind {}", i, is_path));
          }
          a.is_path = is_path == 1;
          a.value = r.str();
          t.args.push_back(std::move(a));
        }
        t.line = r.u32();
        t.column = r.u32();
        p.triggers.push_back(std::move(t));
      }
      break;
    }
    case SectionKind::kCode:
      // The payload is the code; checked against the limit before copying.
      if (r.left() > kMaxCodeBytes) {
        r.fail(fmt::format("{} bytes of code exceed the limit of {}", r.left(), kMaxCodeBytes));
        break;
      }
      r.bytes(p.code, r.left());
      break;
    case SectionKind::kLines: {
      uint32_t n = r.count(kMinLine, "line entries");
      p.lines.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i) {
        LineEntry e;
        e.pc = r.u32();
        e.line = r.u32();
        e.column = r.u32();
        p.lines.push_back(e);
      }
      break;
    }
    case SectionKind::kSource:
      p.source_name = r.str();
      p.source_text = r.str();
      break;
  }
  if (r.ok() && r.left() != 0) r.fail(fmt::format("{} unexpected bytes at its end", r.left()));
}

// The body of load(); load() wraps it so that no exception escapes.
Result<Program> load_image(std::span<const uint8_t> image) {
  const uint8_t* data = image.data();
  const size_t size = image.size();

  // 1. Identify the file. A file too short for a magic that does not match
  // the start of ours is "not a .sagac file" too.
  if (size == 0 || std::memcmp(data, kMagic, std::min(size, sizeof kMagic)) != 0) {
    return corrupt("not a .sagac file (bad magic)");
  }
  if (size < kHeaderSize + kTrailerSize) {
    return corrupt(fmt::format("file is truncated ({} bytes; a .sagac file has at least {})", size,
                               kHeaderSize + kTrailerSize));
  }

  // 2. The version decides the rest of the layout, so it is checked before
  // the checksum: a newer file is refused as such, not as corrupted.
  const uint16_t version = get_u16(data + kVersionOffset);
  if (version > kFormatVersion) {
    return Status(StatusCode::kUnsupported,
                  fmt::format("compiled by a newer Saga (format {}, this runtime reads up to {})",
                              version, kFormatVersion));
  }
  if (version == 0) return corrupt("invalid format version 0");

  // 3. The checksum covers everything else, so later checks only see damage
  // that was written with a valid checksum (a buggy or hostile writer).
  const size_t body = size - kTrailerSize;
  if (XXH3_64bits(data, body) != get_u64(data + body)) {
    return corrupt("checksum mismatch: the file is corrupted");
  }

  const uint32_t op_count = get_u32(data + kOpCountOffset);
  if (op_count > kOpCount) {
    return Status(StatusCode::kUnsupported,
                  fmt::format("compiled by a newer Saga: the file uses an instruction set of {} "
                              "opcodes, this runtime knows {}",
                              op_count, kOpCount));
  }
  if (get_u16(data + kFlagsOffset) != 0) {
    return corrupt(fmt::format("unknown header flags 0x{:04x}", get_u16(data + kFlagsOffset)));
  }

  // 4. Sections, strictly in SectionKind order (which rules out duplicates).
  // Every record header and payload length is checked against the bytes left
  // before the trailer; the loop cannot run longer than the file allows,
  // whatever the header's section count says.
  Program program;
  const uint32_t section_count = get_u32(data + kSectionCountOffset);
  size_t pos = kHeaderSize;
  size_t hashed_end = 0;  // End of the last hashed (non-debug) section.
  uint32_t previous = 0;
  for (uint32_t i = 0; i < section_count; ++i) {
    if (body - pos < kSectionHeaderSize) {
      return corrupt(fmt::format(
          "file is truncated (expected {} sections, the header of section {} is cut off)",
          section_count, i + 1));
    }
    const uint32_t kind = get_u32(data + pos);
    const uint32_t length = get_u32(data + pos + 4);
    pos += kSectionHeaderSize;
    if (kind < kFirstKind || kind > kLastKind) {
      return corrupt(fmt::format("unknown section kind {}", kind));
    }
    if (kind == previous) return corrupt(fmt::format("duplicate section '{}'", section_name(kind)));
    if (kind < previous) {
      return corrupt(fmt::format("section '{}' is out of order (after '{}')", section_name(kind),
                                 section_name(previous)));
    }
    if (previous < kLastRequiredKind && kind != previous + 1) {
      return corrupt(fmt::format("missing section '{}'", section_name(previous + 1)));
    }
    if (length > body - pos) {
      return corrupt(fmt::format("file is truncated (expected {} bytes of section '{}', {} left)",
                                 length, section_name(kind), body - pos));
    }
    Reader reader(data + pos, length, kind);
    read_section(reader, kind, program, version);
    if (!reader.ok()) return corrupt(reader.error());
    pos += length;
    if (kind <= kLastRequiredKind) hashed_end = pos;
    previous = kind;
  }
  if (previous < kLastRequiredKind) {
    return corrupt(fmt::format("missing section '{}'", section_name(previous + 1)));
  }
  if (pos != body) {
    return corrupt(fmt::format("{} unexpected bytes after the last section", body - pos));
  }

  // 5. The identity in the header must be the identity of the content.
  program.hash = program_hash(data + kHeaderSize, hashed_end - kHeaderSize, version);
  if (std::memcmp(program.hash.data(), data + kHashOffset, program.hash.size()) != 0) {
    return corrupt("program hash mismatch: the header's hash is not the hash of the content");
  }

  // 6. The verifier proves the program safe to run.
  Status verified = verify(program);
  if (!verified.ok()) return verified;

  // A writer cannot use opcodes it does not know: such a file was forged or
  // damaged before its checksum was computed.
  Instruction in;
  for (uint32_t pc = 0; pc < program.code.size(); pc += in.size) {
    if (!decode(program.code, pc, in)) break;  // Unreachable: verify() decoded it all.
    if (static_cast<uint32_t>(in.op) >= op_count) {
      return corrupt(
          fmt::format("pc {}: opcode {} is beyond the writer's instruction set ({} opcodes)", pc,
                      static_cast<uint32_t>(in.op), op_count));
    }
  }
  return program;
}

// A message for errno, e.g. "No such file or directory".
std::string errno_text(int error) {
  return std::strerror(error);
}

}  // namespace

// The writer does not verify: the compiler's tests want to write broken
// programs to check that load() refuses them, and the compiler verifies what
// it emits separately.
std::vector<uint8_t> serialize(Program& program) {
  std::vector<uint8_t> out;
  out.reserve(kHeaderSize + program.code.size() + program.source_text.size() + 1024);
  Writer w(out);

  const uint16_t version = format_version(program);
  for (uint8_t byte : kMagic) w.u8(byte);
  w.u16(version);
  w.u16(0);  // Flags: none are defined.
  w.u32(kOpCount);
  w.u32(kLastKind - kFirstKind + 1);
  out.resize(kHeaderSize);  // The hash is filled in below.

  size_t hashed_end = 0;
  for (uint32_t kind = kFirstKind; kind <= kLastKind; ++kind) {
    write_section(w, static_cast<SectionKind>(kind), program);
    if (kind == kLastRequiredKind) hashed_end = out.size();
  }

  program.hash = program_hash(out.data() + kHeaderSize, hashed_end - kHeaderSize, version);
  std::memcpy(out.data() + kHashOffset, program.hash.data(), program.hash.size());
  w.u64(XXH3_64bits(out.data(), out.size()));
  return out;
}

Result<Program> load(std::span<const uint8_t> image) {
  try {
    return load_image(image);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kInternal, "out of memory while loading the program");
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal,
                  fmt::format("unexpected error while loading: {}", e.what()));
  } catch (...) {
    return Status(StatusCode::kInternal, "unexpected error while loading");
  }
}

// Reads the whole file in chunks (which also works for pipes and files whose
// size changes while being read), then load()s it. Every error message starts
// with the path.
Result<Program> load_file(const std::string& path) {
  std::vector<uint8_t> image;
  try {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
      return Status(StatusCode::kIoError,
                    fmt::format("cannot open '{}': {}", path, errno_text(errno)));
    }
    uint8_t buffer[65536];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0)
      image.insert(image.end(), buffer, buffer + n);
    bool failed = std::ferror(f) != 0;
    int error = errno;
    std::fclose(f);
    if (failed) {
      return Status(StatusCode::kIoError,
                    fmt::format("cannot read '{}': {}", path, errno_text(error)));
    }
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kInternal, fmt::format("out of memory while reading '{}'", path));
  }
  Result<Program> result = load(image);
  if (!result.ok()) {
    return Status(result.status().code(), fmt::format("{}: {}", path, result.status().message()));
  }
  return result;
}

// Writes PATH.tmp, syncs it, and renames it over PATH, so that a reader sees
// either the old file or the complete new one, never a partial write.
Status save_file(Program& program, const std::string& path) {
  std::vector<uint8_t> image;
  try {
    image = serialize(program);
  } catch (const std::bad_alloc&) {
    return {StatusCode::kInternal, fmt::format("out of memory while writing '{}'", path)};
  }
  const std::string tmp = path + ".tmp";
  auto io_error = [&](const char* what, int error) {
    ::unlink(tmp.c_str());
    return Status(StatusCode::kIoError,
                  fmt::format("cannot {} '{}': {}", what, path, errno_text(error)));
  };

  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("create", errno);
  size_t written = 0;
  while (written < image.size()) {
    ssize_t n = ::write(fd, image.data() + written, image.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      int error = errno;
      ::close(fd);
      return io_error("write", error);
    }
    written += static_cast<size_t>(n);
  }
  // The data must be on disk before the rename makes it visible under `path`;
  // otherwise a power cut could leave an empty file with the final name.
  if (::fsync(fd) != 0) {
    int error = errno;
    ::close(fd);
    return io_error("sync", error);
  }
  if (::close(fd) != 0) return io_error("write", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return io_error("rename into", errno);

  // Make the rename itself durable. Failing to sync the directory is not
  // reported: the file is complete either way, only its name might be lost.
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? std::string(".") : path.substr(0, slash + 1);
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return Status::Ok();
}

}  // namespace saga::bytecode
