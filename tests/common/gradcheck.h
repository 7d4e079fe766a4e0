// Gradient checking by central finite differences, in f64: for every input that requires grad
// and every element x_i of it, (f(x + h e_i) − f(x − h e_i)) / 2h must match the analytic
// gradient of L = Σ f(x) ∘ W, where W is a fixed random weight (so every output element counts,
// with a different weight, and a wrong gradient cannot hide in a plain sum).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "framework/autograd/node.h"
#include "framework/core/rng.h"
#include "framework/core/tensor.h"
#include "framework/ops/ops.h"

namespace sparrow::testing {

// Random f64 leaf with requires_grad.
inline Tensor leaf(const Shape& s, Generator& g, double scale = 1.0) {
  Tensor t = randn(s, g, DType::F64, Device::cpu(), scale);
  t.requires_grad_(true);
  return t;
}

// The identity, recording in `seen` the address of the gradient that reaches it: tests that the
// backward engine hands a buffer on rather than copying or adding it again.
inline Tensor observe(const Tensor& x, const void** seen) {
  return record(x.detach(), "observe", {x}, [seen](const Tensor& g) {
    *seen = g.data_ptr();
    return std::vector<Tensor>{g};
  });
}

// Checks d(Σ f(inputs)·W)/d input against finite differences for every input with
// requires_grad. Returns true when all agree within atol + rtol·|numeric|.
inline ::testing::AssertionResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                            std::vector<Tensor> inputs, double h = 1e-6, double atol = 1e-7,
                                            double rtol = 1e-5) {
  Generator wg(1234);
  Tensor out = f(inputs);
  Tensor w = randn(out.shape(), wg, DType::F64);
  for (auto& t : inputs)
    if (t.requires_grad()) t.zero_grad();
  Tensor loss = sum(mul(out, w));
  loss.backward();
  std::vector<double> wv = w.to_vector();
  auto eval = [&]() {
    NoGradGuard ng;
    std::vector<double> o = f(inputs).to_vector();
    double s = 0;
    for (size_t i = 0; i < o.size(); ++i) s += o[i] * wv[i];
    return s;
  };
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    if (!x.grad().defined()) return ::testing::AssertionFailure() << "input " << k << " received no gradient";
    std::vector<double> analytic = x.grad().to_vector();
    // Perturb through the storage of a contiguous leaf (f64, CPU).
    SPARROW_CHECK(x.dtype() == DType::F64 && x.is_contiguous(), "gradcheck needs contiguous f64 inputs");
    double* p = x.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double orig = p[i];
      p[i] = orig + h;
      double fp = eval();
      p[i] = orig - h;
      double fm = eval();
      p[i] = orig;
      double numeric = (fp - fm) / (2 * h);
      if (std::abs(numeric - analytic[i]) > atol + rtol * std::abs(numeric))
        return ::testing::AssertionFailure()
               << "input " << k << " element " << i << ": analytic " << analytic[i] << " vs numeric " << numeric;
    }
  }
  return ::testing::AssertionSuccess();
}

// max |a − b| / max(|b|, tiny): relative error of whole tensors.
inline double rel_error(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector(), y = b.to_vector();
  SPARROW_CHECK(x.size() == y.size(), "rel_error: sizes differ");
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num = std::max(num, std::abs(x[i] - y[i]));
    den = std::max(den, std::abs(y[i]));
  }
  return num / std::max(den, 1e-300);
}

// GPU suites call this first: skips with a clear reason where no GPU is present.
#define SPARROW_REQUIRE_GPU()                                                                                      \
  do {                                                                                                             \
    if (!::sparrow::cuda_available())                                                                              \
      GTEST_SKIP() << "no CUDA device visible (this build: " << (SPARROW_BUILT_WITH_CUDA ? "CUDA on" : "CUDA off") \
                   << "); runs on a GPU host";                                                                     \
  } while (0)
#ifdef SPARROW_WITH_CUDA
#define SPARROW_BUILT_WITH_CUDA true
#else
#define SPARROW_BUILT_WITH_CUDA false
#endif

}  // namespace sparrow::testing
