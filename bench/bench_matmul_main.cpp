// CPU f32 matmul throughput (Sparrow's Eigen path, through the public op) beside the machine's
// estimated peak: cores × GHz × fp32 FLOPs per cycle, read from /proc/cpuinfo.
//
// FLOPs per cycle per core: two FMA ports, each FMA counting 2 FLOPs per lane —
//   avx512f: 2 × 16 lanes × 2 = 64,  avx2 + fma: 2 × 8 × 2 = 32,  otherwise (SSE) 2 × 4 × 2 = 16.
// This is the usual server-core figure; parts with a single 512-bit FMA unit reach half of it.
//
//   build/bin/bench_matmul [--benchmark_repetitions=3 ...]
#include <benchmark/benchmark.h>

#include <chrono>
#include <exception>
#include <fstream>
#include <iostream>
#include <new>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "framework/core/rng.h"
#include "framework/ops/ops.h"

namespace {

struct CpuPeak {
  int cores = 1;
  double ghz = 0;
  int flops_per_cycle = 16;
  std::string isa = "sse";
  double gflops() const { return cores * ghz * flops_per_cycle; }
};

CpuPeak read_cpu_peak() {
  CpuPeak p;
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  std::set<std::string> flags;
  std::set<std::pair<int, int>> physical;  // (physical id, core id): hyperthreads share a core's FMA units
  int processors = 0, phys = 0;
  double mhz_sum = 0;
  int mhz_n = 0;
  while (std::getline(in, line)) {
    auto value = [&] { return line.substr(line.find(':') + 1); };
    if (line.rfind("processor", 0) == 0)
      ++processors;
    else if (line.rfind("physical id", 0) == 0)
      phys = std::stoi(value());
    else if (line.rfind("core id", 0) == 0)
      physical.insert({phys, std::stoi(value())});
    else if (line.rfind("cpu MHz", 0) == 0) {
      mhz_sum += std::stod(value());
      ++mhz_n;
    } else if (line.rfind("flags", 0) == 0 && flags.empty()) {
      std::istringstream words(value());
      for (std::string w; words >> w;) flags.insert(w);
    }
  }
  p.cores = physical.empty() ? std::max(processors, 1) : static_cast<int>(physical.size());
  p.ghz = mhz_n ? mhz_sum / mhz_n / 1000.0 : 0.0;
  if (flags.count("avx512f")) {
    p.flops_per_cycle = 64;
    p.isa = "avx512f";
  } else if (flags.count("avx2") && flags.count("fma")) {
    p.flops_per_cycle = 32;
    p.isa = "avx2+fma";
  }
  return p;
}

const CpuPeak& peak() {
  static const CpuPeak p = read_cpu_peak();
  return p;
}

// C[M,N] = A[M,K]·B[K,N] in f32 on the CPU.
void BM_MatmulF32(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  sparrow::Generator g(1);
  sparrow::Tensor a = sparrow::randn({m, k}, g), b = sparrow::randn({k, n}, g);
  // Wall time of the timed loop, for the fraction of peak (a plain ratio, not a per-second rate).
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    sparrow::Tensor c = sparrow::matmul(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double flops = 2.0 * m * n * k;
  const double gflops = flops * static_cast<double>(state.iterations()) / secs * 1e-9;
  state.counters["GFLOP/s"] = gflops;
  state.counters["peak_GFLOP/s"] = peak().gflops();
  state.counters["of_peak"] = gflops / peak().gflops();
}

BENCHMARK(BM_MatmulF32)
    ->ArgNames({"M", "N", "K"})
    ->Args({1024, 1024, 1024})
    ->Args({4096, 4096, 1024})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

int run_cli(int argc, char** argv) {
  const CpuPeak& p = peak();
  std::ostringstream ctx;
  ctx << p.cores << " cores x " << p.ghz << " GHz x " << p.flops_per_cycle << " FLOPs/cycle (" << p.isa
      << ") = " << p.gflops() << " GFLOP/s";
  benchmark::AddCustomContext("estimated_fp32_peak", ctx.str());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace

// Whatever escapes run_cli() (an allocation failing while the command line is read, an
// exception type nobody expected) ends as one line and a non-zero status, never as
// std::terminate's abort.
int main(int argc, char** argv) {
  try {
    return run_cli(argc, argv);
  } catch (const std::bad_alloc&) {
    std::cerr << "bench_matmul: out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << "bench_matmul: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "bench_matmul: unexpected error\n";
  }
  return 1;
}
