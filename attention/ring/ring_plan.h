// RingPlan: how one sequence is split across P ranks for ring attention, and which ring steps a
// block layout leaves empty.
//
// Zigzag split: the sequence is cut into 2P chunks of `chunk` tokens (a multiple of the block
// size; the last chunks may be short or empty when N is ragged); rank r holds chunks r and
// 2P−1−r. Under a causal mask chunk c's queries see c+1 chunks' worth of keys, so each rank's
// pair sees (r+1) + (2P−r) = 2P+1: the causal work is the same on every rank.
//
// Ring: key/value shards travel both ways round the ring, each only as far as needed. need[r][o]
// says whether any query of rank r sees any key of rank o (any head, by the layout and the
// causal rule). The shard of origin o travels forward (o → o+1 → …) to distance reach_fwd[o] and
// backward (o → o−1 → …) to distance reach_bwd[o], the pair with the fewest hops that covers
// every rank needing it, each rank once (reach_fwd + reach_bwd ≤ P−1). A ring step whose keys
// nobody further on needs costs neither compute nor a send; a local pattern talks to its
// neighbours only; a dense layout is the plain one-way ring.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attention/layout/block_layout.h"

namespace sparrow::attn {

struct TokenRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

struct RingPlan {
  int64_t seq_len = 0, block_size = 0, chunk = 0;
  int ranks = 1;
  bool causal = false;
  std::vector<std::vector<char>> need;    // [rank][origin]
  std::vector<int> reach_fwd, reach_bwd;  // [origin]: hops its shard travels each way (0: none)

  TokenRange chunk_range(int64_t c) const;  // tokens of chunk c, clipped to seq_len
  std::array<int64_t, 2> chunks_of(int rank) const { return {rank, 2 * int64_t(ranks) - 1 - rank}; }
  int64_t local_len(int rank) const;  // tokens rank holds
  // Query chunk cq sees some key of chunk ck by the causal rule alone (the layout may still be empty).
  bool causally_visible(int64_t cq, int64_t ck) const { return !causal || ck <= cq; }
  // Whether rank r receives origin o's shard, and which way: +1 forward, −1 backward, 0 not.
  int direction(int rank, int origin) const;
  // Ring steps (hops 1..P−1, summed over origins) whose shards travel, and those skipped.
  int64_t hops_sent() const;
  int64_t hops_skipped() const;
};

// layout: the whole sequence's layout (null: dense). Throws when N or P cannot be split.
RingPlan make_ring_plan(int64_t seq_len, int ranks, int64_t block_size, bool causal, const BlockLayout* layout);

// The layout restricted to query chunk cq × key chunk ck (blocks renumbered from 0); null when
// no head has an active block there.
std::shared_ptr<const BlockLayout> chunk_layout(const BlockLayout& layout, const RingPlan& plan, int64_t cq,
                                                int64_t ck);
// The layout restricted to query tokens q × key tokens k (both starting on a block boundary;
// blocks renumbered from 0), with `causal` as its masking and `tag` added to its description;
// null when no head has an active block there.
std::shared_ptr<const BlockLayout> sub_layout(const BlockLayout& layout, TokenRange q, TokenRange k, bool causal,
                                              const std::string& tag);

}  // namespace sparrow::attn
