#pragma once
// What every particle set a reader returns must satisfy (fuzz_star, fuzz_scipion_set):
// extra values match their labels, every particle's optics group is defined, and every
// number is finite (a NaN or an infinity in the file is an InputError, error.hpp).
#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "fuzz_util.hpp"
#include "tessera/particles.hpp"

namespace tessera::fuzz {

inline void check_finite(std::initializer_list<double> values, const char* what) {
  for (const double v : values)
    if (!std::isfinite(v)) bug(std::string("a set that read holds a non-finite ") + what);
}

inline void check_particle_set(const ParticleSet& set) {
  for (const auto& g : set.optics) {
    if (g.extra.size() != set.optics_extra_labels.size()) bug("optics extras do not match their labels");
    check_finite({g.pixel_A, g.voltage_kV, g.cs_mm, g.amplitude_contrast}, "optics value");
    if (!(g.pixel_A > 0)) bug("a set that read has a pixel size that is not positive");
  }
  for (const auto& p : set.particles) {
    if (p.extra.size() != set.particle_extra_labels.size()) bug("particle extras do not match their labels");
    if (std::none_of(set.optics.begin(), set.optics.end(), [&](const auto& g) { return g.number == p.optics_group; }))
      bug("a particle is in an undefined optics group");
    check_finite({p.defocus_u_A, p.defocus_v_A, p.defocus_angle_deg, p.phase_shift_deg, p.ctf_bfactor, p.scale},
                 "CTF value");
    if (p.pose)
      check_finite({p.pose->angles.rot, p.pose->angles.tilt, p.pose->angles.psi, p.pose->origin_x_A, p.pose->origin_y_A,
                    p.pose->origin_z_A},
                   "pose value");
  }
}

}  // namespace tessera::fuzz
