// The fused ops on CUDA against the CPU: layer_norm, rms_norm, softmax/log_softmax (last and
// other dims), cross_entropy (vocab 256 … 50K, ignored targets, bad targets), dropout (the same
// mask on both devices for the same seed) and rope — forward values and every input gradient,
// in f32 (tight), bf16 (~1e-2) and f64. Skips where no GPU is visible.
#include <gtest/gtest.h>

#include <functional>

#include "common/gradcheck.h"

using namespace sparrow;
using sparrow::testing::rel_error;

namespace {
const Device kGpu = Device::cuda(0);
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// f32: rows up to 50K wide sum in a different order on each device (≈ √n·ε relative).
double tolerance(DType dt) { return dt == DType::F64 ? 1e-12 : dt == DType::F32 ? 1e-4 : 2e-2; }

// Runs f on CPU and GPU copies of the same inputs (given in f64, converted to dt), with
// requires_grad where grad[k]; backpropagates the same random output gradient on both; compares
// the outputs and every gradient within tol (tolerance(dt) when 0).
void expect_close_on_both(const std::string& what, const Fn& f, const std::vector<Tensor>& host,
                          const std::vector<bool>& grad, DType dt, double tol = 0) {
  SCOPED_TRACE(what + " in " + dtype_name(dt));
  if (tol == 0) tol = tolerance(dt);
  std::vector<Tensor> cpu, gpu;
  for (size_t k = 0; k < host.size(); ++k) {
    Tensor c = host[k].to(dt).detach(), gg = host[k].to(dt).to(kGpu).detach();
    if (grad[k]) {
      c.requires_grad_(true);
      gg.requires_grad_(true);
    }
    cpu.push_back(c);
    gpu.push_back(gg);
  }
  Tensor oc = f(cpu), og = f(gpu);
  ASSERT_TRUE(og.is_cuda());
  ASSERT_EQ(oc.shape(), og.shape());
  ASSERT_EQ(oc.dtype(), og.dtype());
  EXPECT_LT(rel_error(og, oc), tol) << "forward";
  Generator wg(99);
  Tensor w = randn(oc.shape(), wg, DType::F64).to(oc.dtype());
  oc.backward(w);
  og.backward(w.to(kGpu));
  for (size_t k = 0; k < host.size(); ++k) {
    if (!grad[k]) continue;
    ASSERT_TRUE(gpu[k].grad().defined()) << "input " << k;
    EXPECT_TRUE(gpu[k].grad().is_cuda()) << "input " << k;
    EXPECT_LT(rel_error(gpu[k].grad(), cpu[k].grad()), tol) << "gradient of input " << k;
  }
}

const DType kAll[] = {DType::F32, DType::BF16, DType::F64};

TEST(FusedGpu, LayerNorm) {
  SPARROW_REQUIRE_GPU();
  Generator g(1);
  auto ln = [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2], 1e-5); };
  auto ln_nobias = [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], Tensor(), 1e-5); };
  for (DType dt : kAll) {
    for (Shape s : {Shape{37, 768}, Shape{3, 5, 3000}, Shape{3000, 64}, Shape{4, 7}}) {
      const int64_t D = s.back();
      std::vector<Tensor> in{randn(s, g, DType::F64, Device::cpu(), 2.0), randn({D}, g, DType::F64),
                             randn({D}, g, DType::F64)};
      expect_close_on_both("layer_norm " + shape_str(s), ln, in, {true, true, true}, dt);
      expect_close_on_both("layer_norm without bias " + shape_str(s), ln_nobias, {in[0], in[1]}, {true, true}, dt);
    }
  }
  // Only the parameters need gradients (no dx kernel).
  std::vector<Tensor> in{randn({50, 96}, g, DType::F64), randn({96}, g, DType::F64), randn({96}, g, DType::F64)};
  expect_close_on_both("layer_norm params only", ln, in, {false, true, true}, DType::F32);
}

TEST(FusedGpu, RmsNorm) {
  SPARROW_REQUIRE_GPU();
  Generator g(2);
  auto rn = [](const std::vector<Tensor>& in) { return rms_norm(in[0], in[1], 1e-6); };
  for (DType dt : kAll)
    for (Shape s : {Shape{37, 512}, Shape{2, 3, 4100}, Shape{2000, 32}}) {
      std::vector<Tensor> in{randn(s, g, DType::F64, Device::cpu(), 2.0), randn({s.back()}, g, DType::F64)};
      expect_close_on_both("rms_norm " + shape_str(s), rn, in, {true, true}, dt);
    }
}

TEST(FusedGpu, SoftmaxAndLogSoftmaxOverAnyDim) {
  SPARROW_REQUIRE_GPU();
  Generator g(3);
  for (DType dt : kAll) {
    for (bool log : {false, true}) {
      const std::string name = log ? "log_softmax" : "softmax";
      for (auto [s, d] : {std::pair{Shape{33, 1000}, int64_t(-1)}, std::pair{Shape{4, 50257}, int64_t(1)},
                          std::pair{Shape{300, 17}, int64_t(1)}, std::pair{Shape{6, 50, 7}, int64_t(1)},
                          std::pair{Shape{6, 50, 7}, int64_t(0)}}) {
        Fn f = [log, d = d](const std::vector<Tensor>& in) { return log ? log_softmax(in[0], d) : softmax(in[0], d); };
        expect_close_on_both(name + " " + shape_str(s) + " dim " + std::to_string(d), f,
                             {randn(s, g, DType::F64, Device::cpu(), 3.0)}, {true}, dt);
      }
    }
  }
  // A transposed (non-contiguous) input.
  Fn ft = [](const std::vector<Tensor>& in) { return softmax(in[0].transpose(0, 1), -1); };
  expect_close_on_both("softmax of a transpose", ft, {randn({40, 30}, g, DType::F64)}, {true}, DType::F32);
}

TEST(FusedGpu, CrossEntropy) {
  SPARROW_REQUIRE_GPU();
  Generator g(4);
  for (DType dt : kAll)
    for (Shape s : {Shape{64, 256}, Shape{7, 50257}, Shape{300, 1000}}) {
      std::vector<int32_t> t(static_cast<size_t>(s[0]));
      for (size_t i = 0; i < t.size(); ++i) t[i] = i % 5 == 2 ? -100 : static_cast<int32_t>((i * 7919) % s[1]);
      Fn f = [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], from_ints(t, {s[0]}, in[0].device())); };
      expect_close_on_both("cross_entropy " + shape_str(s), f, {randn(s, g, DType::F64, Device::cpu(), 2.0)}, {true},
                           dt);
    }
}

TEST(FusedGpu, CrossEntropyAllIgnoredAndBadTargets) {
  SPARROW_REQUIRE_GPU();
  Generator g(5);
  Tensor x = randn({4, 300}, g, DType::F32, kGpu).detach();
  x.requires_grad_(true);
  Tensor loss = cross_entropy(x, from_ints({-100, -100, -100, -100}, {4}, kGpu));
  EXPECT_EQ(loss.item(), 0.0);
  loss.backward();
  for (double v : x.grad().to_vector()) ASSERT_EQ(v, 0.0);
  for (int32_t bad : {300, -7}) {
    try {
      cross_entropy(x, from_ints({1, bad, -100, 2}, {4}, kGpu));
      ADD_FAILURE() << "target " << bad << " did not throw on the GPU";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(bad)), std::string::npos) << e.what();
    }
  }
}

TEST(FusedGpu, DropoutMaskIsTheSameOnBothDevices) {
  SPARROW_REQUIRE_GPU();
  Generator data(6);
  for (DType dt : kAll) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor x = randn({3, 1001}, data, dt);  // 3003 elements: a partial last group
    Tensor xc = x.detach(), xg = x.to(kGpu).detach();
    xc.requires_grad_(true);
    xg.requires_grad_(true);
    Generator a(123), b(123);
    a.reserve(17);
    b.reserve(17);
    Tensor yc = dropout(xc, 0.3, a), yg = dropout(xg, 0.3, b);
    EXPECT_EQ(a.offset(), b.offset());
    const std::vector<double> vc = yc.to_vector(), vg = yg.to_vector();
    ASSERT_EQ(vc.size(), vg.size());
    int64_t differ_in_mask = 0;
    for (size_t i = 0; i < vc.size(); ++i) differ_in_mask += (vc[i] == 0) != (vg[i] == 0);
    EXPECT_EQ(differ_in_mask, 0);
    EXPECT_LT(rel_error(yg, yc), tolerance(dt));
    Tensor w = randn(x.shape(), data, dt);
    yc.backward(w);
    yg.backward(w.to(kGpu));
    EXPECT_LT(rel_error(xg.grad(), xc.grad()), tolerance(dt));
  }
}

TEST(FusedGpu, Rope) {
  SPARROW_REQUIRE_GPU();
  Generator g(7);
  for (DType dt : kAll) {
    for (int64_t offset : {int64_t(0), int64_t(100), int64_t(1000000)}) {
      Fn f = [offset](const std::vector<Tensor>& in) { return rope(in[0], offset, 10000.0); };
      // f64 at θ ~ 10⁶ rad: the two libms' pow/sin differ by an ulp or two of θ (~10⁻¹⁰ rad).
      const double tol = dt == DType::F64 && offset > 1000 ? 1e-8 : 0;
      expect_close_on_both("rope offset " + std::to_string(offset), f, {randn({2, 4, 33, 64}, g, DType::F64)}, {true},
                           dt, tol);
    }
    Fn fp = [](const std::vector<Tensor>& in) { return rope(in[0].permute({0, 2, 1, 3}), 5, 500.0); };
    expect_close_on_both("rope of a permuted view", fp, {randn({1, 9, 3, 16}, g, DType::F64)}, {true}, dt);
  }
}

// rope_heads on both devices: 16-byte vector path (D = 64) and the narrow path (D = 6), offsets
// up to 10⁶, values and the gradient of qkv.
TEST(FusedGpu, RopeHeads) {
  SPARROW_REQUIRE_GPU();
  Generator g(8);
  for (DType dt : kAll) {
    for (int64_t offset : {int64_t(0), int64_t(1000000)}) {
      Fn f = [offset](const std::vector<Tensor>& in) { return rope_heads(in[0], 3, offset, 10000.0); };
      const double tol = dt == DType::F64 && offset > 1000 ? 1e-8 : 0;
      expect_close_on_both("rope_heads D 64 offset " + std::to_string(offset), f,
                           {randn({2, 37, 3 * 3 * 64}, g, DType::F64)}, {true}, dt, tol);
    }
    Fn narrow = [](const std::vector<Tensor>& in) { return rope_heads(in[0], 2, 3, 500.0); };
    expect_close_on_both("rope_heads D 6", narrow, {randn({1, 9, 3 * 2 * 6}, g, DType::F64)}, {true}, dt);
  }
}

}  // namespace
