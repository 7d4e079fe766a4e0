// The NCCL communicator (GPU tensors): one GPU per rank, cuda:<local rank>; the unique id made
// by rank 0 travels to the others over MPI.
//
// NCCL runs on a stream of its own so that exchanges overlap with compute: an operation first
// waits (on the device) for the work Sparrow's stream has issued so far, which produced its
// tensors; Work::wait makes Sparrow's stream wait for the operation's end. The host never
// blocks, and everything issued on Sparrow's stream after wait() sees the result. The Work
// keeps its tensors alive until then, so the caching allocator cannot hand their blocks out
// while NCCL still reads or writes them.
#include "framework/dist/backends.h"

#if defined(SPARROW_WITH_NCCL) && defined(SPARROW_WITH_MPI)
#include <cuda_runtime.h>
#include <nccl.h>

#include <vector>

#include "framework/cuda/runtime.h"

namespace sparrow::dist {

namespace {

void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) fail("dist::", what, " (NCCL) failed: ", ncclGetErrorString(r));
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::F32:
      return ncclFloat32;
    case DType::F64:
      return ncclFloat64;
    case DType::I32:
      return ncclInt32;
    case DType::BF16:
      return ncclBfloat16;
  }
  fail("dist: no NCCL type for ", dtype_name(t));
}

class NcclWork final : public Work {
 public:
  NcclWork(cudaEvent_t done, std::vector<Tensor> keep) : done_(done), keep_(std::move(keep)) {}
  ~NcclWork() override {
    if (done_) {
      cudaStreamWaitEvent(cuda::stream(), done_, 0);  // later work must not reuse the blocks early
      cudaEventDestroy(done_);
    }
  }
  void wait() override {
    SPARROW_CUDA_CHECK(cudaStreamWaitEvent(cuda::stream(), done_, 0));
    SPARROW_CUDA_CHECK(cudaEventDestroy(done_));
    done_ = nullptr;
    keep_.clear();
  }

 private:
  cudaEvent_t done_;
  std::vector<Tensor> keep_;
};

class NcclCommunicator final : public Communicator {
 public:
  // A communicator over `comm` (rank and size read from it), on the current device.
  NcclCommunicator(ncclComm_t comm) : comm_(comm) {
    check_nccl(ncclCommUserRank(comm_, &rank_), "comm_user_rank");
    check_nccl(ncclCommCount(comm_, &size_), "comm_count");
    SPARROW_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  NcclCommunicator() {
    rank_ = launched_rank();
    size_ = launched_world_size();
    int devices = 0;
    SPARROW_CUDA_CHECK(cudaGetDeviceCount(&devices));
    const int local = launched_local_rank();
    SPARROW_CHECK(local < devices, "dist: nccl rank ", rank_, " is local rank ", local, " on its host but only ",
                  devices, " GPU(s) are visible there; start at most one rank per GPU");
    SPARROW_CUDA_CHECK(cudaSetDevice(local));
    ncclUniqueId id;
    if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "get_unique_id");
    mpi_broadcast_bytes(&id, sizeof id, 0);
    check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), "comm_init_rank");
    SPARROW_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }

  std::unique_ptr<Work> all_reduce(Tensor t, ReduceOp op) override {
    check_tensor("all_reduce", t, true);
    return run({t}, "all_reduce", [&] {
      return ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()),
                           op == ReduceOp::Sum ? ncclSum : ncclMax, comm_, stream_);
    });
  }
  std::unique_ptr<Work> reduce_scatter(Tensor in, Tensor out) override {
    check_tensor("reduce_scatter", out, true);
    check_tensor("reduce_scatter", in, true, out.numel() * size_);
    check_same_dtype("dist::reduce_scatter", in, out);
    return run({in, out}, "reduce_scatter", [&] {
      return ncclReduceScatter(in.data_ptr(), out.data_ptr(), static_cast<size_t>(out.numel()), nccl_type(out.dtype()),
                               ncclSum, comm_, stream_);
    });
  }
  std::unique_ptr<Work> all_gather(Tensor in, Tensor out) override {
    check_tensor("all_gather", in, true);
    check_tensor("all_gather", out, true, in.numel() * size_);
    check_same_dtype("dist::all_gather", in, out);
    return run({in, out}, "all_gather", [&] {
      return ncclAllGather(in.data_ptr(), out.data_ptr(), static_cast<size_t>(in.numel()), nccl_type(in.dtype()), comm_,
                           stream_);
    });
  }
  std::unique_ptr<Work> broadcast(Tensor t, int root) override {
    check_peer("broadcast", root);
    check_tensor("broadcast", t, true);
    return run({t}, "broadcast", [&] {
      return ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()), root,
                           comm_, stream_);
    });
  }
  std::unique_ptr<Work> send(Tensor t, int peer) override {
    check_peer("send", peer);
    check_tensor("send", t, true);
    return run({t}, "send", [&] {
      return ncclSend(t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()), peer, comm_, stream_);
    });
  }
  std::unique_ptr<Work> recv(Tensor t, int peer) override {
    check_peer("recv", peer);
    check_tensor("recv", t, true);
    return run({t}, "recv", [&] {
      return ncclRecv(t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()), peer, comm_, stream_);
    });
  }
  std::unique_ptr<Communicator> split(int color, int key) override {
    ncclComm_t sub = nullptr;
    check_nccl(ncclCommSplit(comm_, color, key, &sub, nullptr), "comm_split");
    return std::make_unique<NcclCommunicator>(sub);
  }
  void barrier() override {
    // An all-reduce of one int on the device, waited for by the host.
    Tensor one = zeros({1}, DType::I32, Device::cuda(launched_local_rank()));
    all_reduce(one, ReduceOp::Sum)->wait();
    cuda::synchronize();
  }

 private:
  template <class Call>
  std::unique_ptr<Work> run(std::vector<Tensor> keep, const char* what, Call call) {
    cudaEvent_t ready = nullptr, done = nullptr;
    SPARROW_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    SPARROW_CUDA_CHECK(cudaEventRecord(ready, cuda::stream()));
    SPARROW_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready, 0));
    SPARROW_CUDA_CHECK(cudaEventDestroy(ready));
    check_nccl(call(), what);
    SPARROW_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    SPARROW_CUDA_CHECK(cudaEventRecord(done, stream_));
    return std::make_unique<NcclWork>(done, std::move(keep));
  }
  void check_peer(const char* what, int peer) const {
    SPARROW_CHECK(peer >= 0 && peer < size_, "dist::", what, ": rank ", peer, " out of range for ", size_, " ranks");
  }
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator() { return std::make_unique<NcclCommunicator>(); }

}  // namespace sparrow::dist

#else  // no NCCL (or no MPI to carry its id) in this build

namespace sparrow::dist {
std::unique_ptr<Communicator> make_nccl_communicator() {
  fail("dist: the nccl communicator needs a build with CUDA, NCCL and MPI (this build has ",
#ifdef SPARROW_WITH_NCCL
       "NCCL but no MPI"
#else
       "no NCCL"
#endif
       ")");
}
}  // namespace sparrow::dist

#endif
