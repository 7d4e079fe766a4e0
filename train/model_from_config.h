// The model a Config describes, as the trainer builds it and as tools that load its checkpoints
// (eval, sample) must rebuild it: the same options, the same per-layer sparsity at a step.
#pragma once
#include <vector>

#include "models/transformer.h"
#include "train/config/config.h"

namespace sparrow::train {

// TransformerOptions from the model, attention (one AttentionConfig per layer) and train.recompute keys.
models::TransformerOptions model_options(const Config& cfg);

// The sparsity every layer should have at `step`: the layer's schedule where it is on, else its
// fixed attention.sparsity.
std::vector<double> layer_sparsity(const Config& cfg, int64_t step);

}  // namespace sparrow::train
