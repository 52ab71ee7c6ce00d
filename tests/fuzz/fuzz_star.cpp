// libFuzzer harness for the STAR parser (engine/io/src/star.cpp) and the RELION
// particle-set reader on top of it (engine/io/src/particles_star.cpp).
//
// Feeds: the input bytes as a STAR file to read_star, then (when it parses) the
// formatted text back to parse_star, and the file to read_particles_star; a set
// that reads is turned back into STAR text with particles_to_star.
// Failure: any exception other than tessera::InputError, an InputError that is
// not one line naming the file, a parsed file that format_star cannot write or
// that does not read back equal, a particle set that breaks what every set must
// satisfy (particle_set_check.hpp) or cannot be written back,
// a crash or sanitizer report, a hang or a huge allocation.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.hpp"
#include "particle_set_check.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/star.hpp"

namespace {

bool same(const tessera::StarFile& a, const tessera::StarFile& b) {
  // The version is written before each block: a file without blocks loses it.
  if ((a.version != b.version && !a.blocks.empty()) || a.blocks.size() != b.blocks.size()) return false;
  for (std::size_t i = 0; i < a.blocks.size(); ++i) {
    const auto &x = a.blocks[i], &y = b.blocks[i];
    if (x.name != y.name || x.is_loop != y.is_loop || x.labels != y.labels || x.rows != y.rows) return false;
  }
  return true;
}

// What read_star accepts, format_star must write and parse_star read back unchanged.
void round_trip(const tessera::StarFile& file) {
  std::string text;
  try {
    text = tessera::format_star(file);
  } catch (const std::exception& e) {
    tessera::fuzz::bug(std::string("format_star refused a file that read_star accepted: ") + e.what());
  }
  try {
    if (!same(file, tessera::parse_star(text, "round trip"))) tessera::fuzz::bug("STAR round trip changed the file");
  } catch (const std::exception& e) {
    tessera::fuzz::bug(std::string("formatted STAR does not read back: ") + e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tessera;
  const std::filesystem::path path = fuzz::write_input("input.star", data, size);
  const std::string name = path.string();
  StarFile file;
  if (!fuzz::expect_clean(name, [&] { file = read_star(path); })) return 0;
  round_trip(file);
  ParticleSet set;
  if (!fuzz::expect_clean(name, [&] { set = read_particles_star(path); })) return 0;
  fuzz::check_particle_set(set);
  try {
    format_star(particles_to_star(set, fuzz::scratch_dir()));
  } catch (const std::exception& e) {
    fuzz::bug(std::string("a particle set that read cannot be written back: ") + e.what());
  }
  return 0;
}
