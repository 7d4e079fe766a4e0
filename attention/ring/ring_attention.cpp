#include "attention/ring/ring_attention.h"

#include <cmath>
#include <limits>
#include <map>

#include "attention/kernels/block_attention.h"
#include "attention/kernels/lse_merge.h"
#include "framework/autograd/node.h"
#include "framework/ops/ops.h"

namespace sparrow::attn {

namespace {

using dist::Work;

// A contiguous copy of x's tokens [begin, end) along dim 2, with no history.
Tensor token_rows(const Tensor& x, int64_t begin, int64_t end) {
  Tensor s = x.detach().slice(2, begin, end);
  Tensor c = empty(s.shape(), s.dtype(), s.device());
  copy_(c, s);
  return c;
}

// x's shape with dim 2 set to n.
Shape with_len(const Shape& s, int64_t n) {
  Shape r = s;
  r[2] = n;
  return r;
}

// One rank's two chunks of some tensor, split at the plan's chunk lengths.
using Pair = std::array<Tensor, 2>;

Pair split_local(const Tensor& x, const RingPlan& plan, int rank) {
  const auto c = plan.chunks_of(rank);
  const int64_t n0 = plan.chunk_range(c[0]).size(), n1 = plan.chunk_range(c[1]).size();
  return {token_rows(x, 0, n0), token_rows(x, n0, n0 + n1)};
}

Pair alloc_pair(const Tensor& like, const RingPlan& plan, int origin, DType dtype) {
  const auto c = plan.chunks_of(origin);
  return {empty(with_len(like.shape(), plan.chunk_range(c[0]).size()), dtype, like.device()),
          empty(with_len(like.shape(), plan.chunk_range(c[1]).size()), dtype, like.device())};
}

Pair zeros_like_pair(const Pair& p, DType dtype) {
  return {zeros(p[0].shape(), dtype, p[0].device()), zeros(p[1].shape(), dtype, p[1].device())};
}

Tensor join(const Pair& p, DType dtype) {
  Tensor out = empty(with_len(p[0].shape(), p[0].size(2) + p[1].size(2)), dtype, p[0].device());
  Tensor a = out.slice(2, 0, p[0].size(2)), b = out.slice(2, p[0].size(2), out.size(2));
  copy_(a, p[0]);
  copy_(b, p[1]);
  return out;
}

// The tensors that travel together, posted as one group of sends or receives (empty chunks skip).
struct Exchange {
  std::vector<std::unique_ptr<Work>> works;
  int64_t bytes = 0;
  void send(dist::Communicator& c, const std::vector<const Pair*>& parts, int peer) {
    for (const Pair* p : parts)
      for (const Tensor& t : *p)
        if (t.numel()) {
          works.push_back(c.send(t, peer));
          bytes += static_cast<int64_t>(t.nbytes());
        }
  }
  void recv(dist::Communicator& c, const std::vector<Pair*>& parts, int peer) {
    for (Pair* p : parts)
      for (Tensor& t : *p)
        if (t.numel()) works.push_back(c.recv(t, peer));
  }
  void wait() {
    for (auto& w : works) w->wait();
    works.clear();
  }
};

// What forward and backward share: the plan, the per-(query chunk, key chunk) arguments.
struct RingContext {
  RingAttentionArgs args;
  int rank = 0, P = 1;
  double scale = 0;
  std::map<std::pair<int64_t, int64_t>, std::shared_ptr<const BlockLayout>> layouts;

  const RingPlan& plan() const { return *args.plan; }
  // The block-attention arguments of query chunk cq against key chunk ck; false: nothing to do.
  bool pair_args(int64_t cq, int64_t ck, BlockAttentionArgs& a) {
    const RingPlan& p = plan();
    if (p.chunk_range(cq).size() == 0 || p.chunk_range(ck).size() == 0 || !p.causally_visible(cq, ck)) return false;
    a = BlockAttentionArgs{};
    a.block_size = p.block_size;
    a.causal = p.causal && cq == ck;  // an earlier chunk's keys are all visible: no element mask
    a.scale = scale;
    if (args.layout) {
      auto it = layouts.find({cq, ck});
      if (it == layouts.end())
        it = layouts.emplace(std::make_pair(cq, ck), chunk_layout(*args.layout, p, cq, ck)).first;
      if (!it->second) return false;
      a.layout = it->second.get();
      a.layout_owner = it->second;
    }
    return true;
  }
  // The block-attention arguments of query chunk cq against the local keys; false: none to do.
  // Their masking is all in key_last (so the kernel is causal), shifted to the chunk's first
  // position: the kernel compares key_last with the query's row in the chunk.
  std::map<int64_t, std::pair<std::shared_ptr<const BlockLayout>, std::vector<int64_t>>> local_layouts;
  bool local_args(int64_t cq, BlockAttentionArgs& a) {
    const RingLocalKeys& lk = args.local;
    if (!lk.k.defined()) return false;
    const TokenRange q = plan().chunk_range(cq);
    auto it = local_layouts.find(cq);
    if (it == local_layouts.end()) {
      auto sub = sub_layout(*lk.layout, q, {0, lk.k.size(2)}, true, " [local keys, chunk " + std::to_string(cq) + "]");
      std::vector<int64_t> last(lk.key_last);
      for (int64_t& l : last) l -= q.begin;
      it = local_layouts.emplace(cq, std::make_pair(std::move(sub), std::move(last))).first;
    }
    if (!it->second.first) return false;
    a = BlockAttentionArgs{};
    a.block_size = plan().block_size;
    a.causal = true;
    a.scale = scale;
    a.layout = it->second.first.get();
    a.layout_owner = it->second.first;
    a.key_last = it->second.second;
    return true;
  }
};

void check_local_keys(const RingLocalKeys& lk, const Tensor& q, const RingPlan& plan) {
  if (!lk.k.defined()) return;
  SPARROW_CHECK(lk.v.defined() && lk.layout, "ring_attention: local keys need values and a layout");
  SPARROW_CHECK(lk.k.dim() == 4 && lk.k.shape() == lk.v.shape() && lk.k.size(0) == q.size(0) &&
                    lk.k.size(1) == q.size(1) && lk.k.size(3) == q.size(3),
                "ring_attention: local keys ", shape_str(lk.k.shape()), " / values ", shape_str(lk.v.shape()),
                " for queries ", shape_str(q.shape()));
  const BlockLayout& L = *lk.layout;
  SPARROW_CHECK(L.seq_len == plan.seq_len && L.block_size == plan.block_size && L.key_len == lk.k.size(2) &&
                    static_cast<int64_t>(lk.key_last.size()) == lk.k.size(2),
                "ring_attention: the local keys' layout is for ", L.seq_len, " queries × ", L.key_len,
                " keys at block ", L.block_size, " (", lk.key_last.size(), " key_last entries); the sequence has ",
                plan.seq_len, " at block ", plan.block_size, " and ", lk.k.size(2), " local keys");
}

}  // namespace

// The two ways round the ring, and the rank a shard moving that way comes from and goes to.
constexpr int kDirections[2] = {+1, -1};
int ahead(int r, int d, int P) { return ((r + d) % P + P) % P; }

Tensor ring_attention(const Tensor& q, const Tensor& k, const Tensor& v, const RingAttentionArgs& args,
                      RingStats* stats) {
  SPARROW_CHECK(args.comm && args.plan, "ring_attention: needs a communicator and a plan");
  auto ctx = std::make_shared<RingContext>();
  ctx->args = args;
  if (args.local.k
          .defined()) {  // held for the backward without their history (their inputs' grads come from this node)
    ctx->args.local.k = args.local.k.detach();
    ctx->args.local.v = args.local.v.detach();
  }
  ctx->rank = args.comm->rank();
  ctx->P = args.comm->size();
  const RingPlan& plan = *args.plan;
  const int r = ctx->rank, P = ctx->P;
  SPARROW_CHECK(plan.ranks == P, "ring_attention: the plan is for ", plan.ranks, " ranks, the communicator has ", P);
  check_dim("ring_attention", q, 4);
  SPARROW_CHECK(q.shape() == k.shape() && k.shape() == v.shape() && q.size(2) == plan.local_len(r),
                "ring_attention: rank ", r, " holds ", plan.local_len(r), " of ", plan.seq_len, " tokens; q/k/v are ",
                shape_str(q.shape()), " / ", shape_str(k.shape()), " / ", shape_str(v.shape()));
  check_local_keys(args.local, q, plan);
  ctx->scale = args.scale > 0 ? args.scale : 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  const DType acc = q.dtype() == DType::F64 ? DType::F64 : DType::F32;
  const auto mine = plan.chunks_of(r);
  auto reach = [&plan](int d, int origin) { return d > 0 ? plan.reach_fwd[origin] : plan.reach_bwd[origin]; };

  const Pair qc = split_local(q, plan, r);
  const Pair own_k = split_local(k, plan, r), own_v = split_local(v, plan, r);
  Pair out = zeros_like_pair(qc, acc);
  Pair lse{full(Shape(qc[0].shape().begin(), qc[0].shape().end() - 1), -INFINITY, acc, q.device()),
           full(Shape(qc[1].shape().begin(), qc[1].shape().end() - 1), -INFINITY, acc, q.device())};
  DType kernel_out = acc;  // the dtype the forward kernel hands O back in (its backward reads that)
  RingStats st;

  // Adds the attention of this rank's queries to origin's keys into (out, lse).
  auto attend = [&](int origin, const Pair& ks, const Pair& vs) {
    const auto theirs = plan.chunks_of(origin);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) {
        BlockAttentionArgs a;
        if (!ctx->pair_args(mine[i], theirs[j], a)) continue;
        BlockAttentionForward f = block_attention_forward(qc[i], ks[j], vs[j], a);
        kernel_out = f.out.dtype();
        merge_by_lse(out[i], lse[i], f.out, f.lse);
      }
  };

  // held[d]: the shard that reached this rank moving in direction d (its own at step 0).
  Pair held_k[2] = {own_k, own_k}, held_v[2] = {own_v, own_v};
  for (int h = 0; h < P; ++h) {
    // Post the next hop's exchanges first, so they run while this step computes.
    Exchange x;
    Pair next_k[2], next_v[2];
    for (int di = 0; di < 2 && h + 1 < P; ++di) {
      const int d = kDirections[di];
      const int origin = ahead(r, -d * h, P), incoming = ahead(r, -d * (h + 1), P);
      if (h + 1 <= reach(d, origin)) x.send(*args.comm, {&held_k[di], &held_v[di]}, ahead(r, d, P));
      if (h + 1 <= reach(d, incoming)) {
        next_k[di] = alloc_pair(q, plan, incoming, k.dtype());
        next_v[di] = alloc_pair(q, plan, incoming, v.dtype());
        x.recv(*args.comm, {&next_k[di], &next_v[di]}, ahead(r, -d, P));
      }
    }
    if (h == 0) {
      if (plan.need[r][r]) attend(r, own_k, own_v);
      for (int i = 0; i < 2; ++i) {
        BlockAttentionArgs a;
        if (!ctx->local_args(mine[i], a)) continue;
        BlockAttentionForward f = block_attention_forward(qc[i], args.local.k, args.local.v, a);
        kernel_out = f.out.dtype();
        merge_by_lse(out[i], lse[i], f.out, f.lse);
      }
    } else {
      for (int di = 0; di < 2; ++di) {
        const int d = kDirections[di], origin = ahead(r, -d * h, P);
        if (h > reach(d, origin)) continue;  // nothing travelled here this way
        if (plan.need[r][origin]) {
          ++st.hops_computed;
          attend(origin, held_k[di], held_v[di]);
        } else {
          ++st.hops_idle;  // passing through to a rank further on
        }
      }
    }
    st.bytes_sent += x.bytes;
    x.wait();
    for (int di = 0; di < 2; ++di) {
      held_k[di] = next_k[di];
      held_v[di] = next_v[di];
    }
  }
  // Bytes a one-way full ring would have sent from this rank and this plan did not.
  const int64_t row_bytes = (k.numel() / std::max<int64_t>(k.size(2), 1)) * static_cast<int64_t>(dtype_size(k.dtype()));
  for (int h = 0; h + 1 < P; ++h) st.bytes_not_sent += 2 * row_bytes * plan.local_len(ahead(r, -h, P));
  st.bytes_not_sent -= st.bytes_sent;
  if (stats) *stats = st;

  Tensor result = join(out, q.dtype());
  std::vector<Tensor> inputs{q, k, v};
  if (args.local.k.defined()) inputs.insert(inputs.end(), {args.local.k, args.local.v});
  if (!needs_grad(inputs)) return result;

  // Saved for backward: O in the dtype the kernels return it, and the merged LSE.
  const Pair o_saved{out[0].to(kernel_out), out[1].to(kernel_out)};
  const DType kd = k.dtype(), vd = v.dtype(), qd = q.dtype();
  return record(
      result, "ring_attention", inputs, [ctx, qc, own_k, own_v, o_saved, lse, acc, kd, vd, qd](const Tensor& g) {
        const RingPlan& plan = ctx->plan();
        dist::Communicator& comm = *ctx->args.comm;
        const int r = ctx->rank, P = ctx->P;
        const auto mine = plan.chunks_of(r);
        auto reach = [&plan](int d, int origin) { return d > 0 ? plan.reach_fwd[origin] : plan.reach_bwd[origin]; };
        const Pair dout = split_local(g.to(qc[0].device()), plan, r);
        Pair dq = zeros_like_pair(qc, acc);

        // Adds this rank's share of origin's dK, dV into (dk, dv), and of its own dQ.
        auto backprop = [&](int origin, const Pair& ks, const Pair& vs, Pair& dk, Pair& dv) {
          const auto theirs = plan.chunks_of(origin);
          for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j) {
              BlockAttentionArgs a;
              if (!ctx->pair_args(mine[i], theirs[j], a)) continue;
              BlockAttentionGrads gr = block_attention_backward(qc[i], ks[j], vs[j], o_saved[i], lse[i], dout[i], a);
              accumulate_(dq[i], gr.dq);
              accumulate_(dk[j], gr.dk);
              accumulate_(dv[j], gr.dv);
            }
        };

        // This rank's own share stays here; each direction's travelling accumulators start at zero
        // and come home from the end of their path.
        Pair own_dk = zeros_like_pair(own_k, acc), own_dv = zeros_like_pair(own_v, acc);
        if (plan.need[r][r]) backprop(r, own_k, own_v, own_dk, own_dv);
        // The local keys: this rank's queries' share of their gradients.
        const RingLocalKeys& local = ctx->args.local;
        Tensor local_dk, local_dv;
        if (local.k.defined()) {
          local_dk = zeros(local.k.shape(), acc, local.k.device());
          local_dv = zeros(local.v.shape(), acc, local.v.device());
          for (int i = 0; i < 2; ++i) {
            BlockAttentionArgs a;
            if (!ctx->local_args(mine[i], a)) continue;
            BlockAttentionGrads gr = block_attention_backward(qc[i], local.k, local.v, o_saved[i], lse[i], dout[i], a);
            accumulate_(dq[i], gr.dq);
            accumulate_(local_dk, gr.dk);
            accumulate_(local_dv, gr.dv);
          }
        }
        Pair held_k[2] = {own_k, own_k}, held_v[2] = {own_v, own_v};
        Pair held_dk[2] = {zeros_like_pair(own_k, acc), zeros_like_pair(own_k, acc)};
        Pair held_dv[2] = {zeros_like_pair(own_v, acc), zeros_like_pair(own_v, acc)};
        // Accumulators whose path ended here, sent home after the ring steps: sent during them, a
        // return could reach its origin ahead of ring messages this rank sends it later, and MPI and
        // NCCL match one peer's messages in the order they were sent.
        struct Return {
          int origin;
          Pair dk, dv;
        };
        std::vector<Return> returns;
        for (int h = 0; h < P; ++h) {
          Exchange in, out;
          Pair next_k[2], next_v[2], next_dk[2], next_dv[2];
          for (int di = 0; di < 2 && h + 1 < P; ++di) {
            const int d = kDirections[di], incoming = ahead(r, -d * (h + 1), P);
            if (h + 1 <= reach(d, incoming)) {
              next_k[di] = alloc_pair(qc[0], plan, incoming, kd);
              next_v[di] = alloc_pair(qc[0], plan, incoming, vd);
              next_dk[di] = alloc_pair(qc[0], plan, incoming, acc);
              next_dv[di] = alloc_pair(qc[0], plan, incoming, acc);
              in.recv(comm, {&next_k[di], &next_v[di], &next_dk[di], &next_dv[di]}, ahead(r, -d, P));
            }
          }
          for (int di = 0; di < 2; ++di) {
            const int d = kDirections[di], origin = ahead(r, -d * h, P);
            if (h > 0 && h > reach(d, origin)) continue;  // nothing travelled here this way
            if (h > 0 && plan.need[r][origin]) backprop(origin, held_k[di], held_v[di], held_dk[di], held_dv[di]);
            if (h + 1 <= reach(d, origin)) {
              out.send(comm, {&held_k[di], &held_v[di], &held_dk[di], &held_dv[di]}, ahead(r, d, P));
            } else if (h > 0 && h == reach(d, origin)) {
              returns.push_back({origin, held_dk[di], held_dv[di]});  // the end of this shard's path
            }
          }
          in.wait();
          out.wait();
          for (int di = 0; di < 2; ++di) {
            held_k[di] = next_k[di];
            held_v[di] = next_v[di];
            held_dk[di] = next_dk[di];
            held_dv[di] = next_dv[di];
          }
        }
        // Going home: this rank's keys' summed gradients come back, one group from each way they
        // travelled (from different ranks, since reach_fwd + reach_bwd < P). Receives first.
        Exchange home;
        Pair back_dk[2], back_dv[2];
        for (int di = 0; di < 2; ++di) {
          const int d = kDirections[di], hops = reach(d, r);
          if (hops == 0) continue;
          back_dk[di] = zeros_like_pair(own_k, acc);
          back_dv[di] = zeros_like_pair(own_v, acc);
          home.recv(comm, {&back_dk[di], &back_dv[di]}, ahead(r, d * hops, P));
        }
        for (Return& ret : returns) home.send(comm, {&ret.dk, &ret.dv}, ret.origin);
        home.wait();
        for (int di = 0; di < 2; ++di)
          if (back_dk[di][0].defined())
            for (int j = 0; j < 2; ++j) {
              accumulate_(own_dk[j], back_dk[di][j]);
              accumulate_(own_dv[j], back_dv[di][j]);
            }
        std::vector<Tensor> grads{join(dq, qd), join(own_dk, kd), join(own_dv, vd)};
        if (local.k.defined()) grads.insert(grads.end(), {local_dk.to(local.k.dtype()), local_dv.to(local.v.dtype())});
        return grads;
      });
}

Tensor zigzag_shard(const Tensor& x, const RingPlan& plan, int rank) {
  SPARROW_CHECK(x.dim() >= 3 && x.size(2) == plan.seq_len, "zigzag_shard: ", describe(x), " for a plan of ",
                plan.seq_len, " tokens");
  const auto c = plan.chunks_of(rank);
  const TokenRange a = plan.chunk_range(c[0]), b = plan.chunk_range(c[1]);
  return join({token_rows(x, a.begin, a.end), token_rows(x, b.begin, b.end)}, x.dtype());
}

Tensor zigzag_unshard(const std::vector<Tensor>& shards, const RingPlan& plan) {
  SPARROW_CHECK(static_cast<int>(shards.size()) == plan.ranks, "zigzag_unshard: ", shards.size(), " shards for ",
                plan.ranks, " ranks");
  Tensor out = empty(with_len(shards[0].shape(), plan.seq_len), shards[0].dtype(), shards[0].device());
  for (int r = 0; r < plan.ranks; ++r) {
    int64_t off = 0;
    for (int64_t c : plan.chunks_of(r)) {
      const TokenRange t = plan.chunk_range(c);
      Tensor dst = out.slice(2, t.begin, t.end);
      copy_(dst, shards[r].slice(2, off, off + t.size()));
      off += t.size();
    }
  }
  return out;
}

}  // namespace sparrow::attn
