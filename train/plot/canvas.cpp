#include "train/plot/canvas.h"

#include <algorithm>
#include <cmath>

#include "framework/core/error.h"
#include "framework/core/file_io.h"

// Both stb headers are compiled here only. stb_image_write is static because
// attention/layout/layout_png.cpp carries its own copy in another library of the same programs;
// stb_easy_font is all static functions already.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wchar-subscripts"
#include <stb_easy_font.h>
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace sparrow::plot {

Rgb tint(Rgb c, double t) {
  auto mix = [t](uint8_t v) { return static_cast<uint8_t>(std::lround(v + (255.0 - v) * t)); };
  return {mix(c.r), mix(c.g), mix(c.b)};
}

Canvas::Canvas(int width, int height, Rgb background) : w_(width), h_(height) {
  SPARROW_CHECK(width > 0 && height > 0 && width <= 16384 && height <= 16384, "plot: canvas size ", width, "x", height,
                " is out of range (1..16384 per side)");
  px_.resize(static_cast<size_t>(w_) * h_ * 3);
  for (size_t i = 0; i < px_.size(); i += 3) {
    px_[i] = background.r;
    px_[i + 1] = background.g;
    px_[i + 2] = background.b;
  }
  reset_clip();
}

Rgb Canvas::at(int x, int y) const {
  SPARROW_CHECK(x >= 0 && y >= 0 && x < w_ && y < h_, "plot: pixel (", x, ", ", y, ") outside a ", w_, "x", h_,
                " canvas");
  const uint8_t* p = &px_[(static_cast<size_t>(y) * w_ + x) * 3];
  return {p[0], p[1], p[2]};
}

void Canvas::set_clip(const Rect& r) {
  cx0_ = std::clamp(static_cast<int>(std::floor(r.x0)), 0, w_);
  cy0_ = std::clamp(static_cast<int>(std::floor(r.y0)), 0, h_);
  cx1_ = std::clamp(static_cast<int>(std::ceil(r.x1)), 0, w_);
  cy1_ = std::clamp(static_cast<int>(std::ceil(r.y1)), 0, h_);
}

void Canvas::reset_clip() {
  cx0_ = cy0_ = 0;
  cx1_ = w_;
  cy1_ = h_;
}

void Canvas::blend(int x, int y, Rgb c, double coverage) {
  if (x < cx0_ || y < cy0_ || x >= cx1_ || y >= cy1_ || coverage <= 0) return;
  const double a = std::min(coverage, 1.0);
  uint8_t* p = &px_[(static_cast<size_t>(y) * w_ + x) * 3];
  p[0] = static_cast<uint8_t>(std::lround(p[0] + (c.r - p[0]) * a));
  p[1] = static_cast<uint8_t>(std::lround(p[1] + (c.g - p[1]) * a));
  p[2] = static_cast<uint8_t>(std::lround(p[2] + (c.b - p[2]) * a));
}

void Canvas::fill_rect(const Rect& r, Rgb c) {
  const double x0 = std::min(r.x0, r.x1), x1 = std::max(r.x0, r.x1);
  const double y0 = std::min(r.y0, r.y1), y1 = std::max(r.y0, r.y1);
  const int px0 = std::max(static_cast<int>(std::floor(x0)), cx0_),
            px1 = std::min(static_cast<int>(std::ceil(x1)), cx1_);
  const int py0 = std::max(static_cast<int>(std::floor(y0)), cy0_),
            py1 = std::min(static_cast<int>(std::ceil(y1)), cy1_);
  for (int y = py0; y < py1; ++y) {
    const double cy = std::min(y1, y + 1.0) - std::max(y0, static_cast<double>(y));
    for (int x = px0; x < px1; ++x) {
      const double cx = std::min(x1, x + 1.0) - std::max(x0, static_cast<double>(x));
      blend(x, y, c, cx * cy);
    }
  }
}

void Canvas::line(double x0, double y0, double x1, double y1, Rgb c, double width) {
  if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(x1) || !std::isfinite(y1)) return;
  const double half = width / 2.0, reach = half + 1.0;
  const int px0 = std::max(static_cast<int>(std::floor(std::min(x0, x1) - reach)), cx0_);
  const int px1 = std::min(static_cast<int>(std::ceil(std::max(x0, x1) + reach)), cx1_);
  const int py0 = std::max(static_cast<int>(std::floor(std::min(y0, y1) - reach)), cy0_);
  const int py1 = std::min(static_cast<int>(std::ceil(std::max(y0, y1) + reach)), cy1_);
  const double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
  for (int y = py0; y < py1; ++y)
    for (int x = px0; x < px1; ++x) {
      const double px = x + 0.5 - x0, py = y + 0.5 - y0;
      // Nearest point of the segment: parameter t of the projection, clamped to the ends.
      const double t = len2 > 0 ? std::clamp((px * dx + py * dy) / len2, 0.0, 1.0) : 0.0;
      const double ex = px - t * dx, ey = py - t * dy;
      blend(x, y, c, half + 0.5 - std::sqrt(ex * ex + ey * ey));
    }
}

void Canvas::polyline(const std::vector<double>& xs, const std::vector<double>& ys, Rgb c, double width) {
  SPARROW_CHECK(xs.size() == ys.size(), "plot: polyline with ", xs.size(), " x values and ", ys.size(), " y values");
  if (xs.size() == 1) disc(xs[0], ys[0], width / 2.0, c);
  for (size_t i = 1; i < xs.size(); ++i) line(xs[i - 1], ys[i - 1], xs[i], ys[i], c, width);
}

void Canvas::disc(double cx, double cy, double radius, Rgb c) { line(cx, cy, cx, cy, c, 2.0 * radius); }

namespace {

// stb_easy_font indexes a table by (char - 32), so only printable ASCII may reach it.
std::string printable(const std::string& s) {
  std::string out = s;
  for (char& ch : out)
    if (ch < 32 || ch > 126) ch = '?';
  return out;
}

}  // namespace

double Canvas::text_width(const std::string& s, double scale) {
  std::string t = printable(s);
  return stb_easy_font_width(t.data()) * scale;
}

void Canvas::text(double x, double y, const std::string& s, Rgb c, double scale, bool rotated) {
  std::string t = printable(s);
  // Quads of 4 vertices x 16 bytes (x, y, z floats + RGBA); a glyph has at most ~20 quads.
  std::vector<char> buf(t.size() * 20 * 64 + 64);
  const int quads = stb_easy_font_print(0, 0, t.data(), nullptr, buf.data(), static_cast<int>(buf.size()));
  // Whole-pixel origin: with an integer scale every quad edge lands on a pixel edge (crisp).
  x = std::round(x);
  y = std::round(y);
  for (int q = 0; q < quads; ++q) {
    const float* v0 = reinterpret_cast<const float*>(buf.data() + q * 64);       // top-left
    const float* v2 = reinterpret_cast<const float*>(buf.data() + q * 64 + 32);  // bottom-right
    const double u0 = v0[0] * scale, w0 = v0[1] * scale, u1 = v2[0] * scale, w1 = v2[1] * scale;
    if (!rotated)
      fill_rect({x + u0, y + w0, x + u1, y + w1}, c);
    else  // glyph (u right, w down) -> picture (x + w, y - u): a quarter turn anticlockwise
      fill_rect({x + w0, y - u1, x + w1, y - u0}, c);
  }
}

void Canvas::save_png(const std::string& path) const {
  // Encoded in memory, then written with every write, flush and close checked (stb's own file
  // writer ignores them: a full disk would be reported as success).
  std::string png;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  const int ok = stbi_write_png_to_func(append, &png, w_, h_, 3, px_.data(), w_ * 3);
  SPARROW_CHECK(ok != 0, "plot: cannot encode the picture for ", path);
  write_whole_file(path, png);
}

}  // namespace sparrow::plot
