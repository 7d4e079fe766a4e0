// Data-parallel gradient exchange overlapped with the backward.
//
// The flat gradient buffer (nn::ParameterBuffer) is cut into buckets of about `bucket_bytes`,
// each a contiguous run of parameter slices. While a backward runs under arm(), the engine
// reports each parameter whose gradient is final (autograd LeafReadyGuard); when the last
// parameter of a bucket is reported, that bucket's sum over ranks starts at once (async), so the
// exchange of the later layers' gradients runs while the earlier layers' backward computes.
// finish() starts whatever is left (parameters the backward never reached) and waits for all:
// afterwards the whole buffer holds the sum over ranks, exactly as one all-reduce would leave it
// (each element is reduced once, by the same collective).
#pragma once
#include <memory>
#include <unordered_map>
#include <vector>

#include "framework/autograd/node.h"
#include "framework/dist/communicator.h"
#include "framework/nn/parameter_buffer.h"

namespace sparrow::dist {

class GradientBuckets {
 public:
  static constexpr size_t kDefaultBucketBytes = size_t(25) << 20;

  GradientBuckets(const nn::ParameterBuffer& params, Communicator& comm, size_t bucket_bytes = kDefaultBucketBytes);

  // For the backward that follows: buckets start as their gradients complete. Keep the guard
  // alive across that backward only (the last micro-batch's, under gradient accumulation).
  std::unique_ptr<LeafReadyGuard> arm();
  // Starts the buckets not started yet and waits for every bucket.
  void finish();

  size_t buckets() const { return ranges_.size(); }
  // Buckets started during the last backward (before finish): how much of the exchange overlapped.
  size_t started_early() const { return started_early_; }

 private:
  void start(size_t b);

  nn::ParameterBuffer params_;
  Communicator& comm_;
  std::vector<std::pair<int64_t, int64_t>> ranges_;  // [begin, end) in the flat buffer
  std::vector<int> slots_in_;                        // parameters per bucket
  std::unordered_map<const TensorImpl*, size_t> bucket_of_;
  std::vector<int> waiting_;                     // parameters not yet final, per bucket
  std::vector<std::unique_ptr<Work>> inflight_;  // per bucket; null until started
  size_t started_early_ = 0;
};

}  // namespace sparrow::dist
