// The framework's ops: the one public header. Every op here
//   - checks its inputs and throws sparrow::Error naming the op and the shapes on a mismatch,
//   - works on any strided input (it calls contiguous() where its kernel needs it),
//   - dispatches on device to the kernel of the same name in ops/cpu/ or ops/cuda/,
//   - records itself for autograd (when grad mode is on and an input requires grad), with a
//     backward that is itself made of these ops (so it runs on either device).
// Dtypes: F32 and F64 everywhere on the CPU, BF16 stored on the CPU (computed in f32) and
// computed natively on the GPU (f32 accumulation). Outputs take the inputs' dtype.
#pragma once
#include <cstdint>
#include <vector>

#include "framework/core/tensor.h"

namespace sparrow {

class Generator;

// --- elementwise, broadcasting (NumPy rules); gradients are summed back to each input's shape ---
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
// In place, no autograd (optimizers, gradient accumulation): a += b (b broadcast to a).
void add_(Tensor& a, const Tensor& b);
void mul_(Tensor& a, double s);
void fill_(Tensor& a, double v);

// --- scalar ops ---
Tensor add_scalar(const Tensor& a, double s);
Tensor mul_scalar(const Tensor& a, double s);
Tensor pow_scalar(const Tensor& a, double p);  // a^p (for non-integer p, a must be positive)
Tensor neg(const Tensor& a);

// --- unary ---
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor gelu(const Tensor& a);  // tanh approximation (GPT-2): 0.5x(1+tanh(√(2/π)(x+0.044715x³)))
Tensor silu(const Tensor& a);  // x·σ(x)

// --- reductions over the listed dims (empty list: all dims) ---
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Max over one dim; the gradient flows to the first maximal element.
Tensor max(const Tensor& a, int64_t dim, bool keepdim = false);
// Sums a broadcast gradient back to `shape` (the reverse of broadcasting).
Tensor sum_to(const Tensor& a, const Shape& shape);

// --- matrix products (row-major). a: [..., M, K] (or [..., K, M] with trans_a),
//     b: [..., K, N] (or [..., N, K] with trans_b); leading batch dims broadcast. ---
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// y = x·Wᵀ + b + residual: x [..., K], weight [N, K], bias [N] or undefined, residual [..., N] or
// undefined → [..., N]. On the GPU the bias is added in the GEMM's epilogue and the residual is
// its C input (a residual connection without a separate add).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const Tensor& residual = Tensor());
// y = gelu(x·W1ᵀ + b1)·W2ᵀ + b2 + residual (biases and residual may be undefined) as one node; on
// the GPU the bias and GELU (and, backward, GELU's derivative) ride in the GEMMs' epilogues, the
// residual in the second GEMM's C input.
Tensor mlp_gelu(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2,
                const Tensor& residual = Tensor());

// --- shape and views ---
Tensor reshape(const Tensor& a, const Shape& shape);                     // one -1 allowed; a view when contiguous
Tensor transpose(const Tensor& a, int64_t d0, int64_t d1);               // view
Tensor permute(const Tensor& a, const std::vector<int64_t>& order);      // view
Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end);  // view, [start, end)
Tensor concat(const std::vector<Tensor>& parts, int64_t dim);
std::vector<Tensor> split(const Tensor& a, const std::vector<int64_t>& sizes, int64_t dim);
Tensor contiguous(const Tensor& a);
// Uninitialised tensors like each of `likes` (shape, dtype, device), back to back in one buffer
// when `likes` themselves are (contiguous, one storage, consecutive): the gradients of q, k, v
// sliced from one tensor, which the backward engine then takes as that tensor's gradient with no
// copy (engine.cpp, "borrowed"); otherwise separate. Not recorded.
std::vector<Tensor> empty_adjacent(const std::vector<Tensor>& likes);
Tensor cast(const Tensor& a, DType dtype);    // recorded; gradient cast back
Tensor to_device(const Tensor& a, Device d);  // recorded; gradient moved back

// --- embedding: weight [V, D], ids I32 [...] → [..., D]; ids out of [0, V) throw. ---
Tensor embedding(const Tensor& weight, const Tensor& ids);

// --- normalisations over the last dim (fused forward, hand-written backward) ---
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  double eps = 1e-5);  // bias may be undefined
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps = 1e-6);

// --- softmax family over `dim` ---
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
// Fused softmax cross-entropy: logits [N, V], targets I32 [N]; mean over targets != ignore_index.
// Returns a scalar (0 when every target is ignored), f32 for f32/bf16 logits and f64 for f64.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int32_t ignore_index = -100);
// cross_entropy(x·Wᵀ, targets) (x [N, K], weight [V, K] of x's dtype; logits in f32, f64 for f64)
// without ever holding the [N, V] logits: `chunk` rows at a time, and the backward recomputes each
// chunk's logits (one more x·Wᵀ) for its gradient. The language model's head and loss: at 2M
// tokens and V 256 the unfused pair held 6 GB of logits and their gradients.
Tensor linear_cross_entropy(const Tensor& x, const Tensor& weight, const Tensor& targets, int64_t chunk,
                            int32_t ignore_index = -100);

// --- dropout: zero with probability p, scale survivors by 1/(1-p); identity when !training or p == 0.
//     The mask is drawn from gen, so a seeded Generator reproduces it. ---
Tensor dropout(const Tensor& x, double p, Generator& gen, bool training = true);

// --- rotary position embedding on x [B, H, N, D] (D even): pairs (x[2i], x[2i+1]) rotate by
//     angle pos·base^(−2i/D), pos = position_offset + n. ---
Tensor rope(const Tensor& x, int64_t position_offset = 0, double base = 10000.0);
// The attention input from one fused projection: qkv [B, T, 3·H·D] (q, k, v each H heads of D)
// → [3, B, H, T, D] with q and k rotated as rope does and v copied. Equals stacking
// rope(q), rope(k), v after the permute, in one pass forward and one backward.
Tensor rope_heads(const Tensor& qkv, int64_t heads, int64_t position_offset = 0, double base = 10000.0);

// --- operators ---
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double s) { return add_scalar(a, s); }
inline Tensor operator*(const Tensor& a, double s) { return mul_scalar(a, s); }

}  // namespace sparrow
