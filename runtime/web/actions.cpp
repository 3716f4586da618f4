// The operator actions (saga/web.hpp): one row per action, served as
// POST /api/instances/{id}/NAME and shown as a button on the instance's page.
// The durable operator commands (retry, skip, compensate, pause, unpause) are
// each one more row here.
#include "saga/web.hpp"

namespace saga::web {

namespace {

const OperatorAction kActions[] = {
    {"cancel",
     "Cancel",
     "Cancel a pending or running instance: its completed steps are compensated.",
     {InstanceStatus::kPending, InstanceStatus::kRunning},
     [](Engine& engine, const std::string& id, const nlohmann::json&) {
       return engine.cancel(id);
     }},
};

}  // namespace

std::span<const OperatorAction> operator_actions() {
  return kActions;
}

}  // namespace saga::web
