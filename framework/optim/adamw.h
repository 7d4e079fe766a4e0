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
  int64_t step = 0;  // updates taken so far
  Tensor exp_avg;    // m, f32 [numel], the buffer's layout
  Tensor exp_avg_sq; // v, f32 [numel]
};

class AdamW {
 public:
  // params must hold f32 master weights (and gradients); the state lives on the same device.
  explicit AdamW(nn::ParameterBuffer params, AdamWOptions opt = {});

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

  // Checkpointing. state() returns the live tensors (copy or write them out before stepping
  // again); load_state checks shapes and dtype and copies in.
  AdamWState state() const { return {step_, exp_avg_, exp_avg_sq_}; }
  void load_state(const AdamWState& s);
  // "exp_avg" and "exp_avg_sq" as flat tensors, for a safetensors file beside the weights.
  std::vector<std::pair<std::string, Tensor>> state_tensors() const {
    return {{"exp_avg", exp_avg_}, {"exp_avg_sq", exp_avg_sq_}};
  }

 private:
  nn::ParameterBuffer params_;
  AdamWOptions opt_;
  int64_t step_ = 0;
  Tensor exp_avg_, exp_avg_sq_, compute_copy_;
  AdamWStepScalars host_scalars_{};            // read in place by the CPU kernel
  std::shared_ptr<cuda::StagedBytes> staged_;  // on the GPU: pinned → device for the kernel
};

}  // namespace sparrow::optim
