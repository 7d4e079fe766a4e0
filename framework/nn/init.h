// In-place initialisers drawing from a seeded Generator, element by element in row-major order
// (so a seed reproduces a model on any device: values are drawn on the host, then copied).
#pragma once
#include "framework/core/rng.h"
#include "framework/core/tensor.h"

namespace sparrow::nn::init {

void normal_(Tensor& t, Generator& gen, double mean = 0.0, double stddev = 1.0);
void uniform_(Tensor& t, Generator& gen, double lo, double hi);
void constant_(Tensor& t, double value);

}  // namespace sparrow::nn::init
