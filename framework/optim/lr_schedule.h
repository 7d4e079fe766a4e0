// Learning-rate schedules as pure functions of the step (so a resumed run gets the same lr from
// the saved step alone). `step` is the 0-based index of the update about to be taken.
//   warmup (every kind): lr·(step+1)/warmup for step < warmup, so step warmup−1 reaches lr.
//   constant:        lr after warmup.
//   warmup_cosine:   p = (step − warmup)/(total − warmup) clamped to [0, 1];
//                    min_lr + (lr − min_lr)·(1 + cos πp)/2.
//   warmup_linear:   lr + (min_lr − lr)·p, same p.
//   wsd:             warmup, then lr (stable) until total − decay_steps, then the decay shape
//                    over decay_steps down to min_lr (linear, cosine or 1−√p; Hägele et al. 2024,
//                    arXiv:2405.18392), min_lr after total.
#pragma once
#include <cstdint>
#include <string>

namespace sparrow::optim {

enum class ScheduleKind : uint8_t { Constant, WarmupCosine, WarmupLinear, WSD };
enum class DecayShape : uint8_t { Linear, Cosine, Sqrt };

// "constant", "cosine" / "warmup_cosine", "linear" / "warmup_linear", "wsd"; throws on others.
ScheduleKind parse_schedule_kind(const std::string& s);
// "linear", "cosine", "sqrt" (1−√p).
DecayShape parse_decay_shape(const std::string& s);

struct LrScheduleConfig {
  ScheduleKind kind = ScheduleKind::Constant;
  double lr = 1e-3;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;                      // cosine, linear, wsd
  int64_t decay_steps = 0;                      // wsd: length of the final decay
  DecayShape decay_shape = DecayShape::Linear;  // wsd
};

class LrSchedule {
 public:
  explicit LrSchedule(const LrScheduleConfig& c);  // validates (throws naming the bad field)
  double at(int64_t step) const;
  const LrScheduleConfig& config() const { return c_; }

 private:
  LrScheduleConfig c_;
};

}  // namespace sparrow::optim
