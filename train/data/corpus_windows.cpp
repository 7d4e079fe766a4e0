#include "train/data/corpus_windows.h"

#include "framework/core/rng.h"

namespace sparrow::train {

uint64_t mix_seed(uint64_t seed, uint64_t salt) {
  // splitmix64 of seed ^ salt·φ: distinct salts give unrelated Philox keys.
  uint64_t z = seed ^ (salt * 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

CorpusWindows::CorpusWindows(std::shared_ptr<const Corpus> corpus, TokenRange range, const std::string& split_name,
                             int64_t batch_size, int64_t seq_len, uint64_t seed)
    : corpus_(std::move(corpus)), range_(range), split_(split_name), batch_(batch_size), seq_(seq_len) {
  SPARROW_CHECK(batch_ > 0 && seq_ > 0, "CorpusWindows: batch_size and seq_len must be > 0, got ", batch_, " and ",
                seq_);
  SPARROW_CHECK(range_.size() >= seq_ + 1, corpus_->path(), ": the ", split_, " split has ", range_.size(),
                " tokens, fewer than one sequence of train.seq_len+1 = ", seq_ + 1);
  key_ = mix_seed(seed, split_ == "train" ? 1 : 2);
}

int64_t CorpusWindows::window_start(uint64_t index, int64_t row) const {
  uint32_t r[4];
  Philox::generate(key_, index * static_cast<uint64_t>(batch_) + static_cast<uint64_t>(row), r);
  const uint64_t x = (static_cast<uint64_t>(r[0]) << 32) | r[1];
  const uint64_t starts = static_cast<uint64_t>(range_.size() - seq_);  // valid window starts
  // Uniform in [0, starts) by the high half of a 64×64 product (Lemire), no modulo bias to speak of.
  const uint64_t pick = static_cast<uint64_t>((static_cast<unsigned __int128>(x) * starts) >> 64);
  return range_.begin + static_cast<int64_t>(pick);
}

Batch CorpusWindows::batch_at(uint64_t index) const {
  Batch b{empty({batch_, seq_}, DType::I32), empty({batch_, seq_}, DType::I32)};
  int32_t* in = b.inputs.data<int32_t>();
  int32_t* tg = b.targets.data<int32_t>();
  const uint8_t* tokens = corpus_->tokens();
  for (int64_t row = 0; row < batch_; ++row) {
    const uint8_t* w = tokens + window_start(index, row);
    for (int64_t t = 0; t < seq_; ++t) {
      in[row * seq_ + t] = w[t];
      tg[row * seq_ + t] = w[t + 1];
    }
  }
  return b;
}

std::string CorpusWindows::describe() const {
  return corpus_->path() + " [" + split_ + ": " + std::to_string(range_.size()) + " tokens in " +
         std::to_string(range_.end_doc - range_.first_doc) + " documents]";
}

}  // namespace sparrow::train
