// bench_attention: times one attention backend on random inputs — forward, and forward+backward
// — and reports the median of --repeat runs after a warm-up, the effective rate, the realised
// sparsity and the peak memory of the timed runs.
//
// FLOPs (the design's convention): forward = 4·N²·D·H·B·density, halved under causal masking
// (density is relative to the causal triangle, which is half the square); fwd+bwd = 3.5 × forward
// (backward = 2.5 × forward). `kernel_flops` is the backend's own count of the tiles it computed.
//
// Peak memory. CPU: the growth of the resident set over the timed runs (the host block cache
// emptied first): the kernel's high-water
// mark (VmHWM in /proc/self/status) is reset by writing "5" to /proc/self/clear_refs just before
// them, and peak_bytes = VmHWM after − VmRSS before. Where clear_refs cannot be written,
// getrusage's ru_maxrss (a lifetime peak, never reset) is used the same way and peak_method says
// so; it then under-reports when an earlier phase peaked higher. CUDA: the caching allocator's
// peak of allocated bytes (reset_peak before, peak_allocated − allocated before).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <new>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "framework/autograd/node.h"
#include "framework/core/host_allocator.h"
#include "framework/core/rng.h"
#ifdef SPARROW_WITH_CUDA
#include "framework/cuda/allocator.h"
#include "framework/cuda/runtime.h"
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

using namespace sparrow;

namespace {

// A /proc/self/status field in bytes (its values are in kB); −1 when absent.
int64_t proc_status_bytes(const std::string& field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field + ":", 0) == 0) {
      std::istringstream is(line.substr(field.size() + 1));
      int64_t kb = 0;
      is >> kb;
      return kb * 1024;
    }
  return -1;
}

int64_t maxrss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

// Measures the peak memory of what runs between begin() and end().
class PeakMemory {
 public:
  explicit PeakMemory(Device d) : dev_(d) {}
  void begin() {
#ifdef SPARROW_WITH_CUDA
    if (dev_.is_cuda()) {
      cuda::synchronize();
      base_ = static_cast<int64_t>(cuda::allocator_stats(dev_.index).allocated);
      cuda::reset_peak(dev_.index);
      method_ = "cuda caching allocator peak_allocated";
      return;
    }
#endif
    // Cached host blocks from the warm-up would already be resident (and reused): hand them back
    // first, so the growth counts every block the timed runs hold at their peak.
    host_memory::empty_cache();
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    clear.flush();
    hwm_reset_ = clear.good() && proc_status_bytes("VmHWM") >= 0;
    base_ = hwm_reset_ ? proc_status_bytes("VmRSS") : maxrss_bytes();
    method_ = hwm_reset_ ? "VmHWM (reset via /proc/self/clear_refs) - VmRSS before"
                         : "getrusage ru_maxrss growth (lifetime peak, not resettable here)";
  }
  int64_t end() const {
#ifdef SPARROW_WITH_CUDA
    if (dev_.is_cuda()) {
      cuda::synchronize();
      return static_cast<int64_t>(cuda::allocator_stats(dev_.index).peak_allocated) - base_;
    }
#endif
    return std::max<int64_t>(0, (hwm_reset_ ? proc_status_bytes("VmHWM") : maxrss_bytes()) - base_);
  }
  const std::string& method() const { return method_; }

 private:
  Device dev_;
  int64_t base_ = 0;
  bool hwm_reset_ = false;
  std::string method_;
};

void sync(Device d) {
#ifdef SPARROW_WITH_CUDA
  if (d.is_cuda()) cuda::synchronize();
#else
  (void)d;
#endif
}

template <class F>
double time_ms(Device d, F&& f) {
  sync(d);
  auto t0 = std::chrono::steady_clock::now();
  f();
  sync(d);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<std::string> split_names(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

int run_cli(int argc, char** argv) {
  CLI::App app{"Time one attention backend: forward and forward+backward on random inputs", "bench_attention"};
  std::string device = "cpu", backend = "dense", pattern, dtype = "f32";
  double sparsity = 0;
  int64_t seq = 4096, heads = 4, head_dim = 64, batch = 1, block = 64;
  int repeat = 5;
  bool causal = false, json = false;
  app.add_option("--device", device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--backend", backend, "attention backend (registry name)")->required();
  app.add_option("--pattern", pattern, "block-sparse pattern names, comma-separated (e.g. bigbird or local,global)");
  app.add_option("--sparsity", sparsity, "target sparsity for sparse backends");
  app.add_option("--seq", seq, "sequence length N")->required()->check(CLI::PositiveNumber);
  app.add_option("--heads", heads, "heads H")->required()->check(CLI::PositiveNumber);
  app.add_option("--head-dim", head_dim, "head dim D")->required()->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "batch B")->check(CLI::PositiveNumber);
  app.add_option("--block", block, "block size")->check(CLI::PositiveNumber);
  app.add_flag("--causal", causal, "causal masking");
  app.add_option("--dtype", dtype, "f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}));
  app.add_option("--repeat", repeat, "timed runs (median reported)")->check(CLI::PositiveNumber);
  app.add_flag("--json", json, "print one JSON line");
  CLI11_PARSE(app, argc, argv);

  try {
    Device dev = Device::parse(device);
    if (dev.is_cuda() && !cuda_available()) {
#ifdef SPARROW_WITH_CUDA
      std::cerr << "bench_attention: --device cuda, but no CUDA device is visible\n";
#else
      std::cerr << "bench_attention: --device cuda, but this build has no CUDA (configure with SPARROW_CUDA=ON)\n";
#endif
      return 2;
    }
    attn::AttentionConfig cfg;
    cfg.backend = backend;
    cfg.block_size = block;
    cfg.sparsity = sparsity;
    if (!pattern.empty()) cfg.pattern.names = split_names(pattern);
    auto attention = attn::make_attention(cfg);
    const DType dt = parse_dtype(dtype);

    Generator gen(0);
    const Shape shape{batch, heads, seq, head_dim};
    Tensor q = randn(shape, gen, dt, dev), k = randn(shape, gen, dt, dev), v = randn(shape, gen, dt, dev);
    Tensor dout = randn(shape, gen, dt, dev);
    Tensor qg = q.detach(), kg = k.detach(), vg = v.detach();
    qg.requires_grad_();
    kg.requires_grad_();
    vg.requires_grad_();

    auto forward = [&] {
      NoGradGuard ng;
      Tensor o = attention->forward({q, k, v, causal, 0});
    };
    auto forward_backward = [&] {
      for (Tensor* t : {&qg, &kg, &vg}) t->zero_grad();
      Tensor o = attention->forward({qg, kg, vg, causal, 0});
      o.backward(dout);
    };
    forward();  // warm-up: builds and caches the layout, touches every buffer once
    forward_backward();
    for (Tensor* t : {&qg, &kg, &vg}) t->zero_grad();  // the timed runs' peak includes their gradients

    PeakMemory peak(dev);
    peak.begin();
    std::vector<double> fwd, fwdbwd;
    for (int r = 0; r < repeat; ++r) fwd.push_back(time_ms(dev, forward));
    for (int r = 0; r < repeat; ++r) fwdbwd.push_back(time_ms(dev, forward_backward));
    const int64_t peak_bytes = peak.end();

    const attn::AttentionStats st = attention->stats();
    const double fwd_ms = median(fwd), fwdbwd_ms = median(fwdbwd);
    const double fwd_flops = 4.0 * double(seq) * double(seq) * double(head_dim) * double(heads) * double(batch) *
                             st.density * (causal ? 0.5 : 1.0);
    const double fwdbwd_flops = 3.5 * fwd_flops;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif

    nlohmann::json j;
    j["backend"] = st.backend.empty() ? backend : st.backend;
    j["pattern"] = pattern.empty() ? (backend == "dense" ? "" : "default") : pattern;
    j["seq"] = seq;
    j["heads"] = heads;
    j["head_dim"] = head_dim;
    j["batch"] = batch;
    j["block"] = block;
    j["causal"] = causal;
    j["dtype"] = dtype;
    j["device"] = dev.str();
    j["threads"] = threads;
    j["target_sparsity"] = sparsity;
    j["sparsity"] = 1.0 - st.density;
    j["density"] = st.density;
    j["active_blocks"] = st.active_blocks;
    j["dense_blocks"] = st.dense_blocks;
    j["fwd_ms"] = fwd_ms;
    j["fwdbwd_ms"] = fwdbwd_ms;
    j["fwd_gflops"] = fwd_flops / (fwd_ms * 1e6);
    j["fwdbwd_gflops"] = fwdbwd_flops / (fwdbwd_ms * 1e6);
    j["kernel_flops"] = st.flops;
    j["peak_bytes"] = peak_bytes;
    j["peak_method"] = peak.method();
    j["repeat"] = repeat;
    if (json) {
      std::cout << j.dump() << "\n";
    } else {
      std::printf("%s on %s (%d threads): B=%lld H=%lld N=%lld D=%lld block=%lld %s %s\n",
                  j["backend"].get<std::string>().c_str(), dev.str().c_str(), threads, (long long)batch,
                  (long long)heads, (long long)seq, (long long)head_dim, (long long)block,
                  causal ? "causal" : "non-causal", dtype.c_str());
      std::printf("  density %.4f (sparsity %.4f, target %.4f), %lld of %lld blocks\n", st.density, 1.0 - st.density,
                  sparsity, (long long)st.active_blocks, (long long)st.dense_blocks);
      std::printf("  forward      %10.3f ms  %8.2f GFLOP/s\n", fwd_ms, j["fwd_gflops"].get<double>());
      std::printf("  fwd+bwd      %10.3f ms  %8.2f GFLOP/s\n", fwdbwd_ms, j["fwdbwd_gflops"].get<double>());
      std::printf("  peak memory  %10.1f MiB  (%s)\n", double(peak_bytes) / (1 << 20), peak.method().c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "bench_attention: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

// Whatever escapes run_cli() (an allocation failing while the command line is read, an
// exception type nobody expected) ends as one line and a non-zero status, never as
// std::terminate's abort.
int main(int argc, char** argv) {
  try {
    return run_cli(argc, argv);
  } catch (const std::bad_alloc&) {
    std::cerr << "bench_attention: out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << "bench_attention: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "bench_attention: unexpected error\n";
  }
  return 1;
}
