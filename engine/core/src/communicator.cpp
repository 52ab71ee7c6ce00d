#include "tessera/communicator.hpp"

#include "tessera/error.hpp"

namespace tessera {
namespace {

class SerialCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void sum_to_leader(std::span<std::int64_t>) override {}
  void sum_all(std::span<std::int64_t>) override {}
  std::vector<double> gather_all(std::span<const double> mine) override { return {mine.begin(), mine.end()}; }
  void broadcast(std::span<float>) override {}
  void broadcast(std::span<double>) override {}
  std::optional<std::string> first_error(const std::optional<std::string>& mine) override { return mine; }
};

}  // namespace

std::unique_ptr<Communicator> make_serial_communicator() { return std::make_unique<SerialCommunicator>(); }

Share share_of(long total, const Communicator& comm) {
  const long r = comm.rank(), n = comm.size();
  return {total * r / n, total * (r + 1) / n};
}

void agree_on_failure(Communicator& comm, std::exception_ptr mine) {
  if (comm.size() == 1) {
    if (mine) std::rethrow_exception(mine);
    return;
  }
  std::optional<std::string> message;
  if (mine) {
    try {
      std::rethrow_exception(mine);
    } catch (const InputError& e) {
      message = "2" + std::string(e.what());
    } catch (const RankFailure& e) {
      message = std::to_string(e.exit_code()) + e.what();
    } catch (const std::exception& e) {
      message = "1" + std::string(e.what());
    } catch (...) {
      message = "1unknown error";
    }
  }
  const std::optional<std::string> first = comm.first_error(message);
  if (first) throw RankFailure(first->substr(1), first->front() - '0');
}

}  // namespace tessera
