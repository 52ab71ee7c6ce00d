#pragma once
// The processes of one run (tessera/communicator.hpp): MPI ranks when the
// program was built with TESSERA_WITH_MPI and started by mpirun, else one.
// run_program sets them up before parsing the command line and takes them
// down when the run ends; only the leader (rank 0) prints and writes.
#include "tessera/communicator.hpp"

namespace tessera::protocol {

/// True when this build can run under mpirun (Schema::support.mpi).
bool built_with_mpi();

/// This run's communicator (serial until run_program has set up MPI).
Communicator& processes();

/// Set up by run_program: MPI when launched by mpirun.
void start_processes();
/// Taken down by run_program before it returns.
void stop_processes();

/// For a failure the ranks did not agree on (an exception outside the
/// collective checks): stops every rank with `exit_code`. Does nothing with
/// one process.
void stop_all_ranks(int exit_code);

}  // namespace tessera::protocol
