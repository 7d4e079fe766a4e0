// attention_layout: builds a block-sparse layout from flags, prints its statistics, and
// optionally draws it.
//   attention_layout --pattern bigbird --seq 16384 --sparsity 0.95 --png out.png
//   attention_layout --per-head --heads 4 --causal --png out.png --png-head all   (heads side by side)
// Bad flags, an invalid configuration or a layout too large to build: one line on stderr, exit
// status 2. A failure to write the PNG or any other error: one line, exit status 1.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <iostream>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "attention/attention_config.h"
#include "attention/layout/block_layout.h"
#include "attention/layout/layout_png.h"
#include "attention/layout/patterns.h"
#include "framework/core/error.h"
#include "framework/core/file_io.h"

using namespace sparrow::attn;

namespace {

// The layout's per-head CSR as JSON, for tools that must run the identical block pairs
// (bench/attention_gpu_compare.py --layout-dir):
//   {"seq_len", "key_len", "block_size", "causal", "heads": [{"row_ptr": [...], "col_idx": [...]}, ...]}
// One head entry when the layout is shared by all heads.
void dump_csr_json(const BlockLayout& L, const std::string& path) {
  std::ostringstream f;
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
  sparrow::write_whole_file(path, f.str());
}

// What the tool builds at most, checked before building: a layout is O(nb + active blocks) in
// memory (about 8 bytes an active block with its transpose, 40 a block row), so these hold it
// to a few GiB. Training never gets near them (64K tokens at block 64 is 1024 blocks).
constexpr int64_t kMaxBlocks = int64_t(1) << 22;
constexpr double kMaxActiveBlocks = double(int64_t(1) << 28);

// Throws sparrow::Error when the layout these flags describe would be too large to build.
void check_layout_size(const AttentionConfig& cfg, int64_t seq, int64_t heads, bool causal) {
  SPARROW_CHECK(seq > 0, "--seq must be > 0, got ", seq);
  SPARROW_CHECK(cfg.block_size > 0, "--block must be > 0, got ", cfg.block_size);
  SPARROW_CHECK(heads >= 1, "--heads must be >= 1, got ", heads);
  const int64_t nb = layout_blocks(seq, cfg.block_size);
  SPARROW_CHECK(nb <= kMaxBlocks, "--seq ", seq, " at --block ", cfg.block_size, " gives ", nb,
                " blocks a side, over this tool's limit of ", kMaxBlocks, " (raise --block or lower --seq)");
  const double active = estimate_active_blocks(cfg, seq, heads, causal);
  SPARROW_CHECK(active <= kMaxActiveBlocks, "the layout would hold up to ", active,
                " active blocks, over this tool's limit of ", kMaxActiveBlocks,
                " (raise --sparsity or --block, narrow the patterns, or drop --per-head)");
}

int run_cli(int argc, char** argv) {
  AttentionConfig cfg;
  cfg.backend = "block_sparse";
  PatternConfig& p = cfg.pattern;
  int64_t seq = 16384, heads = 1, png_max = 2048;
  std::string png_head = "0";
  std::vector<int64_t> png_heads;
  bool causal = false;
  std::string png, dump_csr;

  CLI::App app{"Build a block-sparse attention layout and print its statistics", "attention_layout"};
  app.add_option("--pattern", p.names,
                 "pattern names, comma separated: local, dilated, strided, fixed, global, random, bigbird")
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
  app.add_option("--global", p.global_blocks, "global: sink blocks that see and are seen by all")
      ->capture_default_str();
  app.add_option("--random", p.random_blocks, "random: key blocks per query row")->capture_default_str();
  app.add_option("--stride", p.stride, "strided/fixed: the Sparse Transformer stride, in blocks")
      ->capture_default_str();
  app.add_option("--rates", p.dilation_rates, "dilated: rates, comma separated")->delimiter(',')->capture_default_str();
  app.add_option("--seed", p.seed, "random: seed")->capture_default_str();
  app.add_option("--png", png, "draw the layout to this PNG file");
  auto* head_opt =
      app.add_option("--png-head", png_head, "which head to draw, or 'all' (side by side)")->capture_default_str();
  app.add_option("--png-heads", png_heads, "heads to draw side by side, comma separated")
      ->delimiter(',')
      ->excludes(head_opt);
  app.add_option("--dump-csr", dump_csr, "write the per-head CSR to this JSON file");
  app.add_option("--png-max", png_max,
                 "most blocks a side drawn one per pixel; larger layouts are max-pooled (then upscaled to >= 512 px)")
      ->check(CLI::Range(int64_t(1), int64_t(16384)))
      ->capture_default_str();

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

  std::shared_ptr<const BlockLayout> layout;
  try {
    if (png_heads.empty()) {
      if (png_head == "all") {
        for (int64_t h = 0; h < heads; ++h) png_heads.push_back(h);
      } else {
        size_t used = 0;
        int64_t h = -1;
        try {
          h = std::stoll(png_head, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        SPARROW_CHECK(used == png_head.size() && !png_head.empty(), "--png-head '", png_head,
                      "' is neither a head index nor 'all'");
        png_heads.push_back(h);
      }
    }
    SPARROW_CHECK(png_heads.size() <= 64, "--png-head(s): at most 64 heads in one picture, got ", png_heads.size());
    for (int64_t h : png_heads) SPARROW_CHECK(h >= 0 && h < heads, "--png-head ", h, " outside [0, ", heads, ")");
    check_layout_size(cfg, seq, heads, causal);
    layout = get_layout(cfg, seq, heads, causal);
  } catch (const sparrow::Error& e) {
    std::cerr << "attention_layout: " << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "attention_layout: out of memory building the layout (raise --block or --sparsity)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "attention_layout: " << e.what() << "\n";
    return 1;
  }
  try {
    std::cout << layout_summary(*layout);
    if (!dump_csr.empty()) dump_csr_json(*layout, dump_csr);
    if (!png.empty()) {
      LayoutPngOptions opt;
      opt.max_blocks = png_max;
      const LayoutPngInfo info = write_layout_png(*layout, png_heads, png, opt);
      std::string which;
      for (int64_t h : png_heads) which += (which.empty() ? "" : ",") + std::to_string(h);
      std::cout << "png: " << png << " (" << info.width << "x" << info.height << " px, " << info.tile_side
                << " px side, head" << (png_heads.size() > 1 ? "s " : " ") << which << "; " << info.blocks_per_pixel
                << " block(s) a pixel, " << info.pixels_per_block
                << " px a block; blue full, orange partial, red the causal boundary)\n";
    }
  } catch (const std::bad_alloc&) {
    std::cerr << "attention_layout: out of memory drawing the layout (lower --png-max)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "attention_layout: " << e.what() << "\n";
    return 1;
  }
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
    std::cerr << "attention_layout: out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << "attention_layout: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "attention_layout: unexpected error\n";
  }
  return 1;
}
