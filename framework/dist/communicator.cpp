// The backend-independent part: the launcher's environment, tensor checks, the single-process
// communicator, and the factory.
#include "framework/dist/communicator.h"

#include <cstdlib>

#include "framework/dist/backends.h"

namespace sparrow::dist {

namespace {

// The first of these environment variables that is set, as an int; `fallback` when none is.
int env_int(std::initializer_list<const char*> names, int fallback) {
  for (const char* n : names)
    if (const char* v = std::getenv(n); v && *v) {
      char* end = nullptr;
      const long x = std::strtol(v, &end, 10);
      SPARROW_CHECK(end && *end == '\0' && x >= 0 && x < (1 << 24), "dist: environment variable ", n, "='", v,
                    "' is not a rank or size");
      return static_cast<int>(x);
    }
  return fallback;
}

// One process: nothing to exchange. Sends have no peer, so they are errors.
class SingleCommunicator final : public Communicator {
 public:
  struct Done final : Work {
    void wait() override {}
  };
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "single"; }
  std::unique_ptr<Work> all_reduce(Tensor t, ReduceOp) override {
    check_tensor("all_reduce", t, t.is_cuda());
    return std::make_unique<Done>();
  }
  std::unique_ptr<Work> reduce_scatter(Tensor in, Tensor out) override {
    check_tensor("reduce_scatter", out, out.is_cuda());
    check_tensor("reduce_scatter", in, out.is_cuda(), out.numel());
    copy_(out, in);
    return std::make_unique<Done>();
  }
  std::unique_ptr<Work> all_gather(Tensor in, Tensor out) override { return reduce_scatter(in, out); }
  std::unique_ptr<Work> broadcast(Tensor t, int root) override {
    SPARROW_CHECK(root == 0, "dist::broadcast: root ", root, " out of range for 1 rank");
    check_tensor("broadcast", t, t.is_cuda());
    return std::make_unique<Done>();
  }
  std::unique_ptr<Work> send(Tensor, int peer) override { fail("dist::send to rank ", peer, ": this run has 1 rank"); }
  std::unique_ptr<Work> recv(Tensor, int peer) override {
    fail("dist::recv from rank ", peer, ": this run has 1 rank");
  }
  void barrier() override {}
  std::unique_ptr<Communicator> split(int, int) override { return std::make_unique<SingleCommunicator>(); }
};

}  // namespace

int launched_world_size() { return env_int({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}, 1); }
int launched_rank() { return env_int({"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"}, 0); }
int launched_local_rank() { return env_int({"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}, 0); }

void check_tensor(const char* op, const Tensor& t, bool cuda, int64_t count) {
  SPARROW_CHECK(t.defined(), "dist::", op, ": undefined tensor");
  SPARROW_CHECK(t.is_contiguous(), "dist::", op, ": tensor ", describe(t), " is not contiguous");
  SPARROW_CHECK(t.is_cuda() == cuda, "dist::", op, ": tensor ", describe(t), " must be on ",
                cuda ? "a CUDA device" : "the CPU", " for this communicator");
  SPARROW_CHECK(count < 0 || t.numel() == count, "dist::", op, ": tensor ", describe(t), " should have ", count,
                " elements");
}

std::unique_ptr<Communicator> make_communicator(const std::string& backend) {
  if (backend == "single") return std::make_unique<SingleCommunicator>();
  if (backend == "auto") return make_communicator(launched_world_size() > 1 ? "mpi" : "single");
  if (backend == "mpi") return make_mpi_communicator();
  if (backend == "nccl") return make_nccl_communicator();
  fail("dist: unknown communicator backend '", backend, "' (single, mpi, nccl, auto)");
}

}  // namespace sparrow::dist
