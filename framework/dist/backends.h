// The factories of the engine-backed communicators (dist/communicator.h's make_communicator
// picks among them). Each throws a clear error in a build without its engine.
#pragma once
#include <cstddef>
#include <memory>

#include "framework/dist/communicator.h"

namespace sparrow::dist {

std::unique_ptr<Communicator> make_mpi_communicator();   // mpi_communicator.cpp
std::unique_ptr<Communicator> make_nccl_communicator();  // nccl_communicator.cpp
// MPI_Bcast of raw bytes over MPI_COMM_WORLD (the NCCL unique id travels this way).
void mpi_broadcast_bytes(void* p, size_t n, int root);

}  // namespace sparrow::dist
