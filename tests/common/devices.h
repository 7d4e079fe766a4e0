// One test body per device. An op has a kernel for each device (framework/core/dispatch.h), and
// its test is written once and run on each: TEST_P(Suite, Name) on a fixture deriving
// DeviceTest, whose device() is cpu or cuda:0, with SPARROW_DEVICE_TESTS(Suite) after it. A new op
// is then tested on both devices by one test. The instances are named Devices/Suite.Name/cpu and
// .../cuda; the cuda ones have the ctest label gpu (CMakeLists.txt), so `ctest -L gpu` on a GPU
// host runs them, and they skip with the reason where no GPU is visible.
//
// The reference of such a test is the op in f64 on the host (expect_matches_f64), never the same
// dtype on the other device, so each instance can fail alone: the f64 host kernels themselves are
// checked against finite differences and closed forms in the CPU-only tests.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "common/gradcheck.h"

namespace sparrow::testing {

class DeviceTest : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    if (GetParam().is_cuda() && !cuda_available())
      GTEST_SKIP() << "no CUDA device visible (this build: " << (SPARROW_BUILT_WITH_CUDA ? "CUDA on" : "CUDA off")
                   << "); the cuda instance runs on a GPU host";
  }
  Device device() const { return GetParam(); }
};

inline std::string device_test_name(const ::testing::TestParamInfo<Device>& info) {
  return info.param.is_cpu() ? "cpu" : "cuda";
}

// The dtypes whose kernels a device test checks against the f64 host reference: f64 on the host
// is the reference itself, so only the GPU adds it.
inline std::vector<DType> float_dtypes(Device d, bool with_f64 = true) {
  std::vector<DType> t{DType::F32, DType::BF16};
  if (with_f64 && d.is_cuda()) t.push_back(DType::F64);
  return t;
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// got within tol of want relative to want's largest element; tol 0: equal element for element
// (NaN included), for ops that move values and never round them.
inline void expect_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  if (tol == 0)
    EXPECT_EQ(got.to_vector(), want.to_vector()) << what;
  else
    EXPECT_LE(rel_error(got, want), tol) << what;
}

// Runs f on device d with the inputs rounded to dt, and on the host in f64 from the same rounded
// values; backpropagates the same random output gradient (rounded to the output's dtype: f32 for
// the loss of bf16 logits) through both, into the
// inputs marked in `grad` (all when empty). The output and every gradient must agree with the
// reference within tol (expect_close).
inline void expect_matches_f64(const std::string& what, const Fn& f, const std::vector<Tensor>& inputs, Device d,
                               DType dt, double tol, std::vector<bool> grad = {}) {
  SCOPED_TRACE(what + " in " + dtype_name(dt) + " on " + d.str());
  if (grad.empty()) grad.assign(inputs.size(), true);
  std::vector<Tensor> dev, ref;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor rounded = inputs[k].detach().to(dt);
    Tensor x = rounded.to(d).detach(), r = rounded.to(DType::F64).detach();
    if (grad[k]) {
      x.requires_grad_(true);
      r.requires_grad_(true);
    }
    dev.push_back(x);
    ref.push_back(r);
  }
  Tensor out = f(dev), want = f(ref);
  ASSERT_EQ(out.device(), d);
  ASSERT_EQ(out.dtype() == DType::F64, dt == DType::F64) << "the run on the device is not in " << dtype_name(dt);
  ASSERT_EQ(out.shape(), want.shape());
  expect_close(out, want, tol, "forward");
  Generator wg(99);
  Tensor w = randn(want.shape(), wg, DType::F64).to(out.dtype());
  out.backward(w.to(d));
  want.backward(w.to(DType::F64));
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!grad[k]) continue;
    ASSERT_TRUE(dev[k].grad().defined()) << "input " << k << " got no gradient";
    EXPECT_EQ(dev[k].grad().device(), d) << "input " << k;
    expect_close(dev[k].grad(), ref[k].grad(), tol, "gradient of input " + std::to_string(k));
  }
}

// Tolerances (relative, against the f64 reference) shared by the per-device op tests.
// Elementwise and reduction kernels: f32 within 1e-5; bf16 within its rounding.
inline double elementwise_tolerance(DType t) { return t == DType::BF16 ? 2e-2 : 1e-5; }
// Fused row ops (norm, softmax, cross-entropy, dropout, rope): f32 rows up to 50K wide sum in
// another order than the reference (≈ √n·ε relative); f64 (GPU) to rounding; bf16 its rounding.
inline double fused_tolerance(DType dt) { return dt == DType::F64 ? 1e-12 : dt == DType::F32 ? 1e-4 : 2e-2; }

}  // namespace sparrow::testing

// After the TEST_Ps of a DeviceTest fixture: their cpu and cuda instances.
#define SPARROW_DEVICE_TESTS(Suite)                                                                                 \
  INSTANTIATE_TEST_SUITE_P(Devices, Suite, ::testing::Values(::sparrow::Device::cpu(), ::sparrow::Device::cuda(0)), \
                           ::sparrow::testing::device_test_name)
