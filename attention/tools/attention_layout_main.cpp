// attention_layout: builds a block-sparse layout from flags, prints its statistics, and
// optionally draws it.
//   attention_layout --pattern bigbird --seq 16384 --sparsity 0.95 --png out.png
// Bad flags or an invalid configuration: one line on stderr, exit status 2.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "attention/attention_config.h"
#include "attention/layout/block_layout.h"
#include "attention/layout/layout_png.h"
#include "framework/core/error.h"

using namespace sparrow::attn;

namespace {

// The layout's per-head CSR as JSON, for tools that must run the identical block pairs
// (bench/attention_gpu_compare.py --layout-dir):
//   {"seq_len", "key_len", "block_size", "causal", "heads": [{"row_ptr": [...], "col_idx": [...]}, ...]}
// One head entry when the layout is shared by all heads.
void dump_csr_json(const BlockLayout& L, const std::string& path) {
  std::ofstream f(path);
  SPARROW_CHECK(f.good(), "attention_layout: cannot write ", path);
  f << "{\"seq_len\": " << L.seq_len << ", \"key_len\": " << (L.key_len ? L.key_len : L.seq_len)
    << ", \"block_size\": " << L.block_size << ", \"causal\": " << (L.causal ? "true" : "false") << ", \"heads\": [";
  for (size_t h = 0; h < L.heads.size(); ++h) {
    const BlockCSR& c = L.heads[h];
    f << (h ? ", " : "") << "{\"row_ptr\": [";
    for (size_t i = 0; i < c.row_ptr.size(); ++i) f << (i ? "," : "") << c.row_ptr[i];
    f << "], \"col_idx\": [";
    for (size_t i = 0; i < c.col_idx.size(); ++i) f << (i ? "," : "") << c.col_idx[i];
    f << "]}";
  }
  f << "]}\n";
  SPARROW_CHECK(f.good(), "attention_layout: write to ", path, " failed");
}

}  // namespace

int main(int argc, char** argv) {
  AttentionConfig cfg;
  cfg.backend = "block_sparse";
  PatternConfig& p = cfg.pattern;
  int64_t seq = 16384, heads = 1, png_head = 0, png_max = 2048;
  bool causal = false;
  std::string png, dump_csr;

  CLI::App app{"Build a block-sparse attention layout and print its statistics", "attention_layout"};
  app.add_option("--pattern", p.names, "pattern names, comma separated: local, dilated, strided, fixed, global, random, bigbird")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--seq", seq, "sequence length N (tokens)")->capture_default_str();
  app.add_option("--block", cfg.block_size, "block size (tokens)")->capture_default_str();
  app.add_option("--sparsity", cfg.sparsity, "target sparsity in [0, 1); 0: the patterns exactly as configured")
      ->capture_default_str();
  app.add_flag("--causal", causal, "causal masking (never a block above the diagonal)");
  app.add_option("--heads", heads, "attention heads")->capture_default_str();
  app.add_flag("--per-head", p.per_head, "a layout per head (the random part differs by head)");
  app.add_option("--window", p.window, "local/dilated: blocks on each side (causal: behind)")->capture_default_str();
  app.add_option("--global", p.global_blocks, "global: sink blocks that see and are seen by all")->capture_default_str();
  app.add_option("--random", p.random_blocks, "random: key blocks per query row")->capture_default_str();
  app.add_option("--stride", p.stride, "strided/fixed: the Sparse Transformer stride, in blocks")->capture_default_str();
  app.add_option("--rates", p.dilation_rates, "dilated: rates, comma separated")->delimiter(',')->capture_default_str();
  app.add_option("--seed", p.seed, "random: seed")->capture_default_str();
  app.add_option("--png", png, "draw the layout to this PNG file");
  app.add_option("--png-head", png_head, "which head to draw")->capture_default_str();
  app.add_option("--dump-csr", dump_csr, "write the per-head CSR to this JSON file");
  app.add_option("--png-max", png_max, "largest image side in pixels; larger layouts are max-pooled")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "attention_layout: " << e.what() << " (see --help)\n";
    return 2;
  }

  try {
    SPARROW_CHECK(png_head >= 0 && png_head < heads, "attention_layout: --png-head ", png_head, " outside [0, ", heads, ")");
    auto layout = get_layout(cfg, seq, heads, causal);
    std::cout << layout_summary(*layout);
    if (!dump_csr.empty()) dump_csr_json(*layout, dump_csr);
    if (!png.empty()) {
      const int64_t side = write_layout_png(*layout, png_head, png, png_max);
      std::cout << "png: " << png << " (" << side << " px side, head " << png_head << ")\n";
    }
  } catch (const sparrow::Error& e) {
    std::cerr << "attention_layout: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
