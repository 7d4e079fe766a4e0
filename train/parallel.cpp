#include "train/parallel.h"

#include "framework/ops/ops.h"
#include "train/trainer.h"

namespace sparrow::train {

namespace {

// The communicator backend for this launch: auto picks by device; none refuses a multi-rank launch.
std::string backend_for(const Config& cfg, Device device) {
  const int launched = dist::launched_world_size();
  const std::string& b = cfg.dist.backend;
  if (b == "none") {
    if (launched > 1)
      throw TrainError("dist.backend is 'none' but the launcher started " + std::to_string(launched) +
                       " ranks; set dist.backend: auto (or mpi / nccl), or run one process");
    return "single";
  }
  if (b == "auto") return launched > 1 ? (device.is_cuda() ? "nccl" : "mpi") : "single";
  if (b == "nccl" && !device.is_cuda())
    throw TrainError("dist.backend is 'nccl' but the run is on " + device.str() + "; use mpi (or auto) on the CPU");
  if (b == "mpi" && device.is_cuda())
    throw TrainError("dist.backend is 'mpi' but the run is on " + device.str() +
                     ": MPI here carries CPU tensors; use nccl (or auto) on GPUs");
  return b;
}

int64_t scored(const Tensor& targets) {
  int64_t n = 0;
  const int32_t* t = targets.data<int32_t>();
  for (int64_t i = 0; i < targets.numel(); ++i) n += t[i] != kIgnoreIndex;
  return n;
}

// Rows [r0, r1) of an [B, T] tensor, as a copy.
Tensor rows(const Tensor& x, int64_t r0, int64_t r1) { return x.slice(0, r0, r1).contiguous(); }

// The zigzag shard of every row of an [B, T] tensor.
Tensor token_shard(const Tensor& x, const attn::RingPlan& plan, int rank) {
  const int64_t B = x.size(0);
  Tensor s = attn::zigzag_shard(x.reshape({B, 1, x.size(1)}), plan, rank);
  return s.reshape({B, s.size(2)});
}

}  // namespace

int rank_gpu_index(int world_size, int local_rank, int gpus_visible) {
  if (world_size <= 1) return 0;
  if (local_rank >= gpus_visible)
    throw TrainError("train.device is a GPU but this rank is local rank " + std::to_string(local_rank) +
                     " on a host with " + std::to_string(gpus_visible) +
                     " GPU(s) visible: start at most one rank per GPU, or train on the CPU (train.device: cpu)");
  return local_rank;
}

Parallel::Parallel(const Config& cfg, Device device) : device_(device) {
  world_ = dist::make_communicator(backend_for(cfg, device));
  const int P = world_->size();
  if (cfg.dist.ranks > 0 && cfg.dist.ranks != P)
    throw TrainError("dist.ranks is " + std::to_string(cfg.dist.ranks) + " but the launcher started " +
                     std::to_string(P) + " rank(s)");
  cp_ = static_cast<int>(cfg.dist.context_parallel);
  if (P % cp_ != 0)
    throw TrainError("dist.context_parallel=" + std::to_string(cp_) + " does not divide the " + std::to_string(P) +
                     " ranks launched");
  dp_ = P / cp_;
  dp_rank_ = world_->rank() / cp_;
  if (cfg.train.batch_size % dp_ != 0)
    throw TrainError("train.batch_size=" + std::to_string(cfg.train.batch_size) + " does not split over " +
                     std::to_string(dp_) + " data-parallel replicas (" + std::to_string(P) +
                     " ranks / context_parallel " + std::to_string(cp_) + ")");
  // Every rank joins the split; ranks of one replica share a sequence.
  context_group_ = world_->split(dp_rank_, world_->rank());
  if (cp_ > 1) {
    context_.comm = context_group_.get();
    context_.seq_len = cfg.train.seq_len;
    context_.block_size = cfg.attention.base.attn.block_size;
    try {
      context_.dense_plan(true);  // checks the split now rather than at the first step
    } catch (const Error& e) {
      throw TrainError("train.seq_len=" + std::to_string(cfg.train.seq_len) +
                       " with dist.context_parallel=" + std::to_string(cp_) + ": " + e.what());
    }
  }
}

std::string Parallel::describe() const {
  if (!distributed()) return "1 process";
  return std::to_string(world_size()) + " ranks over " + world_->backend() + " (data parallel " + std::to_string(dp_) +
         " × context parallel " + std::to_string(cp_) + ")";
}

Batch Parallel::local(const Batch& global) const {
  if (!distributed()) return global;
  const int64_t b = global.inputs.size(0) / dp_;
  Batch mine{rows(global.inputs, dp_rank_ * b, (dp_rank_ + 1) * b),
             rows(global.targets, dp_rank_ * b, (dp_rank_ + 1) * b)};
  if (cp_ == 1) return mine;
  const attn::RingPlan plan = context_.dense_plan(true);
  const int c = context_.comm->rank();
  return {token_shard(mine.inputs, plan, c), token_shard(mine.targets, plan, c)};
}

double Parallel::loss_weight(const Batch& global, const Batch& local) const {
  if (!distributed()) return 1.0;
  const int64_t all = scored(global.targets);
  return all > 0 ? static_cast<double>(scored(local.targets)) / static_cast<double>(all) : 0.0;
}

void Parallel::sum(Tensor& t) const {
  if (distributed()) world_->all_reduce(t, dist::ReduceOp::Sum)->wait();
}

}  // namespace sparrow::train

namespace sparrow::train {

double Parallel::sum(double x) const {
  if (!distributed()) return x;
  Tensor t = from_vector(std::vector<double>{x}, {1}, DType::F64, device_);
  world_->all_reduce(t, dist::ReduceOp::Sum)->wait();
  return t.item();
}

bool Parallel::any(bool x) const {
  if (!distributed()) return x;
  Tensor t = from_ints({x ? 1 : 0}, {1}, device_);
  world_->all_reduce(t, dist::ReduceOp::Max)->wait();
  return t.item() != 0;
}

void Parallel::barrier() const { world_->barrier(); }

}  // namespace sparrow::train
