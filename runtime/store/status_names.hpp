// What every store says about instance statuses in its errors, in one
// wording (status_names.cpp). Only runtime/store includes this header.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "saga/store.hpp"

#include "saga/status.hpp"

namespace saga::store {

// post() to an instance that is finished: the kFailedPrecondition naming
// its status (stored number `status`).
Status not_postable(const std::string& id, int64_t status);

// Why move_instance() refuses `move` for the instance as it was read (its
// stored status number, program, whether its checkpoint is the expected one,
// its fibers, its claim), as kFailedPrecondition; Ok when it may move.
Status check_move(const InstanceMove& move, int64_t status, const std::string& program,
                  bool same_checkpoint, const std::vector<FiberRow>& fibers,
                  const std::string& owner, int64_t lease_until,
                  const std::function<bool(const std::string&, int64_t)>& claim_gone);

}  // namespace saga::store
