#include "attention/sparsity_schedule.h"

#include <cmath>
#include <numbers>

namespace sparrow::attn {

double SparsitySchedule::at(int64_t step) const {
  if (shape == "step") return step < start ? from : to;
  if (step <= start) return from;
  if (step >= end) return to;
  double u = static_cast<double>(step - start) / static_cast<double>(end - start);
  if (shape == "cosine") u = 0.5 * (1.0 - std::cos(std::numbers::pi * u));
  return from + (to - from) * u;
}

}  // namespace sparrow::attn
