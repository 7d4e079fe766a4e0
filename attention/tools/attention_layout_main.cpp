// attention_layout: builds a block-sparse layout from flags, prints its statistics, and
// optionally draws it.
//   attention_layout --pattern bigbird --seq 16384 --sparsity 0.95 --png out.png
// Bad flags or an invalid configuration: one line on stderr, exit status 2.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "attention/attention_config.h"
#include "attention/layout/block_layout.h"
#include "attention/layout/layout_png.h"
#include "framework/core/error.h"

using namespace sparrow::attn;

int main(int argc, char** argv) {
  AttentionConfig cfg;
  cfg.backend = "block_sparse";
  PatternConfig& p = cfg.pattern;
  int64_t seq = 16384, heads = 1, png_head = 0, png_max = 2048;
  bool causal = false;
  std::string png;

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
