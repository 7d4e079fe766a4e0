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

double Generator::uniform() {
  // 53 random bits → [0, 1)
  uint64_t hi = next_u32() >> 5, lo = next_u32() >> 6;
  return (double(hi) * 67108864.0 + double(lo)) * (1.0 / 9007199254740992.0);
}

double Generator::normal() {
  double u1 = uniform(), u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

uint64_t Generator::below(uint64_t n) {
  SPARROW_CHECK(n > 0, "Generator::below(0)");
  return static_cast<uint64_t>(uniform() * double(n)) % n;
}

Tensor randn(const Shape& shape, Generator& gen, DType dtype, Device device, double stddev) {
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (double& x : v) x = gen.normal() * stddev;
  return from_vector(v, shape, dtype, device);
}

Tensor rand_uniform(const Shape& shape, Generator& gen, double lo, double hi, DType dtype, Device device) {
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (double& x : v) x = lo + (hi - lo) * gen.uniform();
  return from_vector(v, shape, dtype, device);
}

}  // namespace sparrow
