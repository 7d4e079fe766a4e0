// Axis ranges and tick marks at "nice" values (1, 2 or 5 times a power of ten), on linear or
// logarithmic scales, and the tick labels' text.
#pragma once
#include <string>
#include <vector>

namespace sparrow::plot {

struct AxisTicks {
  double lo = 0, hi = 1;      // axis range (data value at each end)
  std::vector<double> ticks;  // tick values inside [lo, hi], ascending
  bool log = false;           // logarithmic scale: positions go with log10(value)
};

// Linear axis covering [lo, hi], widened outwards to whole multiples of a nice step chosen so
// that about `target` ticks appear. An empty or one-point range is widened around its value.
// With expand = false the range stays [lo, hi] (from 0 where lo is within 5% of the span above
// 0) and only ticks inside it are kept: for a step axis, whose end is the data's last step.
AxisTicks linear_ticks(double lo, double hi, int target = 5, bool expand = true);
// Logarithmic axis covering [lo, hi] (lo > 0), padded by a few percent in log space. Ticks at
// 1 x 10^k over many decades, 1/2/5 x 10^k over a few, and nice linear steps inside one decade
// (where powers of ten alone would leave fewer than three ticks).
AxisTicks log_ticks(double lo, double hi, int target = 5);

// Fraction along the axis (0 at lo, 1 at hi) of value v.
double axis_fraction(const AxisTicks& a, double v);

// Tick label with as many decimals as `step` needs ("0.25", "150"). Where `magnitude` (the
// largest value on the axis; v itself by default) is 10000 or more, in k/M/G ("12.5k", "3M"),
// so every label on one axis uses the same unit.
std::string format_tick(double v, double step, double magnitude = 0);
// Label for ticks `a.ticks`, using their spacing (on a log axis, each value's own magnitude).
std::vector<std::string> tick_labels(const AxisTicks& a);

}  // namespace sparrow::plot
