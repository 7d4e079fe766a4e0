// One optimizer step's work, run eagerly or replayed as a captured CUDA graph.
//
// The body issues, without waiting for the device anywhere:
//   zero the flat gradient buffer; for each micro-batch: forward, backward of loss/accum, and
//   add loss/accum into stats[0]; ‖g‖ into stats[1]; AdamW's guarded update, which skips a step
//   whose loss or norm is non-finite and clips by ‖g‖ on the device (optim/adamw.h).
// The host then reads stats (8 bytes, one wait) and commits the step when both are finite.
//
// On the GPU a small model's step is hundreds of short kernels and the device waits on the host
// launching them; a CUDA graph records the body once and replays it with one launch. What keeps
// the replay equal to an eager step: the batch is copied into fixed device buffers before each
// launch; AdamW's lr and bias corrections are read from pinned memory by a recorded copy; token
// checks are deferred to the graph (cuda/graph.h); allocations come from the graph's private pool;
// dropout's Philox counters are shifted to where the generator stands at each replay, and the
// generator then moves on by what the step consumes, so the masks are the eager step's.
// The only host-side value that changes the recorded work is the layers' target sparsity, which
// each attention layer takes from the step (its schedule): the graph is keyed on the model's
// sparsity_targets_at(step); when they change the graph is dropped, and recaptured after
// kEagerStepsBeforeCapture steps.
//
// train.cuda_graph: auto | on | off. A graph is not used on the CPU, with --profile (per-op times
// need the host between ops), or when the capture fails (a backend that reads device values on
// the host, such as adaptive attention's layout selection on the host): auto then says why and runs eagerly;
// on stops.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "framework/core/tensor.h"
#include "train/config/config.h"
#include "train/data/batch.h"

namespace sparrow {
namespace models {
class TransformerLM;
}
namespace nn {
class ParameterBuffer;
}
namespace optim {
class AdamW;
}
namespace cuda {
class Graph;
}
namespace train {
class Parallel;
}
namespace dist {
class GradientBuckets;
}
}  // namespace sparrow

namespace sparrow::train {

struct StepResult {
  double loss = 0;        // mean over the micro-batches
  double grad_norm = 0;   // before clipping
  bool applied = false;   // false: non-finite loss or norm, the update was skipped
  bool replayed = false;  // the step ran as a CUDA-graph replay (metrics: step_mode)
};

class TrainStep {
 public:
  // Steps run eagerly first: they build plans and fill the allocator's cache before a capture.
  static constexpr int kEagerStepsBeforeCapture = 2;

  TrainStep(const Config& cfg, models::TransformerLM& model, nn::ParameterBuffer& params, optim::AdamW& opt,
            const Parallel& parallel, Device device, DType compute, bool profiling);
  ~TrainStep();

  // batches: train.grad_accum host batches, this rank's part of each (Parallel::local);
  // weights: each one's loss weight (Parallel::loss_weight; 1 on one process). The step's loss
  // is Σ_micro weight·loss / grad_accum, summed over ranks, and so are the gradients.
  // `log` receives one line when a graph is captured or given up.
  StepResult run(const std::vector<Batch>& batches, const std::vector<double>& weights, int64_t step,
                 const std::function<void(const std::string&)>& log);

 private:
  void body(int64_t step);

  const Config& cfg_;
  models::TransformerLM& model_;
  nn::ParameterBuffer& params_;
  optim::AdamW& opt_;
  const Parallel& parallel_;
  Device device_;
  DType compute_;
  Tensor inputs_, targets_;  // [accum, B, T] on the device: the batches, at fixed addresses
  Tensor weights_;           // f32 [accum] on the device: each micro-batch's loss weight / accum
  Tensor stats_;             // f32 [2] on the device: loss, ‖g‖
  // Data parallel: the gradient sum over ranks, bucketed and started during the last
  // micro-batch's backward (null on one process).
  std::unique_ptr<dist::GradientBuckets> buckets_;
  std::string graph_policy_;  // auto | on | off (off also where a graph cannot apply)
  std::unique_ptr<cuda::Graph> graph_;
  std::vector<double> graph_key_;  // the layers' target sparsities the graph (or the eager run-up) is for
  int eager_steps_with_key_ = 0;
  uint64_t rng_at_capture_ = 0;  // the dropout generator's offset when the graph was captured
  uint64_t rng_per_step_ = 0;    // counters one step reserves
};

}  // namespace sparrow::train
