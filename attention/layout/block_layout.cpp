// BlockCSR transpose and the BlockLayout counts. The layouts themselves are built in
// patterns.cpp and cached in layout_cache.cpp.
#include "attention/layout/block_layout.h"

#include "framework/core/error.h"

namespace sparrow::attn {

// Counting sort by column: walking rows in ascending order leaves each column's row list
// ascending. O(nnz + num_k_blocks).
void BlockCSR::build_transpose(int64_t num_k_blocks) {
  SPARROW_CHECK(!row_ptr.empty(), "BlockCSR::build_transpose: row_ptr is empty");
  const int64_t nq = static_cast<int64_t>(row_ptr.size()) - 1;
  SPARROW_CHECK(row_ptr.back() == nnz(), "BlockCSR::build_transpose: row_ptr ends at ", row_ptr.back(),
                " but there are ", nnz(), " column indices");
  col_ptr.assign(num_k_blocks + 1, 0);
  for (int32_t c : col_idx) {
    SPARROW_CHECK(c >= 0 && c < num_k_blocks, "BlockCSR::build_transpose: key block ", c, " outside [0, ", num_k_blocks,
                  ")");
    ++col_ptr[c + 1];
  }
  for (int64_t c = 0; c < num_k_blocks; ++c) col_ptr[c + 1] += col_ptr[c];
  row_idx.resize(col_idx.size());
  std::vector<int64_t> fill(col_ptr.begin(), col_ptr.end() - 1);
  for (int64_t r = 0; r < nq; ++r)
    for (int64_t i = row_ptr[r]; i < row_ptr[r + 1]; ++i) row_idx[fill[col_idx[i]]++] = static_cast<int32_t>(r);
}

// The dense reference is over the query length's own blocks: a hierarchical layout's appended
// summary keys are extra work the dense attention would not do, so they do not enlarge it.
int64_t BlockLayout::dense_blocks() const {
  const int64_t nq = num_q_blocks;
  return causal ? nq * (nq + 1) / 2 : nq * nq;
}

int64_t BlockLayout::active_blocks() const {
  int64_t total = 0;
  for (const BlockCSR& h : heads) total += h.nnz();
  return total;
}

double BlockLayout::density() const {
  const int64_t dense = dense_blocks();
  if (heads.empty() || dense == 0) return 0.0;
  return static_cast<double>(active_blocks()) / (static_cast<double>(dense) * static_cast<double>(heads.size()));
}

size_t BlockLayout::memory_bytes() const {
  size_t bytes = sizeof(BlockLayout) + description.capacity() + floor_note.capacity();
  for (const BlockCSR& h : heads)
    bytes += sizeof(BlockCSR) + h.row_ptr.capacity() * sizeof(int64_t) + h.col_idx.capacity() * sizeof(int32_t) +
             h.col_ptr.capacity() * sizeof(int64_t) + h.row_idx.capacity() * sizeof(int32_t);
  return bytes;
}

}  // namespace sparrow::attn
