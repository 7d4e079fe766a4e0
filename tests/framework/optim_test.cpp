// optim: AdamW and SGD against hand-computed steps, clipping, learning-rate schedules. Then on
// every device (OptimOnDevice): AdamW against its formula in double, and the gradient buffer.
#include <gtest/gtest.h>

#include <cmath>

#include "common/devices.h"
#include "common/gradcheck.h"
#include "framework/core/rng.h"
#include "framework/dist/optimizer_shards.h"
#include "framework/nn/linear.h"
#include "framework/nn/norm.h"
#include "framework/nn/parameter_buffer.h"
#include "framework/optim/adamw.h"
#include "framework/optim/clip.h"
#include "framework/optim/lr_schedule.h"
#include "framework/optim/sgd.h"

using namespace sparrow;

namespace {

// w [1, 2] takes weight decay (2-D); b [1] does not (a bias); norm.weight does not (a norm).
struct TwoParams : nn::Module {
  Tensor w, b;
  std::shared_ptr<nn::LayerNorm> norm;
  TwoParams() {
    w = register_parameter("w", from_vector(std::vector<double>{1.0, -2.0}, {1, 2}));
    b = register_parameter("bias", from_vector(std::vector<double>{0.5}, {1}));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(2));
  }
};

void set_grad(const nn::ParameterBuffer& buf, const std::string& name, const std::vector<double>& g) {
  Tensor view = buf.slot(name).grad;
  copy_(view, from_vector(g, view.shape()));
}

}  // namespace

TEST(AdamW, MatchesHandComputedStepsWithDecayAndBiasCorrection) {
  TwoParams m;
  nn::ParameterBuffer buf = nn::ParameterBuffer::pack(m);
  optim::AdamW opt(buf, {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1});
  // Gradients per step for w[0], w[1], bias.
  const double g[3][3] = {{0.5, 0.1, 1.0}, {-0.25, 0.3, 1.0}, {2.0, -0.2, -3.0}};
  // Worked by hand (in double): step 1 is p·(1 − lr·wd) − lr·g/(|g| + eps) since m̂ = g, v̂ = g²;
  // e.g. w[0]: 1·0.99 − 0.1·0.5/0.5 = 0.89. Step 2 for w[0]: m = 0.02, v = 3.1225e-4,
  // m̂ = 0.02/0.19, v̂ = 3.1225e-4/0.001999 → 0.89·0.99 − 0.1·0.105263/0.395225 = 0.854466.
  const double want[3][3] = {{0.8900000020, -2.0799999900, 0.4000000010},
                             {0.8544662987, -2.1509780979, 0.3000000020},
                             {0.7788568715, -2.1552586962, 0.3248500212}};
  for (int s = 0; s < 3; ++s) {
    set_grad(buf, "w", {g[s][0], g[s][1]});
    set_grad(buf, "bias", {g[s][2]});
    set_grad(buf, "norm.weight", {0.0, 0.0});
    set_grad(buf, "norm.bias", {0.0, 0.0});
    opt.step();
    std::vector<double> w = m.w.to_vector(), b = m.b.to_vector();
    EXPECT_NEAR(w[0], want[s][0], 2e-6) << "step " << s + 1;
    EXPECT_NEAR(w[1], want[s][1], 2e-6) << "step " << s + 1;
    EXPECT_NEAR(b[0], want[s][2], 2e-6) << "step " << s + 1;
    // Zero gradient and no decay: the norm's parameters do not move at all.
    EXPECT_EQ(m.norm->weight.to_vector(), (std::vector<double>{1, 1}));
    EXPECT_EQ(m.norm->bias.to_vector(), (std::vector<double>{0, 0}));
  }
  EXPECT_EQ(opt.step_count(), 3);
}

// The guarded step (the trainer's: no host decision between backward and update): clipping by
// the norm fused into the update equals clip_grad_norm then step(), and a non-finite loss or norm
// leaves weights, moments and the step count as they were.
TEST(AdamW, GuardClipsLikeClipGradNormAndSkipsNonFiniteSteps) {
  TwoParams a, b;
  nn::ParameterBuffer ba = nn::ParameterBuffer::pack(a), bb = nn::ParameterBuffer::pack(b);
  const optim::AdamWOptions o{.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1};
  optim::AdamW oa(ba, o), ob(bb, o);
  const double max_norm = 0.5;
  const double g[3][3] = {{3.0, -4.0, 1.0}, {0.1, 0.2, -0.1}, {-2.0, 5.0, 0.5}};  // ‖g‖ 5.10, 0.24, 5.41
  Tensor loss = scalar_tensor(2.5).reshape({1}), norm = zeros({1});
  for (int s = 0; s < 3; ++s) {
    for (const nn::ParameterBuffer* buf : {&ba, &bb}) {
      set_grad(*buf, "w", {g[s][0], g[s][1]});
      set_grad(*buf, "bias", {g[s][2]});
    }
    const double reference_norm = optim::clip_grad_norm(ba, max_norm);
    oa.step();
    optim::grad_norm_to(bb.grad(), norm);
    EXPECT_NEAR(norm.item(), reference_norm, 1e-6);
    ob.stage(max_norm);
    ob.launch(loss, norm);
    ob.commit(true);
    const std::vector<double> wa = ba.data().to_vector(), wb = bb.data().to_vector();
    for (size_t i = 0; i < wa.size(); ++i) EXPECT_NEAR(wb[i], wa[i], 1e-6) << "step " << s + 1 << " element " << i;
  }
  // Non-finite loss, then non-finite norm: nothing moves.
  const std::vector<double> w0 = bb.data().to_vector(), m0 = ob.state().exp_avg.to_vector();
  for (int bad = 0; bad < 2; ++bad) {
    Tensor l = scalar_tensor(bad == 0 ? NAN : 1.0).reshape({1});
    Tensor n = scalar_tensor(bad == 1 ? INFINITY : 1.0).reshape({1});
    ob.stage(max_norm);
    ob.launch(l, n);
    ob.commit(false);
    EXPECT_EQ(bb.data().to_vector(), w0);
    EXPECT_EQ(ob.state().exp_avg.to_vector(), m0);
  }
  EXPECT_EQ(ob.step_count(), 3);
  // The guard needs both scalars, f32, one element, on the parameters' device.
  EXPECT_THROW(ob.launch(loss, Tensor()), Error);
  EXPECT_THROW(ob.launch(loss, zeros({2})), Error);
  EXPECT_THROW(ob.stage(-1.0), Error);
}

TEST(AdamW, DecaysOnlyMatricesNotNormsOrBiases) {
  TwoParams m;
  nn::ParameterBuffer buf = nn::ParameterBuffer::pack(m);
  Tensor flat = buf.data();
  fill_(flat, 2.0);
  optim::AdamW opt(buf, {.lr = 0.5, .weight_decay = 0.2});
  for (int s = 0; s < 4; ++s) opt.step();  // zero gradients: only weight decay acts
  const double shrink = std::pow(1 - 0.5 * 0.2, 4);
  for (double v : m.w.to_vector()) EXPECT_NEAR(v, 2.0 * shrink, 1e-6);
  EXPECT_EQ(m.b.to_vector(), (std::vector<double>{2.0}));
  EXPECT_EQ(m.norm->weight.to_vector(), (std::vector<double>{2.0, 2.0}));
  EXPECT_EQ(m.norm->bias.to_vector(), (std::vector<double>{2.0, 2.0}));
}

TEST(AdamW, StateRoundTripResumesExactly) {
  auto run = [](int steps_before, bool resume_midway) {
    TwoParams m;
    nn::ParameterBuffer buf = nn::ParameterBuffer::pack(m);
    optim::AdamW opt(buf, {.lr = 0.05, .weight_decay = 0.01});
    auto feed = [&](int s) {
      set_grad(buf, "w", {0.3 * s - 0.4, 0.2});
      set_grad(buf, "bias", {1.0 / (s + 1)});
    };
    for (int s = 0; s < steps_before; ++s) {
      feed(s);
      opt.step();
    }
    if (resume_midway) {
      // Save, then continue in a brand-new optimizer from the saved state and weights.
      optim::AdamWState st = opt.state();
      optim::AdamWState saved{st.step, st.exp_avg.clone(), st.exp_avg_sq.clone()};
      std::vector<double> weights = buf.data().to_vector();
      TwoParams m2;
      nn::ParameterBuffer buf2 = nn::ParameterBuffer::pack(m2);
      Tensor d2 = buf2.data();
      copy_(d2, from_vector(weights, d2.shape()));
      optim::AdamW opt2(buf2, {.lr = 0.05, .weight_decay = 0.01});
      opt2.load_state(saved);
      EXPECT_EQ(opt2.step_count(), steps_before);
      set_grad(buf2, "w", {0.3 * steps_before - 0.4, 0.2});
      set_grad(buf2, "bias", {1.0 / (steps_before + 1)});
      opt2.step();
      return buf2.data().to_vector();
    }
    feed(steps_before);
    opt.step();
    return buf.data().to_vector();
  };
  EXPECT_EQ(run(2, true), run(2, false));
  TwoParams m;
  optim::AdamW opt(nn::ParameterBuffer::pack(m));
  EXPECT_THROW(opt.load_state({1, zeros({3}), zeros({3})}), Error);
}

TEST(AdamW, RefusesNonF32MasterAndStaleViews) {
  TwoParams m;
  EXPECT_THROW(optim::AdamW(nn::ParameterBuffer::pack(m, DType::F64)), Error);
  nn::ParameterBuffer buf = nn::ParameterBuffer::pack(m);
  optim::AdamW opt(buf);
  m.w.zero_grad();  // the next backward would not reach the flat buffer
  EXPECT_THROW(opt.step(), Error);
  opt.zero_grad();
  opt.step();
}

TEST(AdamW, WritesTheBf16ComputeCopy) {
  TwoParams m;
  nn::ParameterBuffer buf = nn::ParameterBuffer::pack(m);
  optim::AdamW opt(buf, {.lr = 0.1});
  set_grad(buf, "w", {1.0, -1.0});
  Tensor copy = zeros({buf.numel()}, DType::BF16);
  opt.set_compute_copy(copy);
  opt.step();
  std::vector<double> p = buf.data().to_vector(), c = copy.to_vector();
  for (size_t i = 0; i < p.size(); ++i) EXPECT_EQ(c[i], double(float(bf16(float(p[i])))));
  EXPECT_THROW(opt.set_compute_copy(zeros({buf.numel()})), Error);
}

TEST(SGD, MomentumAndNesterovMatchHandComputedSteps) {
  for (bool nesterov : {false, true}) {
    TwoParams m;
    nn::ParameterBuffer buf = nn::ParameterBuffer::pack(m);
    optim::SGD opt(buf, {.lr = 0.1, .momentum = 0.9, .nesterov = nesterov});
    // bias starts at 0.5 with gradient 1 every step:
    //   plain:    b = 1, 1.9, 2.71      → p = 0.4, 0.21, −0.061
    //   nesterov: d = 1.9, 2.71, 3.439  → p = 0.31, 0.039, −0.3049
    const double plain[3] = {0.4, 0.21, -0.061}, nest[3] = {0.31, 0.039, -0.3049};
    for (int s = 0; s < 3; ++s) {
      set_grad(buf, "bias", {1.0});
      opt.step();
      EXPECT_NEAR(m.b.to_vector()[0], nesterov ? nest[s] : plain[s], 1e-6) << "step " << s + 1;
    }
  }
}

TEST(SGD, WeightDecayOnlyOnTheDecayingGroup) {
  TwoParams m;
  nn::ParameterBuffer buf = nn::ParameterBuffer::pack(m);
  optim::SGD opt(buf, {.lr = 0.1, .weight_decay = 0.5});
  opt.step();  // zero gradients: d = wd·p on w only
  EXPECT_NEAR(m.w.to_vector()[0], 1.0 - 0.1 * 0.5 * 1.0, 1e-7);
  EXPECT_NEAR(m.w.to_vector()[1], -2.0 - 0.1 * 0.5 * -2.0, 1e-7);
  EXPECT_EQ(m.b.to_vector()[0], 0.5);
  // Gradients are left as they were (the decay term is not written into them).
  for (double v : buf.grad().to_vector()) EXPECT_EQ(v, 0.0);
}

TEST(Clip, GlobalNormScalesOnlyAboveTheThreshold) {
  TwoParams m;
  nn::ParameterBuffer buf = nn::ParameterBuffer::pack(m);
  set_grad(buf, "w", {3.0, 0.0});
  set_grad(buf, "bias", {4.0});
  EXPECT_NEAR(optim::clip_grad_norm(buf, 10.0), 5.0, 1e-9);
  EXPECT_EQ(m.w.grad().to_vector(), (std::vector<double>{3.0, 0.0}));  // below: untouched
  EXPECT_NEAR(optim::clip_grad_norm(buf, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(m.w.grad().to_vector()[0], 0.6, 1e-6);
  EXPECT_NEAR(m.b.grad().to_vector()[0], 0.8, 1e-6);
  EXPECT_NEAR(optim::grad_norm(buf.grad()), 1.0, 1e-6);

  // Separate tensors (and an undefined one, skipped).
  Tensor a = from_vector(std::vector<double>{1, 2}, {2}, DType::F64),
         b = from_vector(std::vector<double>{2}, {1}, DType::F64);
  EXPECT_NEAR(optim::clip_grad_norm({a, Tensor(), b}, 1.5), 3.0, 1e-12);
  EXPECT_NEAR(a.to_vector()[1], 2 * 1.5 / (3 + 1e-6), 1e-12);
  EXPECT_NEAR(b.to_vector()[0], 2 * 1.5 / (3 + 1e-6), 1e-12);

  // Non-finite: reported, not applied.
  Tensor bad = from_vector(std::vector<double>{INFINITY, 1.0}, {2});
  EXPECT_TRUE(std::isinf(optim::clip_grad_norm({bad}, 1.0)));
  EXPECT_EQ(bad.to_vector()[1], 1.0);
  EXPECT_THROW(optim::clip_grad_norm({a}, 0.0), Error);
}

TEST(LrSchedule, ConstantWithWarmup) {
  optim::LrSchedule s({.kind = optim::ScheduleKind::Constant, .lr = 0.4, .warmup_steps = 4});
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(1), 0.2);
  EXPECT_DOUBLE_EQ(s.at(3), 0.4);
  EXPECT_DOUBLE_EQ(s.at(1000), 0.4);
  optim::LrSchedule plain({.kind = optim::ScheduleKind::Constant, .lr = 0.3});
  EXPECT_DOUBLE_EQ(plain.at(0), 0.3);
}

TEST(LrSchedule, WarmupCosine) {
  optim::LrSchedule s(
      {.kind = optim::ScheduleKind::WarmupCosine, .lr = 1.0, .min_lr = 0.1, .warmup_steps = 10, .total_steps = 110});
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(4), 0.5);
  EXPECT_DOUBLE_EQ(s.at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.at(10), 1.0);                                           // p = 0
  EXPECT_NEAR(s.at(35), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI / 4)), 1e-12);  // p = 1/4
  EXPECT_NEAR(s.at(60), 0.55, 1e-12);                                        // p = 1/2: midway
  EXPECT_NEAR(s.at(110), 0.1, 1e-12);                                        // p = 1: min_lr
  EXPECT_NEAR(s.at(500), 0.1, 1e-12);                                        // stays there
}

TEST(LrSchedule, WarmupLinear) {
  optim::LrSchedule s(
      {.kind = optim::ScheduleKind::WarmupLinear, .lr = 2.0, .min_lr = 0.0, .warmup_steps = 2, .total_steps = 12});
  EXPECT_DOUBLE_EQ(s.at(0), 1.0);
  EXPECT_DOUBLE_EQ(s.at(1), 2.0);
  EXPECT_DOUBLE_EQ(s.at(2), 2.0);
  EXPECT_NEAR(s.at(7), 1.0, 1e-12);
  EXPECT_NEAR(s.at(11), 0.2, 1e-12);
  EXPECT_NEAR(s.at(12), 0.0, 1e-12);
}

TEST(LrSchedule, WarmupStableDecay) {
  optim::LrScheduleConfig c{.kind = optim::ScheduleKind::WSD,
                            .lr = 1.0,
                            .min_lr = 0.2,
                            .warmup_steps = 5,
                            .total_steps = 100,
                            .decay_steps = 20};
  optim::LrSchedule lin(c);
  EXPECT_DOUBLE_EQ(lin.at(0), 0.2);
  EXPECT_DOUBLE_EQ(lin.at(4), 1.0);
  EXPECT_DOUBLE_EQ(lin.at(50), 1.0);    // stable
  EXPECT_DOUBLE_EQ(lin.at(79), 1.0);    // last stable step
  EXPECT_NEAR(lin.at(80), 1.0, 1e-12);  // decay starts (p = 0)
  EXPECT_NEAR(lin.at(90), 0.6, 1e-12);  // p = 1/2
  EXPECT_NEAR(lin.at(100), 0.2, 1e-12);
  c.decay_shape = optim::DecayShape::Sqrt;
  EXPECT_NEAR(optim::LrSchedule(c).at(85), 1.0 - 0.8 * 0.5, 1e-12);  // p = 1/4: 1 − √p = 1/2
  c.decay_shape = optim::DecayShape::Cosine;
  EXPECT_NEAR(optim::LrSchedule(c).at(90), 0.6, 1e-12);
  EXPECT_EQ(optim::parse_decay_shape("sqrt"), optim::DecayShape::Sqrt);
}

TEST(LrSchedule, RejectsInconsistentConfigs) {
  EXPECT_THROW(
      optim::LrSchedule({.kind = optim::ScheduleKind::WarmupCosine, .lr = 1, .warmup_steps = 10, .total_steps = 10}),
      Error);
  EXPECT_THROW(
      optim::LrSchedule(
          {.kind = optim::ScheduleKind::WSD, .lr = 1, .warmup_steps = 10, .total_steps = 20, .decay_steps = 11}),
      Error);
  EXPECT_THROW(optim::LrSchedule({.kind = optim::ScheduleKind::Constant, .lr = 1, .min_lr = 2}), Error);
  EXPECT_EQ(optim::parse_schedule_kind("cosine"), optim::ScheduleKind::WarmupCosine);
  EXPECT_THROW(optim::parse_schedule_kind("exp"), Error);
}

TEST(AdamW, ShardsUpdateLikeTheWholeBufferBitForBit) {
  // ZeRO-1's premise: AdamW is elementwise, so P optimizers over the shards of one buffer move it
  // exactly as one optimizer over the whole buffer, decaying prefix and guard included.
  Generator init(7);
  nn::Linear whole_net(24, 20, true, init);
  Generator init2(7);
  nn::Linear shard_net(24, 20, true, init2);
  nn::ParameterBuffer a = nn::ParameterBuffer::pack(whole_net), b = nn::ParameterBuffer::pack(shard_net);
  const optim::AdamWOptions o{.lr = 0.05, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.1};
  optim::AdamW whole(a, o);
  std::vector<std::unique_ptr<optim::AdamW>> shards;
  const int P = 3;
  for (int r = 0; r < P; ++r)
    shards.push_back(std::make_unique<optim::AdamW>(b, o, dist::optimizer_shard(b.numel(), r, P)));
  // The shards tile the buffer in order, on 64-byte lines, and one of them cuts the decaying prefix.
  EXPECT_EQ(shards.front()->shard().begin, 0);
  EXPECT_EQ(shards.back()->shard().end, b.numel());
  bool cuts_decay = false;
  for (int r = 0; r < P; ++r) {
    const optim::AdamWShard s = shards[size_t(r)]->shard();
    if (r > 0) {
      EXPECT_EQ(s.begin, shards[size_t(r) - 1]->shard().end);
    }
    EXPECT_EQ(s.begin % 16, 0);
    cuts_decay |= s.begin < b.decay_numel() && b.decay_numel() < s.end;
  }
  EXPECT_TRUE(cuts_decay) << "decay_numel " << b.decay_numel() << " of " << b.numel();
  Generator g(3);
  const Tensor loss = full({1}, 1.0), norm = full({1}, 100.0);  // the guard clips (max_norm 1)
  for (int step = 0; step < 4; ++step) {
    const Tensor grad = randn({a.numel()}, g);
    Tensor ga = a.grad(), gb = b.grad();
    copy_(ga, grad);
    copy_(gb, grad);
    whole.stage(1.0);
    whole.launch(loss, norm);
    whole.commit(true);
    for (auto& s : shards) {
      s->stage(1.0);
      s->launch(loss, norm);
      s->commit(true);
    }
  }
  EXPECT_EQ(a.data().to_vector(), b.data().to_vector());
  // Each shard's state is its slice of the whole state, and loading the whole state gives it back.
  for (auto& s : shards) {
    const optim::AdamWShard r = s->shard();
    EXPECT_EQ(s->state().exp_avg.to_vector(), whole.state().exp_avg.slice(0, r.begin, r.end).to_vector());
    optim::AdamW fresh(b, o, r);
    fresh.load_state(whole.state());
    EXPECT_EQ(fresh.state().exp_avg_sq.to_vector(), s->state().exp_avg_sq.to_vector());
    EXPECT_EQ(fresh.step_count(), 4);
  }
  EXPECT_THROW(optim::AdamW(b, o, optim::AdamWShard{16, 8}), Error);
  EXPECT_THROW(shards[0]->load_state({1, zeros({5}), zeros({5})}), Error);
}

// ---- on every device: AdamW and the gradient buffer against references in double ----------------
namespace {

using sparrow::testing::DeviceTest;

class OptimOnDevice : public DeviceTest {};

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

// A few clipped steps of a small model against AdamW's formula in double, element by element;
// weights and both moments equal to fp32 rounding (FMA on the GPU), and the bf16 compute copy.
TEST_P(OptimOnDevice, AdamWMatchesTheFormulaInDouble) {
  const Device d = device();
  Generator g1(1);
  Net net(g1);
  net.to(d);
  nn::ParameterBuffer buf = nn::ParameterBuffer::pack(net, DType::F32, d);
  const optim::AdamWOptions o{.lr = 3e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
  optim::AdamW opt(buf, o);
  Tensor copy = zeros({buf.numel()}, DType::BF16, d);
  opt.set_compute_copy(copy);
  const size_t n = static_cast<size_t>(buf.numel());
  const size_t decay_end = static_cast<size_t>(buf.decay_numel());
  std::vector<double> p = buf.data().to_vector(), m(n, 0.0), v(n, 0.0);
  const double max_norm = 50.0;
  Generator gg(7);
  for (int s = 0; s < 5; ++s) {
    Tensor grad = randn({buf.numel()}, gg);
    Tensor gd = buf.grad();
    copy_(gd, grad);
    std::vector<double> gv = grad.to_vector();
    double ss = 0;
    for (double x : gv) ss += x * x;
    const double norm = std::sqrt(ss);
    EXPECT_NEAR(optim::clip_grad_norm(buf, max_norm), norm, 1e-3);
    if (norm > max_norm)
      for (double& x : gv) x *= max_norm / (norm + 1e-6);
    opt.step();
    const double t = s + 1, bc1 = 1 - std::pow(o.beta1, t), bc2 = 1 - std::pow(o.beta2, t);
    for (size_t i = 0; i < n; ++i) {
      if (i < decay_end) p[i] *= 1 - o.lr * o.weight_decay;
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * gv[i];
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * gv[i] * gv[i];
      p[i] -= o.lr / bc1 * m[i] / (std::sqrt(v[i] / bc2) + o.eps);
    }
  }
  EXPECT_LT(max_abs_diff(buf.data().to_vector(), p), 1e-5);
  EXPECT_LT(max_abs_diff(opt.state().exp_avg.to_vector(), m), 1e-6);
  EXPECT_LT(max_abs_diff(opt.state().exp_avg_sq.to_vector(), v), 1e-6);
  std::vector<double> pd = buf.data().to_vector(), c = copy.to_vector();
  for (size_t i = 0; i < pd.size(); ++i) ASSERT_EQ(c[i], double(float(bf16(float(pd[i]))))) << i;
  // The model's own handles see the update.
  EXPECT_EQ(net.a->weight.to_vector(), buf.slot("a.weight").param.to_vector());
}

// backward writes the gradients into the packed buffer on the device; their values against the
// same model in f64 on the host.
TEST_P(OptimOnDevice, GradientsLandInTheDeviceBuffer) {
  const Device d = device();
  Generator g(3);
  Net net(g);
  nn::ParameterBuffer buf = nn::ParameterBuffer::pack(net, DType::F32, d);
  Tensor x = randn({8, 37}, g, DType::F32, d);
  sum(net.b->forward(net.ln->forward(net.a->forward(x)))).backward();
  buf.check_bound();
  EXPECT_EQ(buf.grad().device(), d);
  EXPECT_EQ(net.a->weight.grad().to_vector(), buf.slot("a.weight").grad.to_vector());
  EXPECT_GT(optim::grad_norm(buf.grad()), 0.0);
  Generator g2(3);
  Net ref(g2);
  nn::ParameterBuffer ref_buf = nn::ParameterBuffer::pack(ref, DType::F64);
  sum(ref.b->forward(ref.ln->forward(ref.a->forward(x.to(Device::cpu()).to(DType::F64))))).backward();
  EXPECT_LT(max_abs_diff(net.a->weight.grad().to_vector(), ref.a->weight.grad().to_vector()), 1e-3);
}

SPARROW_DEVICE_TESTS(OptimOnDevice);
