#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "framework/autograd/node.h"
#include "framework/core/atomic_file.h"
#include "framework/core/profile.h"
#include "framework/dist/optimizer_shards.h"
#include "framework/nn/parameter_buffer.h"
#include "framework/ops/ops.h"
#include "framework/optim/adamw.h"
#include "framework/optim/lr_schedule.h"
#include "models/transformer.h"
#include "train/checkpoint.h"
#include "train/data/data.h"
#include "train/memory.h"
#include "train/metrics.h"
#include "train/model_from_config.h"
#include "train/parallel.h"
#include "train/progress.h"
#include "train/resume_check.h"
#include "train/run_folder.h"
#include "train/signals.h"
#include "train/step.h"

namespace fs = std::filesystem;

namespace sparrow::train {

namespace {

constexpr int kMaxNonFiniteInARow = 5;
constexpr int64_t kProfileWarmupSteps = 2;

// The --profile table, to the run folder and stdout.
void write_profile(const fs::path& out, int64_t steps) {
  profile::set_enabled(false);
  const std::string table = "profile of " + std::to_string(std::max<int64_t>(steps, 0)) +
                            " steps (the device is waited for around every op: use for shares, not speed)\n\n" +
                            profile::report();
  std::ofstream(out / "profile.txt") << table;
  std::fputs(table.c_str(), stdout);
}

// Under a launcher each rank takes the GPU of its local rank (rank_gpu_index).
Device resolve_device(const std::string& d) {
  if (d == "cpu") return Device::cpu();
  const auto this_ranks_gpu = [] {
    return Device::cuda(rank_gpu_index(dist::launched_world_size(), dist::launched_local_rank(), cuda_device_count()));
  };
  if (d == "cuda") {
    if (!cuda_available())
      throw TrainError("train.device is 'cuda' but no CUDA device is available (this build: " +
                       std::string(cuda_device_count() ? "" : "no GPU visible or built without CUDA") +
                       "); use train.device: auto or cpu");
    return this_ranks_gpu();
  }
  return cuda_available() ? this_ranks_gpu() : Device::cpu();
}

optim::LrSchedule lr_schedule(const Config& cfg) {
  optim::LrScheduleConfig s;
  s.lr = cfg.optim.lr;
  s.min_lr = cfg.optim.min_lr;
  s.warmup_steps = cfg.schedule.warmup_steps;
  s.total_steps = cfg.train.steps;
  s.kind = optim::parse_schedule_kind(cfg.schedule.decay);
  if (s.kind == optim::ScheduleKind::WSD) {
    s.decay_steps = static_cast<int64_t>(std::llround(cfg.schedule.cooldown_fraction * double(cfg.train.steps)));
    s.decay_shape = optim::DecayShape::Linear;
  }
  return optim::LrSchedule(s);
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Mean loss over `batches` validation batches, without recording; in nats per byte. Each rank
// scores its part of every batch, weighted as in training, and the ranks' sums are added.
double evaluate(models::TransformerLM& model, Sampler& val, int64_t batches, int64_t step, Device dev, DType compute,
                const Parallel& parallel) {
  NoGradGuard no_grad;
  model.eval();
  // The same validation batches every time, so evaluations compare across steps and runs.
  val.set_state(0);
  double sum = 0;
  for (int64_t i = 0; i < batches; ++i) {
    const Batch global = val.next();
    const Batch b = parallel.local(global);
    sum += parallel.loss_weight(global, b) * model.loss(b.inputs.to(dev), b.targets.to(dev), step, compute).item();
  }
  model.train();
  return parallel.sum(sum) / static_cast<double>(batches);
}

}  // namespace

RunResult run_training(const Config& cfg, const RunOptions& run) {
  const std::string out = run.out_dir.empty() ? cfg.checkpoint.dir : run.out_dir;
  const Device dev = resolve_device(cfg.train.device);
  const Parallel parallel(cfg, dev);
  const DType compute = cfg.train.dtype == "bf16" ? DType::BF16 : DType::F32;
  const int64_t B = cfg.train.batch_size, T = cfg.train.seq_len;

  // Refuse sizes the memory cannot hold before allocating anything large.
  check_memory_fits(cfg, dev);

  // Rank 0 alone writes the run folder (the others read checkpoints from it to resume).
  const bool writer = parallel.writes();
  std::optional<RunFolderLock> lock;
  if (writer) {
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec) throw TrainError("cannot create run folder " + out + ": " + ec.message());
    // One trainer per run folder, for the whole run: a second one would tear metrics.jsonl and
    // race the checkpoints. Held from before anything is written here.
    lock.emplace(out);
    remove_stale_temp_files(out);  // left by a killed run's atomic writes
    write_file_atomically(
        out + "/config.yaml",
        "# resolved configuration" + (run.config_path.empty() ? "" : " of " + run.config_path) + "\n" + to_yaml(cfg));
  }

  DataPipeline data = open_data(cfg);

  Generator init_gen(cfg.train.seed);
  models::TransformerLM model(model_options(cfg), init_gen, dev);
  model.set_context_parallel(parallel.context());
  nn::ParameterBuffer params = nn::ParameterBuffer::pack(model, DType::F32, dev);
  optim::AdamWOptions ao;
  ao.lr = cfg.optim.lr;
  ao.beta1 = cfg.optim.beta1;
  ao.beta2 = cfg.optim.beta2;
  ao.eps = cfg.optim.eps;
  ao.weight_decay = cfg.optim.weight_decay;
  // ZeRO-1: this rank's shard of the optimizer state (the whole buffer otherwise).
  const optim::AdamWShard shard = cfg.dist.shard_optimizer
                                      ? dist::optimizer_shard(params.numel(), parallel.rank(), parallel.world_size())
                                      : optim::AdamWShard{};
  optim::AdamW opt(params, ao, shard);
  const optim::LrSchedule lr_at = lr_schedule(cfg);

  // --- resume ---------------------------------------------------------------------------------
  int64_t start_step = 0;
  double tokens_seen = 0;
  std::string resume_from;
  std::vector<std::string> notes;  // printed once the progress display exists
  const auto same_run = [&](const std::string& dir, const TrainState& st) { check_resumable(cfg, st, dir); };
  std::optional<TrainState> resumed;
  if (run.resume == "auto") {
    // The newest checkpoint that verifies; a corrupt newer one is refused with a warning.
    if (auto c = load_latest_checkpoint(
            out, params, opt, [&](const std::string& w) { notes.push_back(w); }, same_run)) {
      resume_from = c->dir;
      resumed = c->state;
    }
  } else if (!run.resume.empty()) {
    resume_from = run.resume;
    resumed = load_checkpoint(resume_from, params, opt, same_run);
  }
  if (resumed) {
    const TrainState& st = *resumed;
    if (!st.verified) notes.push_back("warning: " + resume_from + " predates checkpoint checksums; loaded unverified");
    start_step = st.step;
    tokens_seen = st.tokens_seen;
    data.train.set_state(st.sampler.at("train").get<uint64_t>());
    data.val.set_state(st.sampler.at("val").get<uint64_t>());
    auto d = st.rng.at("dropout");
    model.dropout_generator().set_state(d.at(0).get<uint64_t>(), d.at(1).get<uint64_t>());
  }
  // From here the run's history is steps 1..start_step: checkpoints past it (a newer trajectory
  // this run abandons, or ones refused as corrupt) are moved aside, never deleted, and never seen
  // by --resume auto again; their metrics records go with them.
  parallel.barrier();  // every rank has read its checkpoint before rank 0 moves any aside
  std::string abandoned;
  if (writer) abandoned = move_aside(out, checkpoints_after(out, start_step));
  if (!abandoned.empty())
    notes.push_back("checkpoints past step " + std::to_string(start_step) + " moved aside to " + abandoned);

  install_stop_handlers();
  std::optional<MetricsLog> metrics;
  if (writer) metrics.emplace(out, start_step, abandoned);
  Progress progress(cfg.train.steps, cfg.log.plain, /*quiet=*/!writer);
  progress.message("sparrow: " + std::to_string(model.num_parameters()) + " parameters on " + dev.str() + " (" +
                   dtype_name(compute) + "), " + data.describe() + ", " + parallel.describe());
  if (opt.sharded()) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "optimizer state sharded over %d ranks (ZeRO-1): %.2f MiB of AdamW state on this "
                  "rank instead of %.2f",
                  parallel.world_size(), double(opt.shard().end - opt.shard().begin) * 8 / (1 << 20),
                  double(params.numel()) * 8 / (1 << 20));
    progress.message(buf);
  }
  for (const std::string& n : notes) progress.message(n);
  if (!resume_from.empty()) progress.message("resumed from " + resume_from + " at step " + std::to_string(start_step));

  auto save = [&](int64_t step) -> std::string {
    // Every rank takes part: under ZeRO-1 the optimizer state is assembled on rank 0 from all.
    const optim::AdamWState opt_state = dist::gather_optimizer_state(opt, parallel.world());
    if (!writer) return "";
    TrainState st;
    st.step = step;
    st.rng["dropout"] = {model.dropout_generator().seed(), model.dropout_generator().offset()};
    st.sampler["train"] = data.train.state();
    st.sampler["val"] = data.val.state();
    st.schedule["sparsity"] = model.sparsity_targets_at(step);
    st.tokens_seen = tokens_seen;
    st.extra = run_record(cfg);
    metrics->sync();  // the log is at least as durable as the checkpoint that matches it
    // Retention never takes the checkpoint this run resumed from (nor, inside, the new one).
    return save_checkpoint(out, st, params, opt_state, cfg.checkpoint.keep_last,
                           resume_from.empty() ? std::vector<std::string>{} : std::vector<std::string>{resume_from});
  };

  TrainStep train_step(cfg, model, params, opt, parallel, dev, compute, run.profile);

  RunResult result;
  int non_finite_in_a_row = 0;
  // The resume step needs no new checkpoint when it is already one of this run folder's.
  int64_t last_saved = -1;
  if (!resume_from.empty())
    for (const std::string& c : list_checkpoints(out))
      if (fs::equivalent(c, resume_from)) last_saved = start_step;
  if (start_step == 0) last_saved = 0;  // nothing done yet: nothing to save
  double last_loss = NAN;
  const auto t_run = std::chrono::steady_clock::now();
  int64_t step = start_step;
  while (step < cfg.train.steps) {
    // A signal may reach the ranks at different steps: they agree to stop at the same one.
    if (parallel.any(stop_requested()) || (run.stop_after > 0 && step >= run.stop_after)) {
      result.stopped_early = true;
      break;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const double lr = lr_at.at(step);
    opt.set_lr(lr);
    // What each layer's attention takes from this step (it reads the step in forward), for the log.
    const std::vector<double> sparsity = model.sparsity_targets_at(step);

    // --profile: the first steps build plans and warm caches; the table covers the steps after.
    if (run.profile) profile::set_enabled(step >= start_step + kProfileWarmupSteps);
    // Every rank draws the same global batches and keeps its part of each.
    std::vector<Batch> batches;
    std::vector<double> weights;
    for (int64_t micro = 0; micro < cfg.train.grad_accum; ++micro) {
      const Batch global = data.train.next();
      batches.push_back(parallel.local(global));
      weights.push_back(parallel.loss_weight(global, batches.back()));
    }
    const StepResult r = train_step.run(batches, weights, step, [&](const std::string& m) { progress.message(m); });
    const double loss_v = r.loss, gnorm = r.grad_norm;
    ++step;
    tokens_seen += static_cast<double>(B * T * cfg.train.grad_accum);

    if (!r.applied) {
      // The update was skipped on the device: the weights and optimizer state stay as they were
      // after the last good step; the data position moves on so the next step sees new batches.
      ++non_finite_in_a_row;
      progress.message("warning: step " + std::to_string(step) + " has a non-finite " +
                       (std::isfinite(loss_v) ? "gradient norm" : "loss") + "; update skipped (" +
                       std::to_string(non_finite_in_a_row) + " in a row)");
      if (non_finite_in_a_row >= kMaxNonFiniteInARow) {
        progress.finish();
        throw TrainError(std::to_string(kMaxNonFiniteInARow) + " non-finite steps in a row at step " +
                         std::to_string(step) + ": stopping; the last good checkpoint is " +
                         latest_checkpoint(out).value_or("(none yet)") + " (try a lower optim.lr)");
      }
      continue;
    }
    non_finite_in_a_row = 0;
    last_loss = loss_v;

    const double sec = seconds_since(t0);
    const double tps = static_cast<double>(B * T * cfg.train.grad_accum) / sec;
    nlohmann::json rec;
    rec["step"] = step;
    rec["loss"] = loss_v;
    rec["lr"] = lr;
    rec["grad_norm"] = gnorm;
    rec["tokens_per_s"] = tps;
    rec["ms"] = sec * 1e3;
    rec["step_mode"] = r.replayed ? "cuda graph" : "eager";
    rec["tokens_seen"] = tokens_seen;
    std::vector<double> density;
    std::vector<std::string> backends;
    for (auto& s : model.attention_stats()) {
      density.push_back(s.density);
      backends.push_back(s.backend);
    }
    rec["density"] = density;
    rec["attention"] = backends;
    if (parallel.context()) {
      // Ring attention, per layer, summed over the ranks: visiting shards computed on, the
      // key/value bytes the layouts let the forward not send, and the collectives' bytes
      // besides the ring (adaptive's block means, hierarchical's summaries).
      std::vector<double> ring;
      for (auto& s : model.attention_stats()) {
        ring.push_back(static_cast<double>(s.ring_hops_computed));
        ring.push_back(static_cast<double>(s.ring_bytes_skipped));
        ring.push_back(static_cast<double>(s.ring_collective_bytes));
      }
      Tensor t = from_vector(ring, {static_cast<int64_t>(ring.size())}, DType::F64, dev);
      parallel.sum(t);
      const std::vector<double> total = t.to_vector();
      std::vector<double> hops, skipped, collective;
      for (size_t i = 0; i < total.size(); i += 3) {
        hops.push_back(total[i]);
        skipped.push_back(total[i + 1]);
        collective.push_back(total[i + 2]);
      }
      rec["ring_hops_computed"] = hops;
      rec["ring_bytes_skipped"] = skipped;
      rec["ring_collective_bytes"] = collective;
    }
    rec["target_sparsity"] = sparsity;
    rec["memory_bytes"] = current_memory_bytes(dev);
    rec["peak_memory_bytes"] = peak_memory_bytes(dev);

    const bool do_eval =
        data.val.valid() && cfg.eval.every > 0 && (step % cfg.eval.every == 0 || step == cfg.train.steps);
    if (do_eval) {
      // Scored at the step just trained (step − 1 now that it is counted), so the attention
      // runs at the sparsity the weights were last updated under.
      double vl = evaluate(model, data.val, cfg.eval.batches, step - 1, dev, compute, parallel);
      rec["val_loss"] = vl;
      rec["val_bpb"] = vl / std::log(2.0);
      result.final_val_bpb = vl / std::log(2.0);
      char buf[160];
      std::snprintf(buf, sizeof buf, "eval step %lld: val loss %.4f, %.4f bits per byte", static_cast<long long>(step),
                    vl, vl / std::log(2.0));
      progress.message(buf);
    }
    if (metrics) metrics->write(rec);
    if (step % cfg.log.every == 0 || step == cfg.train.steps || step == start_step + 1) {
      const double per_step = seconds_since(t_run) / static_cast<double>(step - start_step);
      char extra[64];
      std::snprintf(extra, sizeof extra, "lr %.2e  |g| %.2f", lr, gnorm);
      progress.update(step, loss_v, tps, per_step, rec["memory_bytes"].get<double>(),
                      rec["peak_memory_bytes"].get<double>(), extra);
    }
    if (cfg.checkpoint.every > 0 && step % cfg.checkpoint.every == 0) {
      save(step);
      last_saved = step;
    }
  }
  std::string where = step == last_saved && writer ? latest_checkpoint(out).value_or("") : "";
  if (step != last_saved) where = save(step);
  progress.finish();
  if (step != last_saved || result.stopped_early)
    progress.message((result.stopped_early ? "stopped early; checkpoint " : "checkpoint ") + where);
  if (run.profile && writer) write_profile(out, step - start_step - kProfileWarmupSteps);
  result.steps_done = step;
  result.final_loss = last_loss;
  return result;
}

}  // namespace sparrow::train
