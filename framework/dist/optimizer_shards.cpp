#include "framework/dist/optimizer_shards.h"

#include <algorithm>
#include <vector>

namespace sparrow::dist {

namespace {
constexpr int64_t kShardAlign = 16;  // f32 elements in a 64-byte line
}

optim::AdamWShard optimizer_shard(int64_t n, int rank, int ranks) {
  SPARROW_CHECK(n >= 0 && ranks >= 1 && rank >= 0 && rank < ranks, "optimizer_shard: rank ", rank, " of ", ranks,
                " over ", n, " elements");
  const int64_t per = (n / ranks + (n % ranks != 0) + kShardAlign - 1) / kShardAlign * kShardAlign;
  const int64_t begin = std::min<int64_t>(per * rank, n);
  return {begin, std::min<int64_t>(begin + per, n)};
}

void gather_parameter_shards(const nn::ParameterBuffer& params, const Tensor& compute_copy, Communicator& comm) {
  const int P = comm.size();
  if (P == 1) return;
  std::vector<std::unique_ptr<Work>> pending;
  for (int r = 0; r < P; ++r) {
    const optim::AdamWShard s = optimizer_shard(params.numel(), r, P);
    if (s.begin == s.end) continue;  // every rank computes the same shards: all skip it alike
    pending.push_back(comm.broadcast(params.data().slice(0, s.begin, s.end), r));
    if (compute_copy.defined()) pending.push_back(comm.broadcast(compute_copy.slice(0, s.begin, s.end), r));
  }
  for (auto& w : pending) w->wait();
}

optim::AdamWState gather_optimizer_state(const optim::AdamW& opt, Communicator& comm, int root) {
  const optim::AdamWState mine = opt.state();
  if (!opt.sharded()) return mine;
  const int64_t n = opt.params().numel();
  const int P = comm.size();
  for (int r = 0; r < P; ++r) {
    const optim::AdamWShard s = optimizer_shard(n, r, P);
    SPARROW_CHECK(r != comm.rank() || (s.begin == opt.shard().begin && s.end == opt.shard().end),
                  "gather_optimizer_state: this rank's optimizer shard [", opt.shard().begin, ", ", opt.shard().end,
                  ") is not optimizer_shard's [", s.begin, ", ", s.end, ")");
  }
  optim::AdamWState whole;
  whole.step = mine.step;
  std::vector<std::unique_ptr<Work>> pending;
  if (comm.rank() == root) {
    whole.exp_avg = empty({n}, DType::F32, mine.exp_avg.device());
    whole.exp_avg_sq = empty({n}, DType::F32, mine.exp_avg.device());
    for (int r = 0; r < P; ++r) {
      const optim::AdamWShard s = optimizer_shard(n, r, P);
      if (s.begin == s.end) continue;
      Tensor m = whole.exp_avg.slice(0, s.begin, s.end), v = whole.exp_avg_sq.slice(0, s.begin, s.end);
      if (r == root) {
        copy_(m, mine.exp_avg);
        copy_(v, mine.exp_avg_sq);
      } else {
        pending.push_back(comm.recv(m, r));
        pending.push_back(comm.recv(v, r));
      }
    }
  } else if (opt.shard().begin != opt.shard().end) {
    pending.push_back(comm.send(mine.exp_avg, root));
    pending.push_back(comm.send(mine.exp_avg_sq, root));
  }
  for (auto& w : pending) w->wait();
  return whole;
}

}  // namespace sparrow::dist
