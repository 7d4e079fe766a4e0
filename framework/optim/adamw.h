// AdamW (Loshchilov & Hutter, decoupled weight decay) over a packed model: one fused loop over
// the flat fp32 master buffer per step (optim/cpu/adamw.cpp, optim/cuda/adamw.cu), with fp32
// state m, v of the same layout. Weight decay applies to the buffer's decaying prefix only, so
// norms, biases and other 1-D parameters are never decayed (see nn::weight_decay_by_rule).
// Matches torch.optim.AdamW's update, bias correction included.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "framework/nn/parameter_buffer.h"
#include "framework/optim/adamw_kernel_args.h"

namespace sparrow::cuda {
class StagedBytes;
}

namespace sparrow::optim {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// What a checkpoint needs to resume the optimizer exactly.
struct AdamWState {
  int64_t step = 0;   // updates taken so far
  Tensor exp_avg;     // m, f32: the buffer's layout [numel], or an optimizer's shard of it (state())
  Tensor exp_avg_sq;  // v, f32: likewise
};

// The part [begin, end) of the flat buffer an optimizer updates and keeps state for. The whole
// buffer by default; ZeRO-1 gives each data-parallel rank one shard (dist/optimizer_shards.h):
// AdamW is elementwise, so updating every shard separately gives the same values, bit for bit,
// as one update of the whole buffer, with 1/P of the state per rank.
struct AdamWShard {
  int64_t begin = 0;
  int64_t end = -1;  // -1: the end of the buffer
};

class AdamW {
 public:
  // params must hold f32 master weights (and gradients); the state lives on the same device.
  // With a shard, launch() updates (and the state covers) that part of the buffer only: the
  // caller then gathers the other ranks' shards (dist::gather_parameter_shards).
  explicit AdamW(nn::ParameterBuffer params, AdamWOptions opt = {}, AdamWShard shard = {});

  // One update from the gradients in params.grad(), at the current lr.
  void step() {
    stage();
    launch();
    commit(true);
  }

  // The same step in three parts, for a caller that must not wait for the device in between
  // (the trainer: launch() is recorded once into a CUDA graph and replayed, while stage() and
  // commit() run on the host every step):
  //  stage(max_norm): writes this step's lr and bias corrections (for step_count() + 1) and the
  //    clip threshold (0: none) where launch()'s kernel reads them.
  //  launch(loss, norm): issues the update. With the guard (f32 scalars on the parameters'
  //    device, written by the step), the update is skipped when either is non-finite and the
  //    gradients are clipped by norm (see adamw_kernel_args.h); the host does not wait.
  //  commit(applied): counts the update once the caller knows the guard let it through.
  void stage(double max_norm = 0);
  void launch(const Tensor& loss = Tensor(), const Tensor& norm = Tensor());
  void commit(bool applied) { step_ += applied ? 1 : 0; }
  void zero_grad() { params_.zero_grad(); }

  void set_lr(double lr) { opt_.lr = lr; }
  double lr() const { return opt_.lr; }
  const AdamWOptions& options() const { return opt_; }
  int64_t step_count() const { return step_; }
  const nn::ParameterBuffer& params() const { return params_; }

  // A bf16 flat tensor with the buffer's layout on its device; each step also writes bf16(p)
  // into it (the weights a bf16 forward pass reads). Pass an undefined tensor to stop.
  void set_compute_copy(Tensor flat_bf16);
  const Tensor& compute_copy() const { return compute_copy_; }

  // [begin, end) of the buffer this optimizer updates (end resolved).
  const AdamWShard& shard() const { return shard_; }
  bool sharded() const { return shard_.begin != 0 || shard_.end != params_.numel(); }

  // Checkpointing. state() returns the live tensors of this optimizer's shard (the whole buffer
  // unless sharded; copy or write them out before stepping again). load_state checks dtype and
  // size and copies in: tensors of the whole layout (what a checkpoint holds, whatever the rank
  // count that wrote it) give this optimizer their [begin, end), shard-sized ones are taken as is.
  AdamWState state() const { return {step_, exp_avg_, exp_avg_sq_}; }
  void load_state(const AdamWState& s);

 private:
  nn::ParameterBuffer params_;
  AdamWOptions opt_;
  AdamWShard shard_;
  int64_t step_ = 0;
  Tensor exp_avg_, exp_avg_sq_, compute_copy_;
  AdamWStepScalars host_scalars_{};            // read in place by the CPU kernel
  std::shared_ptr<cuda::StagedBytes> staged_;  // on the GPU: pinned → device for the kernel
};

}  // namespace sparrow::optim
