#include "train/plot/figure.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numbers>

#include "framework/core/error.h"
#include "train/plot/chart.h"

namespace sparrow::plot {

namespace {

const Rgb kInk{34, 34, 34};
const Rgb kNote{110, 110, 110};
constexpr double kTint = 0.7;  // raw curves behind a smoothed one: 70% of the way to white
constexpr double kMinPanelWidth = 340, kMinPanelHeight = 240;  // room for ticks, labels and a curve

struct Columns {
  std::vector<double> step, loss_bits, tokens_per_s, eval_step, eval_bpb;
};

// Training loss is in nats per token and tokens are bytes, so loss / ln 2 is bits per byte: the
// same unit as the eval's val_bpb, which lets both share one axis.
Columns columns(const Run& run) {
  Columns c;
  for (const MetricsRecord& r : run.records) {
    c.step.push_back(static_cast<double>(r.step));
    c.loss_bits.push_back(r.loss / std::numbers::ln2);
    c.tokens_per_s.push_back(r.tokens_per_s);
    if (r.val_bpb) {
      c.eval_step.push_back(static_cast<double>(r.step));
      c.eval_bpb.push_back(*r.val_bpb);
    }
  }
  return c;
}

// A raw curve (light tint, thin) under its smoothed one, or the raw curve alone.
void add_smoothed(Chart& chart, const std::vector<double>& x, const std::vector<double>& y, Rgb color, int smooth) {
  if (smooth > 1) {
    chart.series.push_back({"", tint(color, kTint), x, y, SeriesStyle::kLine, 1.5});
    chart.series.push_back({"", color, x, moving_average(y, smooth), SeriesStyle::kLine, 2.5});
  } else {
    chart.series.push_back({"", color, x, y, SeriesStyle::kLine, 2.0});
  }
}

}  // namespace

std::vector<double> moving_average(const std::vector<double>& v, int n) {
  SPARROW_CHECK(n >= 1, "plot: --smooth must be at least 1 (got ", n, ")");
  const int64_t size = static_cast<int64_t>(v.size()), before = (n - 1) / 2, after = n / 2;
  std::vector<double> out(v.size());
  for (int64_t i = 0; i < size; ++i) {
    double sum = 0;
    int64_t count = 0;
    for (int64_t k = std::max<int64_t>(0, i - before); k <= std::min(size - 1, i + after); ++k)
      if (std::isfinite(v[k])) {
        sum += v[k];
        ++count;
      }
    out[i] = count ? sum / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
  }
  return out;
}

std::string default_output(const std::vector<std::string>& run_dirs) {
  SPARROW_CHECK(!run_dirs.empty(), "plot: no run folders given");
  return (std::filesystem::path(run_dirs.front()) / "curves.png").string();
}

Canvas render_runs(const std::vector<Run>& runs, const PlotOptions& opt) {
  SPARROW_CHECK(opt.width >= 600 && opt.height >= 300, "plot: figure size ", opt.width, "x", opt.height,
                " is too small (at least 600x300)");
  Canvas canvas(opt.width, opt.height);
  const double pad = 24, th = Canvas::text_height(2.0);

  // Header: title, then a note on units and smoothing, then the legend.
  canvas.text(pad, pad, "Training curves", kInk, 3.0);
  canvas.text(pad + 1, pad, "Training curves", kInk, 3.0);
  std::vector<std::string> notes{std::to_string(runs.size()) + (runs.size() == 1 ? " run" : " runs"),
                                 "loss in bits per byte (= nats / ln 2)", "dots: eval"};
  if (opt.smooth > 1) notes.push_back("thick lines: " + std::to_string(opt.smooth) + "-step moving average");
  // The note goes right of the title where it fits, else below it, wrapped at "; " as needed.
  std::vector<std::string> lines{""};
  for (const std::string& n : notes) {
    const std::string joined = lines.back().empty() ? n : lines.back() + "; " + n;
    if (lines.back().empty() || Canvas::text_width(joined, 2.0) <= opt.width - 2 * pad)
      lines.back() = joined;
    else
      lines.push_back(n);
  }
  const double title_w = Canvas::text_width("Training curves", 3.0);
  double header_bottom = pad + 3 * 7;
  if (lines.size() == 1 && pad + title_w + 40 + Canvas::text_width(lines[0], 2.0) <= opt.width - pad) {
    canvas.text(opt.width - pad - Canvas::text_width(lines[0], 2.0), pad + 4, lines[0], kNote, 2.0);
  } else {
    for (const std::string& l : lines) {
      canvas.text(pad, header_bottom + 10, l, kNote, 2.0);
      header_bottom += 10 + th;
    }
  }

  std::vector<LegendEntry> legend;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::string label = runs[i].label();
    if (runs[i].records.empty()) label += " [no records yet]";
    legend.push_back({label, series_color(i), SeriesStyle::kLine});
  }
  const Rect legend_area{pad, header_bottom + 16, opt.width - pad, opt.height / 2.0};
  const double legend_h = draw_legend_rows(canvas, legend_area, legend, 2.0);

  // Every panel shares the step range, so a step lines up across them.
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Run& r : runs)
    if (!r.records.empty()) {
      lo = std::min(lo, static_cast<double>(r.records.front().step));
      hi = std::max(hi, static_cast<double>(r.records.back().step));
    }

  Chart loss, val, speed;
  loss.title = "Training loss";
  val.title = "Validation";
  speed.title = "Throughput";
  loss.y_label = val.y_label = "bits per byte";
  speed.y_label = "tokens / s";
  loss.x_label = val.x_label = speed.x_label = "step";
  loss.log_y = val.log_y = opt.log_y;
  val.empty_message = "no eval steps yet";
  for (size_t i = 0; i < runs.size(); ++i) {
    const Columns c = columns(runs[i]);
    const Rgb color = series_color(i);
    add_smoothed(loss, c.step, c.loss_bits, color, opt.smooth);
    add_smoothed(speed, c.step, c.tokens_per_s, color, opt.smooth);
    val.series.push_back({"", color, c.eval_step, c.eval_bpb, SeriesStyle::kLineAndMarkers, 2.0, 4.0});
  }
  // Eval points go on top of every run's loss curve.
  for (size_t i = 0; i < runs.size(); ++i) {
    const Columns c = columns(runs[i]);
    loss.series.push_back({"", series_color(i), c.eval_step, c.eval_bpb, SeriesStyle::kMarkers, 2.0, 4.0});
  }
  if (lo <= hi)
    for (Chart* ch : {&loss, &val, &speed}) ch->x_range = {lo, hi};

  // Panels in a grid: three across where each gets kMinPanelWidth, else two or one per row.
  const double top = legend_area.y0 + legend_h + 12, gap = 36;
  const int cols = std::clamp(static_cast<int>((opt.width - 2 * pad + gap) / (kMinPanelWidth + gap)), 1, 3);
  const int rows = (3 + cols - 1) / cols;
  const double panel_w = (opt.width - 2 * pad - (cols - 1) * gap) / cols;
  const double panel_h = (opt.height - pad - top - (rows - 1) * gap) / rows;
  SPARROW_CHECK(panel_h >= kMinPanelHeight, "plot: a ", opt.width, "x", opt.height, " figure leaves panels ",
                static_cast<int>(panel_h), " pixels high (", rows, " rows under a ", static_cast<int>(legend_h),
                "-pixel legend; need ", kMinPanelHeight, "): raise --height");
  Chart* panels[] = {&loss, &val, &speed};
  for (int p = 0; p < 3; ++p) {
    const double x0 = pad + (p % cols) * (panel_w + gap), y0 = top + (p / cols) * (panel_h + gap);
    draw_chart(canvas, {x0, y0, x0 + panel_w, y0 + panel_h}, *panels[p]);
  }
  return canvas;
}

std::string plot_runs(const std::vector<std::string>& run_dirs, const PlotOptions& opt) {
  SPARROW_CHECK(!run_dirs.empty(), "plot: no run folders given");
  std::vector<Run> runs;
  for (const auto& d : run_dirs) runs.push_back(read_run(d));
  make_names_unique(runs);
  SPARROW_CHECK(std::any_of(runs.begin(), runs.end(), [](const Run& r) { return !r.records.empty(); }),
                "plot: no complete records in any metrics.jsonl of ",
                run_dirs.size() == 1 ? run_dirs[0] : "the runs given");
  const std::string out = opt.out.empty() ? default_output(run_dirs) : opt.out;
  render_runs(runs, opt).save_png(out);
  return out;
}

}  // namespace sparrow::plot
