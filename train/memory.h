// Memory: the estimate that refuses a run the device cannot hold (before it allocates), and the
// readings logged per step.
#pragma once
#include "framework/core/device.h"
#include "train/config/config.h"

namespace sparrow::train {

// Bytes a training step on `dev` needs, roughly: parameters, gradients and AdamW state (16 B/param),
// saved activations (8·d + 2·hidden values per token per layer, or one layer's worth plus each
// block's input under recompute), the gradients in flight through one block's backward (6·d a
// token) with attention's f32 dQ sums on a GPU, and one chunk of the head's logits with their
// gradient. Checked against the peaks of bench/gpt12.yaml on an H100 (tests/train/memory_test.cpp).
double estimate_step_bytes(const Config& cfg, Device dev);

// Throws TrainError (one line naming train.seq_len and train.batch_size) when the estimate
// exceeds the memory available on dev.
void check_memory_fits(const Config& cfg, Device dev);

double current_memory_bytes(Device dev);  // host: resident set; GPU: bytes allocated by Sparrow
double peak_memory_bytes(Device dev);     // host: peak resident set; GPU: allocator peak
double available_memory_bytes(Device dev);

}  // namespace sparrow::train
