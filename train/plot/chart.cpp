#include "train/plot/chart.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "train/plot/ticks.h"

namespace sparrow::plot {

namespace {

const Rgb kInk{34, 34, 34};       // titles
const Rgb kLabelInk{70, 70, 70};  // tick and axis labels
const Rgb kGrid{229, 229, 229};
const Rgb kFrame{170, 170, 170};
const Rgb kWhite{255, 255, 255};
constexpr double kTextScale = 2.0;  // 14-pixel capitals: readable at 100% on a 1800-pixel-wide figure
constexpr double kSwatch = 28.0;    // legend line sample length

bool drawable(double x, double y, bool log_y) { return std::isfinite(x) && std::isfinite(y) && (!log_y || y > 0); }

// Title text with a one-pixel horizontal double strike: a bold face from a one-weight font.
void bold_text(Canvas& c, double x, double y, const std::string& s, Rgb ink, double scale) {
  c.text(x, y, s, ink, scale);
  c.text(x + 1, y, s, ink, scale);
}

// The axis range widened by `fraction` of its span at each end (ticks unchanged), so that
// points on the extreme ticks and their markers sit inside the frame rather than on it.
AxisTicks with_margin(AxisTicks a, double fraction) {
  if (a.log) return a;  // log_ticks pads already
  const double pad = (a.hi - a.lo) * fraction;
  a.lo -= pad;
  a.hi += pad;
  return a;
}

void marker(Canvas& c, double x, double y, Rgb color, double r) {
  c.disc(x, y, r + 1.5, kWhite);  // a white ring keeps the marker readable on top of lines
  c.disc(x, y, r, color);
}

void swatch(Canvas& c, double x, double ymid, const LegendEntry& e) {
  if (e.style != SeriesStyle::kMarkers) c.line(x, ymid, x + kSwatch, ymid, e.color, 3.0);
  if (e.style != SeriesStyle::kLine) marker(c, x + kSwatch / 2, ymid, e.color, 4.0);
}

double entry_width(const LegendEntry& e, double scale) { return kSwatch + 8 + Canvas::text_width(e.label, scale); }

// Lays out legend rows; draws them when `canvas` is given. Returns the height used.
double legend_rows(Canvas* canvas, const Rect& area, const std::vector<LegendEntry>& entries, double scale) {
  if (entries.empty()) return 0;
  const double row_h = Canvas::text_height(scale) * 2.0, gap = 32;
  double x = area.x0, y = area.y0;
  for (const LegendEntry& e : entries) {
    const double w = entry_width(e, scale);
    if (x > area.x0 && x + w > area.x1) {
      x = area.x0;
      y += row_h;
    }
    if (canvas) {
      const double ymid = y + row_h / 2;
      swatch(*canvas, x, ymid, e);
      canvas->text(x + kSwatch + 8, ymid - Canvas::text_height(scale) / 2, e.label, kInk, scale);
    }
    x += w + gap;
  }
  return y + row_h - area.y0;
}

}  // namespace

Rgb series_color(size_t i) {
  static const Rgb kPalette[] = {{31, 119, 180}, {255, 127, 14},  {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
                                 {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
  return kPalette[i % (sizeof kPalette / sizeof kPalette[0])];
}

double draw_legend_rows(Canvas& canvas, const Rect& area, const std::vector<LegendEntry>& entries, double scale) {
  return legend_rows(&canvas, area, entries, scale);
}

double legend_height(double width, const std::vector<LegendEntry>& entries, double scale) {
  return legend_rows(nullptr, {0, 0, width, 0}, entries, scale);
}

void draw_chart(Canvas& canvas, const Rect& area, const Chart& chart) {
  const double th = Canvas::text_height(kTextScale);

  // Data extent over every drawable point.
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  for (const Series& s : chart.series)
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      if (drawable(s.x[i], s.y[i], chart.log_y)) {
        xlo = std::min(xlo, s.x[i]);
        xhi = std::max(xhi, s.x[i]);
        ylo = std::min(ylo, s.y[i]);
        yhi = std::max(yhi, s.y[i]);
      }
  const bool empty = !(xlo <= xhi);
  if (chart.x_range) {
    xlo = chart.x_range->first;
    xhi = chart.x_range->second;
  } else if (empty) {
    xlo = 0;
    xhi = 1;
  }
  if (empty) ylo = chart.log_y ? 1 : 0, yhi = chart.log_y ? 10 : 1;

  // Margins: title above; y tick labels and the rotated y label to the left; x tick labels and
  // the x label below. Tick counts follow the space (at most one per 50 px up, 90 px across).
  // Axes span the data (plus a small margin), not the next round numbers: no empty bands.
  const double top = area.y0 + th + 18, bottom = area.y1 - (th + 12) - (chart.x_label.empty() ? 0 : th + 12);
  const int y_target = std::max(2, static_cast<int>((bottom - top) / 50));
  const AxisTicks yt = chart.log_y ? log_ticks(ylo, yhi, y_target)
                                   : with_margin(linear_ticks(ylo, yhi, y_target, /*expand=*/false), 0.04);
  const std::vector<std::string> ylabels = tick_labels(yt);
  double ylabel_w = 0;
  for (const auto& l : ylabels) ylabel_w = std::max(ylabel_w, Canvas::text_width(l, kTextScale));
  const double left = area.x0 + (chart.y_label.empty() ? 0 : th + 12) + ylabel_w + 10, right = area.x1 - 12;
  const Rect plot{std::round(left), std::round(top), std::round(right), std::round(bottom)};
  const int x_target = std::max(2, static_cast<int>(plot.width() / 90));
  const AxisTicks xt = with_margin(linear_ticks(xlo, xhi, x_target, /*expand=*/false), 0.02);
  const std::vector<std::string> xlabels = tick_labels(xt);

  auto px = [&](double x) { return plot.x0 + axis_fraction(xt, x) * plot.width(); };
  auto py = [&](double y) { return plot.y1 - axis_fraction(yt, y) * plot.height(); };

  // Grid and tick labels (grid lines on whole pixels so they stay one crisp pixel wide).
  for (size_t i = 0; i < yt.ticks.size(); ++i) {
    const double y = std::floor(py(yt.ticks[i]));
    canvas.fill_rect({plot.x0, y, plot.x1, y + 1}, kGrid);
    canvas.text(plot.x0 - 8 - Canvas::text_width(ylabels[i], kTextScale), y - th / 2, ylabels[i], kLabelInk,
                kTextScale);
  }
  for (size_t i = 0; i < xt.ticks.size(); ++i) {
    const double x = std::floor(px(xt.ticks[i]));
    canvas.fill_rect({x, plot.y0, x + 1, plot.y1}, kGrid);
    const double w = Canvas::text_width(xlabels[i], kTextScale);
    canvas.text(std::clamp(x - w / 2, area.x0, area.x1 - w), plot.y1 + 10, xlabels[i], kLabelInk, kTextScale);
  }

  // Series, clipped to the plot; a gap (undrawable point) breaks a line.
  canvas.set_clip(plot);
  for (const Series& s : chart.series) {
    const size_t n = std::min(s.x.size(), s.y.size());
    if (s.style != SeriesStyle::kMarkers) {
      std::vector<double> xs, ys;
      auto flush = [&] {
        canvas.polyline(xs, ys, s.color, s.line_width);
        xs.clear();
        ys.clear();
      };
      for (size_t i = 0; i < n; ++i) {
        if (!drawable(s.x[i], s.y[i], chart.log_y)) {
          flush();
          continue;
        }
        xs.push_back(px(s.x[i]));
        ys.push_back(py(s.y[i]));
      }
      flush();
    }
    if (s.style != SeriesStyle::kLine)
      for (size_t i = 0; i < n; ++i)
        if (drawable(s.x[i], s.y[i], chart.log_y)) marker(canvas, px(s.x[i]), py(s.y[i]), s.color, s.marker_radius);
  }
  canvas.reset_clip();
  if (empty) {
    const double scale = Canvas::text_width(chart.empty_message, kTextScale) + 16 < plot.width() ? kTextScale : 1.0;
    canvas.text((plot.x0 + plot.x1 - Canvas::text_width(chart.empty_message, scale)) / 2,
                (plot.y0 + plot.y1 - Canvas::text_height(scale)) / 2, chart.empty_message, kLabelInk, scale);
  }

  // Frame, title, axis labels.
  canvas.fill_rect({plot.x0, plot.y0, plot.x1, plot.y0 + 1}, kFrame);
  canvas.fill_rect({plot.x0, plot.y1 - 1, plot.x1, plot.y1}, kFrame);
  canvas.fill_rect({plot.x0, plot.y0, plot.x0 + 1, plot.y1}, kFrame);
  canvas.fill_rect({plot.x1 - 1, plot.y0, plot.x1, plot.y1}, kFrame);
  bold_text(canvas, plot.x0, area.y0 + 4, chart.title, kInk, kTextScale);
  if (!chart.x_label.empty())
    canvas.text((plot.x0 + plot.x1 - Canvas::text_width(chart.x_label, kTextScale)) / 2, area.y1 - th - 4,
                chart.x_label, kLabelInk, kTextScale);
  if (!chart.y_label.empty()) {  // centred on the plot's height; smaller where it would not fit
    const double scale = Canvas::text_width(chart.y_label, kTextScale) <= plot.height() ? kTextScale : 1.0;
    canvas.text(area.x0 + 2, (plot.y0 + plot.y1 + Canvas::text_width(chart.y_label, scale)) / 2, chart.y_label,
                kLabelInk, scale, /*rotated=*/true);
  }

  if (chart.legend) {
    std::vector<LegendEntry> entries;
    double w = 0;
    for (const Series& s : chart.series)
      if (!s.label.empty()) {
        entries.push_back({s.label, s.color, s.style});
        w = std::max(w, entry_width(entries.back(), kTextScale));
      }
    if (!entries.empty()) {
      const double row_h = th * 2.0;
      const Rect box{plot.x1 - w - 28, plot.y0 + 8, plot.x1 - 8, plot.y0 + 8 + row_h * entries.size() + 8};
      canvas.fill_rect(box, kWhite);
      canvas.fill_rect({box.x0, box.y0, box.x1, box.y0 + 1}, kFrame);
      canvas.fill_rect({box.x0, box.y1 - 1, box.x1, box.y1}, kFrame);
      canvas.fill_rect({box.x0, box.y0, box.x0 + 1, box.y1}, kFrame);
      canvas.fill_rect({box.x1 - 1, box.y0, box.x1, box.y1}, kFrame);
      for (size_t i = 0; i < entries.size(); ++i)  // one entry per row: a box narrower than any wrap
        legend_rows(&canvas, {box.x0 + 10, box.y0 + 4 + row_h * i, box.x1, box.y1}, {entries[i]}, kTextScale);
    }
  }
}

}  // namespace sparrow::plot
