#include "train/step.h"

#include <cmath>

#include "framework/autograd/node.h"
#include "framework/core/profile.h"
#include "framework/cuda/graph.h"
#include "framework/dist/gradient_buckets.h"
#include "framework/dist/optimizer_shards.h"
#include "framework/nn/parameter_buffer.h"
#include "framework/ops/ops.h"
#include "framework/optim/adamw.h"
#include "framework/optim/clip.h"
#include "models/transformer.h"
#include "train/parallel.h"
#include "train/trainer.h"

namespace sparrow::train {

TrainStep::TrainStep(const Config& cfg, models::TransformerLM& model, nn::ParameterBuffer& params, optim::AdamW& opt,
                     const Parallel& parallel, Device device, DType compute, bool profiling)
    : cfg_(cfg), model_(model), params_(params), opt_(opt), parallel_(parallel), device_(device), compute_(compute) {
  const int64_t A = cfg.train.grad_accum, B = cfg.train.batch_size, T = cfg.train.seq_len;
  // This rank's part of each batch: its replica's rows, its context shard's tokens.
  Batch probe{zeros({B, T}, DType::I32), zeros({B, T}, DType::I32)};
  const Batch local = parallel.local(probe);
  inputs_ = empty({A, local.inputs.size(0), local.inputs.size(1)}, DType::I32, device);
  targets_ = empty({A, local.inputs.size(0), local.inputs.size(1)}, DType::I32, device);
  weights_ = empty({A}, DType::F32, device);
  stats_ = zeros({2}, DType::F32, device);
  if (parallel.distributed()) buckets_ = std::make_unique<dist::GradientBuckets>(params, parallel.world());

  graph_policy_ = cfg.train.cuda_graph;
  std::string why_not;
  if (device.is_cpu())
    why_not = "the run is on the CPU";
  else if (profiling)
    why_not = "--profile times each op from the host";
  else if (parallel.distributed())
    why_not = "the step exchanges gradients with other ranks";
  if (!why_not.empty() && graph_policy_ == "on" && !profiling)
    throw TrainError("train.cuda_graph is 'on' but " + why_not + "; use train.cuda_graph: auto or off");
  if (!why_not.empty()) graph_policy_ = "off";
}

TrainStep::~TrainStep() = default;

void TrainStep::body(int64_t step) {
  const int64_t accum = cfg_.train.grad_accum;
  Tensor loss_sum = stats_.slice(0, 0, 1), norm = stats_.slice(0, 1, 2);
  {
    profile::Phase ph("zero_grad");
    opt_.zero_grad();
    fill_(loss_sum, 0.0);
  }
  const Shape local_shape{inputs_.size(1), inputs_.size(2)};
  for (int64_t micro = 0; micro < accum; ++micro) {
    const Tensor inputs = inputs_.slice(0, micro, micro + 1).reshape(local_shape);
    const Tensor targets = targets_.slice(0, micro, micro + 1).reshape(local_shape);
    Tensor loss;
    {
      profile::Phase ph("forward");
      loss = model_.loss(inputs, targets, step, compute_);
    }
    profile::Phase ph("backward");
    // Each backward adds its weighted share into the flat gradient buffer: weight/accum, where
    // the weight is this rank's share of the global batch's scored tokens (1 on one process).
    Tensor scaled = mul(loss, weights_.slice(0, micro, micro + 1).reshape(loss.shape()));
    // The last micro-batch's backward starts each gradient bucket's exchange as it completes
    // (under recompute too: a block's parameters are reported when its recomputed segment's
    // backward is done with them).
    std::unique_ptr<LeafReadyGuard> overlap;
    if (buckets_ && micro == accum - 1) overlap = buckets_->arm();
    scaled.backward();
    NoGradGuard no_grad;
    add_(loss_sum, scaled.detach());
  }
  if (buckets_) {
    profile::Phase ph("gradient all-reduce (what the backward did not hide)");
    buckets_->finish();
    parallel_.sum(loss_sum);
  }
  {
    profile::Phase ph("gradient norm");
    optim::grad_norm_to(params_.grad(), norm);
  }
  {
    profile::Phase ph("optimizer (guarded: skip, clip)");
    opt_.launch(loss_sum, norm);
  }
  if (opt_.sharded()) {
    // ZeRO-1: this rank updated its shard only; every rank's shard comes from its owner.
    profile::Phase ph("weights all-gather (ZeRO-1)");
    dist::gather_parameter_shards(params_, opt_.compute_copy(), parallel_.world());
  }
}

StepResult TrainStep::run(const std::vector<Batch>& batches, const std::vector<double>& weights, int64_t step,
                          const std::function<void(const std::string&)>& log) {
  SPARROW_CHECK(weights.size() == batches.size(), "TrainStep: ", weights.size(), " weights for ", batches.size(),
                " batches");
  {
    profile::Phase ph("data (host sample + copy)");
    std::vector<double> w;
    for (double x : weights) w.push_back(x / static_cast<double>(batches.size()));
    copy_(weights_, from_vector(w, {static_cast<int64_t>(w.size())}));
    for (size_t i = 0; i < batches.size(); ++i) {
      const int64_t m = static_cast<int64_t>(i);
      Tensor in = inputs_.slice(0, m, m + 1), tg = targets_.slice(0, m, m + 1);
      copy_(in, batches[i].inputs.reshape(in.shape()));
      copy_(tg, batches[i].targets.reshape(tg.shape()));
    }
  }
  opt_.stage(cfg_.optim.grad_clip);
  StepResult r;

  if (graph_policy_ != "off") {
    // The graph replays the layouts of the step it was captured at: valid while the layers'
    // targets are the same.
    std::vector<double> targets = model_.sparsity_targets_at(step);
    if (targets != graph_key_) {
      graph_.reset();
      graph_key_ = std::move(targets);
      eager_steps_with_key_ = 0;
    }
    if (!graph_ && eager_steps_with_key_ >= kEagerStepsBeforeCapture) {
      auto g = std::make_unique<cuda::Graph>();
      Generator& rng = model_.dropout_generator();
      const uint64_t seed = rng.seed(), before = rng.offset();
      try {
        g->capture([&] { body(step); });
        // Nothing ran: the replays draw from here on.
        rng_at_capture_ = before;
        rng_per_step_ = rng.offset() - before;
        rng.set_state(seed, before);
        graph_ = std::move(g);
        log("cuda graph: step " + std::to_string(step + 1) + " captured (" + std::to_string(graph_->nodes()) +
            " nodes, " + std::to_string(graph_->pool_bytes() >> 20) + " MiB pool); later steps replay it");
      } catch (const cuda::CaptureError& e) {
        rng.set_state(seed, before);
        if (graph_policy_ == "on")
          throw TrainError(std::string("train.cuda_graph is 'on' but the step cannot be captured: ") + e.what());
        graph_policy_ = "off";
        log(std::string("cuda graph: not used, running eagerly (the step cannot be captured: ") + e.what() + ")");
      }
    }
  }
  if (graph_) {
    profile::Phase ph("graph replay");
    Generator& rng = model_.dropout_generator();
    graph_->replay(rng.offset() - rng_at_capture_);
    rng.set_state(rng.seed(), rng.offset() + rng_per_step_);
    r.replayed = true;
  } else {
    body(step);
    ++eager_steps_with_key_;
  }

  {
    profile::Phase ph("step results to host");
    const Tensor host = stats_.to(Device::cpu());
    r.loss = host.data<float>()[0];
    r.grad_norm = host.data<float>()[1];
  }
  if (graph_) graph_->raise_deferred_checks();
  r.applied = std::isfinite(r.loss) && std::isfinite(r.grad_norm);
  opt_.commit(r.applied);
  return r;
}

}  // namespace sparrow::train
