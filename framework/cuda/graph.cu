#include "framework/cuda/graph.h"

#include <cstring>
#include <exception>
#include <mutex>
#include <utility>

#include "framework/cuda/allocator.h"
#include "framework/cuda/runtime.h"

namespace sparrow::cuda {

namespace {

// Deferred checks: each takes n ints of a mapped pinned arena (kernels write it through its
// device alias, the host reads it after waiting). A step registers one per embedding and per
// cross-entropy call, so a few hundred ints is ample.
// Ints [0, 2) of the arena hold the replay's rng shift (a uint64 the graph copies to the device).
constexpr int kArenaInts = 4096;
constexpr int kShiftInts = 2;

__global__ void publish_kernel(const int32_t* src, int n, int32_t* dst) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
}

struct DeferredCheck {
  int first, n;
  std::function<std::string(const int32_t*)> fault;
};

}  // namespace

struct Graph::State {
  int device = -1;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  PoolId pool = 0;
  size_t nodes = 0;
  std::vector<std::shared_ptr<const void>> keep;
  int32_t* arena = nullptr;  // mapped pinned host memory (same address on the device under UVA)
  int arena_used = kShiftInts;
  cudaEvent_t launched = nullptr;  // after the last replay's launch: its shift copy may still be pending
  uint64_t shift = 0;              // the value in the arena
  std::vector<DeferredCheck> checks;

  void release() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    exec = nullptr;
    graph = nullptr;
    // Later work on the one stream runs after any replay still in flight, so the pool's blocks
    // can go back to the shared cache at once.
    if (pool) destroy_private_pool(device, pool);
    pool = 0;
    nodes = 0;
    keep.clear();
    checks.clear();
    arena_used = kShiftInts;
  }
};

namespace {
thread_local Graph::State* t_capture = nullptr;
}

Graph::Graph() : s_(std::make_unique<State>()) {}

Graph::~Graph() {
  s_->release();
  if (s_->launched) cudaEventDestroy(s_->launched);
  if (s_->arena) cudaFreeHost(s_->arena);
}

const uint64_t* rng_shift(int device) {
  static std::mutex mu;
  static void* shifts[64] = {};
  SPARROW_CHECK(device >= 0 && device < 64, "cuda::rng_shift: device ", device, " out of range");
  std::lock_guard<std::mutex> lock(mu);
  if (!shifts[device]) {
    // Outside any capture (Graph::capture creates it first), so the zeroing really runs.
    void* p = allocate(sizeof(uint64_t), device);
    SPARROW_CUDA_CHECK(cudaMemsetAsync(p, 0, sizeof(uint64_t), stream()));
    shifts[device] = p;
  }
  return static_cast<const uint64_t*>(shifts[device]);
}

void Graph::reset() { s_->release(); }
bool Graph::captured() const { return s_->exec != nullptr; }
size_t Graph::nodes() const { return s_->nodes; }
size_t Graph::pool_bytes() const { return s_->pool ? private_pool_bytes(s_->device, s_->pool) : 0; }

void Graph::capture(const std::function<void()>& body) {
  SPARROW_CHECK(t_capture == nullptr, "cuda::Graph: a capture is already in progress on this thread");
  State& s = *s_;
  s.release();
  s.device = current_device();
  uint64_t* shift_dev = const_cast<uint64_t*>(rng_shift(s.device));
  // Earlier work finishes (and reports its errors) before recording starts.
  synchronize();
  if (!s.arena) {
    SPARROW_CUDA_CHECK(
        cudaHostAlloc(reinterpret_cast<void**>(&s.arena), kArenaInts * sizeof(int32_t), cudaHostAllocMapped));
    SPARROW_CUDA_CHECK(cudaEventCreateWithFlags(&s.launched, cudaEventDisableTiming));
  }
  s.shift = 0;
  std::memset(s.arena, 0, sizeof(uint64_t));
  s.pool = create_private_pool(s.device);
  begin_pool_routing(s.device, s.pool);
  t_capture = &s;
  std::string err;
  // Relaxed: the private pool may still need cudaMalloc while capturing, which the stricter modes
  // refuse. Every Sparrow op issues its work on stream() (never the legacy stream), and a
  // synchronisation of the capturing stream itself fails in any mode.
  cudaError_t e = cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed);
  if (e != cudaSuccess) {
    err = std::string("cudaStreamBeginCapture: ") + cudaGetErrorString(e);
  } else {
    try {
      // Replays first copy their shift in, and set it back to 0 for the eager work after them.
      SPARROW_CUDA_CHECK(cudaMemcpyAsync(shift_dev, s.arena, sizeof(uint64_t), cudaMemcpyHostToDevice, stream()));
      body();
      SPARROW_CUDA_CHECK(cudaMemsetAsync(shift_dev, 0, sizeof(uint64_t), stream()));
    } catch (const std::exception& x) {
      err = x.what();
    }
    cudaGraph_t g = nullptr;
    e = cudaStreamEndCapture(stream(), &g);
    s.graph = g;
    if (err.empty() && e != cudaSuccess)
      err = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(e) +
            " (the recorded code synchronised or used another stream)";
  }
  t_capture = nullptr;
  end_pool_routing(s.device);
  if (err.empty()) {
    e = cudaGraphInstantiate(&s.exec, s.graph, 0);
    if (e != cudaSuccess) err = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(e);
  }
  if (err.empty()) {
    e = cudaGraphGetNodes(s.graph, nullptr, &s.nodes);
    if (e != cudaSuccess) err = std::string("cudaGraphGetNodes: ") + cudaGetErrorString(e);
  }
  if (!err.empty()) {
    cudaGetLastError();  // a failed capture leaves no sticky error; clear the last one
    s.release();
    throw CaptureError(err);
  }
}

void Graph::replay(uint64_t rng_shift) {
  State& s = *s_;
  SPARROW_CHECK(captured(), "cuda::Graph::replay: nothing captured");
  if (rng_shift != s.shift) {
    SPARROW_CUDA_CHECK(cudaEventSynchronize(s.launched));  // the last replay has read the old value
    std::memcpy(s.arena, &rng_shift, sizeof(uint64_t));
    s.shift = rng_shift;
  }
  SPARROW_CUDA_CHECK(cudaGraphLaunch(s.exec, stream()));
  SPARROW_CUDA_CHECK(cudaEventRecord(s.launched, stream()));
}

void Graph::raise_deferred_checks() const {
  for (const DeferredCheck& c : s_->checks) {
    const std::string m = c.fault(s_->arena + c.first);
    if (!m.empty()) throw Error(m);
  }
}

bool capturing() {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  SPARROW_CUDA_CHECK(cudaStreamIsCapturing(stream(), &st));
  return st != cudaStreamCaptureStatusNone;
}

void check_on_host(const int32_t* device_values, int n, std::function<std::string(const int32_t*)> fault) {
  if (t_capture && capturing()) {
    Graph::State& s = *t_capture;
    SPARROW_CHECK(s.arena_used + n <= kArenaInts, "cuda::Graph: more than ", kArenaInts,
                  " ints of deferred checks in one capture");
    int32_t* dst = s.arena + s.arena_used;
    for (int i = 0; i < n; ++i) dst[i] = 0;
    publish_kernel<<<1, 32, 0, stream()>>>(device_values, n, dst);
    SPARROW_CUDA_LAUNCH_CHECK();
    s.checks.push_back(DeferredCheck{s.arena_used, n, std::move(fault)});
    s.arena_used += n;
    return;
  }
  std::vector<int32_t> host(static_cast<size_t>(n));
  SPARROW_CUDA_CHECK(
      cudaMemcpyAsync(host.data(), device_values, n * sizeof(int32_t), cudaMemcpyDeviceToHost, stream()));
  SPARROW_CUDA_CHECK(cudaStreamSynchronize(stream()));
  const std::string m = fault(host.data());
  if (!m.empty()) throw Error(m);
}

void keep_alive_while_capturing(std::shared_ptr<const void> p) {
  if (t_capture && p) t_capture->keep.push_back(std::move(p));
}

}  // namespace sparrow::cuda
