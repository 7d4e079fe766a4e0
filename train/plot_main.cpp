// plot: training curves of one or several runs in one PNG, to compare attention backends.
//   build/bin/plot runs/dense runs/block_sparse_90 [--out cmp.png] [--smooth 10]
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "train/plot/figure.h"

namespace {

int run_cli(int argc, char** argv) {
  CLI::App app{"Sparrow plot: training loss, validation bits per byte and tokens/s of runs, as one PNG"};
  std::vector<std::string> runs;
  sparrow::plot::PlotOptions opt;
  app.add_option("runs", runs, "run folders (each holds metrics.jsonl and config.yaml)")->required();
  app.add_option("--out,-o", opt.out, "PNG to write (default: <first run>/curves.png)");
  app.add_option("--smooth", opt.smooth, "moving average over N steps for training loss and tokens/s (1: raw)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--width", opt.width, "figure width in pixels")->check(CLI::Range(600, 16384));
  app.add_option("--height", opt.height, "figure height in pixels")->check(CLI::Range(300, 16384));
  app.add_flag("--log-y", opt.log_y, "logarithmic y axis for the loss panels");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    const std::string out = sparrow::plot::plot_runs(runs, opt);
    std::printf("wrote %s\n", out.c_str());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "plot: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

// Whatever escapes (an allocation failing while the command line is read) ends as one line
// and a non-zero status, never as std::terminate's abort.
int main(int argc, char** argv) {
  try {
    return run_cli(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "plot: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "plot: unexpected error\n");
  }
  return 1;
}
