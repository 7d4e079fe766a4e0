#include "train/model_from_config.h"

namespace sparrow::train {

models::TransformerOptions model_options(const Config& cfg) {
  models::TransformerOptions o;
  o.vocab_size = cfg.model.vocab_size;
  o.n_layers = cfg.model.n_layers;
  o.d_model = cfg.model.d_model;
  o.n_heads = cfg.model.n_heads;
  o.mlp_ratio = cfg.model.mlp_ratio;
  o.dropout = cfg.model.dropout;
  o.tied_embeddings = cfg.model.tied_embeddings;
  o.rmsnorm = cfg.model.norm == "rmsnorm";
  o.rope_base = cfg.model.rope_base;
  o.recompute = cfg.train.recompute;
  o.recompute_chunk = cfg.train.recompute_chunk;
  for (int64_t i = 0; i < cfg.model.n_layers; ++i) o.attention.push_back(cfg.attention.layer(i).attn);
  return o;
}

}  // namespace sparrow::train
