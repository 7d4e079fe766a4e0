// Where this process stands among the ranks a launcher started (`mpirun -np P train …`), and
// what data and context parallelism change in a training step.
//
// P = dp × cp ranks. Ranks r = d·cp + c form data-parallel replica d (0 ≤ d < dp) and context
// position c (0 ≤ c < cp). Every rank draws the same global batch (train.batch_size rows, the
// same sampler state everywhere); replica d takes rows [d·B/dp, (d+1)·B/dp), and within a replica
// each rank takes its zigzag shard of every row's tokens (attention/ring). The model's weights
// are the same on every rank: each rank's loss is weighted by its share of the global batch's
// scored tokens, the weighted gradients are summed over all ranks, and every rank applies the same
// update (or, with dist.shard_optimizer, its shard of it, then the shards are gathered:
// dist/optimizer_shards.h). So the loss curve is the one-process curve, to reduction order.
//
// Rank 0 alone writes logs, metrics and checkpoints; a checkpoint holds the full (replicated)
// state, so it resumes at any P.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "attention/ring/context_parallel.h"
#include "framework/dist/communicator.h"
#include "train/config/config.h"
#include "train/data/batch.h"

namespace sparrow::train {

class Parallel {
 public:
  // Makes the communicators for the run on `device`; throws TrainError when the launch and the
  // configuration disagree (dist.ranks, dist.context_parallel, train.batch_size, train.seq_len).
  Parallel(const Config& cfg, Device device);

  int world_size() const { return world_->size(); }
  int rank() const { return world_->rank(); }
  int data_parallel() const { return dp_; }
  int context_parallel() const { return cp_; }
  bool distributed() const { return world_->size() > 1; }
  dist::Communicator& world() const { return *world_; }
  // Rank 0 writes the run folder; the others only compute.
  bool writes() const { return world_->rank() == 0; }
  std::string describe() const;

  // The context the model's attention layers run under (null without context parallelism).
  const attn::ContextParallel* context() const { return cp_ > 1 ? &context_ : nullptr; }

  // This rank's part of a global batch, and the weight of its mean loss in the global mean:
  // its scored targets / the global batch's (0 when the batch scores nothing).
  Batch local(const Batch& global) const;
  double loss_weight(const Batch& global, const Batch& local) const;

  // Sums over all ranks, in place (no-op on one rank).
  void sum(Tensor& t) const;
  double sum(double x) const;
  // True on every rank when it is true on any (stop requests: every rank stops at one step).
  bool any(bool x) const;
  void barrier() const;

 private:
  std::unique_ptr<dist::Communicator> world_, context_group_;
  Device device_;  // where the communicators' tensors live (NCCL: the GPU)
  int dp_ = 1, cp_ = 1, dp_rank_ = 0;
  attn::ContextParallel context_;
};

// The GPU this rank trains on, cuda:<index>: 0 for a single process; under a launcher the local
// rank, the GPU its NCCL communicator opens (framework/dist/nccl_communicator.cpp), so that each
// rank's model, allocations and collectives live on one GPU of their own. Throws a TrainError
// naming the counts when this host has fewer GPUs than ranks.
int rank_gpu_index(int world_size, int local_rank, int gpus_visible);

}  // namespace sparrow::train
