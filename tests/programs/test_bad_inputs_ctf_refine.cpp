// The bad-input matrix's rows for tessera_ctf_refine (bad_input_matrix.hpp).
#include <string>
#include <vector>

#include "bad_input_matrix.hpp"

namespace bad_input {

namespace {

// Half maps (the valid set's) added to the valid arguments, `changes` after them; the error must name `names`.
Row with_half_maps(const std::string& name, bool both, const Args& changes, const std::string& names) {
  const auto make = [=](Maker& m) {
    Args a = {"--half-map-A", m.ok.half_a.string()};
    if (both) a = plus(a, {"--half-map-B", m.ok.half_b.string()});
    return plus(a, changes);
  };
  return {name, "ctf_refine", make, names};
}

}  // namespace

std::vector<Row> ctf_refine_rows() {
  const std::string c = "ctf_refine";
  return {
      option("ctf_refine_no_map", c, {"--map", ""}),
      with_half_maps("ctf_refine_map_and_half_maps", true, {}, "--map"),
      with_half_maps("ctf_refine_one_half_map", false, {"--map", ""}, "--half-map-B"),
      {"ctf_refine_half_maps_one_half_set", c,
       [](Maker& m) {
         particles([](const Maker&, ParticleSet& s) {
           for (Particle& q : s.particles) q.half_set = 1;
         })(m, m.dir / "one_half.star");
         return Args{"--particles", (m.dir / "one_half.star").string(), "--map", "", "--half-map-A",
                     m.ok.half_a.string(), "--half-map-B", m.ok.half_b.string()};
       },
       "one_half.star"},
      bad_file("ctf_refine_no_poses", c, "--particles", "no_poses.star", particles([](const Maker&, ParticleSet& s) {
                 for (Particle& q : s.particles) q.pose.reset();
               })),
      bad_file("ctf_refine_no_ctf", c, "--particles", "no_ctf.star", particles(clear_ctf)),
      option("ctf_refine_zero_step", c, {"--defocus-step-A", "0"}),
      option("ctf_refine_max_res_coarser_than_min_res", c, {"--max-res-A", "30", "--min-res-A", "20"}),
      option("ctf_refine_even_odd_order", c, {"--fit-odd", "true", "--odd-order", "2"}),
      option("ctf_refine_odd_even_order", c, {"--fit-even", "true", "--even-order", "3"}),
      option("ctf_refine_aberrations_max_res_coarser_than_min_res", c,
             {"--fit-beam-tilt", "true", "--aberrations-min-res-A", "20", "--aberrations-max-res-A", "30"}),
      option("ctf_refine_nothing_to_refine", c, {"--refine-defocus", "false"}),
  };
}

}  // namespace bad_input
