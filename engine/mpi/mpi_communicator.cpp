#include "tessera/mpi_communicator.hpp"

#include <mpi.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace tessera {
namespace {

void check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string("MPI ") + what + ": " + std::string(text, static_cast<std::size_t>(length)));
}

// MPI counts are int: large buffers (a back-projector at box 400 holds over 2^31 values) go in chunks.
constexpr std::size_t kChunk = std::size_t{1} << 28;

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiCommunicator() override { MPI_Finalize(); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void sum_to_leader(std::span<std::int64_t> v) override {
    for (std::size_t at = 0; at < v.size(); at += kChunk) {
      const int n = static_cast<int>(std::min(kChunk, v.size() - at));
      check(MPI_Reduce(rank_ == 0 ? MPI_IN_PLACE : v.data() + at, rank_ == 0 ? v.data() + at : nullptr, n,
                       MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD),
            "reduce");
    }
  }

  void sum_all(std::span<std::int64_t> v) override {
    for (std::size_t at = 0; at < v.size(); at += kChunk) {
      const int n = static_cast<int>(std::min(kChunk, v.size() - at));
      check(MPI_Allreduce(MPI_IN_PLACE, v.data() + at, n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD), "all-reduce");
    }
  }

  std::vector<double> gather_all(std::span<const double> mine) override {
    const int count = static_cast<int>(mine.size());
    std::vector<int> counts(static_cast<std::size_t>(size_)), offsets(counts.size(), 0);
    check(MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD), "gather counts");
    long total = 0;
    for (int r = 0; r < size_; ++r) {
      offsets[r] = static_cast<int>(total);
      total += counts[r];
    }
    std::vector<double> all(static_cast<std::size_t>(total));
    check(MPI_Allgatherv(mine.data(), count, MPI_DOUBLE, all.data(), counts.data(), offsets.data(), MPI_DOUBLE,
                         MPI_COMM_WORLD),
          "gather");
    return all;
  }

  void broadcast(std::span<float> v) override { broadcast_raw(v.data(), v.size(), MPI_FLOAT); }
  void broadcast(std::span<double> v) override { broadcast_raw(v.data(), v.size(), MPI_DOUBLE); }

  std::optional<std::string> first_error(const std::optional<std::string>& mine) override {
    // The lowest failing rank, then its message.
    int me = mine ? rank_ : size_, first = size_;
    check(MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "agree");
    if (first == size_) return std::nullopt;
    std::string text = rank_ == first ? *mine : std::string();
    int length = static_cast<int>(text.size());
    check(MPI_Bcast(&length, 1, MPI_INT, first, MPI_COMM_WORLD), "agree");
    text.resize(static_cast<std::size_t>(length));
    check(MPI_Bcast(text.data(), length, MPI_CHAR, first, MPI_COMM_WORLD), "agree");
    return text;
  }

 private:
  void broadcast_raw(void* data, std::size_t n, MPI_Datatype type) {
    int bytes = 0;
    MPI_Type_size(type, &bytes);
    char* p = static_cast<char*>(data);
    for (std::size_t at = 0; at < n; at += kChunk) {
      const int count = static_cast<int>(std::min(kChunk, n - at));
      check(MPI_Bcast(p + at * static_cast<std::size_t>(bytes), count, type, 0, MPI_COMM_WORLD), "broadcast");
    }
  }

  int rank_ = 0, size_ = 1;
};

}  // namespace

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(name)) return true;
  return false;
}

std::unique_ptr<Communicator> make_mpi_communicator() {
  return std::make_unique<MpiCommunicator>();
}

void abort_all_ranks(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

}  // namespace tessera
