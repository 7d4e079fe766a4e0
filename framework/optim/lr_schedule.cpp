#include "framework/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "framework/core/error.h"

namespace sparrow::optim {

namespace {
constexpr double kPi = 3.14159265358979323846;

// Fraction of the way from lr (p = 0) to min_lr (p = 1) under each shape.
double decay_fraction(DecayShape s, double p) {
  switch (s) {
    case DecayShape::Linear:
      return p;
    case DecayShape::Cosine:
      return 0.5 * (1.0 - std::cos(kPi * p));
    case DecayShape::Sqrt:
      return std::sqrt(p);
  }
  return p;
}
}  // namespace

ScheduleKind parse_schedule_kind(const std::string& s) {
  if (s == "constant") return ScheduleKind::Constant;
  if (s == "cosine" || s == "warmup_cosine") return ScheduleKind::WarmupCosine;
  if (s == "linear" || s == "warmup_linear") return ScheduleKind::WarmupLinear;
  if (s == "wsd") return ScheduleKind::WSD;
  fail("lr schedule: unknown kind '", s, "' (expected constant, cosine, linear or wsd)");
}

DecayShape parse_decay_shape(const std::string& s) {
  if (s == "linear") return DecayShape::Linear;
  if (s == "cosine") return DecayShape::Cosine;
  if (s == "sqrt") return DecayShape::Sqrt;
  fail("lr schedule: unknown decay shape '", s, "' (expected linear, cosine or sqrt)");
}

LrSchedule::LrSchedule(const LrScheduleConfig& c) : c_(c) {
  SPARROW_CHECK(c.lr >= 0, "lr schedule: lr must be >= 0, got ", c.lr);
  SPARROW_CHECK(c.min_lr >= 0 && c.min_lr <= c.lr, "lr schedule: min_lr ", c.min_lr, " must lie in [0, lr=", c.lr, "]");
  SPARROW_CHECK(c.warmup_steps >= 0, "lr schedule: warmup_steps must be >= 0, got ", c.warmup_steps);
  if (c.kind == ScheduleKind::WarmupCosine || c.kind == ScheduleKind::WarmupLinear)
    SPARROW_CHECK(c.total_steps > c.warmup_steps, "lr schedule: total_steps (", c.total_steps,
                  ") must exceed warmup_steps (", c.warmup_steps, ")");
  if (c.kind == ScheduleKind::WSD) {
    SPARROW_CHECK(c.decay_steps > 0, "lr schedule: wsd needs decay_steps > 0, got ", c.decay_steps);
    SPARROW_CHECK(c.warmup_steps + c.decay_steps <= c.total_steps, "lr schedule: wsd warmup_steps (", c.warmup_steps,
                  ") + decay_steps (", c.decay_steps, ") exceed total_steps (", c.total_steps, ")");
  }
}

double LrSchedule::at(int64_t step) const {
  SPARROW_CHECK(step >= 0, "lr schedule: negative step ", step);
  if (step < c_.warmup_steps) return c_.lr * static_cast<double>(step + 1) / static_cast<double>(c_.warmup_steps);
  switch (c_.kind) {
    case ScheduleKind::Constant:
      return c_.lr;
    case ScheduleKind::WarmupCosine:
    case ScheduleKind::WarmupLinear: {
      const double p = std::clamp(
          static_cast<double>(step - c_.warmup_steps) / static_cast<double>(c_.total_steps - c_.warmup_steps), 0.0,
          1.0);
      const DecayShape shape = c_.kind == ScheduleKind::WarmupCosine ? DecayShape::Cosine : DecayShape::Linear;
      return c_.lr + (c_.min_lr - c_.lr) * decay_fraction(shape, p);
    }
    case ScheduleKind::WSD: {
      const int64_t decay_start = c_.total_steps - c_.decay_steps;
      if (step < decay_start) return c_.lr;
      const double p = std::min(1.0, static_cast<double>(step - decay_start) / static_cast<double>(c_.decay_steps));
      return c_.lr + (c_.min_lr - c_.lr) * decay_fraction(c_.decay_shape, p);
    }
  }
  return c_.lr;
}

}  // namespace sparrow::optim
