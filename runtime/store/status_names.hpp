// What every store says about instance statuses in its errors, in one
// wording (status_names.cpp). Only runtime/store includes this header.
#pragma once

#include <cstdint>
#include <string>

#include "saga/status.hpp"

namespace saga::store {

// request_cancel() of an instance that is not pending or running: the
// kFailedPrecondition naming its status (stored number `status`).
Status not_cancellable(const std::string& id, int64_t status);

}  // namespace saga::store
