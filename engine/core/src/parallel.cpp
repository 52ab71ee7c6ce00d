#include "tessera/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace tessera {

void for_each_particle(long total, int threads, const std::function<void(int, long)>& work,
                       const std::function<void(long, long)>& progress) {
  const int n = std::max(1, threads);
  std::atomic<long> done{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto run = [&](int t) {
    try {
      const long begin = total * t / n, end = total * (t + 1) / n;
      for (long i = begin; i < end; ++i) {
        work(t, i);
        ++done;
      }
    } catch (...) {
      std::lock_guard lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(run, t);
  std::atomic<bool> finished{false};
  std::thread reporter;
  if (progress)
    reporter = std::thread([&] {
      while (!finished) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        if (!finished) progress(done.load(), total);
      }
    });
  run(0);
  for (auto& th : pool) th.join();
  finished = true;
  if (reporter.joinable()) reporter.join();
  if (failure) std::rethrow_exception(failure);
  if (progress) progress(total, total);
}

}  // namespace tessera
