// ring_volume: what context parallelism exchanges, measured. Run under the launcher:
//   mpirun -np P build/bin/ring_volume --seq 8192 --block 64 --json
// For each pattern and target sparsity it runs one layer's attention (the real backend under
// ring attention, causal) forward and backward on random CPU tensors, and reports, summed over
// ranks: the ring hops a full ring would make (P·(P−1)), those whose shards travelled and were
// computed on, the key/value bytes the forward sent and did not send, and the time of one
// forward+backward. The cost model (bench/ring_cost_model.py) reads these lines.
//
// --plan-only --ranks 8,64,1024: no launcher and no compute; for each pattern, sparsity and rank
// count, the hops the ring plan sends for a sequence of --seq tokens (what the cost model uses
// past the rank counts that can be run here).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "attention/attention.h"
#include "attention/layout/block_layout.h"
#include "attention/ring/context_parallel.h"
#include "framework/core/rng.h"
#include "framework/ops/ops.h"

using namespace sparrow;

namespace {

struct Case {
  std::string name;     // as printed
  std::string backend;  // dense | block_sparse | hierarchical | adaptive
  std::vector<std::string> patterns;
  double sparsity;
};

std::vector<Case> cases() {
  std::vector<Case> c{{"dense", "dense", {}, 0.0}};
  for (double s : {0.90, 0.95, 0.99}) {
    c.push_back({"bigbird", "block_sparse", {"bigbird"}, s});
    c.push_back({"local", "block_sparse", {"local"}, s});
    c.push_back({"local+global", "block_sparse", {"local", "global"}, s});
  }
  // Backends whose layout is not a pattern: hierarchical (its defaults) and adaptive (selected
  // from the data, here random tensors), with the collectives they need besides the ring.
  c.push_back({"hierarchical", "hierarchical", {}, 0.0});
  for (double s : {0.95, 0.99}) c.push_back({"adaptive", "adaptive", {}, s});
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Ring attention exchange volume and skipped ring steps per pattern (run under mpirun)", "ring_volume"};
  int64_t seq = 8192, heads = 2, head_dim = 32, block = 64;
  bool json = false, plan_only = false;
  std::string ranks_list = "8,16,64,256,1024";
  app.add_option("--seq", seq, "sequence length N (whole sequence)")->check(CLI::PositiveNumber);
  app.add_option("--heads", heads, "heads H")->check(CLI::PositiveNumber);
  app.add_option("--head-dim", head_dim, "head dim D")->check(CLI::PositiveNumber);
  app.add_option("--block", block, "block size")->check(CLI::PositiveNumber);
  app.add_flag("--json", json, "one JSON line per case");
  app.add_flag("--plan-only", plan_only, "print the ring plans' hops for --ranks, without running");
  app.add_option("--ranks", ranks_list, "with --plan-only: rank counts, comma-separated");
  CLI11_PARSE(app, argc, argv);
  try {
    if (plan_only) {
      std::stringstream ss(ranks_list);
      std::string item;
      while (std::getline(ss, item, ',')) {
        const int P = std::stoi(item);
        for (const Case& c : cases()) {
          if (c.backend != "dense" && c.backend != "block_sparse") continue;  // their layouts need the data
          attn::AttentionConfig cfg;
          cfg.block_size = block;
          cfg.sparsity = c.sparsity;
          if (!c.patterns.empty()) cfg.pattern.names = c.patterns;
          auto layout = c.patterns.empty() ? nullptr : attn::get_layout(cfg, seq, 1, true);
          const attn::RingPlan plan = attn::make_ring_plan(seq, P, block, true, layout.get());
          std::cout << nlohmann::json{{"pattern", c.name},
                                      {"target_sparsity", c.sparsity},
                                      {"density", layout ? layout->density() : 1.0},
                                      {"ranks", P},
                                      {"seq", seq},
                                      {"block", block},
                                      {"hops_full_ring", P * (P - 1)},
                                      {"hops_sent", plan.hops_sent()}}
                           .dump()
                    << "\n";
        }
      }
      return 0;
    }
    auto world = dist::make_communicator("auto");
    const int P = world->size(), r = world->rank();
    if (P < 2) {
      std::cerr << "ring_volume: start it with a launcher, e.g. mpirun -np 4 " << argv[0] << "\n";
      return 2;
    }
    attn::ContextParallel cp;
    cp.comm = world.get();
    cp.seq_len = seq;
    cp.block_size = block;
    const int64_t n = cp.dense_plan(true).local_len(r);
    for (const Case& c : cases()) {
      attn::AttentionConfig cfg;
      cfg.backend = c.backend;
      cfg.block_size = block;
      cfg.sparsity = c.sparsity;
      if (!c.patterns.empty()) cfg.pattern.names = c.patterns;
      auto attention = attn::make_attention(cfg);
      Generator g(static_cast<uint64_t>(r) + 1);
      const Shape shape{1, heads, n, head_dim};
      Tensor q = randn(shape, g).requires_grad_(), k = randn(shape, g).requires_grad_(),
             v = randn(shape, g).requires_grad_();
      attn::AttentionCall call{q, k, v, true, 0, &cp};
      world->barrier();
      const auto t0 = std::chrono::steady_clock::now();
      Tensor o = attention->forward(call);
      sum(o).backward();
      world->barrier();
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      const attn::AttentionStats s = attention->stats();
      Tensor totals = from_vector(
          std::vector<double>{double(s.ring_hops_computed), double(s.ring_hops_idle), double(s.ring_bytes_sent),
                              double(s.ring_bytes_skipped), double(s.ring_collective_bytes)},
          {5}, DType::F64);
      world->all_reduce(totals)->wait();
      const std::vector<double> t = totals.to_vector();
      if (r != 0) continue;
      nlohmann::json j{{"pattern", c.name},
                       {"target_sparsity", c.sparsity},
                       {"density", s.density},
                       {"ranks", P},
                       {"seq", seq},
                       {"heads", heads},
                       {"head_dim", head_dim},
                       {"block", block},
                       {"hops_full_ring", P * (P - 1)},
                       {"hops_computed", t[0]},
                       {"hops_idle", t[1]},
                       {"bytes_sent", t[2]},
                       {"bytes_skipped", t[3]},
                       {"collective_bytes", t[4]},
                       {"fwd_bwd_ms", ms}};
      if (json) {
        std::cout << j.dump() << "\n";
      } else {
        std::printf(
            "%-13s sparsity %.2f density %.3f  P=%d: hops computed %3.0f of %d, bytes sent %.3g (skipped %.3g), "
            "collectives %.3g, %.1f ms\n",
            c.name.c_str(), c.sparsity, s.density, P, t[0], P * (P - 1), t[2], t[3], t[4], ms);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "ring_volume: " << e.what() << "\n";
    return 1;
  }
}
