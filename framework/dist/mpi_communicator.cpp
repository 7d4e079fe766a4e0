// The MPI communicator (CPU tensors): each operation is MPI's non-blocking collective or
// point-to-point call on a duplicate of MPI_COMM_WORLD, completed by Work::wait (MPI_Wait).
#include "framework/dist/backends.h"

#ifdef SPARROW_WITH_MPI
#include <mpi.h>

#include <climits>
#include <cstring>
#include <vector>

namespace sparrow::dist {

namespace {

std::string mpi_error(int rc) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(rc);
  return std::string(msg, static_cast<size_t>(len));
}

void check_mpi(int rc, const char* what) {
  if (rc != MPI_SUCCESS) fail("dist::", what, " (MPI) failed: ", mpi_error(rc));
}

// MPI is initialised once per process, on first use, and finalised at exit if Sparrow
// initialised it (a caller that initialised MPI itself finalises it too).
struct MpiRuntime {
  bool owned = false;
  MpiRuntime() {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
      int provided = 0;
      // Funneled: only the thread that made the communicator calls MPI (OpenMP workers never do).
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init");
      owned = true;
    }
    // Errors come back as codes (thrown as sparrow::Error) instead of aborting the job silently.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  ~MpiRuntime() {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (owned && !finalised) MPI_Finalize();
  }
};

MpiRuntime& runtime() {
  static MpiRuntime r;
  return r;
}

// bf16 has no MPI type: it travels as 16-bit words, reduced by these ops (f32 arithmetic, one
// rounding per pair, as the f32 → bf16 conversion everywhere else rounds).
template <bool kMax>
void bf16_reduce(void* in, void* inout, int* len, MPI_Datatype*) {
  const bf16* a = static_cast<const bf16*>(in);
  bf16* b = static_cast<bf16*>(inout);
  for (int i = 0; i < *len; ++i) {
    const float x = static_cast<float>(a[i]), y = static_cast<float>(b[i]);
    b[i] = bf16(kMax ? (x > y ? x : y) : x + y);
  }
}

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::F32:
      return MPI_FLOAT;
    case DType::F64:
      return MPI_DOUBLE;
    case DType::I32:
      return MPI_INT32_T;
    case DType::BF16:
      return MPI_UINT16_T;
  }
  fail("dist: no MPI type for ", dtype_name(t));
}

MPI_Op mpi_op(DType t, ReduceOp op) {
  if (t == DType::BF16) {
    static MPI_Op sum = MPI_OP_NULL, max = MPI_OP_NULL;
    if (sum == MPI_OP_NULL) {
      check_mpi(MPI_Op_create(&bf16_reduce<false>, 1, &sum), "op_create");
      check_mpi(MPI_Op_create(&bf16_reduce<true>, 1, &max), "op_create");
    }
    return op == ReduceOp::Sum ? sum : max;
  }
  return op == ReduceOp::Sum ? MPI_SUM : MPI_MAX;
}

int mpi_count(const char* what, int64_t n) {
  SPARROW_CHECK(n <= INT_MAX, "dist::", what, ": ", n, " elements exceed MPI's int count; split the tensor");
  return static_cast<int>(n);
}

// A pending MPI request and the tensors it reads or writes (kept alive until it completes).
class MpiWork final : public Work {
 public:
  MpiWork(const char* what, std::vector<Tensor> keep) : what_(what), keep_(std::move(keep)) {}
  ~MpiWork() override {
    if (req_ != MPI_REQUEST_NULL) MPI_Wait(&req_, MPI_STATUS_IGNORE);  // never leave MPI writing freed memory
  }
  MPI_Request* request() { return &req_; }
  void wait() override {
    const int rc = MPI_Wait(&req_, MPI_STATUS_IGNORE);
    keep_.clear();
    check_mpi(rc, what_);
  }

 private:
  const char* what_;
  std::vector<Tensor> keep_;
  MPI_Request req_ = MPI_REQUEST_NULL;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() : MpiCommunicator(MPI_COMM_WORLD, true) {}
  // Takes `comm` (dup: a private copy of it) as its own.
  MpiCommunicator(MPI_Comm comm, bool dup) {
    runtime();
    if (dup)
      check_mpi(MPI_Comm_dup(comm, &comm_), "comm_dup");
    else
      comm_ = comm;
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (!finalised) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  std::unique_ptr<Work> all_reduce(Tensor t, ReduceOp op) override {
    check_tensor("all_reduce", t, false);
    auto w = std::make_unique<MpiWork>("all_reduce", std::vector<Tensor>{t});
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), mpi_count("all_reduce", t.numel()), mpi_type(t.dtype()),
                             mpi_op(t.dtype(), op), comm_, w->request()),
              "all_reduce");
    return w;
  }
  std::unique_ptr<Work> reduce_scatter(Tensor in, Tensor out) override {
    check_tensor("reduce_scatter", out, false);
    check_tensor("reduce_scatter", in, false, out.numel() * size_);
    check_same_dtype("dist::reduce_scatter", in, out);
    auto w = std::make_unique<MpiWork>("reduce_scatter", std::vector<Tensor>{in, out});
    check_mpi(MPI_Ireduce_scatter_block(in.data_ptr(), out.data_ptr(), mpi_count("reduce_scatter", out.numel()),
                                        mpi_type(out.dtype()), mpi_op(out.dtype(), ReduceOp::Sum), comm_, w->request()),
              "reduce_scatter");
    return w;
  }
  std::unique_ptr<Work> all_gather(Tensor in, Tensor out) override {
    check_tensor("all_gather", in, false);
    check_tensor("all_gather", out, false, in.numel() * size_);
    check_same_dtype("dist::all_gather", in, out);
    auto w = std::make_unique<MpiWork>("all_gather", std::vector<Tensor>{in, out});
    const int n = mpi_count("all_gather", in.numel());
    check_mpi(MPI_Iallgather(in.data_ptr(), n, mpi_type(in.dtype()), out.data_ptr(), n, mpi_type(out.dtype()), comm_,
                             w->request()),
              "all_gather");
    return w;
  }
  std::unique_ptr<Work> broadcast(Tensor t, int root) override {
    check_peer("broadcast", root);
    check_tensor("broadcast", t, false);
    auto w = std::make_unique<MpiWork>("broadcast", std::vector<Tensor>{t});
    check_mpi(
        MPI_Ibcast(t.data_ptr(), mpi_count("broadcast", t.numel()), mpi_type(t.dtype()), root, comm_, w->request()),
        "broadcast");
    return w;
  }
  std::unique_ptr<Work> send(Tensor t, int peer) override {
    check_peer("send", peer);
    check_tensor("send", t, false);
    auto w = std::make_unique<MpiWork>("send", std::vector<Tensor>{t});
    check_mpi(MPI_Isend(t.data_ptr(), mpi_count("send", t.numel()), mpi_type(t.dtype()), peer, 0, comm_, w->request()),
              "send");
    return w;
  }
  std::unique_ptr<Work> recv(Tensor t, int peer) override {
    check_peer("recv", peer);
    check_tensor("recv", t, false);
    auto w = std::make_unique<MpiWork>("recv", std::vector<Tensor>{t});
    check_mpi(MPI_Irecv(t.data_ptr(), mpi_count("recv", t.numel()), mpi_type(t.dtype()), peer, 0, comm_, w->request()),
              "recv");
    return w;
  }
  void barrier() override { check_mpi(MPI_Barrier(comm_), "barrier"); }
  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub = MPI_COMM_NULL;
    check_mpi(MPI_Comm_split(comm_, color, key, &sub), "split");
    return std::make_unique<MpiCommunicator>(sub, false);
  }

 private:
  void check_peer(const char* what, int peer) const {
    SPARROW_CHECK(peer >= 0 && peer < size_, "dist::", what, ": rank ", peer, " out of range for ", size_, " ranks");
  }
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

void mpi_broadcast_bytes(void* p, size_t n, int root) {
  runtime();
  check_mpi(MPI_Bcast(p, mpi_count("broadcast_bytes", static_cast<int64_t>(n)), MPI_BYTE, root, MPI_COMM_WORLD),
            "broadcast_bytes");
}

}  // namespace sparrow::dist

#else  // no MPI in this build

namespace sparrow::dist {
std::unique_ptr<Communicator> make_mpi_communicator() {
  fail("dist: the mpi communicator needs a build with MPI (install libopenmpi-dev and configure with SPARROW_MPI=ON)");
}
void mpi_broadcast_bytes(void*, size_t, int) {
  fail("dist: broadcasting over MPI needs a build with MPI (configure with SPARROW_MPI=ON)");
}
}  // namespace sparrow::dist

#endif
