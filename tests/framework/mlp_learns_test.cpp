// End to end on the framework alone: a small MLP, packed into one buffer, learns XOR and a
// two-class spiral with AdamW (warmup + cosine, clipping) to a low loss.
#include <gtest/gtest.h>

#include <cmath>

#include "framework/autograd/node.h"
#include "framework/core/rng.h"
#include "framework/nn/mlp.h"
#include "framework/nn/parameter_buffer.h"
#include "framework/ops/ops.h"
#include "framework/optim/adamw.h"
#include "framework/optim/clip.h"
#include "framework/optim/lr_schedule.h"

using namespace sparrow;

namespace {

struct Classifier : nn::Module {
  std::shared_ptr<nn::MLP> mlp;
  Classifier(int64_t in, int64_t hidden, int64_t classes, nn::Activation act, Generator& g) {
    nn::MLPOptions o;
    o.in = in;
    o.hidden = hidden;
    o.out = classes;
    o.activation = act;
    mlp = register_module("mlp", std::make_shared<nn::MLP>(o, g));
  }
};

// Trains full-batch; returns (final loss, accuracy).
std::pair<double, double> train(Classifier& model, const Tensor& x, const Tensor& y, int steps, double lr) {
  nn::ParameterBuffer buf = nn::ParameterBuffer::pack(model);
  optim::AdamW opt(buf, {.lr = lr, .weight_decay = 0.01});
  optim::LrSchedule sched({.kind = optim::ScheduleKind::WarmupCosine,
                           .lr = lr,
                           .min_lr = lr / 10,
                           .warmup_steps = steps / 20,
                           .total_steps = steps});
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    Tensor loss = cross_entropy(model.mlp->forward(x), y);
    loss.backward();
    optim::clip_grad_norm(buf, 5.0);
    opt.set_lr(sched.at(s));
    opt.step();
  }
  NoGradGuard ng;
  Tensor logits = model.mlp->forward(x);
  std::vector<double> l = logits.to_vector(), t = y.to_vector();
  const int64_t c = logits.size(1);
  int correct = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    int best = 0;
    for (int k = 1; k < c; ++k)
      if (l[i * c + k] > l[i * c + best]) best = k;
    correct += best == static_cast<int>(t[i]);
  }
  return {cross_entropy(logits, y).item(), double(correct) / double(t.size())};
}

}  // namespace

TEST(MlpLearns, Xor) {
  Generator g(11);
  Classifier model(2, 16, 2, nn::Activation::GELU, g);
  Tensor x = from_vector(std::vector<double>{0, 0, 0, 1, 1, 0, 1, 1}, {4, 2});
  Tensor y = from_ints({0, 1, 1, 0}, {4});
  Tensor first = cross_entropy(model.mlp->forward(x), y);
  auto [loss, acc] = train(model, x, y, 300, 0.05);
  EXPECT_GT(first.item(), 0.5);
  EXPECT_LT(loss, 0.05);
  EXPECT_EQ(acc, 1.0);
}

TEST(MlpLearns, TwoClassSpiral) {
  // Two interleaved spirals, 100 points each: not linearly separable.
  const int n = 100;
  std::vector<double> pts;
  std::vector<int32_t> labels;
  Generator noise(5);
  for (int cls = 0; cls < 2; ++cls)
    for (int i = 0; i < n; ++i) {
      const double r = 0.1 + 0.9 * i / n, th = 3.0 * M_PI * i / n + cls * M_PI;
      pts.push_back(r * std::cos(th) + 0.01 * noise.normal());
      pts.push_back(r * std::sin(th) + 0.01 * noise.normal());
      labels.push_back(cls);
    }
  Tensor x = from_vector(pts, {2 * n, 2});
  Tensor y = from_ints(labels, {2 * n});
  Generator g(3);
  Classifier model(2, 64, 2, nn::Activation::SiLU, g);
  auto [loss, acc] = train(model, x, y, 1500, 0.02);
  EXPECT_LT(loss, 0.15);
  EXPECT_GE(acc, 0.97);
}
