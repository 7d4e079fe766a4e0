// `train`: the product's main job.
//   train --config configs/long_doc.yaml [--set section.key=value]... [--out DIR] [--resume auto|PATH]
// Exit status: 0 done (or stopped cleanly by SIGINT/SIGTERM), 2 a configuration or usage error,
// 1 any other failure (data, checkpoint, memory, non-finite training). Every error is one line.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <new>

#include "framework/core/error.h"
#include "train/checkpoint.h"
#include "train/config/config.h"
#include "train/program_main.h"
#include "train/trainer.h"

using namespace sparrow;

namespace {

int run_cli(int argc, char** argv) {
  CLI::App app{"Sparrow: train a byte-level transformer LM with pluggable attention"};
  std::string config_path, out_dir, resume;
  std::vector<std::string> overrides;
  bool list_keys = false, profile = false;
  app.set_help_flag("-h,--help", "Print this help and every configuration key with its default");
  app.add_option("--config", config_path, "YAML configuration file")->check(CLI::ExistingFile);
  app.add_option("--set", overrides, "Override a key: --set section.key=value (repeatable)")->allow_extra_args(false);
  app.add_option("--out", out_dir, "Run folder (default: checkpoint.dir)");
  app.add_option("--resume", resume, "Resume: 'auto' (newest checkpoint in the run folder) or a checkpoint folder");
  app.add_flag("--profile", profile,
               "Time every op and phase after the first two steps; table to <run>/profile.txt (slows the run)");
  app.add_flag("--keys", list_keys, "List every configuration key with its default and exit");
  app.footer("Configuration keys (YAML sections; --set section.key=value):\n" + train::config_help());
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << "train: " << e.what() << " (see train --help)\n";
    return 2;
  }
  if (list_keys) {
    std::cout << train::config_help();
    return 0;
  }
  if (config_path.empty() && overrides.empty()) {
    std::cerr << "train: no --config given (see train --help)\n";
    return 2;
  }
  train::Config cfg;
  try {
    cfg = train::load_config(config_path, overrides);
  } catch (const train::ConfigError& e) {
    std::cerr << "train: " << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "train: " << (config_path.empty() ? "--set" : config_path) << ": out of memory reading the config\n";
    return 2;
  }
  try {
    train::RunOptions run;
    run.out_dir = out_dir;
    run.resume = resume;
    run.config_path = config_path;
    run.profile = profile;
    train::RunResult r = train::run_training(cfg, run);
    if (r.stopped_early) std::printf("stopped after step %lld; resume with --resume auto\n", (long long)r.steps_done);
    return 0;
  } catch (const train::ConfigError& e) {
    std::cerr << "train: " << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "train: out of memory (lower train.seq_len or train.batch_size, or set train.recompute: true)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "train: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  return sparrow::train::run_program("train", [&] { return run_cli(argc, argv); });
}
