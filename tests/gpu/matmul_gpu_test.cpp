// matmul on CUDA (cuBLASLt) against the CPU: f32 within 1e-5 relative (no TF32), f64 tightly,
// bf16 within bf16 tolerance; every transpose combination, batch broadcasting, views, and the
// gradients. Skips where no GPU is visible.
#include <gtest/gtest.h>

#include "common/gradcheck.h"

using namespace sparrow;
using sparrow::testing::rel_error;

namespace {

struct Case {
  Shape a, b;
  bool ta, tb;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c =
      {
          {{64, 32}, {32, 48}, false, false},         {{32, 64}, {32, 48}, true, false},
          {{64, 32}, {48, 32}, false, true},          {{32, 64}, {48, 32}, true, true},
          {{37, 19}, {19, 23}, false, false},          // odd sizes: unaligned leading dims
          {{3, 4, 33, 17}, {4, 17, 9}, false, false},  // b broadcast over the leading batch dim
          {{2, 1, 16, 8}, {3, 8, 16}, true, true},     // both broadcast
          {{8, 16}, {5, 16, 12}, false, false},        // 2-D a, batched b (per-element calls)
          {{2, 5, 24}, {24, 7}, false, false},         // folded into one GEMM
          {{6, 128, 64}, {6, 128, 64}, false, true},
      };
  return c;
}

Tensor cpu_reference(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  return matmul(cast(a, DType::F64), cast(b, DType::F64), ta, tb);
}

}  // namespace

TEST(MatmulGpu, F32MatchesCpu) {
  SPARROW_REQUIRE_GPU();
  Generator g(21);
  for (const Case& c : cases()) {
    Tensor a = randn(c.a, g), b = randn(c.b, g);
    Tensor gpu = matmul(a.to(Device::cuda()), b.to(Device::cuda()), c.ta, c.tb);
    EXPECT_TRUE(gpu.is_cuda());
    Tensor cpu = matmul(a, b, c.ta, c.tb);
    EXPECT_EQ(gpu.shape(), cpu.shape());
    EXPECT_LT(rel_error(gpu, cpu), 1e-5) << shape_str(c.a) << " x " << shape_str(c.b);
  }
}

TEST(MatmulGpu, F64MatchesCpu) {
  SPARROW_REQUIRE_GPU();
  Generator g(22);
  for (const Case& c : cases()) {
    Tensor a = randn(c.a, g, DType::F64), b = randn(c.b, g, DType::F64);
    Tensor gpu = matmul(a.to(Device::cuda()), b.to(Device::cuda()), c.ta, c.tb);
    EXPECT_LT(rel_error(gpu, matmul(a, b, c.ta, c.tb)), 1e-12) << shape_str(c.a) << " x " << shape_str(c.b);
  }
}

TEST(MatmulGpu, Bf16MatchesCpu) {
  SPARROW_REQUIRE_GPU();
  Generator g(23);
  for (const Case& c : cases()) {
    Tensor a = randn(c.a, g, DType::BF16), b = randn(c.b, g, DType::BF16);
    Tensor gpu = matmul(a.to(Device::cuda()), b.to(Device::cuda()), c.ta, c.tb);
    EXPECT_EQ(gpu.dtype(), DType::BF16);
    // Same bf16 inputs, f32 accumulation on both sides: the difference is the output rounding.
    EXPECT_LT(rel_error(gpu, cpu_reference(a, b, c.ta, c.tb)), 1e-2) << shape_str(c.a) << " x " << shape_str(c.b);
  }
}

TEST(MatmulGpu, ViewsAndOddOffsets) {
  SPARROW_REQUIRE_GPU();
  Generator g(24);
  Tensor a = randn({3, 20, 9}, g), b = randn({3, 20, 13}, g);
  Tensor ag = a.to(Device::cuda()), bg = b.to(Device::cuda());
  // A transposed view, a row slice at an odd element offset (misaligned for 16-byte loads), and a
  // permuted view that must be copied.
  Tensor at = transpose(ag, 1, 2);
  EXPECT_LT(rel_error(matmul(at, bg), matmul(transpose(a, 1, 2), b)), 1e-5);
  Tensor sl = slice(bg, 2, 1, 12);
  EXPECT_LT(rel_error(matmul(ag, sl, true, false), matmul(a, slice(b, 2, 1, 12), true, false)), 1e-5);
  Tensor p = randn({20, 3, 9}, g);
  EXPECT_LT(rel_error(matmul(permute(p.to(Device::cuda()), {1, 0, 2}), bg, true, false),
                      matmul(permute(p, {1, 0, 2}), b, true, false)),
            1e-5);
  Tensor ab = cast(a, DType::BF16), bb = cast(b, DType::BF16);
  EXPECT_LT(rel_error(matmul(ab.to(Device::cuda()), slice(bb.to(Device::cuda()), 2, 1, 12), true, false),
                      cpu_reference(ab, slice(bb, 2, 1, 12), true, false)),
            1e-2);
}

TEST(MatmulGpu, GradientsMatchCpu) {
  SPARROW_REQUIRE_GPU();
  Generator g(25);
  for (const Case& c : cases()) {
    Tensor a = randn(c.a, g), b = randn(c.b, g);
    Tensor ag = a.to(Device::cuda()).detach(), bg = b.to(Device::cuda()).detach();
    a.requires_grad_(true);
    b.requires_grad_(true);
    ag.requires_grad_(true);
    bg.requires_grad_(true);
    Tensor out = matmul(a, b, c.ta, c.tb);
    Tensor w = randn(out.shape(), g);
    out.backward(w);
    matmul(ag, bg, c.ta, c.tb).backward(w.to(Device::cuda()));
    ASSERT_TRUE(ag.grad().defined() && bg.grad().defined());
    EXPECT_TRUE(ag.grad().is_cuda());
    EXPECT_LT(rel_error(ag.grad(), a.grad()), 1e-5) << shape_str(c.a) << " x " << shape_str(c.b);
    EXPECT_LT(rel_error(bg.grad(), b.grad()), 1e-5) << shape_str(c.a) << " x " << shape_str(c.b);
  }
}

TEST(MatmulGpu, LargeSquare) {
  SPARROW_REQUIRE_GPU();
  Generator g(26);
  Tensor a = randn({512, 384}, g), b = randn({384, 640}, g);
  EXPECT_LT(rel_error(matmul(a.to(Device::cuda()), b.to(Device::cuda())), matmul(a, b)), 1e-5);
}

// linear = x·Wᵀ + b with the bias in cuBLASLt's epilogue: values and all three gradients against
// the CPU (f32 tight, bf16 within bf16 rounding), for 2-D and 3-D inputs, odd and aligned widths.
TEST(MatmulGpu, LinearWithBiasEpilogueMatchesCpu) {
  SPARROW_REQUIRE_GPU();
  Generator g(27);
  const std::vector<std::pair<Shape, int64_t>> shapes = {{{64, 32}, 48}, {{3, 37, 19}, 23}, {{2, 128, 64}, 192}};
  for (DType dt : {DType::F32, DType::BF16}) {
    const double tol = dt == DType::F32 ? 1e-5 : 2e-2;
    for (const auto& [xs, n] : shapes) {
      Tensor x = randn(xs, g).to(dt), w = randn({n, xs.back()}, g).to(dt), b = randn({n}, g).to(dt);
      Tensor xg = x.to(Device::cuda()).detach(), wg = w.to(Device::cuda()).detach(), bg = b.to(Device::cuda()).detach();
      for (Tensor* t : {&x, &w, &b, &xg, &wg, &bg}) t->requires_grad_(true);
      Tensor y = linear(x, w, b), yg = linear(xg, wg, bg);
      EXPECT_LT(rel_error(yg, y), tol) << shape_str(xs) << " n " << n;
      if (dt == DType::F32) {
        EXPECT_LT(rel_error(y, add(matmul(x, w, false, true), b)), 1e-6);  // the CPU path: matmul + add
      }
      Tensor up = randn(y.shape(), g).to(dt);
      y.backward(up);
      yg.backward(up.to(Device::cuda()));
      EXPECT_LT(rel_error(xg.grad(), x.grad()), tol) << shape_str(xs);
      EXPECT_LT(rel_error(wg.grad(), w.grad()), tol) << shape_str(xs);
      EXPECT_LT(rel_error(bg.grad(), b.grad()), tol) << shape_str(xs);
    }
  }
}

// mlp_gelu = gelu(x·W1ᵀ + b1)·W2ᵀ + b2 with the GELU in cuBLASLt's epilogues (GELU_AUX_BIAS
// forward, DGELU_BGRAD backward): output and all five gradients against the CPU's separate ops.
TEST(MatmulGpu, MlpGeluEpiloguesMatchCpu) {
  SPARROW_REQUIRE_GPU();
  Generator g(28);
  struct Shapes {
    Shape x;
    int64_t hidden, out;
  };
  const std::vector<Shapes> shapes = {{{64, 32}, 128, 32}, {{2, 37, 24}, 96, 40}, {{3, 128, 64}, 256, 64}};
  for (DType dt : {DType::F32, DType::BF16}) {
    const double tol = dt == DType::F32 ? 1e-5 : 2e-2;
    for (const Shapes& s : shapes) {
      const int64_t in = s.x.back();
      std::vector<Tensor> cpu = {randn(s.x, g).to(dt), randn({s.hidden, in}, g).to(dt), randn({s.hidden}, g).to(dt),
                                 randn({s.out, s.hidden}, g).to(dt), randn({s.out}, g).to(dt)};
      std::vector<Tensor> gpu;
      for (Tensor& t : cpu) {
        gpu.push_back(t.to(Device::cuda()).detach());
        t.requires_grad_(true);
        gpu.back().requires_grad_(true);
      }
      Tensor y = mlp_gelu(cpu[0], cpu[1], cpu[2], cpu[3], cpu[4]);
      Tensor yg = mlp_gelu(gpu[0], gpu[1], gpu[2], gpu[3], gpu[4]);
      ASSERT_EQ(yg.shape(), y.shape());
      EXPECT_LT(rel_error(yg, y), tol) << shape_str(s.x);
      Tensor up = randn(y.shape(), g).to(dt);
      y.backward(up);
      yg.backward(up.to(Device::cuda()));
      for (size_t k = 0; k < cpu.size(); ++k)
        EXPECT_LT(rel_error(gpu[k].grad(), cpu[k].grad()), tol) << shape_str(s.x) << " input " << k;
    }
  }
}
