#include "common/processes.hpp"

#include <memory>

#ifdef TESSERA_HAVE_MPI
#include "tessera/mpi_communicator.hpp"
#endif

namespace tessera::protocol {
namespace {

std::unique_ptr<Communicator>& current() {
  static std::unique_ptr<Communicator> comm;
  return comm;
}

}  // namespace

bool built_with_mpi() {
#ifdef TESSERA_HAVE_MPI
  return true;
#else
  return false;
#endif
}

Communicator& processes() {
  if (!current()) current() = make_serial_communicator();
  return *current();
}

void start_processes() {
#ifdef TESSERA_HAVE_MPI
  if (launched_by_mpi()) current() = make_mpi_communicator();
#endif
}

void stop_processes() { current().reset(); }

void stop_all_ranks([[maybe_unused]] int exit_code) {
#ifdef TESSERA_HAVE_MPI
  if (processes().size() > 1) abort_all_ranks(exit_code);
#endif
}

}  // namespace tessera::protocol
