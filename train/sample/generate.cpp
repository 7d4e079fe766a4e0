#include "train/sample/generate.h"

#include <algorithm>

#include "framework/ops/ops.h"
#include "models/kv_cache.h"

namespace sparrow::train {

int64_t max_new_tokens(int64_t prompt_len, int64_t seq_len) { return std::max<int64_t>(0, seq_len - prompt_len + 1); }

void check_generation_fits(int64_t P, int64_t tokens, int64_t S) {
  SPARROW_CHECK(P > 0, "the prompt is empty (a byte-level model needs at least one byte to continue)");
  SPARROW_CHECK(tokens >= 1, "tokens ", tokens, " (must be ≥ 1)");
  SPARROW_CHECK(P <= S, "the prompt is ", P, " bytes, longer than the model's sequence length ", S);
  SPARROW_CHECK(tokens <= max_new_tokens(P, S), "a ", P, "-byte prompt leaves room for at most ", max_new_tokens(P, S),
                " new tokens in the model's sequence length ", S, " (asked for ", tokens, ")");
}

std::string generate(models::TransformerLM& model, const std::string& prompt, const GenerateOptions& o,
                     const std::function<void(unsigned char)>& emit) {
  const int64_t P = static_cast<int64_t>(prompt.size()), S = o.seq_len;
  SPARROW_CHECK(model.options().vocab_size == 256, "the model's vocabulary has ", model.options().vocab_size,
                " tokens; sampling writes bytes and needs a byte-level model (256)");
  check_generation_fits(P, o.tokens, S);
  check_sampling_options(o.sampling);

  Generator gen(o.seed);
  models::KVCache cache(model, /*batch=*/1, S);
  std::vector<int32_t> ids(prompt.begin(), prompt.end());
  for (int32_t& id : ids) id = static_cast<unsigned char>(id);
  std::string out;
  int64_t first = 0;  // the positions to decode: the prompt at first, then each new token
  for (;;) {
    const int64_t n = static_cast<int64_t>(ids.size());
    const std::vector<int32_t> window(ids.begin() + first, ids.end());
    const Tensor logits = model.decode(from_ints(window, {1, n - first}), first, cache, o.step);  // [1, T, V]
    const Tensor last = slice(logits, 1, n - first - 1, n - first);
    const int64_t next = choose_token(last.contiguous().to_float_vector(), o.sampling, gen);
    out.push_back(static_cast<char>(next));
    if (emit) emit(static_cast<unsigned char>(next));
    if (static_cast<int64_t>(out.size()) == o.tokens) return out;
    ids.push_back(static_cast<int32_t>(next));
    first = n;
  }
}

}  // namespace sparrow::train
