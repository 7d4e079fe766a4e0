// dist::Communicator: the collectives and point-to-point transfers that data and context
// parallelism need, over an existing engine — MPI for CPU tensors, NCCL for GPU tensors.
//
// One process per device, started by a launcher (`mpirun -np P …`, or Slurm's srun): the same
// way on one host or many. Every rank constructs the same communicator in the same order.
//
// Every operation is asynchronous and returns a Work handle; the tensors it names must stay
// alive and untouched until wait() returns (the Work holds a reference to them). Operations on
// one communicator are issued in the same order on every rank (MPI and NCCL both require it).
// Tensors must be contiguous. Sum reductions of bf16 accumulate each pair in f32 and round once.
//
// Failures (a peer that died, a network error) throw sparrow::Error naming the operation; the
// launcher ends the other ranks (mpirun does on any rank's non-zero exit), so no rank hangs.
#pragma once
#include <memory>
#include <string>

#include "framework/core/tensor.h"

namespace sparrow::dist {

enum class ReduceOp { Sum, Max };

// A pending operation. wait() blocks until it is complete (and, for NCCL, until the device
// work that reads or writes the tensors is ordered before later work on Sparrow's stream).
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "single", "mpi" or "nccl"

  // t ← op over ranks of t (in place).
  virtual std::unique_ptr<Work> all_reduce(Tensor t, ReduceOp op = ReduceOp::Sum) = 0;
  // in: size()·k elements; out: k elements ← the sum over ranks of in's rank()-th chunk.
  virtual std::unique_ptr<Work> reduce_scatter(Tensor in, Tensor out) = 0;
  // in: k elements; out: size()·k elements, chunk r ← rank r's in.
  virtual std::unique_ptr<Work> all_gather(Tensor in, Tensor out) = 0;
  // t ← root's t on every rank.
  virtual std::unique_ptr<Work> broadcast(Tensor t, int root) = 0;
  // Point to point: a send to `peer` is matched by that peer's recv from this rank, in order.
  virtual std::unique_ptr<Work> send(Tensor t, int peer) = 0;
  virtual std::unique_ptr<Work> recv(Tensor t, int peer) = 0;
  virtual void barrier() = 0;
  // The ranks that pass the same color, ordered by key, as a communicator of their own (data
  // and context parallel groups). Collective: every rank calls it.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
};

// "single": one process, every collective is the identity (what a run without a launcher uses).
// "mpi": MPI_COMM_WORLD, CPU tensors. "nccl": one GPU per rank (cuda:<local rank>), the NCCL
// unique id broadcast over MPI, GPU tensors. "auto": mpi when started by a launcher with more
// than one rank, else single. Throws a clear error when this build lacks the backend.
std::unique_ptr<Communicator> make_communicator(const std::string& backend);

// The launcher's view before any communicator exists (from its environment): world size and
// rank, 1 and 0 without a launcher; and the rank on this host (for picking the GPU).
int launched_world_size();
int launched_rank();
int launched_local_rank();

// Checks that the operation's tensors are usable: contiguous, on a CUDA device when `cuda` (else the
// CPU), and of `count` elements where count ≥ 0 is given. Names the op in its message.
void check_tensor(const char* op, const Tensor& t, bool cuda, int64_t count = -1);

}  // namespace sparrow::dist
