// The comparison figure: one PNG, three panels (training loss with eval points, validation bits
// per byte, tokens/s, all against step), one colour per run, a legend of run names and
// attention backends.
#pragma once
#include <string>
#include <vector>

#include "train/plot/canvas.h"
#include "train/plot/runs.h"

namespace sparrow::plot {

struct PlotOptions {
  std::string out;   // "" -> <first run>/curves.png
  int smooth = 1;    // centred moving average over this many steps (training loss, tokens/s); 1 = raw
  int width = 1800;  // pixels
  int height = 640;
  bool log_y = false;  // logarithmic y for the two loss panels
};

// Centred moving average over n points (fewer at the ends), ignoring non-finite values.
std::vector<double> moving_average(const std::vector<double>& v, int n);
// Where plot_runs writes when PlotOptions::out is empty.
std::string default_output(const std::vector<std::string>& run_dirs);
// Draws the figure for runs already read.
Canvas render_runs(const std::vector<Run>& runs, const PlotOptions& opt);
// Reads each run folder (sparrow::Error with one line for a missing metrics.jsonl), draws the
// figure and writes the PNG. Returns the path written.
std::string plot_runs(const std::vector<std::string>& run_dirs, const PlotOptions& opt);

}  // namespace sparrow::plot
