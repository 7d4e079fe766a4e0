// The next token from one position's logits: greedy at temperature 0; otherwise a draw from
// softmax(logits / temperature) restricted to the top_k largest logits (0: all), from a seeded
// generator, so the same seed gives the same tokens.
#pragma once
#include <cstdint>
#include <vector>

#include "framework/core/rng.h"

namespace sparrow::train {

struct SamplingOptions {
  double temperature = 1.0;  // ≥ 0; 0 = greedy (the largest logit, the lowest index on a tie)
  int64_t top_k = 0;         // ≥ 0; 0 = every token
};

// Throws sparrow::Error on a negative or non-finite temperature or a negative top_k.
void check_sampling_options(const SamplingOptions& o);

// logits: one position's, any finite values. Draws one uniform from gen unless greedy.
int64_t choose_token(const std::vector<float>& logits, const SamplingOptions& o, Generator& gen);

}  // namespace sparrow::train
