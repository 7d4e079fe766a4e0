// `eval`: score a trained run on held-out data by token position (and, for data.synthetic, by
// retrieval distance); a table on stdout and the same numbers as JSON.
//   eval --run RUN_FOLDER [--checkpoint DIR] [--json PATH] [--first-bucket 512] [--docs 64]
// Exit status: 0 done, 2 a usage error, 1 bad input (no run folder, no or corrupt checkpoint, a
// checkpoint of another model or sequence length) or any other failure. Every error is one line.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <new>

#include "framework/core/atomic_file.h"
#include "train/eval/evaluate_run.h"
#include "train/program_main.h"

using namespace sparrow;

namespace {

int run_cli(int argc, char** argv) {
  CLI::App app{"Sparrow eval: bits per byte by token position on held-out documents, retrieval accuracy by distance"};
  train::EvalOptions opt;
  std::string json_path;
  app.add_option("--run", opt.run_dir, "Run folder of `train` (config.yaml, checkpoints/, metrics.jsonl)");
  app.add_option("--checkpoint", opt.checkpoint, "Checkpoint folder (default: the run's newest complete one)");
  app.add_option("--json", json_path, "Write the results here (default: RUN/eval.json)");
  app.add_option("--first-bucket", opt.first_bucket, "Width of the first position/distance bucket; then doubling")
      ->default_val(512);
  app.add_option("--docs", opt.max_docs, "Held-out documents to score, one window each (0: all)")->default_val(64);
  app.add_option("--batches", opt.synthetic_batches, "Synthetic tasks: validation batches to score (0: eval.batches)");
  app.add_option("--device", opt.device, "auto, cpu or cuda (default: the run's train.device)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << "eval: " << e.what() << " (see eval --help)\n";
    return 2;
  }
  if (opt.run_dir.empty() && !opt.checkpoint.empty()) {
    // <run>/checkpoints/step-N: the run folder is two levels up.
    opt.run_dir = std::filesystem::path(opt.checkpoint).lexically_normal().parent_path().parent_path().string();
  }
  if (opt.run_dir.empty()) {
    std::cerr << "eval: no --run given (see eval --help)\n";
    return 2;
  }
  try {
    const train::EvalReport r = train::evaluate_run(opt);
    std::cout << train::format_report(r);
    if (json_path.empty()) json_path = (std::filesystem::path(opt.run_dir) / "eval.json").string();
    write_file_atomically(json_path, train::to_json(r).dump(2) + "\n");
    std::cout << "written " << json_path << "\n";
    return 0;
  } catch (const std::bad_alloc&) {
    std::cerr << "eval: out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << "eval: " << e.what() << "\n";
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  return sparrow::train::run_program("eval", [&] { return run_cli(argc, argv); });
}
