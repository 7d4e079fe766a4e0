// CPU-only build: CUDA graphs exist as a type so that the code that may capture (train/step.cpp)
// is one path in both builds. Nothing here can capture: a Graph cannot be made, and the
// capture-state queries say that no capture is running.
#ifndef SPARROW_WITH_CUDA
#include "framework/cuda/graph.h"

namespace sparrow::cuda {

struct Graph::State {};

// CaptureError, so a caller that falls back to eager steps on a failed capture does so here too.
Graph::Graph() { throw CaptureError("CUDA graphs need a CUDA build of Sparrow (this one has SPARROW_CUDA=OFF)"); }
Graph::~Graph() = default;
void Graph::capture(const std::function<void()>&) {}
void Graph::replay(uint64_t) {}
void Graph::raise_deferred_checks() const {}
void Graph::reset() {}
bool Graph::captured() const { return false; }
size_t Graph::nodes() const { return 0; }
size_t Graph::pool_bytes() const { return 0; }

bool capturing() { return false; }
void keep_alive_while_capturing(std::shared_ptr<const void>) {}

}  // namespace sparrow::cuda
#endif
