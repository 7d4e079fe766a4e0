// A minimal training loop on Sparrow's framework API (tensor, autograd, nn, optim): a two-layer
// network, tanh between, fits y = sin(3x)·x on [-1, 1] with AdamW and mean squared error.
// Prints the loss as it goes; exits non-zero unless it fell by at least 20×.
#include <cmath>
#include <cstdio>
#include <exception>
#include <vector>

#include "framework/autograd/node.h"
#include "framework/core/rng.h"
#include "framework/nn/linear.h"
#include "framework/nn/module.h"
#include "framework/nn/parameter_buffer.h"
#include "framework/ops/ops.h"
#include "framework/optim/adamw.h"

using namespace sparrow;

namespace {

// A module owns its parameters and submodules by name: "fc1.weight", "fc2.bias", ...
struct Net : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  Net(int64_t hidden, Generator& gen) {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(1, hidden, /*bias=*/true, gen));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(hidden, 1, /*bias=*/true, gen));
  }
  Tensor forward(const Tensor& x) const { return fc2->forward(tanh(fc1->forward(x))); }
};

// The data: n points of x in [-1, 1] and their targets, as [n, 1] tensors.
std::pair<Tensor, Tensor> make_data(int64_t n) {
  std::vector<double> xs, ys;
  for (int64_t i = 0; i < n; ++i) {
    const double x = -1.0 + 2.0 * double(i) / double(n - 1);
    xs.push_back(x);
    ys.push_back(std::sin(3 * x) * x);
  }
  return {from_vector(xs, {n, 1}), from_vector(ys, {n, 1})};
}

Tensor mse(const Tensor& pred, const Tensor& target) {
  Tensor diff = pred - target;
  return mean(diff * diff);
}

int run() {
  Generator gen(7);
  Net net(32, gen);
  auto [x, y] = make_data(128);

  // The optimizer works on one flat buffer holding every parameter (and one for their gradients).
  nn::ParameterBuffer params = nn::ParameterBuffer::pack(net);
  optim::AdamW opt(params, {.lr = 0.02, .weight_decay = 0.0});
  std::printf("training_loop: %lld parameters\n", static_cast<long long>(net.num_parameters()));

  const int steps = 400;
  double first = 0, last = 0;
  for (int step = 0; step < steps; ++step) {
    opt.zero_grad();
    Tensor loss = mse(net.forward(x), y);  // forward: every op is recorded for autograd
    loss.backward();                       // backward: gradients land in params.grad()
    opt.step();
    const double l = loss.item();
    if (step == 0) first = l;
    last = l;
    if (step % 100 == 0 || step == steps - 1) std::printf("training_loop: step %3d loss %.6f\n", step, l);
    if (!std::isfinite(l)) break;
  }

  // Evaluate without recording a graph.
  NoGradGuard no_grad;
  const double final_loss = mse(net.forward(x), y).item();
  std::printf("training_loop: loss %.6f -> %.6f (%.1fx lower)\n", first, final_loss, first / final_loss);
  if (!(std::isfinite(last) && final_loss * 20 < first)) {
    std::fprintf(stderr, "training_loop: FAILED: the loss did not fall 20x\n");
    return 1;
  }
  return 0;
}

}  // namespace

int main() {
  try {
    return run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "training_loop: %s\n", e.what());
    return 1;
  }
}
