// libFuzzer harness for the Scipion set reader (engine/io/src/scipion_set_read.cpp,
// with sqlite_db.cpp, scipion_labels.cpp and the optics STAR text it parses).
//
// Feeds: the input bytes as an SQLite file to read_scipion_particles (the
// reader takes a path and opens it read-only). The file lies where the seeds'
// _mapperPath says, Runs/000098_ProtSubSet/particles.sqlite under the scratch
// folder, so that the reader finds the project folder and goes on to the items.
// Failure: any exception other than tessera::InputError, an InputError that is
// not one line naming the file, a set that reads but breaks what every set must
// satisfy (particle_set_check.hpp), a crash or sanitizer report, a hang or a
// huge allocation.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.hpp"
#include "particle_set_check.hpp"
#include "tessera/scipion_set.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tessera;
  const std::filesystem::path path = fuzz::write_input("Runs/000098_ProtSubSet/particles.sqlite", data, size);
  ParticleSet set;
  ScipionSetInfo info;
  if (fuzz::expect_clean(path.string(), [&] { set = read_scipion_particles(path, &info); }))
    fuzz::check_particle_set(set);
  return 0;
}
