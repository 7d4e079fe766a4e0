#include "train/data/synthetic.h"

#include <algorithm>
#include <cmath>

#include "framework/core/rng.h"

namespace sparrow::train {
namespace {

constexpr int32_t kNeedleMark = '#';
constexpr int32_t kQueryMark = '?';

int32_t filler(Generator& g) { return 'a' + static_cast<int32_t>(g.below(26)); }
int32_t key_byte(Generator& g) { return 'A' + static_cast<int32_t>(g.below(26)); }
int32_t value_byte(Generator& g) { return '0' + static_cast<int32_t>(g.below(10)); }

// Number of distinct keys of key_len letters, saturated (26^13 already exceeds 2^61).
int64_t key_space(int64_t key_len) {
  int64_t n = 1;
  for (int64_t i = 0; i < key_len && n < (int64_t{1} << 56); ++i) n *= 26;
  return n;
}

}  // namespace

int64_t SyntheticTask::min_seq_len(const SyntheticConfig& c) {
  const int64_t kv = c.key_len + c.value_len;
  if (c.task == "needle") return std::max(c.distance, kv + 1) + kv;
  return c.pairs * kv + c.queries * (1 + kv) + c.distance - 1;
}

SyntheticTask::SyntheticTask(const SyntheticConfig& cfg, int64_t batch_size, int64_t seq_len, uint64_t seed,
                             uint64_t salt)
    : cfg_(cfg), batch_(batch_size), seq_(seq_len), key_(mix_seed(seed, 100 + salt)) {
  SPARROW_CHECK(cfg_.task == "needle" || cfg_.task == "recall", "data.synthetic.task: expected needle or recall, got '",
                cfg_.task, "'");
  SPARROW_CHECK(batch_ > 0 && seq_ > 0, "SyntheticTask: batch_size and seq_len must be > 0");
  SPARROW_CHECK(cfg_.key_len >= 1 && cfg_.value_len >= 1 && cfg_.distance >= 0,
                "data.synthetic: key_len and "
                "value_len must be >= 1 and distance >= 0");
  const int64_t kv = cfg_.key_len + cfg_.value_len;
  if (cfg_.task == "needle") {
    SPARROW_CHECK(cfg_.distance == 0 || cfg_.distance >= kv + 1, "data.synthetic.distance: the needle needs ",
                  "key_len+value_len+1 = ", kv + 1, " tokens before the query, got distance ", cfg_.distance);
  } else {
    SPARROW_CHECK(cfg_.pairs >= 1 && cfg_.queries >= 1 && cfg_.queries <= cfg_.pairs,
                  "data.synthetic: recall needs 1 <= queries <= pairs, got queries ", cfg_.queries, " and pairs ",
                  cfg_.pairs);
    SPARROW_CHECK(cfg_.pairs <= key_space(cfg_.key_len), "data.synthetic.pairs: ", cfg_.pairs,
                  " distinct keys do not exist with key_len ", cfg_.key_len);
  }
  const int64_t need = min_seq_len(cfg_);
  SPARROW_CHECK(seq_ >= need, "data.synthetic: the ", cfg_.task, " task (distance ", cfg_.distance, ", key_len ",
                cfg_.key_len, ", value_len ", cfg_.value_len,
                cfg_.task == "recall"
                    ? ", pairs " + std::to_string(cfg_.pairs) + ", queries " + std::to_string(cfg_.queries)
                    : std::string(),
                ") needs train.seq_len >= ", need, ", got ", seq_);
}

SyntheticExample SyntheticTask::example(uint64_t index, int64_t row) const {
  Generator g(key_);
  // 2^20 Philox counters (4M draws) per row: far more than a row uses, so rows never overlap.
  g.set_state(key_, (index * static_cast<uint64_t>(batch_) + static_cast<uint64_t>(row)) << 20);
  const int64_t n = seq_ + 1, K = cfg_.key_len, V = cfg_.value_len, kv = K + V;
  SyntheticExample ex;
  ex.tokens.resize(n);
  for (auto& t : ex.tokens) t = filler(g);
  ex.targets.assign(seq_, kIgnoreIndex);
  auto score = [&](int64_t pos) { ex.targets[pos - 1] = ex.tokens[pos]; };  // predicted from pos-1

  if (cfg_.task == "needle") {
    const int64_t q = n - (1 + kv);  // the '?'
    const int64_t d = cfg_.distance ? cfg_.distance : kv + 1 + static_cast<int64_t>(g.below(q - kv));
    const int64_t p = q - d;  // the '#'
    std::vector<int32_t> key(K), value(V);
    for (auto& k : key) k = key_byte(g);
    for (auto& v : value) v = value_byte(g);
    ex.tokens[p] = kNeedleMark;
    ex.tokens[q] = kQueryMark;
    for (int64_t i = 0; i < K; ++i) ex.tokens[p + 1 + i] = ex.tokens[q + 1 + i] = key[i];
    for (int64_t i = 0; i < V; ++i) {
      ex.tokens[p + 1 + K + i] = ex.tokens[q + 1 + K + i] = value[i];
      score(q + 1 + K + i);
    }
    return ex;
  }

  // recall
  const int64_t P = cfg_.pairs, Q = cfg_.queries;
  const int64_t pairs_len = P * kv, queries_len = Q * (1 + kv);
  const int64_t room = n - pairs_len - queries_len;  // filler bytes in all
  const int64_t gap = cfg_.distance ? cfg_.distance : static_cast<int64_t>(g.below(room + 1));
  const int64_t qs = n - queries_len, ps = qs - gap - pairs_len;
  std::vector<std::vector<int32_t>> keys, values;
  while (static_cast<int64_t>(keys.size()) < P) {  // distinct keys by rejection (P <= 26^K)
    std::vector<int32_t> k(K);
    for (auto& b : k) b = key_byte(g);
    if (std::find(keys.begin(), keys.end(), k) != keys.end()) continue;
    std::vector<int32_t> v(V);
    for (auto& b : v) b = value_byte(g);
    keys.push_back(std::move(k));
    values.push_back(std::move(v));
  }
  for (int64_t j = 0; j < P; ++j) {
    std::copy(keys[j].begin(), keys[j].end(), ex.tokens.begin() + ps + j * kv);
    std::copy(values[j].begin(), values[j].end(), ex.tokens.begin() + ps + j * kv + K);
  }
  // Q distinct pairs to ask for: a partial Fisher–Yates shuffle of the indices.
  std::vector<int64_t> order(P);
  for (int64_t j = 0; j < P; ++j) order[j] = j;
  for (int64_t j = 0; j < Q; ++j) std::swap(order[j], order[j + static_cast<int64_t>(g.below(P - j))]);
  for (int64_t j = 0; j < Q; ++j) {
    const int64_t at = qs + j * (1 + kv);
    ex.tokens[at] = kQueryMark;
    std::copy(keys[order[j]].begin(), keys[order[j]].end(), ex.tokens.begin() + at + 1);
    std::copy(values[order[j]].begin(), values[order[j]].end(), ex.tokens.begin() + at + 1 + K);
    for (int64_t i = 0; i < V; ++i) score(at + 1 + K + i);
  }
  return ex;
}

Batch SyntheticTask::batch_at(uint64_t index) const {
  Batch b{empty({batch_, seq_}, DType::I32), empty({batch_, seq_}, DType::I32)};
  int32_t* in = b.inputs.data<int32_t>();
  int32_t* tg = b.targets.data<int32_t>();
  for (int64_t row = 0; row < batch_; ++row) {
    SyntheticExample ex = example(index, row);
    std::copy(ex.tokens.begin(), ex.tokens.begin() + seq_, in + row * seq_);
    std::copy(ex.targets.begin(), ex.targets.end(), tg + row * seq_);
  }
  return b;
}

std::string SyntheticTask::describe() const {
  std::string s = "synthetic " + cfg_.task + " (key_len " + std::to_string(cfg_.key_len) + ", value_len " +
                  std::to_string(cfg_.value_len) + ", distance " +
                  (cfg_.distance ? std::to_string(cfg_.distance) : std::string("random"));
  if (cfg_.task == "recall") s += ", pairs " + std::to_string(cfg_.pairs) + ", queries " + std::to_string(cfg_.queries);
  return s + ")";
}

}  // namespace sparrow::train
