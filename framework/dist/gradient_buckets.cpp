#include "framework/dist/gradient_buckets.h"

#include <algorithm>

namespace sparrow::dist {

GradientBuckets::GradientBuckets(const nn::ParameterBuffer& params, Communicator& comm, size_t bucket_bytes)
    : params_(params), comm_(comm) {
  SPARROW_CHECK(bucket_bytes > 0, "GradientBuckets: bucket size 0");
  std::vector<const nn::ParameterSlot*> slots;
  for (const nn::ParameterSlot& s : params.slots()) slots.push_back(&s);
  std::sort(slots.begin(), slots.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  const int64_t elem = static_cast<int64_t>(dtype_size(params.grad().dtype()));
  const int64_t per_bucket = std::max<int64_t>(1, static_cast<int64_t>(bucket_bytes) / elem);
  for (size_t i = 0; i < slots.size(); ++i) {
    // A bucket runs from its first slot's offset to the next bucket's first offset (padding
    // between slices included: it is zero on every rank and stays so), the last to the end.
    if (ranges_.empty() || slots[i]->offset - ranges_.back().first >= per_bucket) {
      if (!ranges_.empty()) ranges_.back().second = slots[i]->offset;
      ranges_.push_back({slots[i]->offset, 0});
      slots_in_.push_back(0);
    }
    bucket_of_[&slots[i]->param.impl()] = ranges_.size() - 1;
    ++slots_in_.back();
  }
  if (!ranges_.empty()) ranges_.back().second = params.grad().numel();
  inflight_.resize(ranges_.size());
}

void GradientBuckets::start(size_t b) {
  Tensor flat = params_.grad();
  inflight_[b] = comm_.all_reduce(flat.slice(0, ranges_[b].first, ranges_[b].second), ReduceOp::Sum);
}

std::unique_ptr<LeafReadyGuard> GradientBuckets::arm() {
  waiting_ = slots_in_;
  started_early_ = 0;
  for (auto& w : inflight_) SPARROW_CHECK(!w, "GradientBuckets::arm: the last exchange was not finished");
  return std::make_unique<LeafReadyGuard>([this](const TensorImpl* leaf) {
    auto it = bucket_of_.find(leaf);
    if (it == bucket_of_.end()) return;  // not a parameter of this buffer
    if (--waiting_[it->second] == 0) {
      start(it->second);
      ++started_early_;
    }
  });
}

void GradientBuckets::finish() {
  for (size_t b = 0; b < ranges_.size(); ++b)
    if (!inflight_[b]) start(b);
  for (auto& w : inflight_) {
    w->wait();
    w.reset();
  }
}

}  // namespace sparrow::dist
