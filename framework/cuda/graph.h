// CUDA graphs: one step's work on the Sparrow stream recorded once and replayed with one launch.
// A small model's step is hundreds of kernels of a few µs each; launched one by one the GPU waits
// on the host between them, and a graph removes that wait (measured in bench/RESULTS.md).
//
// What capture needs from the code it records, and what this file provides for it:
//  - No host synchronisation (a sync inside a capture fails it; capture() then throws, naming
//    the call). Checks that would read device values back (a bad token id) are deferred:
//    check_on_host() registers them with the graph, whose kernels write into mapped host memory
//    at every replay, and raise_deferred_checks() throws their message once the host has waited.
//  - Stable addresses: allocations made while capturing come from the graph's private pool
//    (cuda/allocator.h), so the blocks the replays write are never handed to other work.
//  - Host-side state that the kernels read must live in memory the graph reads at replay
//    (e.g. AdamW's learning rate, copied from pinned host memory by a captured copy), not in
//    kernel arguments, which are frozen at capture.
//  - Device objects a captured kernel reads (cached layouts) are kept alive by the graph:
//    keep_alive_while_capturing().
//  - Random numbers: a capture freezes the Philox counters its kernels reserved. Random kernels
//    add rng_shift() to their counters; a replay sets it (replay(shift)) so the replay draws what
//    an eager run at the generator's current position would, and it is 0 outside replays.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "framework/core/error.h"

namespace sparrow::cuda {

// Thrown by Graph::capture when the recorded code cannot be captured; what() says why.
struct CaptureError : Error {
  using Error::Error;
};

class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Records the work `body` issues on the current device's stream; nothing runs. Replaces any
  // earlier capture. Throws CaptureError (and holds nothing) when body fails or syncs.
  void capture(const std::function<void()>& body);
  // Launches the recorded work on the stream; the host does not wait. Random kernels in it draw
  // from their captured counters + rng_shift (see above).
  void replay(uint64_t rng_shift = 0);
  // After the host has waited for a replay: throws the first failed deferred check's message.
  void raise_deferred_checks() const;
  void reset();

  bool captured() const;
  size_t nodes() const;       // kernels, copies and memsets in the graph
  size_t pool_bytes() const;  // device memory the graph's private pool holds

  struct State;

 private:
  std::unique_ptr<State> s_;
};

// Whether the current device's Sparrow stream is being captured by this thread now.
bool capturing();

// device_values: n int32 values in device memory that the work just issued has written.
// fault(values) returns "" when they are fine, else the error message. Outside a capture this
// waits for the stream and throws at once; inside one it is deferred to the graph (see above).
void check_on_host(const int32_t* device_values, int n, std::function<std::string(const int32_t*)> fault);

// The device's counter shift for random kernels (a device uint64; see above).
const uint64_t* rng_shift(int device);

// Keeps `p` alive as long as the graph being captured (no-op outside a capture).
void keep_alive_while_capturing(std::shared_ptr<const void> p);

}  // namespace sparrow::cuda
