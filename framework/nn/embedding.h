// Embedding table: weight [num_embeddings, dim]; ids I32 [...] → [..., dim]. Named nn::Embedding
// so it does not clash with the sparrow::embedding op it calls.
#pragma once
#include "framework/core/rng.h"
#include "framework/nn/module.h"

namespace sparrow::nn {

class Embedding : public Module {
 public:
  // weight ~ N(0, init_std²); 0.02 is GPT-2's choice.
  Embedding(int64_t num_embeddings, int64_t dim, Generator& gen, double init_std = 0.02, DType dtype = DType::F32,
            Device device = Device::cpu());
  Tensor forward(const Tensor& ids) const;

  int64_t num_embeddings() const { return num_; }
  int64_t embedding_dim() const { return dim_; }
  Tensor weight;  // [num_embeddings, dim]

 private:
  int64_t num_, dim_;
};

}  // namespace sparrow::nn
