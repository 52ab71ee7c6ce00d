// tessera_test_cs_convert: converts a particle set between RELION STAR, Scipion
// sqlite and cryoSPARC .cs through the engine's readers and writers, for the
// cryosparc-tools interoperability test (run_tests.sh beside this file).
//   tessera_test_cs_convert IN OUT ROOT
// IN: .star, .sqlite or .cs; OUT: .star or .cs. Image paths are resolved
// against ROOT when reading and written relative to it.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include "tessera/cryosparc_cs.hpp"
#include "tessera/error.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/scipion_set.hpp"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s IN.{star,sqlite,cs} OUT.{star,cs} ROOT\n", argv[0]);
    return 2;
  }
  const fs::path in = argv[1], out = argv[2], root = argv[3];
  try {
    tessera::ParticleSet set;
    if (in.extension() == ".cs") {
      set = tessera::read_cryosparc_particles(in, root);
    } else if (in.extension() == ".sqlite") {
      set = tessera::read_scipion_particles(in);
    } else {
      set = tessera::read_particles_star(in, root);
    }
    if (out.extension() == ".cs") {
      tessera::write_cryosparc_particles(out, set, root);
    } else {
      tessera::write_particles_star(out, set, root);
    }
  } catch (const tessera::InputError& e) {
    std::fprintf(stderr, "ERROR: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ERROR: %s\n", e.what());
    return 1;
  }
  return 0;
}
