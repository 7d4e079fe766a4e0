// The model a Config describes, as the trainer builds it and as tools that load its checkpoints
// (eval, sample) must rebuild it. (Each layer's sparsity at a step: TransformerLM::sparsity_targets_at.)
#pragma once
#include <vector>

#include "models/transformer.h"
#include "train/config/config.h"

namespace sparrow::train {

// TransformerOptions from the model, attention (one AttentionConfig per layer) and train.recompute keys.
models::TransformerOptions model_options(const Config& cfg);

}  // namespace sparrow::train
