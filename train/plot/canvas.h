// An RGB picture to draw charts on: anti-aliased lines, rectangles, discs and a small bitmap
// font (stb_easy_font), saved as PNG (stb_image_write). Coordinates are pixels with (0, 0) at
// the top-left corner and pixel (x, y) covering the square [x, x+1) x [y, y+1).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sparrow::plot {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

// `c` moved towards white by `t` in [0, 1] (a light tint of a series colour).
Rgb tint(Rgb c, double t);

struct Rect {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  double width() const { return x1 - x0; }
  double height() const { return y1 - y0; }
};

class Canvas {
 public:
  Canvas(int width, int height, Rgb background = {255, 255, 255});

  int width() const { return w_; }
  int height() const { return h_; }
  Rgb at(int x, int y) const;
  const std::vector<uint8_t>& pixels() const { return px_; }  // row-major RGB bytes

  // Drawing is limited to `r` (whole canvas by default) until the next set_clip/reset_clip.
  void set_clip(const Rect& r);
  void reset_clip();

  // Axis-aligned rectangle; fractional edges get partial coverage, so text drawn at any
  // scale keeps its shape.
  void fill_rect(const Rect& r, Rgb c);
  // Segment of the given width with round ends. Each pixel gets coverage
  // clamp(width/2 + 0.5 - d, 0, 1), d = distance from the pixel centre to the segment: a
  // one-pixel soft edge, which is what Xiaolin Wu's algorithm gives for thin lines.
  void line(double x0, double y0, double x1, double y1, Rgb c, double width = 2.0);
  void polyline(const std::vector<double>& xs, const std::vector<double>& ys, Rgb c, double width = 2.0);
  void disc(double cx, double cy, double radius, Rgb c);

  // Text in stb_easy_font's 7-unit-high glyphs magnified `scale` times, top-left at (x, y).
  // Rotated text reads bottom-to-top (a y-axis label); (x, y) is then its bottom-left corner.
  // Characters outside printable ASCII are drawn as '?'.
  void text(double x, double y, const std::string& s, Rgb c, double scale = 2.0, bool rotated = false);
  static double text_width(const std::string& s, double scale = 2.0);
  static double text_height(double scale = 2.0) { return 7.0 * scale; }  // cap height (no descenders)

  // Writes a PNG; throws sparrow::Error naming the path when it cannot.
  void save_png(const std::string& path) const;

 private:
  void blend(int x, int y, Rgb c, double coverage);

  int w_, h_;
  std::vector<uint8_t> px_;
  int cx0_, cy0_, cx1_, cy1_;  // clip rectangle, half-open in pixels
};

}  // namespace sparrow::plot
