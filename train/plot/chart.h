// One chart panel: axes with nice ticks and grid lines, a title, axis labels, several series
// (lines, markers or both), an optional log-scaled y axis and an optional legend box.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "train/plot/canvas.h"

namespace sparrow::plot {

enum class SeriesStyle { kLine, kMarkers, kLineAndMarkers };

struct Series {
  std::string label;  // legend text ("" keeps the series out of the legend)
  Rgb color;
  std::vector<double> x, y;  // points with a non-finite value (or y <= 0 on a log axis) are gaps
  SeriesStyle style = SeriesStyle::kLine;
  double line_width = 2.0;
  double marker_radius = 4.0;
};

struct Chart {
  std::string title, x_label, y_label;
  bool log_y = false;
  std::vector<Series> series;                        // drawn in order: later ones on top
  bool legend = false;                               // a box of the labelled series in the plot's top-right corner
  std::string empty_message = "no data";             // shown when no series has a drawable point
  std::optional<std::pair<double, double>> x_range;  // default: the data's range
};

// Draws `chart` inside `area` of the canvas (margins for labels are taken from the area).
void draw_chart(Canvas& canvas, const Rect& area, const Chart& chart);

struct LegendEntry {
  std::string label;
  Rgb color;
  SeriesStyle style = SeriesStyle::kLine;
};

// Legend entries left to right, wrapping onto new rows within `area`'s width. Returns the
// height the rows take (legend_height gives it without drawing, for layout).
double draw_legend_rows(Canvas& canvas, const Rect& area, const std::vector<LegendEntry>& entries, double scale = 2.0);
double legend_height(double width, const std::vector<LegendEntry>& entries, double scale = 2.0);

// Palette of distinct colours (Tableau 10), cycling.
Rgb series_color(size_t i);

}  // namespace sparrow::plot
