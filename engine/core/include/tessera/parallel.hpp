#pragma once
/// The engine's deterministic parallel loop (over particles, images or slabs).
#include <functional>

namespace tessera {

/// Calls work(thread, i) for i in [0, total) on `threads` threads, each thread
/// taking one contiguous chunk (so a given thread count always splits the same
/// way and sums add up in the same order). progress(done, total) is called
/// from the calling thread about twice a second. The first exception thrown by
/// any work call is rethrown after all threads have stopped.
void for_each_particle(long total, int threads, const std::function<void(int, long)>& work,
                       const std::function<void(long, long)>& progress = {});

}  // namespace tessera
