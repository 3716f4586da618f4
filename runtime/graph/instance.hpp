// An instance's run drawn on its saga's picture: the graph of its program's
// saga (saga/graph.hpp) with the overlay of its history and of where its
// fibers wait (decoded from its checkpoint). `sagactl show ID --graph` and the
// web view's instance page draw it. It only reads the store.
#pragma once

#include <string>

#include "saga/graph.hpp"
#include "saga/store.hpp"

namespace saga::graph {

// The graph of `record`'s saga with its run marked. Errors: its program
// cannot be loaded or has no such saga, or the history cannot be read. A
// checkpoint that cannot be decoded is not an error: the picture is drawn
// without the position and `warning` (when given) says why.
Result<Graph> instance_graph(Store& store, const InstanceRecord& record,
                             std::string* warning = nullptr);

}  // namespace saga::graph
