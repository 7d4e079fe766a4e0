// Activation checkpointing (recompute): run a segment without recording, keep only its input,
// and in backward run it again with recording on and backpropagate through the fresh graph.
// Memory falls from every intermediate of the segment to its input; compute rises by one forward.
//
// The segment must be a pure function of its input and of leaf parameters (whose gradients the
// inner backward accumulates directly). Random ops inside it (dropout) must draw the same values
// twice: pass `before_replay`, which the recompute calls first (e.g. to rewind a Generator), and
// `after_replay`, called once the replay has run (e.g. to put the Generator back where it was).
#pragma once
#include <cstdint>
#include <functional>

#include "framework/core/rng.h"
#include "framework/core/tensor.h"

namespace sparrow {

Tensor checkpoint(const std::function<Tensor(const Tensor&)>& segment, const Tensor& input,
                  const std::function<void()>& before_replay = nullptr,
                  const std::function<void()>& after_replay = nullptr);

// Checkpointing of a segment that treats every position along `dim` of its input on its own
// (a norm, a projection, an MLP along the tokens), run `chunk` positions at a time: the forward
// keeps only the input and the output; the backward replays one chunk at a time, so no more than
// one chunk's intermediates exist at once (a 2M-token MLP's 4·d hidden would be 12 GiB; a 64K chunk's
// is 0.4). `segment(part, first)` gets positions [first, first + part.size(dim)) and returns their
// output, whose dim `out_dim` holds those positions. Without gradients it simply runs chunk by
// chunk. `gen`, when set, is rewound before each chunk's replay to where that chunk's first run
// started drawing (dropout) and put back after the last.
Tensor checkpoint_chunks(const std::function<Tensor(const Tensor&, int64_t)>& segment, const Tensor& input, int64_t dim,
                         int64_t chunk, int64_t out_dim, Generator* gen = nullptr);

}  // namespace sparrow
