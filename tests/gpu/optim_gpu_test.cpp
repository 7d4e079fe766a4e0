// CUDA AdamW (optim/cuda/adamw.cu) against the CPU loop: same model, same gradients, a few
// steps, weights and both moments equal to fp32 rounding; and the bf16 compute copy.
#include <gtest/gtest.h>

#include "common/gradcheck.h"
#include "framework/nn/linear.h"
#include "framework/nn/norm.h"
#include "framework/nn/parameter_buffer.h"
#include "framework/optim/adamw.h"
#include "framework/optim/clip.h"

using namespace sparrow;

namespace {
struct Net : nn::Module {
  std::shared_ptr<nn::Linear> a, b;
  std::shared_ptr<nn::LayerNorm> ln;
  explicit Net(Generator& g) {
    a = register_module("a", std::make_shared<nn::Linear>(37, 64, true, g));
    ln = register_module("ln", std::make_shared<nn::LayerNorm>(64));
    b = register_module("b", std::make_shared<nn::Linear>(64, 19, false, g));
  }
};

double max_abs_diff(const std::vector<double>& x, const std::vector<double>& y) {
  double d = 0;
  for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::abs(x[i] - y[i]));
  return d;
}
}  // namespace

TEST(OptimGpu, AdamWMatchesCpu) {
  SPARROW_REQUIRE_GPU();
  Generator g1(1), g2(1);
  Net cpu_net(g1), gpu_net(g2);
  gpu_net.to(Device::cuda());
  nn::ParameterBuffer cpu_buf = nn::ParameterBuffer::pack(cpu_net);
  nn::ParameterBuffer gpu_buf = nn::ParameterBuffer::pack(gpu_net, DType::F32, Device::cuda());
  ASSERT_EQ(cpu_buf.numel(), gpu_buf.numel());
  ASSERT_EQ(cpu_buf.data().to_vector(), gpu_buf.data().to_vector());
  const optim::AdamWOptions o{.lr = 3e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
  optim::AdamW cpu_opt(cpu_buf, o), gpu_opt(gpu_buf, o);
  Tensor copy = zeros({gpu_buf.numel()}, DType::BF16, Device::cuda());
  gpu_opt.set_compute_copy(copy);
  Generator gg(7);
  for (int s = 0; s < 5; ++s) {
    Tensor grad = randn({cpu_buf.numel()}, gg);
    Tensor cg = cpu_buf.grad(), gg_dev = gpu_buf.grad();
    copy_(cg, grad);
    copy_(gg_dev, grad);
    EXPECT_NEAR(optim::clip_grad_norm(cpu_buf, 50.0), optim::clip_grad_norm(gpu_buf, 50.0), 1e-3);
    cpu_opt.step();
    gpu_opt.step();
  }
  // Padding must stay zero on both; weights and moments agree to fp32 rounding (FMA on the GPU).
  EXPECT_LT(max_abs_diff(cpu_buf.data().to_vector(), gpu_buf.data().to_vector()), 1e-5);
  EXPECT_LT(max_abs_diff(cpu_opt.state().exp_avg.to_vector(), gpu_opt.state().exp_avg.to_vector()), 1e-6);
  EXPECT_LT(max_abs_diff(cpu_opt.state().exp_avg_sq.to_vector(), gpu_opt.state().exp_avg_sq.to_vector()), 1e-6);
  std::vector<double> p = gpu_buf.data().to_vector(), c = copy.to_vector();
  for (size_t i = 0; i < p.size(); ++i) ASSERT_EQ(c[i], double(float(bf16(float(p[i]))))) << i;
  // The model's own handles see the GPU update.
  EXPECT_EQ(gpu_net.a->weight.to_vector(), gpu_buf.slot("a.weight").param.to_vector());
  EXPECT_LT(max_abs_diff(gpu_net.a->weight.to_vector(), cpu_net.a->weight.to_vector()), 1e-5);
}

TEST(OptimGpu, GradientsLandInTheDeviceBuffer) {
  SPARROW_REQUIRE_GPU();
  Generator g(3);
  Net net(g);
  nn::ParameterBuffer buf = nn::ParameterBuffer::pack(net, DType::F32, Device::cuda());
  Tensor x = randn({8, 37}, g, DType::F32, Device::cuda());
  Tensor loss = sum(net.b->forward(net.ln->forward(net.a->forward(x))));
  loss.backward();
  buf.check_bound();
  EXPECT_GT(optim::grad_norm(buf.grad()), 0.0);
  // The same on the CPU, for the values.
  Generator g2(3);
  Net ref(g2);
  Tensor xr = x.to(Device::cpu());
  sum(ref.b->forward(ref.ln->forward(ref.a->forward(xr)))).backward();
  EXPECT_LT(max_abs_diff(net.a->weight.grad().to_vector(), ref.a->weight.grad().to_vector()), 1e-3);
}
