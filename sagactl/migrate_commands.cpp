// `sagactl diff` and `sagactl migrate`: which wait points of one version of
// a program can continue on another (runtime/migrate), and moving the live
// instances that can. Parsing and printing only.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include "runtime/bytecode/format.hpp"
#include "runtime/engine/owner.hpp"
#include "runtime/migrate/migrate.hpp"
#include "saga/store.hpp"
#include "sagactl/commands.hpp"
#include "sagactl/program_file.hpp"

namespace saga::cli {
namespace {

// A program named on the command line, loaded and linked.
struct Named {
  std::string label;  // The file, or the hash.
  std::vector<uint8_t> image;
  std::optional<runtime::LinkedProgram> linked;
};

bool is_hash(const std::string& s) {
  return s.size() == 32 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// A .saga/.sagac file, or the hash of a program stored in the database (the
// store is opened by `open` when first needed). Prints what went wrong.
std::optional<Named> resolve(const std::string& spec, const std::function<Store*()>& open) {
  Named n;
  n.label = spec;
  std::optional<bytecode::Program> program;
  if (is_hash(spec) && !std::filesystem::exists(spec)) {
    Store* store = open();
    if (store == nullptr) return std::nullopt;
    auto image = store->get_program(spec);
    if (!image.ok()) {
      print_error(image.status().message());
      return std::nullopt;
    }
    n.image = std::move(image).value();
    auto loaded = bytecode::load(n.image);
    if (!loaded.ok()) {
      print_error(fmt::format("program {}: {}", spec, loaded.status().message()));
      return std::nullopt;
    }
    program = std::move(loaded).value();
  } else {
    program = load_program(spec);
    if (!program) return std::nullopt;
    n.image = bytecode::serialize(*program);
  }
  auto linked = runtime::verify_and_link(std::move(*program));
  if (!linked.ok()) {
    print_error(fmt::format("{}: {}", spec, linked.status().message()));
    return std::nullopt;
  }
  n.linked = std::move(linked).value();
  return n;
}

std::string short_hash(const std::string& h) {
  return h.substr(0, 12);
}

// A claim (owner, lease) that no longer holds: its owner is a process of
// this machine that is gone, or one of another machine whose lease ran out.
// A live process of this machine holds its instances whatever its lease says:
// it may be paused, and would write its old state back.
bool claim_gone(const std::string& owner, int64_t lease_until_ms, int64_t now_ms) {
  auto host = [](const std::string& o) {
    auto at = o.rfind('@');
    return at == std::string::npos ? std::string() : o.substr(at + 1);
  };
  if (host(owner) == host(runtime::this_owner())) return runtime::owner_dead(owner);
  return lease_until_ms < now_ms;
}

}  // namespace

int diff(const MigrateArgs& args) {
  std::unique_ptr<Store> store;
  auto open = [&]() -> Store* {
    if (!store) store = open_reader(args.db);
    return store.get();
  };
  auto from = resolve(args.from, open);
  if (!from) return kExitError;
  auto to = resolve(args.to, open);
  if (!to) return kExitError;
  migrate::Diff d = migrate::diff(*from->linked, *to->linked);
  size_t safe = 0;
  for (const migrate::WaitPoint& w : d.points) safe += w.safe;
  if (args.json) {
    nlohmann::json points = nlohmann::json::array();
    for (const migrate::WaitPoint& w : d.points) {
      points.push_back({{"saga", w.saga},
                        {"kind", migrate::to_string(w.kind)},
                        {"where", w.where},
                        {"line", w.line},
                        {"safe", w.safe},
                        {"reasons", w.reasons}});
    }
    std::cout << json_text(
                     {{"old", d.old_hash}, {"new", d.new_hash}, {"safe", safe}, {"points", points}})
              << "\n";
    return kExitOk;
  }
  std::cout << fmt::format("OLD {} ({})\nNEW {} ({})\n", short_hash(d.old_hash), from->label,
                           short_hash(d.new_hash), to->label);
  size_t width = 10;
  for (const migrate::WaitPoint& w : d.points) width = std::max(width, w.where.size());
  std::string saga;
  for (const migrate::WaitPoint& w : d.points) {
    if (w.saga != saga) {
      saga = w.saga;
      std::cout << fmt::format("saga {}\n  {:<{}}  {:>4}  {:<7}  {}\n", saga, "WAIT POINT", width,
                               "LINE", "VERDICT", "WHY");
    }
    if (w.safe) {
      std::cout << fmt::format("  {:<{}}  {:>4}  safe\n", w.where, width, w.line);
      continue;
    }
    std::cout << fmt::format("  {:<{}}  {:>4}  unsafe   {}\n", w.where, width, w.line,
                             w.reasons[0]);
    for (size_t i = 1; i < w.reasons.size(); ++i) {
      std::cout << fmt::format("  {:<{}}  {:>4}  {:<7}  {}\n", "", width, "", "", w.reasons[i]);
    }
  }
  std::cout << fmt::format("{} of {} wait points safe\n", safe, d.points.size());
  return kExitOk;
}

namespace {

// Whether `url` names a SQLite file (its path in *path).
bool is_sqlite(const std::string& url, std::string* path) {
  Result<std::string> kind = store_kind(url, path);
  return kind.ok() && *kind == "sqlite";
}

}  // namespace

int migrate(const MigrateArgs& args) {
  std::unique_ptr<Store> store;
  if (args.dry_run) {
    store = open_reader(args.db);
  } else if (std::string path;
             is_sqlite(database_path(args.db), &path) && !std::filesystem::exists(path)) {
    // Nothing to move, and no reason to create a database.
    print_error("no such database: " + path);
  } else {
    auto opened = open_store(database_path(args.db));
    if (!opened.ok()) {
      print_error(opened.status().message());
    } else {
      store = std::move(opened).value();
    }
  }
  if (!store) return kExitError;
  auto open = [&] { return store.get(); };
  auto from = resolve(args.from, open);
  if (!from) return kExitError;
  auto to = resolve(args.to, open);
  if (!to) return kExitError;
  if (from->linked->hash == to->linked->hash) {
    print_error(fmt::format("OLD and NEW are the same program ({})", from->linked->hash));
    return kExitUsage;
  }
  migrate::Diff d = migrate::diff(*from->linked, *to->linked);
  if (!args.dry_run) {
    // The moved instances' program must be there before any refers to it.
    Status put = store->put_program(d.new_hash, to->linked->program.source_name, to->image);
    if (!put.ok()) {
      print_error(put.message());
      return kExitError;
    }
  }
  migrate::MoveOptions options;
  options.dry_run = args.dry_run;
  options.now_ms = now_ms();
  options.claim_gone = [now = options.now_ms](const std::string& owner, int64_t lease) {
    return claim_gone(owner, lease, now);
  };
  auto outcomes = migrate::move_instances(*store, d, *from->linked, *to->linked, options);
  if (!outcomes.ok()) {
    print_error(outcomes.status().message());
    return kExitError;
  }
  size_t moved = 0;
  for (const migrate::Outcome& o : outcomes.value()) {
    moved += o.moved;
    if (o.moved) {
      std::cout << fmt::format("{}  {}  at {}\n", o.id, args.dry_run ? "would move" : "moved",
                               o.where);
    } else {
      std::cout << fmt::format("{}  pinned  {}\n", o.id, o.why);
    }
  }
  const size_t pinned = outcomes->size() - moved;
  if (outcomes->empty()) {
    std::cout << fmt::format("no unfinished instance runs on {}\n", d.old_hash);
  } else {
    std::cout << fmt::format("{} {}, {} pinned (from {} to {}){}\n", moved,
                             args.dry_run ? "would move" : "moved", pinned, short_hash(d.old_hash),
                             short_hash(d.new_hash), args.dry_run ? "; nothing was written" : "");
  }
  return kExitOk;
}

}  // namespace saga::cli
