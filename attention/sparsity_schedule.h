// A layer's target sparsity over training steps, part of its AttentionConfig: the backend reads
// it in forward from AttentionCall::step, so nothing above the attention pushes sparsity down.
// Active when from != to; then it replaces the layer's fixed `sparsity`:
//   linear: from at step <= start, to at step >= end, straight line between;
//   cosine: from + (to − from)·(1 − cos(π·u))/2 with u = (step − start)/(end − start) clamped to [0, 1];
//   step:   from before step `start`, to from `start` on (end is not used).
// A pure function of the step, so a resumed run, a captured CUDA graph's key and a checkpoint's
// record all see the value the forward used.
#pragma once
#include <cstdint>
#include <string>

namespace sparrow::attn {

struct SparsitySchedule {
  double from = 0.0;
  double to = 0.0;
  int64_t start = 0;
  int64_t end = 0;
  std::string shape = "linear";  // linear | cosine | step
  bool active() const { return from != to; }
  double at(int64_t step) const;  // the target sparsity at this step (only meaningful when active)
  bool operator==(const SparsitySchedule&) const = default;
};

}  // namespace sparrow::attn
