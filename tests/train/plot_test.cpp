// scripts/plot's engine: reading run folders (torn lines, resumed steps, backends from
// config.yaml, the one-line error for a missing metrics.jsonl), tick values and labels, the
// moving average, canvas drawing, and the whole figure written as a PNG and read back.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include <unistd.h>

#include "framework/core/error.h"
#include "train/plot/canvas.h"
#include "train/plot/chart.h"
#include "train/plot/figure.h"
#include "train/plot/runs.h"
#include "train/plot/ticks.h"

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

namespace fs = std::filesystem;
using namespace sparrow::plot;

namespace {

// A fresh folder under the system temp dir, removed with the fixture.
class PlotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("sparrow_plot_test_" + std::to_string(getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A run folder like build/bin/train writes: `steps` records whose loss falls from 8 bits per
  // byte towards `final_bits`, an eval every `eval_every` steps, and config.yaml naming `backend`.
  std::string write_run(const std::string& name, const std::string& backend, int steps, double final_bits,
                        double tokens_per_s, int eval_every, const std::string& tail = "") {
    const fs::path dir = root_ / name;
    fs::create_directories(dir);
    std::ofstream m(dir / "metrics.jsonl");
    for (int s = 1; s <= steps; ++s) {
      const double bits = final_bits + (8.0 - final_bits) * std::exp(-s / 10.0) + 0.05 * std::sin(s * 1.7);
      m << "{\"step\":" << s << ",\"loss\":" << bits * std::log(2.0) << ",\"lr\":0.002,\"grad_norm\":1.5"
        << ",\"tokens_per_s\":" << tokens_per_s * (1 + 0.02 * std::cos(s)) << ",\"ms\":50"
        << ",\"density\":[0.1,0.1],\"memory_bytes\":1000000";
      if (eval_every > 0 && s % eval_every == 0)
        m << ",\"val_loss\":" << (bits + 0.1) * std::log(2.0) << ",\"val_bpb\":" << bits + 0.1;
      m << "}\n";
    }
    m << tail;
    if (!backend.empty()) {
      std::ofstream c(dir / "config.yaml");
      c << "# resolved configuration\nmodel:\n  n_layers: 2\nattention:\n  backend: " << backend
        << "\n  block_size: 64\ntrain:\n  steps: " << steps << "\n";
    }
    return dir.string();
  }

  fs::path root_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const sparrow::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_F(PlotTest, WritesAPngOfTheRequestedSizeWithBothRunsDrawn) {
  const std::string a = write_run("dense_run", "dense", 60, 2.2, 20000, 20);
  const std::string b = write_run("sparse_run", "block_sparse", 60, 2.5, 50000, 20);
  PlotOptions opt;
  opt.out = (root_ / "cmp.png").string();
  opt.width = 1500;
  opt.height = 560;
  opt.smooth = 5;
  ASSERT_EQ(plot_runs({a, b}, opt), opt.out);
  ASSERT_TRUE(fs::exists(opt.out));

  int w = 0, h = 0, channels = 0;
  unsigned char* img = stbi_load(opt.out.c_str(), &w, &h, &channels, 3);
  ASSERT_NE(img, nullptr) << stbi_failure_reason();
  EXPECT_EQ(w, 1500);
  EXPECT_EQ(h, 560);
  std::set<uint32_t> colours;
  size_t run0 = 0, run1 = 0, white = 0;
  const Rgb c0 = series_color(0), c1 = series_color(1);
  for (int i = 0; i < w * h; ++i) {
    const Rgb p{img[3 * i], img[3 * i + 1], img[3 * i + 2]};
    colours.insert(p.r << 16 | p.g << 8 | p.b);
    run0 += p == c0;
    run1 += p == c1;
    white += p == Rgb{255, 255, 255};
  }
  stbi_image_free(img);
  EXPECT_GT(colours.size(), 20u) << "expected anti-aliased curves, text and grid, not a flat picture";
  EXPECT_GT(white, static_cast<size_t>(w) * h / 2) << "the background should be white";
  // Each run's curves in all three panels: many pixels of exactly its colour.
  EXPECT_GT(run0, 1000u);
  EXPECT_GT(run1, 1000u);
}

TEST_F(PlotTest, DefaultOutputIsCurvesPngInTheFirstRun) {
  const std::string a = write_run("only", "dense", 12, 3.0, 1000, 0);
  PlotOptions opt;
  EXPECT_EQ(plot_runs({a}, opt), (fs::path(a) / "curves.png").string());
  EXPECT_TRUE(fs::exists(fs::path(a) / "curves.png"));
}

TEST_F(PlotTest, MissingMetricsIsAOneLineErrorNamingTheFile) {
  const std::string good = write_run("good", "dense", 5, 3.0, 1000, 0);
  const fs::path empty = root_ / "not_a_run";
  fs::create_directories(empty);
  const std::string msg = error_of([&] { plot_runs({good, empty.string()}, PlotOptions{}); });
  ASSERT_FALSE(msg.empty()) << "a folder without metrics.jsonl must be refused";
  EXPECT_NE(msg.find((empty / "metrics.jsonl").string()), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(fs::path(good) / "curves.png")) << "nothing is written when a run cannot be read";
  // A folder that does not exist at all: the same message.
  const std::string missing = (root_ / "nowhere").string();
  EXPECT_NE(error_of([&] { read_run(missing); }).find(missing + "/metrics.jsonl"), std::string::npos);
}

TEST_F(PlotTest, ReadRunSkipsTornLinesAndKeepsTheLastRecordOfAStep) {
  // A run killed mid-line, then resumed from step 3: steps 3.. written again with new values.
  const std::string dir = write_run("resumed", "hierarchical", 4, 2.0, 1000, 2,
                                    "{\"step\": 5, \"loss\": 1.2, \"tokens_\n"
                                    "{\"step\":3,\"loss\":0.5,\"tokens_per_s\":7}\n"
                                    "not json at all\n\n"
                                    "[1, 2]\n");
  const sparrow::plot::Run run = read_run(dir);
  EXPECT_EQ(run.skipped_lines, 3);
  ASSERT_EQ(run.records.size(), 4u);
  for (size_t i = 0; i < run.records.size(); ++i) EXPECT_EQ(run.records[i].step, static_cast<int64_t>(i + 1));
  EXPECT_DOUBLE_EQ(run.records[2].loss, 0.5);
  EXPECT_DOUBLE_EQ(run.records[2].tokens_per_s, 7);
  EXPECT_TRUE(std::isnan(run.records[2].grad_norm)) << "a value the line lacks reads as NaN";
  EXPECT_FALSE(run.records[2].val_bpb.has_value());
  ASSERT_TRUE(run.records[1].val_bpb.has_value());
  EXPECT_EQ(run.records[1].density.size(), 2u);
  EXPECT_EQ(run.name, "resumed");
  EXPECT_EQ(run.backend, "hierarchical");
  EXPECT_EQ(run.label(), "resumed (hierarchical)");
}

TEST_F(PlotTest, BackendComesFromConfigWithLayerOverridesOrFromTheMetrics) {
  const fs::path cfg = root_ / "config.yaml";
  std::ofstream(cfg) << "attention:\n  backend: adaptive\n  layers:\n    3: {backend: dense}\n    1: {sparsity: 0.5}\n";
  EXPECT_EQ(read_backend(cfg.string()), "adaptive; layer 3 dense");
  EXPECT_EQ(read_backend((root_ / "absent.yaml").string()), "");
  std::ofstream(cfg) << "attention: [unclosed\n";
  EXPECT_EQ(read_backend(cfg.string()), "") << "a broken config leaves the backend unknown, not an error";

  // No config.yaml: the per-layer names the metrics record, each once.
  const fs::path dir = root_ / "noconfig";
  fs::create_directories(dir);
  std::ofstream(dir / "metrics.jsonl")
      << "{\"step\":1,\"loss\":2,\"attention\":[\"dense\",\"block_sparse\",\"dense\"]}\n";
  EXPECT_EQ(read_run(dir.string()).label(), "noconfig (dense+block_sparse)");
}

TEST_F(PlotTest, RunsSharingAFolderNameAreToldApartByTheirParent) {
  std::vector<sparrow::plot::Run> runs(2);
  runs[0].dir = (root_ / "a" / "dense").string();
  runs[1].dir = (root_ / "b" / "dense/").string();
  runs[0].name = runs[1].name = "dense";
  make_names_unique(runs);
  EXPECT_EQ(runs[0].name, "a/dense");
  EXPECT_EQ(runs[1].name, "b/dense");
}

TEST(PlotTicks, LinearTicksAreNiceAndCoverTheRange) {
  for (auto [lo, hi] : {std::pair{0.13, 7.9}, {2.2, 2.31}, {-3.0, 47.0}, {1.0, 150.0}, {12000.0, 61000.0}}) {
    const AxisTicks a = linear_ticks(lo, hi, 6);
    ASSERT_GE(a.ticks.size(), 2u);
    EXPECT_LE(a.ticks.size(), 7u);
    EXPECT_LE(a.lo, lo);
    EXPECT_GE(a.hi, hi);
    EXPECT_DOUBLE_EQ(a.ticks.front(), a.lo);
    EXPECT_DOUBLE_EQ(a.ticks.back(), a.hi);
    const double step = a.ticks[1] - a.ticks[0];
    const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    EXPECT_TRUE(std::fabs(mantissa - 1) < 1e-9 || std::fabs(mantissa - 2) < 1e-9 || std::fabs(mantissa - 5) < 1e-9)
        << "step " << step << " for [" << lo << ", " << hi << "]";
    for (double t : a.ticks) EXPECT_NEAR(t / step, std::round(t / step), 1e-6);
  }
  // A single value gets a range around it.
  const AxisTicks one = linear_ticks(3.0, 3.0);
  EXPECT_LT(one.lo, 3.0);
  EXPECT_GT(one.hi, 3.0);
  // A step axis keeps its data range and starts at 0 when the first step is 1.
  const AxisTicks steps = linear_ticks(1, 150, 4, /*expand=*/false);
  EXPECT_EQ(steps.lo, 0);
  EXPECT_EQ(steps.hi, 150);
  EXPECT_EQ(steps.ticks, (std::vector<double>{0, 50, 100, 150}));
  EXPECT_THROW(linear_ticks(2, 1), sparrow::Error);
}

TEST(PlotTicks, LogTicksAndLabels) {
  const AxisTicks wide = log_ticks(0.01, 1000, 6);
  EXPECT_TRUE(wide.log);
  for (double t : wide.ticks) EXPECT_NEAR(std::log10(t), std::round(std::log10(t)), 1e-9) << t;
  const AxisTicks narrow = log_ticks(2.1, 7.9, 5);
  EXPECT_GE(narrow.ticks.size(), 3u) << "inside one decade there are still several ticks";
  for (double t : narrow.ticks) {
    EXPECT_GE(t, narrow.lo);
    EXPECT_LE(t, narrow.hi);
  }
  EXPECT_NEAR(axis_fraction(wide, std::sqrt(wide.lo * wide.hi)), 0.5, 1e-12);
  EXPECT_THROW(log_ticks(0, 10), sparrow::Error);

  EXPECT_EQ(format_tick(0.25, 0.05), "0.25");
  EXPECT_EQ(format_tick(150, 50), "150");
  EXPECT_EQ(format_tick(12500, 2500), "12.5k");
  EXPECT_EQ(format_tick(3e6, 1e6), "3M");
  EXPECT_EQ(format_tick(5000, 5000, 60000), "5k") << "one unit for the whole axis";
  EXPECT_EQ(format_tick(0, 10000, 60000), "0");
  AxisTicks a;
  a.lo = 0;
  a.hi = 60000;
  a.ticks = {0, 20000, 40000, 60000};
  EXPECT_EQ(tick_labels(a), (std::vector<std::string>{"0", "20k", "40k", "60k"}));
  a.lo = 2;
  a.hi = 3;
  a.ticks = {2, 2.2, 2.4, 2.6, 2.8, 3};
  EXPECT_EQ(tick_labels(a), (std::vector<std::string>{"2.0", "2.2", "2.4", "2.6", "2.8", "3.0"}));
}

TEST(PlotSmoothing, CentredMovingAverageIgnoresMissingValues) {
  const std::vector<double> v{1, 2, 3, 4, 5};
  EXPECT_EQ(moving_average(v, 1), v);
  const std::vector<double> m3 = moving_average(v, 3);
  const std::vector<double> want{1.5, 2, 3, 4, 4.5};
  for (size_t i = 0; i < v.size(); ++i) EXPECT_DOUBLE_EQ(m3[i], want[i]);
  const double nan = std::nan("");
  const std::vector<double> gaps = moving_average({nan, 2, nan, nan, nan}, 3);
  EXPECT_DOUBLE_EQ(gaps[0], 2);
  EXPECT_DOUBLE_EQ(gaps[2], 2);
  EXPECT_TRUE(std::isnan(gaps[4]));
  EXPECT_THROW(moving_average(v, 0), sparrow::Error);
}

TEST(PlotCanvas, RectanglesLinesAndTextLandWhereAsked) {
  Canvas c(40, 30);
  const Rgb red{200, 0, 0}, blue{0, 0, 200};
  c.fill_rect({2, 3, 5, 6}, red);
  EXPECT_EQ(c.at(2, 3), red);
  EXPECT_EQ(c.at(4, 5), red);
  EXPECT_EQ(c.at(5, 5), (Rgb{255, 255, 255}));
  c.fill_rect({10.5, 0, 11.5, 1}, blue);  // half of pixels 10 and 11
  EXPECT_EQ(c.at(10, 0), (Rgb{128, 128, 228}));
  // A 2-pixel horizontal line along y = 20 covers rows 19 and 20 fully, not 17 or 22.
  c.line(5, 20, 35, 20, blue, 2.0);
  EXPECT_EQ(c.at(20, 19), blue);
  EXPECT_EQ(c.at(20, 20), blue);
  EXPECT_EQ(c.at(20, 17), (Rgb{255, 255, 255}));
  EXPECT_EQ(c.at(20, 22), (Rgb{255, 255, 255}));
  // Clipping keeps drawing inside the clip rectangle.
  c.set_clip({0, 0, 20, 30});
  c.line(0, 25, 39, 25, red, 2.0);
  c.reset_clip();
  EXPECT_EQ(c.at(10, 25), red);
  EXPECT_EQ(c.at(30, 25), (Rgb{255, 255, 255}));

  Canvas t(80, 20);
  const double w = Canvas::text_width("Ab1", 2.0);
  EXPECT_GT(w, 10);
  t.text(2, 2, "Ab1\x01", {0, 0, 0}, 2.0);  // a control character draws as '?', not out of bounds
  int dark = 0, outside = 0;
  const double wq = Canvas::text_width("Ab1?", 2.0);
  for (int y = 0; y < 20; ++y)
    for (int x = 0; x < 80; ++x)
      if (t.at(x, y) != Rgb{255, 255, 255}) {
        ++dark;
        outside += x < 2 || x >= 2 + wq || y < 2 || y >= 2 + Canvas::text_height(2.0) + 6;
      }
  EXPECT_GT(dark, 40);
  EXPECT_EQ(outside, 0);
  EXPECT_THROW(Canvas(0, 10), sparrow::Error);
  EXPECT_THROW(c.save_png((fs::path("/nonexistent_dir_for_plot_test") / "x.png").string()), sparrow::Error);
  // A full device fails only at flush/close: that must be an error too, naming the path.
  try {
    c.save_png("/dev/full");
    ADD_FAILURE() << "save_png to /dev/full succeeded";
  } catch (const sparrow::Error& e) {
    EXPECT_EQ(std::string(e.what()), "/dev/full: write failed (No space left on device)");
  }
}
