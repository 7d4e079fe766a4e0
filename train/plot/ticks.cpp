#include "train/plot/ticks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "framework/core/error.h"

namespace sparrow::plot {

namespace {

// Smallest of 1, 2, 5, 10 times 10^floor(log10(raw)) that is >= raw: ticks at most `target`
// apart in count, on values people read at a glance.
double nice_step(double raw) {
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (raw <= m * mag * (1 + 1e-9)) return m * mag;
  return 10.0 * mag;
}

// Decimals needed to write multiples of `step` exactly (0.25 -> 2, 50 -> 0), at most 6.
int decimals_for(double step) {
  step = std::fabs(step);
  for (int d = 0; d < 6; ++d) {
    const double s = step * std::pow(10.0, d);
    if (std::fabs(s - std::round(s)) < 1e-6 * std::max(1.0, s)) return d;
  }
  return 6;
}

}  // namespace

AxisTicks linear_ticks(double lo, double hi, int target, bool expand) {
  SPARROW_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "plot: axis range [", lo, ", ", hi,
                "] is not a finite interval");
  if (hi - lo <= 1e-12 * std::max(std::fabs(lo), std::fabs(hi))) {  // one value: show it in the middle
    const double pad = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  if (!expand && lo > 0 && lo <= 0.05 * (hi - lo)) lo = 0;
  const double step = nice_step((hi - lo) / std::max(target, 1));
  AxisTicks a;
  const double first = std::floor(lo / step + 1e-9) * step, last = std::ceil(hi / step - 1e-9) * step;
  a.lo = expand ? first : lo;
  a.hi = expand ? last : hi;
  const long n = std::lround((last - first) / step);
  for (long i = 0; i <= n; ++i) {
    double v = first + static_cast<double>(i) * step;
    if (std::fabs(v) < step * 1e-9) v = 0;  // no "-0"
    if (v >= a.lo - step * 1e-9 && v <= a.hi + step * 1e-9) a.ticks.push_back(v);
  }
  return a;
}

AxisTicks log_ticks(double lo, double hi, int target) {
  SPARROW_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && lo <= hi, "plot: log axis range [", lo, ", ", hi,
                "] must be finite and positive");
  if (hi / lo < 1.0 + 1e-9) {
    lo /= 1.5;
    hi *= 1.5;
  }
  AxisTicks a;
  a.log = true;
  const double pad = 0.04 * std::log10(hi / lo);
  a.lo = std::pow(10.0, std::log10(lo) - pad);
  a.hi = std::pow(10.0, std::log10(hi) + pad);
  const double decades = std::log10(a.hi / a.lo);
  std::vector<double> mantissas = decades > 2.5 ? std::vector<double>{1} : std::vector<double>{1, 2, 5};
  // Over many decades, every k-th power of ten so that about `target` remain.
  const int every = std::max(1, static_cast<int>(std::ceil(decades / std::max(target, 1))));
  for (int e = static_cast<int>(std::floor(std::log10(a.lo))); e <= static_cast<int>(std::ceil(std::log10(a.hi)));
       ++e) {
    if (decades > 2.5 && e % every != 0) continue;
    for (double m : mantissas) {
      const double v = m * std::pow(10.0, e);
      if (v >= a.lo * (1 - 1e-12) && v <= a.hi * (1 + 1e-12)) a.ticks.push_back(v);
    }
  }
  if (a.ticks.size() < 3) {  // inside about one decade: nice linear values, placed on the log scale
    AxisTicks lin = linear_ticks(a.lo, a.hi, target);
    a.ticks.clear();
    for (double v : lin.ticks)
      if (v > 0 && v >= a.lo && v <= a.hi) a.ticks.push_back(v);
  }
  return a;
}

double axis_fraction(const AxisTicks& a, double v) {
  if (a.log) return (std::log10(v) - std::log10(a.lo)) / (std::log10(a.hi) - std::log10(a.lo));
  return (v - a.lo) / (a.hi - a.lo);
}

std::string format_tick(double v, double step, double magnitude) {
  static const struct {
    double unit;
    const char* suffix;
  } kSi[] = {{1e9, "G"}, {1e6, "M"}, {1e3, "k"}};
  char buf[64];
  if (v == 0) return "0";
  magnitude = std::max(std::fabs(magnitude), std::fabs(v));
  if (magnitude >= 1e4)
    for (const auto& si : kSi)
      if (magnitude >= si.unit) {
        std::snprintf(buf, sizeof buf, "%.*f%s", decimals_for(step / si.unit), v / si.unit, si.suffix);
        return buf;
      }
  std::snprintf(buf, sizeof buf, "%.*f", decimals_for(step), v);
  return buf;
}

namespace {

// Largest power of ten that divides v (20000 -> 10000, 2.5 -> 0.1): the step a lone value on a
// log axis is written to.
double own_step(double v) {
  double p = std::pow(10.0, std::floor(std::log10(std::fabs(v)) + 1e-9));
  for (int i = 0; i < 12; ++i, p /= 10) {
    const double q = v / p;
    if (std::fabs(q - std::round(q)) < 1e-9 * std::max(1.0, std::fabs(q))) return p;
  }
  return p;
}

}  // namespace

std::vector<std::string> tick_labels(const AxisTicks& a) {
  double magnitude = 0;
  for (double v : a.ticks) magnitude = std::max(magnitude, std::fabs(v));
  // Evenly spaced ticks (any linear axis; a log axis inside one decade) share one step, so
  // their labels share one number of decimals; 1-2-5 log ticks are each written to their own.
  bool even = a.ticks.size() >= 2;
  const double first_gap = even ? a.ticks[1] - a.ticks[0] : 0;
  for (size_t i = 2; i < a.ticks.size() && even; ++i)
    even = std::fabs(a.ticks[i] - a.ticks[i - 1] - first_gap) <= 1e-9 * std::fabs(first_gap);
  std::vector<std::string> out;
  for (size_t i = 0; i < a.ticks.size(); ++i) {
    double step;
    if (!even)
      step = a.ticks[i] == 0 ? 1.0 : own_step(a.ticks[i]);
    else
      step = a.ticks[1] - a.ticks[0];
    out.push_back(format_tick(a.ticks[i], step, magnitude));
  }
  return out;
}

}  // namespace sparrow::plot
