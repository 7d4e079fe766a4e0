#include "framework/core/rng.h"

#include <cmath>
#include <vector>

namespace sparrow {

void Philox::round(uint32_t c[4], const uint32_t k[2]) {
  const uint64_t p0 = uint64_t(0xD2511F53u) * c[0];
  const uint64_t p1 = uint64_t(0xCD9E8D57u) * c[2];
  const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
  const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
  uint32_t n[4] = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
  c[0] = n[0];
  c[1] = n[1];
  c[2] = n[2];
  c[3] = n[3];
}

void Philox::generate(uint64_t seed, uint64_t counter, uint32_t out[4]) {
  uint32_t c[4] = {uint32_t(counter), uint32_t(counter >> 32), 0u, 0u};
  uint32_t k[2] = {uint32_t(seed), uint32_t(seed >> 32)};
  for (int r = 0; r < 10; ++r) {
    round(c, k);
    k[0] += 0x9E3779B9u;
    k[1] += 0xBB67AE85u;
  }
  for (int i = 0; i < 4; ++i) out[i] = c[i];
}

uint32_t Generator::next_u32() {
  if (buf_left_ == 0) {
    Philox::generate(seed_, reserve(1), buf_);
    buf_left_ = 4;
  }
  return buf_[4 - buf_left_--];
}

namespace {
// 53 random bits (hi's top 27, lo's top 26) → [0, 1).
double uniform_from(uint32_t hi, uint32_t lo) {
  return (double(hi >> 5) * 67108864.0 + double(lo >> 6)) * (1.0 / 9007199254740992.0);
}
// Box–Muller on two uniforms: four 32-bit draws, one Philox counter.
double normal_from(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  double u1 = uniform_from(a, b);
  const double u2 = uniform_from(c, d);
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}
}  // namespace

double Generator::uniform() {
  const uint32_t hi = next_u32(), lo = next_u32();
  return uniform_from(hi, lo);
}

double Generator::normal() {
  const uint32_t a = next_u32(), b = next_u32(), c = next_u32(), d = next_u32();
  return normal_from(a, b, c, d);
}

void Generator::fill_normal(double* out, int64_t n, double stddev) {
  if (buf_left_ != 0) {  // mid-counter: the draws are not one counter each; the sequential way
    for (int64_t i = 0; i < n; ++i) out[i] = normal() * stddev;
    return;
  }
  // On a counter boundary normal() number i uses counter offset + i alone, so the draws are
  // independent: the same values as n calls to normal(), on every core.
  const uint64_t first = reserve(static_cast<uint64_t>(n));
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u[4];
    Philox::generate(seed_, first + static_cast<uint64_t>(i), u);
    out[i] = normal_from(u[0], u[1], u[2], u[3]) * stddev;
  }
}

uint64_t Generator::below(uint64_t n) {
  SPARROW_CHECK(n > 0, "Generator::below(0)");
  return static_cast<uint64_t>(uniform() * double(n)) % n;
}

Tensor randn(const Shape& shape, Generator& gen, DType dtype, Device device, double stddev) {
  return from_chunks(shape, dtype, device, [&](double* out, int64_t n) { gen.fill_normal(out, n, stddev); });
}

Tensor rand_uniform(const Shape& shape, Generator& gen, double lo, double hi, DType dtype, Device device) {
  return from_chunks(shape, dtype, device, [&](double* out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = lo + (hi - lo) * gen.uniform();
  });
}

}  // namespace sparrow
