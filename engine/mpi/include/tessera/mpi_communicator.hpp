#pragma once
/// The MPI communicator (communicator.hpp) over MPI_COMM_WORLD, built when
/// TESSERA_WITH_MPI is on (library tessera_mpi).
#include <memory>

#include "tessera/communicator.hpp"

namespace tessera {

/// True when this process was started by mpirun / mpiexec (Open MPI, MPICH or
/// a PMI launcher): only then is MPI initialized, so a program started on its
/// own never needs an MPI runtime.
bool launched_by_mpi();

/// Initializes MPI (MPI_THREAD_FUNNELED: only the calling thread talks to
/// MPI) and returns the communicator over all ranks; MPI is finalized when it
/// is destroyed.
std::unique_ptr<Communicator> make_mpi_communicator();

/// Stops every rank at once (MPI_Abort) with `exit_code`: for a failure that
/// the ranks could not agree on (agree_on_failure), where waiting would hang.
[[noreturn]] void abort_all_ranks(int exit_code);

}  // namespace tessera
