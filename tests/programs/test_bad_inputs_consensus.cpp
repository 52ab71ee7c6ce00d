// The bad-input matrix's rows for the consensus programs (bad_input_matrix.hpp).
#include <string>
#include <vector>

#include "bad_input_matrix.hpp"

namespace bad_input {

namespace {

// A micrograph CTF table (RELION's micrographs_ctf.star layout) with `optics_row` as its optics.
std::string micrographs_star(const std::string& optics_labels, const std::string& optics_row,
                             const std::string& group = "1") {
  return "data_optics\nloop_\n_rlnOpticsGroup\n_rlnVoltage\n_rlnSphericalAberration\n_rlnAmplitudeContrast\n" +
         optics_labels + optics_row + "\n\ndata_micrographs\nloop_\n_rlnMicrographName\n_rlnOpticsGroup\n" +
         "_rlnDefocusU\n_rlnDefocusV\n_rlnDefocusAngle\nMovies/mic_1.mrc " + group + " 15000 14000 30\n" +
         "Movies/mic_2.mrc 1 21000 20500 -10\n";
}
const std::string kMicrographs = micrographs_star("_rlnMicrographPixelSize\n", "1 300 2.7 0.1 1.0");

}  // namespace

// Two micrograph tables as --ctf-A and --ctf-B: A (named `file`) made by `write`, B valid.
Row micrographs_row(const std::string& name, const std::string& file, const Writer& write, const Args& more = {}) {
  const auto make = [=](Maker& m) {
    write(m, m.dir / file);
    test::write_text(m.dir / "valid_mics.star", kMicrographs);
    return plus({"--ctf-A", (m.dir / file).string(), "--ctf-B", (m.dir / "valid_mics.star").string()}, more);
  };
  return {name, "consensus_ctf", make, file};
}

std::vector<Row> consensus_ctf_rows() {
  const std::string c = "consensus_ctf", b = "--ctf-B";
  return {
      bad_file("consensus_ctf_micrographs_against_particles", c, b, "mics.star", text(kMicrographs)),
      bad_file("consensus_ctf_no_ctf", c, b, "no_ctf.star", particles(clear_ctf)),
      bad_file("consensus_ctf_no_particle_in_common", c, b, "other.star", particles([](const Maker&, ParticleSet& s) {
                 for (Particle& q : s.particles) q.image.path = "elsewhere.mrcs";
               })),
      micrographs_row("consensus_ctf_micrographs_without_pixel_size", "no_pixel.star",
                      text(micrographs_star("", "1 300 2.7 0.1"))),
      micrographs_row("consensus_ctf_micrographs_undefined_optics_group", "group7.star",
                      text(micrographs_star("_rlnMicrographPixelSize\n", "1 300 2.7 0.1 1.0", "7"))),
      micrographs_row("consensus_ctf_micrographs_matched_by_id", "by_id.star", text(kMicrographs),
                      {"--match-by", "id"}),
      option("consensus_ctf_min_resolution_zero", c, {"--min-resolution-A", "0"}),
      option("consensus_ctf_negative_max_defocus_diff", c, {"--max-defocus-diff-A", "-5"}),
  };
}

std::vector<Row> consensus_poses_rows() {
  const std::string c = "consensus_poses", b = "--particles-B";
  return {
      bad_file("consensus_poses_no_poses", c, b, "no_poses.star", particles([](const Maker&, ParticleSet& s) {
                 for (Particle& q : s.particles) q.pose.reset();
               })),
      bad_file("consensus_poses_no_particle_in_common", c, b, "other.star", particles([](const Maker&, ParticleSet& s) {
                 for (Particle& q : s.particles) q.image.path = "elsewhere.mrcs";
               })),
      option("consensus_poses_unknown_symmetry", c, {"--symmetry", "X5"}),
      option("consensus_poses_negative_max_angle", c, {"--max-angle-deg", "-1"}),
  };
}

}  // namespace bad_input
