// Activation checkpointing (recompute): run a segment without recording, keep only its input,
// and in backward run it again with recording on and backpropagate through the fresh graph.
// Memory falls from every intermediate of the segment to its input; compute rises by one forward.
//
// The segment must be a pure function of its input and of leaf parameters (whose gradients the
// inner backward accumulates directly). Random ops inside it (dropout) must draw the same values
// twice: pass `before_replay`, which the recompute calls first (e.g. to rewind a Generator), and
// `after_replay`, called once the replay has run (e.g. to put the Generator back where it was).
#pragma once
#include <functional>

#include "framework/core/tensor.h"

namespace sparrow {

Tensor checkpoint(const std::function<Tensor(const Tensor&)>& segment, const Tensor& input,
                  const std::function<void()>& before_replay = nullptr,
                  const std::function<void()>& after_replay = nullptr);

}  // namespace sparrow
