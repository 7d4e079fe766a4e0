#include "framework/optim/adamw.h"

#include <algorithm>
#include <cmath>

#include "framework/core/dispatch.h"
#include "framework/cuda/staged.h"
#include "framework/optim/cpu/adamw.h"
#include "framework/optim/cuda/adamw.h"

namespace sparrow::optim {

namespace {
void check_options(const AdamWOptions& o) {
  SPARROW_CHECK(
      o.lr >= 0 && o.eps > 0 && o.weight_decay >= 0 && o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1,
      "AdamW: bad options lr=", o.lr, " betas=(", o.beta1, ", ", o.beta2, ") eps=", o.eps,
      " weight_decay=", o.weight_decay);
}
}  // namespace

AdamW::AdamW(nn::ParameterBuffer params, AdamWOptions opt, AdamWShard shard)
    : params_(std::move(params)), opt_(opt), shard_(shard) {
  SPARROW_CHECK(params_.defined(), "AdamW: the parameter buffer was never packed");
  SPARROW_CHECK(params_.dtype() == DType::F32, "AdamW: master weights must be f32, got ", dtype_name(params_.dtype()),
                " (pack the model in f32; use set_compute_copy for bf16)");
  check_options(opt_);
  if (shard_.end < 0) shard_.end = params_.numel();
  SPARROW_CHECK(shard_.begin >= 0 && shard_.begin <= shard_.end && shard_.end <= params_.numel(), "AdamW: shard [",
                shard_.begin, ", ", shard_.end, ") is not within the buffer's ", params_.numel(), " elements");
  const int64_t n = shard_.end - shard_.begin;
  exp_avg_ = zeros({n}, DType::F32, params_.device());
  exp_avg_sq_ = zeros({n}, DType::F32, params_.device());
  if (params_.device().is_cuda())
    staged_ = std::make_shared<cuda::StagedBytes>(sizeof(AdamWStepScalars), params_.device().index);
}

void AdamW::set_compute_copy(Tensor c) {
  if (c.defined())
    SPARROW_CHECK(c.dtype() == DType::BF16 && c.dim() == 1 && c.numel() == params_.numel() && c.is_contiguous() &&
                      c.device() == params_.device(),
                  "AdamW::set_compute_copy: needs a contiguous bf16[", params_.numel(), "] on ", params_.device().str(),
                  ", got ", describe(c));
  compute_copy_ = std::move(c);
}

void AdamW::stage(double max_norm) {
  check_options(opt_);
  SPARROW_CHECK(max_norm >= 0, "AdamW: max_norm must be >= 0 (0: no clipping), got ", max_norm);
  const double t = static_cast<double>(step_ + 1);
  // Bias corrections in double on the host: β^t for large t underflows gracefully to 0.
  const double bc1 = 1.0 - std::pow(opt_.beta1, t);
  const double bc2 = 1.0 - std::pow(opt_.beta2, t);
  AdamWStepScalars s{};
  s.lr = static_cast<float>(opt_.lr);
  s.step_size = static_cast<float>(opt_.lr / bc1);
  s.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  s.max_norm = static_cast<float>(max_norm);
  host_scalars_ = s;
  if (staged_) *static_cast<AdamWStepScalars*>(staged_->host()) = s;
}

void AdamW::launch(const Tensor& loss, const Tensor& norm) {
  params_.check_bound();
  SPARROW_CHECK(loss.defined() == norm.defined(), "AdamW::launch: the guard needs both the loss and the norm");
  for (const Tensor* t : {&loss, &norm})
    if (t->defined())
      SPARROW_CHECK(t->dtype() == DType::F32 && t->numel() == 1 && t->device() == params_.device(),
                    "AdamW::launch: guard scalars must be one-element f32 on ", params_.device().str(), ", got ",
                    describe(*t));
  AdamWKernelArgs a{};
  a.beta1 = static_cast<float>(opt_.beta1);
  a.beta2 = static_cast<float>(opt_.beta2);
  a.eps = static_cast<float>(opt_.eps);
  a.weight_decay = static_cast<float>(opt_.weight_decay);
  // The kernels see the shard as a buffer of its own: pointers offset to its start, and the
  // decaying prefix [0, decay_numel) cut to the part that falls inside it.
  const int64_t b = shard_.begin;
  a.n = shard_.end - b;
  a.decay_end = std::clamp<int64_t>(params_.decay_numel() - b, 0, a.n);
  a.loss = loss.defined() ? loss.data<float>() : nullptr;
  a.norm = norm.defined() ? norm.data<float>() : nullptr;
  if (a.n == 0) return;

  float* p = params_.data().data<float>() + b;
  const float* g = params_.grad().data<float>() + b;
  float* m = exp_avg_.data<float>();
  float* v = exp_avg_sq_.data<float>();
  bf16* copy = compute_copy_.defined() ? compute_copy_.data<bf16>() + b : nullptr;
  // The GPU kernel reads the scalars from device memory, staged through pinned memory.
  a.s = staged_ ? static_cast<const AdamWStepScalars*>(staged_->upload()) : &host_scalars_;
  SPARROW_DISPATCH(params_.device(), adamw_step, p, g, m, v, copy, a);
}

void AdamW::load_state(const AdamWState& s) {
  SPARROW_CHECK(s.step >= 0, "AdamW::load_state: negative step ", s.step);
  const int64_t whole = params_.numel(), mine = exp_avg_.numel();
  for (const Tensor* t : {&s.exp_avg, &s.exp_avg_sq})
    SPARROW_CHECK(
        t->defined() && t->dtype() == DType::F32 && t->dim() == 1 && (t->numel() == whole || t->numel() == mine),
        "AdamW::load_state: state tensor ", t->defined() ? describe(*t) : std::string("(undefined)"), " is not f32[",
        whole, "] (the buffer) or f32[", mine, "] (this optimizer's shard)");
  auto take = [&](Tensor& dst, const Tensor& src) {
    const Tensor part = src.numel() == mine ? src : src.slice(0, shard_.begin, shard_.end);
    if (!part.same(dst)) copy_(dst, part);
  };
  take(exp_avg_, s.exp_avg);
  take(exp_avg_sq_, s.exp_avg_sq);
  step_ = s.step;
}

}  // namespace sparrow::optim
