#include "train/data/corpus_windows.h"

#include <algorithm>

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
  // Document d's text is [doc_starts[d], doc_starts[d+1] − 1) (its separator follows it); a
  // window of seq_+1 tokens fits at len − seq_ starts.
  const auto& ds = corpus_->doc_starts();
  for (int64_t d = range_.first_doc; d < range_.end_doc; ++d) {
    const int64_t len = ds[size_t(d) + 1] - ds[size_t(d)] - 1;
    if (len < seq_ + 1) continue;
    doc_begin_.push_back(ds[size_t(d)]);
    starts_before_.push_back(total_starts_);
    total_starts_ += len - seq_;
  }
}

int64_t CorpusWindows::window_start(uint64_t index, int64_t row) const {
  uint32_t r[4];
  Philox::generate(key_, index * static_cast<uint64_t>(batch_) + static_cast<uint64_t>(row), r);
  const uint64_t x = (static_cast<uint64_t>(r[0]) << 32) | r[1];
  const bool within = total_starts_ > 0;
  const uint64_t starts = static_cast<uint64_t>(within ? total_starts_ : range_.size() - seq_);
  // Uniform in [0, starts) by the high half of a 64×64 product (Lemire), no modulo bias to speak of.
  const int64_t pick = static_cast<int64_t>((static_cast<unsigned __int128>(x) * starts) >> 64);
  if (!within) return range_.begin + pick;
  // The document holding start number `pick`: the last whose prefix sum is ≤ pick.
  const size_t d = static_cast<size_t>(std::upper_bound(starts_before_.begin(), starts_before_.end(), pick) -
                                       starts_before_.begin() - 1);
  return doc_begin_[d] + (pick - starts_before_[d]);
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
         std::to_string(range_.end_doc - range_.first_doc) + " documents" +
         (total_starts_ > 0 ? "" : "; none holds a whole sequence, so windows span documents") + "]";
}

}  // namespace sparrow::train
