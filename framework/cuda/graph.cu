#include "framework/cuda/graph.h"

#include <exception>
#include <utility>

#include "framework/cuda/allocator.h"
#include "framework/cuda/runtime.h"

namespace sparrow::cuda {

namespace {

// Deferred checks: each takes n ints of a mapped pinned arena (kernels write it through its
// device alias, the host reads it after waiting). A step registers one per embedding and per
// cross-entropy call, so a few hundred ints is ample.
constexpr int kArenaInts = 4096;

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
  int arena_used = 0;
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
    arena_used = 0;
  }
};

namespace {
thread_local Graph::State* t_capture = nullptr;
}

Graph::Graph() : s_(std::make_unique<State>()) {}

Graph::~Graph() {
  s_->release();
  if (s_->arena) cudaFreeHost(s_->arena);
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
  // Earlier work finishes (and reports its errors) before recording starts.
  synchronize();
  if (!s.arena) {
    SPARROW_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&s.arena), kArenaInts * sizeof(int32_t),
                                     cudaHostAllocMapped));
  }
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
      body();
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

void Graph::replay() {
  SPARROW_CHECK(captured(), "cuda::Graph::replay: nothing captured");
  SPARROW_CUDA_CHECK(cudaGraphLaunch(s_->exec, stream()));
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
  SPARROW_CUDA_CHECK(cudaMemcpyAsync(host.data(), device_values, n * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                     stream()));
  SPARROW_CUDA_CHECK(cudaStreamSynchronize(stream()));
  const std::string m = fault(host.data());
  if (!m.empty()) throw Error(m);
}

void keep_alive_while_capturing(std::shared_ptr<const void> p) {
  if (t_capture && p) t_capture->keep.push_back(std::move(p));
}

}  // namespace sparrow::cuda
