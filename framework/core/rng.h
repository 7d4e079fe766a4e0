// Seeded, reproducible random numbers: Philox-4x32-10 (counter-based), so a stream position is
// just (seed, offset) — it is saved in checkpoints, and the same draws come out on CPU and GPU.
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow {

// Philox4x32-10: 4 outputs of 32 random bits for counter c under key k.
struct Philox {
  static void round(uint32_t c[4], const uint32_t k[2]);
  static void generate(uint64_t seed, uint64_t counter, uint32_t out[4]);
};

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }  // counters consumed so far (4 draws each)
  // Moves the stream to (seed, offset). Draws buffered by next_u32() belong to the old position
  // and are dropped (kernels that reserve() counters never buffer, so their state is exact).
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
    buf_left_ = 0;
  }
  // Reserves n counters and returns the first; kernels draw from [first, first+n).
  uint64_t reserve(uint64_t n) {
    uint64_t f = offset_;
    offset_ += n;
    return f;
  }

  uint32_t next_u32();
  double uniform();  // [0, 1)
  double normal();   // N(0, 1), Box–Muller
  // out[i] = normal() · stddev for i < n: the same values as n calls, drawn in parallel.
  void fill_normal(double* out, int64_t n, double stddev = 1.0);
  uint64_t below(uint64_t n);  // uniform integer in [0, n)

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
  uint32_t buf_[4] = {};
  int buf_left_ = 0;
};

// Tensors of random values drawn element by element in row-major order (reproducible).
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::F32, Device device = Device::cpu(),
             double stddev = 1.0);
Tensor rand_uniform(const Shape& shape, Generator& gen, double lo, double hi, DType dtype = DType::F32,
                    Device device = Device::cpu());

}  // namespace sparrow
