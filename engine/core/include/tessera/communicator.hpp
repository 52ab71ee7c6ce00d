#pragma once
/// How the processes of one refinement talk to each other: the refinement
/// loop (refine.hpp) runs the same code on every process ("rank"), each rank
/// aligning its share of the particles; the communicator sums their
/// accumulators, shares their particles' outcomes and hands out what the
/// leader (rank 0) computed. The serial communicator (one process) does
/// nothing; the MPI one (tessera/mpi_communicator.hpp, built with
/// TESSERA_WITH_MPI) wraps MPI_COMM_WORLD. A CUDA or cluster back end plugs in
/// here without touching the loop.
///
/// Every call is collective: all ranks make it, in the same order.
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace tessera {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  bool leader() const { return rank() == 0; }

  /// Exact sum over ranks, left in the leader's `values` (the others' are
  /// unspecified afterwards). Integer sums: the result does not depend on the
  /// number of ranks.
  virtual void sum_to_leader(std::span<std::int64_t> values) = 0;
  /// Exact sum over ranks, left in every rank's `values`.
  virtual void sum_all(std::span<std::int64_t> values) = 0;
  /// Every rank's `mine`, concatenated in rank order, on every rank.
  virtual std::vector<double> gather_all(std::span<const double> mine) = 0;
  /// The leader's `values` copied to every rank (same length everywhere).
  virtual void broadcast(std::span<float> values) = 0;
  virtual void broadcast(std::span<double> values) = 0;
  /// Agreement on failure: every rank says whether it failed (with its
  /// message); all get the message of the lowest failing rank, or nullopt
  /// when none failed. Lets every rank stop with one message and no rank wait
  /// forever for one that has stopped.
  virtual std::optional<std::string> first_error(const std::optional<std::string>& mine) = 0;
};

/// One process: every collective returns at once.
std::unique_ptr<Communicator> make_serial_communicator();

/// The ranks' shares of `total` items: rank r takes [begin, end), contiguous
/// and in rank order, so that gathering outcomes in rank order restores the
/// items' order.
struct Share {
  long begin = 0, end = 0;
};
Share share_of(long total, const Communicator& comm);

}  // namespace tessera

namespace tessera {

/// Thrown on every rank once agree_on_failure() found that some rank failed:
/// the lowest failing rank's message and exit code (2 for an InputError, 1
/// otherwise). Programs print it on the leader only, so a failure is told once.
class RankFailure : public std::runtime_error {
 public:
  RankFailure(const std::string& message, int exit_code) : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

/// Collective: every rank passes its own failure (or null). With one process
/// the failure is rethrown as it is; with several, when any rank failed every
/// rank throws RankFailure, so no rank waits for one that has stopped.
void agree_on_failure(Communicator& comm, std::exception_ptr mine);

}  // namespace tessera
