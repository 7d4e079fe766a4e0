// cuDNN SDPA through the cudnn-frontend graph API. Compiled in CUDA builds only; a build
// without CUDA gets the stubs at the bottom that report it.
#include "attention/kernels/cuda/cudnn_sdpa.h"

#ifdef SPARROW_WITH_CUDA
#include <cudnn.h>
// The frontend header defines helpers it never calls itself; keep our -Wall -Wextra build clean.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <cudnn_frontend.h>
#pragma GCC diagnostic pop

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "framework/cuda/allocator.h"
#include "framework/cuda/graph.h"
#include "framework/cuda/runtime.h"
#include "framework/ops/ops.h"

namespace sparrow::attn::cuda {
namespace {

namespace fe = cudnn_frontend;

constexpr const char* kOp = "cudnn_sdpa";

enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV, kSeqQ, kSeqKV };

void check_cudnn(cudnnStatus_t s, const char* what) {
  if (s != CUDNN_STATUS_SUCCESS) fail(kOp, ": ", what, " failed: ", cudnnGetErrorString(s));
}

void check_fe(fe::error_t e, const char* what) {
  if (e.is_bad()) fail(kOp, ": ", what, " failed: ", e.get_message());
}

// One handle per device, bound to Sparrow's stream.
cudnnHandle_t handle() {
  static std::mutex mu;
  static cudnnHandle_t handles[64] = {};
  const int dev = sparrow::cuda::current_device();
  SPARROW_CHECK(dev < 64, kOp, ": device ", dev, " out of range");
  std::lock_guard<std::mutex> lock(mu);
  if (!handles[dev]) {
    check_cudnn(cudnnCreate(&handles[dev]), "cudnnCreate");
    check_cudnn(cudnnSetStream(handles[dev], sparrow::cuda::stream()), "cudnnSetStream");
  }
  return handles[dev];
}

struct Key {
  int device;
  int64_t b, h, n, d;
  bool causal;
  uint32_t scale_bits;
  bool backward;
  bool operator<(const Key& o) const {
    return std::tie(device, b, h, n, d, causal, scale_bits, backward) <
           std::tie(o.device, o.b, o.h, o.n, o.d, o.causal, o.scale_bits, o.backward);
  }
};

struct Built {
  std::shared_ptr<fe::graph::Graph> graph;  // null when cuDNN refused the shape
  int64_t workspace = 0;
  std::string error;      // why it was refused
  bool seq_lens = false;  // the backward takes per-batch sequence lengths (kSeqQ, kSeqKV), all N
  // Why a CUDA graph cannot record this plan's execute, or "" when it can.
  std::string not_capturable;
};

std::shared_ptr<fe::graph::Tensor_attributes> bhsd(fe::graph::Graph& g, const char* name, int64_t uid, const Key& k) {
  return g.tensor(fe::graph::Tensor_attributes()
                      .set_name(name)
                      .set_uid(uid)
                      .set_dim({k.b, k.h, k.n, k.d})
                      .set_stride({k.h * k.n * k.d, k.n * k.d, k.d, 1}));
}

void set_bhsd(fe::graph::Tensor_attributes& t, int64_t uid, const Key& k) {
  t.set_output(true).set_uid(uid).set_dim({k.b, k.h, k.n, k.d}).set_stride({k.h * k.n * k.d, k.n * k.d, k.d, 1});
}

// O and dO are [B, H, N, D] views of [B, N, H, D] memory: the layout the output projection reads
// (rows of H·D per token). The forward writes O there and the backward reads dO from there, so
// neither the merge of heads after attention nor its gradient costs a copy.
std::vector<int64_t> bshd_strides(const Key& k) { return {k.n * k.h * k.d, k.d, k.h * k.d, 1}; }

std::shared_ptr<fe::graph::Tensor_attributes> bshd(fe::graph::Graph& g, const char* name, int64_t uid, const Key& k) {
  return g.tensor(fe::graph::Tensor_attributes()
                      .set_name(name)
                      .set_uid(uid)
                      .set_dim({k.b, k.h, k.n, k.d})
                      .set_stride(bshd_strides(k)));
}

Built build_graph(const Key& k, bool seq_lens) {
  float scale;
  std::memcpy(&scale, &k.scale_bits, 4);
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto Q = bhsd(*g, "Q", kQ, k), K = bhsd(*g, "K", kK, k), V = bhsd(*g, "V", kV, k);
  const std::vector<int64_t> stats_dim{k.b, k.h, k.n, 1}, stats_stride{k.h * k.n, k.n, 1, 1};
  if (!k.backward) {
    auto opts = fe::graph::SDPA_attributes().set_name("sdpa").set_generate_stats(true).set_attn_scale(scale);
    opts.set_causal_mask(k.causal);
    auto [O, Stats] = g->sdpa(Q, K, V, opts);
    O->set_output(true).set_uid(kO).set_dim({k.b, k.h, k.n, k.d}).set_stride(bshd_strides(k));
    Stats->set_output(true)
        .set_uid(kStats)
        .set_data_type(fe::DataType_t::FLOAT)
        .set_dim(stats_dim)
        .set_stride(stats_stride);
  } else {
    auto O = bshd(*g, "O", kO, k), dO = bshd(*g, "dO", kDO, k);
    auto Stats = g->tensor(fe::graph::Tensor_attributes()
                               .set_name("Stats")
                               .set_uid(kStats)
                               .set_dim(stats_dim)
                               .set_stride(stats_stride)
                               .set_data_type(fe::DataType_t::FLOAT));
    auto opts = fe::graph::SDPA_backward_attributes().set_name("sdpa_backward").set_attn_scale(scale);
    opts.set_causal_mask(k.causal);
    if (seq_lens) {
      // Every sequence is whole (length N), so this mask hides nothing; see build() for why.
      auto lens = [&](const char* name, int64_t uid) {
        return g->tensor(fe::graph::Tensor_attributes()
                             .set_name(name)
                             .set_uid(uid)
                             .set_dim({k.b, 1, 1, 1})
                             .set_stride({1, 1, 1, 1})
                             .set_data_type(fe::DataType_t::INT32));
      };
      opts.set_padding_mask(true).set_seq_len_q(lens("seq_len_q", kSeqQ)).set_seq_len_kv(lens("seq_len_kv", kSeqKV));
    }
    auto [dQ, dK, dV] = g->sdpa_backward(Q, K, V, O, dO, Stats, opts);
    set_bhsd(*dQ, kDQ, k);
    set_bhsd(*dK, kDK, k);
    set_bhsd(*dV, kDV, k);
  }
  Built out;
  cudnnHandle_t h = handle();
  fe::error_t e = g->validate();
  if (e.is_good()) e = g->build_operation_graph(h);
  if (e.is_good()) e = g->create_execution_plans({fe::HeurMode_t::A});
  if (e.is_good()) e = g->check_support();
  if (e.is_good()) e = g->build_plans();
  if (e.is_good()) e = g->get_workspace_size(out.workspace);
  if (e.is_bad()) {
    out.error = e.get_message();
    return out;
  }
  out.graph = std::move(g);
  out.seq_lens = seq_lens;
  return out;
}

// For a backward with N % 128 ≠ 0, cudnn-frontend (with cuDNN ≤ 9.15) adds an all-N padding mask
// itself and fills its lengths on every execute by copying from a host vector that dies when
// execute returns: a CUDA graph that recorded the copy would replay it from freed memory. Passing
// our own lengths (device tensors, written by a kernel) avoids that path; if cuDNN cannot build
// that variant, the plain one is used and marked as not capturable.
Built build(const Key& k) {
  if (!k.backward || k.n % 128 == 0) return build_graph(k, false);
  Built with_lens = build_graph(k, true);
  if (with_lens.graph) return with_lens;
  Built plain = build_graph(k, false);
  plain.not_capturable = "cuDNN SDPA backward at N = " + std::to_string(k.n) +
                         " (not a multiple of 128) fills workspace from temporary host memory on each call, "
                         "which a CUDA graph cannot replay";
  return plain;
}

const Built& get(const Key& k) {
  static std::mutex mu;
  static std::map<Key, Built> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(k);
  if (it == cache.end()) it = cache.emplace(k, build(k)).first;
  return it->second;
}

Key key_for(const Tensor& q, bool causal, double scale, bool backward) {
  const float s = static_cast<float>(scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(q.size(3))));
  Key k{sparrow::cuda::current_device(), q.size(0), q.size(1), q.size(2), q.size(3), causal, 0, backward};
  std::memcpy(&k.scale_bits, &s, 4);
  return k;
}

bool static_ok(const Tensor& q) {
  if (!q.defined() || !q.is_cuda() || q.dtype() != DType::BF16 || q.dim() != 4) return false;
  const int64_t d = q.size(3);
  if (d % 8 != 0 || d > 128 || q.size(2) < 1 || q.size(0) * q.size(1) < 1) return false;
  return cudnnGetVersion() >= 90000;
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v) {
  SPARROW_CHECK(static_ok(q) && k.shape() == q.shape() && v.shape() == q.shape() && k.dtype() == q.dtype() &&
                    v.dtype() == q.dtype() && k.device() == q.device() && v.device() == q.device(),
                kOp, ": needs bf16 q, k, v [B, H, N, D] of one shape on one CUDA device (D a multiple of 8, ≤ 128; ",
                "cuDNN ≥ 9), got ", describe(q), ", ", describe(k), ", ", describe(v));
}

const Built& require(const Key& key) {
  const Built& b = get(key);
  SPARROW_CHECK(b.graph, kOp, ": cuDNN has no ", key.backward ? "backward" : "forward", " SDPA plan for [", key.b, ", ",
                key.h, ", ", key.n, ", ", key.d, "]", key.causal ? " causal" : "", ": ", b.error);
  return b;
}

void run(const Built& b, std::unordered_map<int64_t, void*>& pack, const Tensor& like) {
  if (!b.not_capturable.empty() && sparrow::cuda::capturing()) fail(kOp, ": ", b.not_capturable);
  Tensor lens;
  if (b.seq_lens) {
    const int64_t batch = like.size(0), n = like.size(2);
    lens = full({batch}, static_cast<double>(n), DType::I32, like.device());
    pack[kSeqQ] = lens.data_ptr();
    pack[kSeqKV] = lens.data_ptr();
  }
  Tensor ws;
  void* wp = nullptr;
  if (b.workspace > 0) {
    // Bytes as bf16 elements (2 bytes each), from the caching allocator.
    ws = empty({(b.workspace + 1) / 2}, DType::BF16, like.device());
    wp = ws.data_ptr();
  }
  check_fe(b.graph->execute(handle(), pack, wp), "execute");
}

// bf16, contiguous and 16-byte aligned (what cuDNN's kernels load): t itself when it already
// is, else a copy.
Tensor bf16_input(const Tensor& t, const Tensor& q, const char* what) {
  SPARROW_CHECK(t.shape() == q.shape() && t.device() == q.device(), kOp, ": ", what, " ", describe(t),
                " does not match q ", describe(q));
  if (t.dtype() == DType::BF16 && t.is_contiguous() && reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0) return t;
  Tensor c = empty(q.shape(), DType::BF16, q.device());
  copy_(c, t);
  return c;
}

// t as a bf16 [B, H, N, D] view of [B, N, H, D] memory (O and dO's layout): t itself when it
// already is one, else a copy into that layout.
Tensor bf16_bshd(const Tensor& t, const Tensor& q, const char* what) {
  SPARROW_CHECK(t.shape() == q.shape() && t.device() == q.device(), kOp, ": ", what, " ", describe(t),
                " does not match q ", describe(q));
  const int64_t B = q.size(0), H = q.size(1), N = q.size(2), D = q.size(3);
  const Shape want{N * H * D, D, H * D, 1};
  bool same = t.dtype() == DType::BF16 && reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  for (size_t i = 0; i < 4 && same; ++i) same = t.shape()[i] == 1 || t.strides()[i] == want[i];
  if (same) return t;
  Tensor c = make_view(empty({B, N, H, D}, DType::BF16, q.device()), q.shape(), want, 0);
  copy_(c, t);
  return c;
}

}  // namespace

bool cudnn_sdpa_supported(const Tensor& q, bool causal) {
  try {
    if (!static_ok(q)) return false;
    return get(key_for(q, causal, 0, false)).graph && get(key_for(q, causal, 0, true)).graph;
  } catch (const std::exception&) {
    return false;
  }
}

BlockAttentionForward cudnn_sdpa_forward(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale) {
  check_inputs(q, k, v);
  const Tensor qc = bf16_input(q, q, "q"), kc = bf16_input(k, q, "k"), vc = bf16_input(v, q, "v");
  const Built& b = require(key_for(q, causal, scale, false));
  BlockAttentionForward r;
  r.out = make_view(empty({q.size(0), q.size(2), q.size(1), q.size(3)}, DType::BF16, q.device()), q.shape(),
                    {q.size(2) * q.size(1) * q.size(3), q.size(3), q.size(1) * q.size(3), 1}, 0);
  r.lse = empty({q.size(0), q.size(1), q.size(2), 1}, DType::F32, q.device());
  std::unordered_map<int64_t, void*> pack{{kQ, qc.data_ptr()},
                                          {kK, kc.data_ptr()},
                                          {kV, vc.data_ptr()},
                                          {kO, r.out.data_ptr()},
                                          {kStats, r.lse.data_ptr()}};
  run(b, pack, q);
  return r;
}

BlockAttentionGrads cudnn_sdpa_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                        const Tensor& lse, const Tensor& dout, bool causal, double scale) {
  check_inputs(q, k, v);
  const Tensor qc = bf16_input(q, q, "q"), kc = bf16_input(k, q, "k"), vc = bf16_input(v, q, "v");
  Tensor o = bf16_bshd(out, q, "out");
  Tensor g = bf16_bshd(dout, q, "dout");
  SPARROW_CHECK(lse.device() == q.device() && lse.dtype() == DType::F32 && lse.is_contiguous() &&
                    lse.numel() == q.size(0) * q.size(1) * q.size(2),
                kOp, ": lse ", describe(lse), " does not match q ", describe(q));
  const Built& b = require(key_for(q, causal, scale, true));
  BlockAttentionGrads r;
  // One buffer (q, k, v agree in shape here): q, k, v sliced from one tensor then get its
  // gradient with no copy (empty_adjacent).
  const std::vector<Tensor> grads = empty_adjacent({qc, kc, vc});
  r.dq = grads[0];
  r.dk = grads[1];
  r.dv = grads[2];
  std::unordered_map<int64_t, void*> pack{{kQ, qc.data_ptr()},    {kK, kc.data_ptr()},    {kV, vc.data_ptr()},
                                          {kO, o.data_ptr()},     {kDO, g.data_ptr()},    {kStats, lse.data_ptr()},
                                          {kDQ, r.dq.data_ptr()}, {kDK, r.dk.data_ptr()}, {kDV, r.dv.data_ptr()}};
  run(b, pack, q);
  return r;
}

}  // namespace sparrow::attn::cuda

#else  // !SPARROW_WITH_CUDA

namespace sparrow::attn::cuda {

bool cudnn_sdpa_supported(const Tensor&, bool) { return false; }

BlockAttentionForward cudnn_sdpa_forward(const Tensor&, const Tensor&, const Tensor&, bool, double) {
  fail("cudnn_sdpa: this build has no CUDA (configure with SPARROW_CUDA=ON on a machine with nvcc)");
}

BlockAttentionGrads cudnn_sdpa_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                        const Tensor&, bool, double) {
  fail("cudnn_sdpa: this build has no CUDA (configure with SPARROW_CUDA=ON on a machine with nvcc)");
}

}  // namespace sparrow::attn::cuda

#endif
