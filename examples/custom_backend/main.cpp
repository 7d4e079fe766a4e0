// An attention backend written outside Sparrow: causal attention restricted to a sliding window
// of `window` keys, written with the framework's ops (autograd gives the backward). One call
// registers it; the YAML config then names it (`attention.backend: windowed`) and the trainer's
// library entry point, run_training, trains with it. Exits non-zero unless the backend ran, every
// step finished and the loss fell.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include "attention/attention.h"
#include "framework/ops/ops.h"
#include "train/config/config.h"
#include "train/trainer.h"

using namespace sparrow;

namespace {

std::atomic<int64_t> forward_calls{0};

// The window is fixed, so this backend has no sparsity target. One that has reads it in forward as
// cfg_.sparsity_at(call.step): the layer's `attention.schedule` at the call's step where it is on,
// else `attention.sparsity`. Nothing pushes a sparsity into a backend.
class WindowedAttention : public attn::Attention {
 public:
  // The window (in tokens) is this backend's own: here, four blocks.
  explicit WindowedAttention(const attn::AttentionConfig& cfg) : cfg_(cfg), window_(4 * cfg.block_size) {}

  Tensor forward(const attn::AttentionCall& call) override {
    attn::check_qkv("windowed attention", call);
    ++forward_calls;
    const int64_t N = call.q.size(2), D = call.q.size(3);
    const double scale = cfg_.softmax_scale > 0 ? cfg_.softmax_scale : 1.0 / std::sqrt(double(D));
    Tensor scores = matmul(call.q, call.k, false, true) * scale + mask(N, call.causal);  // mask broadcasts over [B, H]
    Tensor out = matmul(softmax(scores, -1), call.v);
    const double visible = visible_pairs(N, call.causal), all = call.causal ? N * (N + 1) / 2.0 : double(N) * N;
    stats_.backend = name();
    stats_.seq_len = N;
    stats_.density = visible / all;
    stats_.target_sparsity = 1.0 - stats_.density;
    return out;
  }
  attn::AttentionStats stats() const override { return stats_; }
  std::string name() const override { return "windowed"; }

 private:
  bool sees(int64_t i, int64_t j, bool causal) const { return (!causal || j <= i) && std::abs(i - j) < window_; }
  double visible_pairs(int64_t N, bool causal) const {
    double n = 0;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) n += sees(i, j, causal);
    return n;
  }
  // [N, N] additive mask: 0 where query i sees key j, -1e9 elsewhere (built once per length).
  const Tensor& mask(int64_t N, bool causal) {
    Tensor& m = masks_[N * 2 + causal];
    if (!m.defined()) {
      std::vector<float> v(static_cast<size_t>(N * N));
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) v[static_cast<size_t>(i * N + j)] = sees(i, j, causal) ? 0.0f : -1e9f;
      m = from_vector(v, {N, N});
    }
    return m;
  }

  attn::AttentionConfig cfg_;
  int64_t window_;
  attn::AttentionStats stats_;
  std::map<int64_t, Tensor> masks_;
};

int run(const std::string& config_path) {
  // The one registration call: from here on `windowed` is a backend like the built-in ones.
  attn::register_attention("windowed", [](const attn::AttentionConfig& cfg) -> std::unique_ptr<attn::Attention> {
    return std::make_unique<WindowedAttention>(cfg);
  });

  const train::Config cfg = train::load_config(config_path);
  const std::filesystem::path out =
      std::filesystem::temp_directory_path() / ("sparrow_custom_backend_" + std::to_string(::getpid()));
  train::RunOptions run;
  run.out_dir = out.string();
  run.config_path = config_path;
  const train::RunResult result = train::run_training(cfg, run);
  std::filesystem::remove_all(out);

  const double initial = std::log(double(cfg.model.vocab_size));  // the loss of a uniform guess
  std::printf("custom_backend: backend '%s' ran %lld forwards; %lld steps, final loss %.3f (uniform guess %.3f)\n",
              cfg.attention.base.attn.backend.c_str(), static_cast<long long>(forward_calls.load()),
              static_cast<long long>(result.steps_done), result.final_loss, initial);
  bool ok = true;
  auto expect = [&](bool cond, const char* what) {
    if (!cond) std::fprintf(stderr, "custom_backend: FAILED: %s\n", what);
    ok = ok && cond;
  };
  expect(cfg.attention.base.attn.backend == "windowed", "the config chose the registered backend");
  expect(forward_calls.load() > 0, "the registered backend ran");
  expect(result.steps_done == cfg.train.steps, "every step ran");
  expect(std::isfinite(result.final_loss) && result.final_loss < initial - 1.0, "the loss fell");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc > 1 ? argv[1] : CUSTOM_BACKEND_CONFIG);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "custom_backend: %s\n", e.what());
    return 1;
  }
}
