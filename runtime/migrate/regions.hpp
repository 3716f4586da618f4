// The code of one program as migration sees it: regions (a saga's main
// code, each branch or loop body, each undo block, as codegen lays them out
// one after the other), where each step and block is, and the canonical text
// of a region's instructions, which two programs share exactly when they do
// the same thing, whatever their pools and slot numbers. Internal to
// runtime/migrate.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/vm/vm.hpp"

namespace saga::migrate {

struct Region {
  enum Kind : uint8_t { kMain, kBranch, kUndo };
  Kind kind = kMain;
  uint32_t saga = 0;
  uint32_t block = bytecode::kNone, branch = 0;  // kBranch.
  uint32_t step = bytecode::kNone;               // kUndo.
  uint32_t begin = 0, end = 0;                   // [begin, end) of the code.
};

// The canonical lines of a region's code from its start, with the steps it
// invokes (the code of blocks it forks included).
struct Prefix {
  std::vector<std::string> lines;
  std::vector<uint32_t> pcs;    // Of each line's instruction, for line numbers.
  std::vector<uint32_t> steps;  // INVOKEd, in code order.
};

class Code {
 public:
  explicit Code(const runtime::LinkedProgram& lp);

  const std::vector<Region>& regions() const { return regions_; }
  // The region holding pc, or null.
  const Region* region_at(uint32_t pc) const;
  const Region* branch_region(uint32_t block, uint32_t branch) const;
  // Where a region is, by names only: "saga order", "saga trip > parallel
  // (flight, hotel) > flight", "saga order > undo of reserve".
  std::string region_path(const Region& r) const;
  // The same for a block: its region's path, its kind, branches, loop
  // variable, bound and collected names, and its rank among blocks that
  // would otherwise have the same path.
  const std::string& block_path(uint32_t block) const { return block_paths_[block]; }

  uint32_t invoke_pc_of(uint32_t step) const { return invoke_pc_[step]; }
  uint32_t fork_pc(uint32_t block) const { return fork_pc_[block]; }
  uint32_t join_pc(uint32_t block) const { return join_pc_[block]; }

  // The lines of `r` from its start up to and including the instruction at
  // `upto`. A jump beyond `upto` reads "past": for an instance that stands at
  // `upto`, where it would have gone does not matter. Each FORK includes the
  // whole code of its block's branches, except the FORK of `open_block` (the
  // block an instance waits for, whose fibers are judged on their own).
  Prefix prefix(const Region& r, uint32_t upto, uint32_t open_block) const;
  // A step's undo as text: its action and its undo block ("none" without).
  std::string undo_text(uint32_t step) const;

 private:
  std::string render(const bytecode::Instruction& in, uint32_t pc, uint32_t saga,
                     uint32_t upto) const;
  // prefix() at a depth of nested blocks.
  void add_prefix(const Region& r, uint32_t upto, uint32_t open_block, int depth,
                  Prefix& out) const;
  std::string block_signature(uint32_t block) const;

  const runtime::LinkedProgram& lp_;
  std::vector<uint32_t> starts_;  // Every instruction's pc, in order.
  std::vector<Region> regions_;   // By begin.
  std::vector<uint32_t> invoke_pc_, fork_pc_, join_pc_;
  std::vector<std::string> block_paths_;
};

}  // namespace saga::migrate
