// Who runs an instance: an engine's identity as an instance owner, and how
// to tell that an owner of this machine is gone. Store::claim takes over the
// instances of a dead owner at once and those of any other owner when their
// lease runs out; the engine renews its leases while it runs (engine.cpp).
#pragma once

#include <cstdint>
#include <string>

namespace saga::runtime {

// This process as an owner: "PID.START@HOST", START being the process's
// start time in clock ticks since boot, so that a new process that reuses
// the PID is not taken for the old one.
std::string this_owner();

// Whether `owner` is a process of this machine that no longer runs. Owners on
// other machines (and ids in another form) are judged by their lease alone:
// false.
bool owner_dead(const std::string& owner);

}  // namespace saga::runtime
