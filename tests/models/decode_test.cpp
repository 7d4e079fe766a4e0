// KV-cache decode against the forward: for every backend, the logits decoded position by
// position (and after a multi-token prefill) equal the forward's at every position, in f32 with
// random weights large enough that attention is far from uniform. The forward is the one over the
// model's whole length: future tokens cannot matter, every backend being causal (adaptive's
// selection included, adaptive.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "attention/attention.h"
#include "framework/autograd/node.h"
#include "framework/nn/init.h"
#include "framework/ops/ops.h"
#include "models/kv_cache.h"
#include "models/transformer.h"

using namespace sparrow;

namespace {

constexpr int64_t kSeq = 38;  // 9½ blocks of 4: the last query block is ragged
constexpr int64_t kVocab = 256;
constexpr double kTol = 2e-5;  // absolute, on logits of standard deviation ~1.5

models::TransformerOptions tiny(int64_t layers, const std::function<void(int64_t, attn::AttentionConfig&)>& set) {
  models::TransformerOptions o;
  o.n_layers = layers;
  o.d_model = 32;
  o.n_heads = 4;
  o.mlp_ratio = 2;
  for (int64_t i = 0; i < layers; ++i) {
    attn::AttentionConfig a;
    a.block_size = 4;
    set(i, a);
    o.attention.push_back(a);
  }
  return o;
}

// Weights N(0, 0.25²): scores of several units, so a wrong key set changes the logits visibly.
std::unique_ptr<models::TransformerLM> random_model(const models::TransformerOptions& o, uint64_t seed) {
  Generator g(seed);
  auto m = std::make_unique<models::TransformerLM>(o, g);
  for (auto& p : m->named_parameters())
    if (p.tensor.dim() == 2) {
      Tensor t = p.tensor;
      nn::init::normal_(t, g, 0.0, 0.25);
    }
  m->eval();
  return m;
}

std::vector<int32_t> random_ids(int64_t n, uint64_t seed) {
  Generator g(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<int32_t>(g.below(kVocab));
  return v;
}

// ids of B sequences, columns [c0, c1), as [B, c1 − c0].
Tensor columns(const std::vector<std::vector<int32_t>>& seqs, int64_t c0, int64_t c1) {
  std::vector<int32_t> v;
  for (const auto& s : seqs) v.insert(v.end(), s.begin() + c0, s.begin() + c1);
  return from_ints(v, {static_cast<int64_t>(seqs.size()), c1 - c0});
}

// logits[b][p] (V values) of a [B, T, V] tensor's position p.
std::vector<float> row(const Tensor& logits, int64_t b, int64_t p) {
  return slice(slice(logits, 0, b, b + 1), 1, p, p + 1).contiguous().to_float_vector();
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(double(a[i]) - double(b[i])));
  return d;
}

// Reference logits of position p for every sequence: the whole-length forward's row p.
struct Reference {
  models::TransformerLM& m;
  const std::vector<std::vector<int32_t>>& seqs;
  Tensor full;
  std::vector<float> at(int64_t b, int64_t p) {
    NoGradGuard ng;
    if (!full.defined()) full = m.forward(columns(seqs, 0, kSeq), 0);
    return row(full, b, p);
  }
};

// Decodes every position with m (a prefill of `prefill` tokens, then one token at a time) and
// checks each against the whole-length forward of `ref_model`.
void expect_decode_matches(models::TransformerLM& m, models::TransformerLM& ref_model, int64_t prefill,
                           const std::string& what) {
  const std::vector<std::vector<int32_t>> seqs{random_ids(kSeq, 11), random_ids(kSeq, 12)};
  Reference ref{ref_model, seqs, Tensor()};
  models::KVCache cache(m, 2, kSeq);
  const Tensor pre = m.decode(columns(seqs, 0, prefill), 0, cache, 0);
  for (int64_t p = 0; p < prefill; ++p)
    for (int64_t b = 0; b < 2; ++b)
      ASSERT_LT(max_diff(row(pre, b, p), ref.at(b, p)), kTol) << what << " prefill position " << p << " batch " << b;
  for (int64_t pos = prefill; pos < kSeq; ++pos) {
    const Tensor logits = m.decode(columns(seqs, pos, pos + 1), pos, cache, 0);
    for (int64_t b = 0; b < 2; ++b)
      ASSERT_LT(max_diff(row(logits, b, 0), ref.at(b, pos)), kTol) << what << " position " << pos << " batch " << b;
  }
  EXPECT_EQ(cache.length(), kSeq);
}

void check_backend(const std::function<void(int64_t, attn::AttentionConfig&)>& set, int64_t layers,
                   const std::string& what) {
  auto m = random_model(tiny(layers, set), 5);
  for (int64_t prefill : {1, 11}) expect_decode_matches(*m, *m, prefill, what + " prefill " + std::to_string(prefill));
}

// The sparse layouts the decode reads must really be sparse for the test to mean anything.
double density_at_full_length(models::TransformerLM& m, int64_t layer) {
  NoGradGuard ng;
  m.forward(from_ints(random_ids(kSeq, 3), {1, kSeq}), 0);
  return m.attention_stats()[size_t(layer)].density;
}

}  // namespace

TEST(Decode, DenseMatchesTheForward) {
  check_backend([](int64_t, attn::AttentionConfig&) {}, 2, "dense");
}

TEST(Decode, BlockSparseMatchesTheForwardAtItsLayoutRows) {
  const auto set = [](int64_t, attn::AttentionConfig& a) {
    a.backend = "block_sparse";
    a.pattern.names = {"local", "global", "random"};
    a.pattern.window = 1;
    a.pattern.random_blocks = 1;
    a.pattern.per_head = true;  // a layout per head: each head reads its own row
  };
  auto m = random_model(tiny(2, set), 5);
  EXPECT_LT(density_at_full_length(*m, 0), 0.7);
  check_backend(set, 2, "block_sparse");
}

TEST(Decode, BlockSparseAtATargetSparsityMatchesTheForward) {
  const auto set = [](int64_t, attn::AttentionConfig& a) {
    a.backend = "block_sparse";
    a.sparsity = 0.6;
  };
  auto m = random_model(tiny(2, set), 5);
  EXPECT_LT(density_at_full_length(*m, 0), 0.7);
  check_backend(set, 2, "block_sparse 0.6");
}

TEST(Decode, HierarchicalMatchesTheForward) {
  const auto set = [](int64_t, attn::AttentionConfig& a) {
    a.backend = "hierarchical";
    a.hierarchical.levels = 2;
    a.hierarchical.pool = 2;
    a.hierarchical.fine_window = 1;
  };
  auto m = random_model(tiny(2, set), 5);
  EXPECT_LT(density_at_full_length(*m, 0), 1.0);
  check_backend(set, 2, "hierarchical");
}

TEST(Decode, AdaptiveMatchesTheForward) {
  const auto set = [](int64_t, attn::AttentionConfig& a) {
    a.backend = "adaptive";
    a.sparsity = 0.6;
  };
  auto m = random_model(tiny(2, set), 5);
  EXPECT_LT(density_at_full_length(*m, 0), 0.7);
  check_backend(set, 2, "adaptive");
}

TEST(Decode, AutoDecodesWithTheBackendChosenAtTheModelsLength) {
  const auto set = [](int64_t, attn::AttentionConfig& a) {
    a.backend = "auto";
    a.autocfg.dense_max_seq = 16;  // kSeq is past it: the sparse backend at 1 − 12/38
    a.autocfg.budget_tokens = 12;
    a.pattern.names = {"local", "global"};
    a.pattern.window = 1;
  };
  auto m = random_model(tiny(2, set), 5);
  EXPECT_LT(density_at_full_length(*m, 0), 0.8);
  EXPECT_EQ(m->attention_stats()[0].backend, "block_sparse");
  check_backend(set, 2, "auto");
}

TEST(Decode, AutoChoosingAdaptiveDecodesAsAdaptive) {
  // Auto decodes as the backend it chose at the model's length: adaptive at sparsity 1 − 12/38;
  // the reference is an adaptive twin with the same weights.
  const auto set = [](int64_t, attn::AttentionConfig& a) {
    a.backend = "auto";
    a.autocfg.dense_max_seq = 16;
    a.autocfg.budget_tokens = 12;
    a.autocfg.sparse_backend = "adaptive";
  };
  const auto twin = [](int64_t, attn::AttentionConfig& a) {
    a.backend = "adaptive";
    a.sparsity = 1.0 - 12.0 / double(kSeq);
  };
  auto m = random_model(tiny(2, set), 5);
  auto ref = random_model(tiny(2, twin), 5);
  for (int64_t prefill : {1, 11}) expect_decode_matches(*m, *ref, prefill, "auto(adaptive)");
}

TEST(Decode, MixedLayersMatchTheForward) {
  // Adaptive with blocks of 4 and of 6, and a dense layer.
  const auto set = [](int64_t i, attn::AttentionConfig& a) {
    if (i == 2) return;
    a.backend = "adaptive";
    a.sparsity = 0.5;
    a.block_size = i == 0 ? 4 : 6;
  };
  auto m = random_model(tiny(3, set), 6);
  check_backend(set, 3, "mixed");
}

TEST(Decode, RefusesPositionsPastTheCacheOrTheSequence) {
  auto m = random_model(tiny(1, [](int64_t, attn::AttentionConfig&) {}), 1);
  models::KVCache cache(*m, 1, 8);
  EXPECT_THROW(m->decode(from_ints({1, 2}, {1, 2}), 1, cache, 0), Error);  // position 0 was never decoded
  m->decode(from_ints({1, 2, 3, 4, 5, 6}, {1, 6}), 0, cache, 0);
  EXPECT_THROW(m->decode(from_ints({1, 2, 3}, {1, 3}), 6, cache, 0), Error);  // past seq_len 8
  EXPECT_NO_THROW(m->decode(from_ints({1, 2}, {1, 2}), 6, cache, 0));
}

TEST(Decode, AdaptiveRefusesACallWithoutTheQueryCache) {
  attn::AttentionConfig a;
  a.backend = "adaptive";
  a.block_size = 4;
  a.sparsity = 0.5;
  auto backend = attn::make_attention(a);
  attn::DecodeCall call;
  call.q = zeros({1, 1, 1, 8});
  call.k = zeros({1, 1, 6, 8});
  call.v = zeros({1, 1, 6, 8});
  call.first = 5;
  call.seq_len = 8;
  EXPECT_THROW(backend->decode(call), Error);
  call.q_cache = zeros({1, 1, 6, 8});
  EXPECT_NO_THROW(backend->decode(call));
}

namespace {
// A backend from outside the library that has no decode of its own.
class ForwardOnly : public attn::Attention {
 public:
  Tensor forward(const attn::AttentionCall& call) override { return call.v; }
  attn::AttentionStats stats() const override { return {}; }
  std::string name() const override { return "forward_only"; }
};
}  // namespace

TEST(Decode, ABackendWithoutDecodeIsRefusedByName) {
  ForwardOnly f;
  attn::DecodeCall call;
  call.q = zeros({1, 1, 1, 8});
  call.k = call.v = zeros({1, 1, 1, 8});
  call.seq_len = 1;
  try {
    f.decode(call);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("forward_only"), std::string::npos) << e.what();
  }
}
