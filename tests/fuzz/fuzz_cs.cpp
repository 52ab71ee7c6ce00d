// libFuzzer harness for the cryoSPARC .cs reader (engine/io/src/cryosparc_cs_read.cpp)
// and the .npy parser under it (engine/io/src/npy.cpp).
//
// Feeds: the input bytes as a .cs file to read_cryosparc_particles; a set that
// reads is written back with write_cryosparc_particles and read again.
// Failure: any exception other than tessera::InputError, an InputError that is
// not one line naming the file, a particle set that breaks what every set must
// satisfy (particle_set_check.hpp), a set that reads but cannot be written back
// or whose written file does not read back with as many particles, a crash or
// sanitizer report, a hang or a huge allocation.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.hpp"
#include "particle_set_check.hpp"
#include "tessera/cryosparc_cs.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tessera;
  const std::filesystem::path path = fuzz::write_input("input.cs", data, size);
  ParticleSet set;
  if (!fuzz::expect_clean(path.string(), [&] { set = read_cryosparc_particles(path, fuzz::scratch_dir()); })) return 0;
  fuzz::check_particle_set(set);
  const std::filesystem::path back = fuzz::scratch_dir() / "back.cs";
  // Image sizes that are unknown would be read from stacks the fuzzer does not make.
  for (auto& g : set.optics)
    if (g.image_size == 0) g.image_size = 1;
  try {
    write_cryosparc_particles(back, set, fuzz::scratch_dir());
  } catch (const InputError&) {
    return 0;  // e.g. an extra value the reader kept as text that no longer fits a known field's type
  } catch (const std::exception& e) {
    fuzz::bug(std::string("a particle set that read cannot be written back: ") + e.what());
  }
  ParticleSet again;
  if (!fuzz::expect_clean(back.string(), [&] { again = read_cryosparc_particles(back, fuzz::scratch_dir()); }))
    fuzz::bug("a .cs written from a set that read does not read back");
  if (again.particles.size() != set.particles.size()) fuzz::bug("a .cs round trip changed the number of particles");
  return 0;
}
