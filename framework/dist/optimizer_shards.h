// ZeRO-1 (Rajbhandari et al., 2020, stage 1): the optimizer state sharded over data-parallel ranks.
//
// Every rank still holds the whole model and, after the gradient all-reduce, the whole summed
// gradient; but rank r keeps AdamW's m and v only for its shard [begin_r, end_r) of the flat
// buffer and updates only those weights. The updated shards are then gathered so every rank
// holds the whole new weights again. AdamW is elementwise and every rank sees the same gradient
// and the same guard (loss, ‖g‖), so the weights are bit for bit those of an unsharded run, while
// the optimizer state per rank falls from 2·N to 2·N/P floats (N parameters, P ranks): with
// AdamW's f32 master weights and gradients, 16 bytes a parameter become 8 + 8/P.
//
// The gather here is one broadcast per rank, each rank the root of its own shard, in place in
// the flat buffer: the shards need not be equal (the buffer's length is whatever the model
// makes it) and no second copy of the weights is needed. Its volume is the weights once
// (an all-gather's), against a gradient all-reduce's twice.
//
// Checkpoints hold the state of the whole buffer, so they resume at any rank count:
// gather_optimizer_state assembles it on one rank, and AdamW::load_state takes each rank's part.
#pragma once
#include "framework/dist/communicator.h"
#include "framework/nn/parameter_buffer.h"
#include "framework/optim/adamw.h"

namespace sparrow::dist {

// Rank `rank`'s shard of an n-element buffer over `ranks` ranks: contiguous, in rank order, each
// a whole number of 64-byte lines of f32 (the last one takes the remainder; trailing shards may be
// empty when n is small).
optim::AdamWShard optimizer_shard(int64_t n, int rank, int ranks);

// After each rank's opt.launch(): every rank's shard of the weights (and of the bf16 compute
// copy, when one is given) from its owner, so all ranks hold the whole updated buffer.
// Collective over `comm`; blocks until done.
void gather_parameter_shards(const nn::ParameterBuffer& params, const Tensor& compute_copy, Communicator& comm);

// The optimizer state of the whole buffer on `root` (for a checkpoint), assembled from every
// rank's shard (sharded optimizers: comm.size() shards made by optimizer_shard); other ranks get
// undefined tensors. An unsharded optimizer's own state is returned as is, without communication.
// Collective over `comm` when sharded.
optim::AdamWState gather_optimizer_state(const optim::AdamW& opt, Communicator& comm, int root = 0);

}  // namespace sparrow::dist
