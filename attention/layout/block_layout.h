// BlockLayout: which (query block, key block) pairs a sparse attention computes. Compressed
// sparse rows plus the transpose (compressed columns) that the backward's dK/dV pass walks.
// Memory is O(active blocks): never an N×N or (N/b)×(N/b) dense mask.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attention/attention_config.h"

namespace sparrow::attn {

struct BlockCSR {
  std::vector<int64_t> row_ptr;  // size num_q_blocks + 1
  std::vector<int32_t> col_idx;  // key block of each active pair, ascending within a row
  std::vector<int64_t> col_ptr;  // transpose: size num_k_blocks + 1
  std::vector<int32_t> row_idx;  // query block of each active pair, ascending within a column
  int64_t nnz() const { return static_cast<int64_t>(col_idx.size()); }
  // Fills col_ptr/row_idx from row_ptr/col_idx.
  void build_transpose(int64_t num_k_blocks);
};

struct BlockLayout {
  int64_t seq_len = 0;  // query length
  int64_t key_len = 0;  // key length (hierarchical appends pooled summary keys); 0 = seq_len
  int64_t block_size = 0;
  int64_t num_q_blocks = 0;  // ceil(seq_len / block_size); the last block may be ragged
  int64_t num_k_blocks = 0;
  bool causal = false;
  std::vector<BlockCSR> heads;  // one entry (shared by all heads) or one per head
  std::string description;      // e.g. "bigbird(window=3, global=1, random=2) @ sparsity 0.95"
  double target_sparsity = 0;
  std::string floor_note;  // non-empty when the target could not be met: says the floor

  const BlockCSR& head(int64_t h) const { return heads.size() == 1 ? heads[0] : heads.at(h); }
  // Pairs the dense attention computes: full grid, or the causal lower triangle with diagonal.
  int64_t dense_blocks() const;
  int64_t active_blocks() const;  // summed over stored heads, scaled to per-head average × heads.size()
  double density() const;         // average over heads of active / dense
  double sparsity() const { return 1.0 - density(); }
  size_t memory_bytes() const;
};

// The layout of a block-sparse pattern (cfg.pattern at target cfg.sparsity, block cfg.block_size)
// for this length, head count and masking; built once and cached by every parameter that shapes
// it (layout/layout_cache.cpp). Thread-safe. Throws sparrow::Error on an invalid configuration.
std::shared_ptr<const BlockLayout> get_layout(const AttentionConfig& cfg, int64_t seq_len, int64_t num_heads,
                                              bool causal);

}  // namespace sparrow::attn
