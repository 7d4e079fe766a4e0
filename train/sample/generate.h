// Text generation with the KV cache: the prompt is decoded in one call, then each new token in
// its own (models::TransformerLM::decode), from position 0 of the model's context.
//
// Length policy: no sliding window. The model was trained on sequences of seq_len positions
// and RoPE and the sparse layouts are those of positions [0, seq_len), so a prompt of P bytes
// may be followed by at most seq_len − P + 1 new tokens (the last one is chosen, never fed
// back); a longer request is refused before anything is generated.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "models/transformer.h"
#include "train/sample/token_choice.h"

namespace sparrow::train {

struct GenerateOptions {
  int64_t tokens = 0;   // new tokens to generate, ≥ 1
  int64_t seq_len = 0;  // the model's context (its training sequence length)
  int64_t step = 0;     // the training step of the weights
  SamplingOptions sampling;
  uint64_t seed = 0;
};

// The most tokens a prompt of prompt_len bytes may be followed by (see above; 0 when none).
int64_t max_new_tokens(int64_t prompt_len, int64_t seq_len);
// The policy above: throws sparrow::Error (one line) on an empty prompt, tokens < 1, a prompt
// longer than seq_len or more tokens than it leaves room for.
void check_generation_fits(int64_t prompt_len, int64_t tokens, int64_t seq_len);

// Throws as check_generation_fits (and on a model that is not byte-level) before decoding.
// `emit` is called with each new byte as soon as it is chosen. Returns the new bytes.
std::string generate(models::TransformerLM& model, const std::string& prompt, const GenerateOptions& o,
                     const std::function<void(unsigned char)>& emit = {});

}  // namespace sparrow::train
