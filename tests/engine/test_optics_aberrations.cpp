// Tests for the optics groups' aberration columns (optics_aberrations.hpp): which columns a
// written STAR gets, how lists are padded, and the error for a value that is not a number. The
// six-group cryoDRGN file's typed values and Debian RELION reading them back are in test_star.cpp.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "run_programs.hpp"
#include "tessera/error.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/star.hpp"

namespace fs = std::filesystem;
using tessera::ParticleSet;
using tessera::StarTable;
using tessera::test::TempDir;
using tessera::test::write_text;

namespace {

TEST(ParticlesStar, AberrationColumnsOnlyWhereNeededAndPadded) {
  TempDir dir;
  ParticleSet a;
  a.optics.resize(2);
  a.optics[1].number = 2;
  a.particles.resize(1);
  a.particles[0].image = tessera::ImageRef{1, "stack.mrcs"};
  const fs::path out = dir.path() / "out.star";
  tessera::write_particles_star(out, a, dir.path());
  for (const char* label : {"rlnBeamTiltX", "rlnOddZernike", "rlnEvenZernike", "rlnMagMat00"})
    EXPECT_FALSE(tessera::read_star(out).find("optics")->has(label)) << label;  // none has aberrations
  a.optics[0].beam_tilt_y_mrad = -0.25;
  a.optics[1].odd_zernike = {0.5, -1.5};
  a.optics[1].even_zernike = {0, 0, 2e-3};
  a.optics[0].mag_matrix = {1.02, 0.001, 0.001, 0.98};
  tessera::write_particles_star(out, a, dir.path());
  const StarTable optics = *tessera::read_star(out).find("optics");
  EXPECT_EQ(optics.rows[0][static_cast<std::size_t>(optics.column("rlnBeamTiltX"))], "0");
  EXPECT_EQ(optics.rows[0][static_cast<std::size_t>(optics.column("rlnOddZernike"))], "[0,0]");  // padded
  EXPECT_EQ(optics.rows[1][static_cast<std::size_t>(optics.column("rlnEvenZernike"))], "[0,0,0.002]");
  EXPECT_EQ(optics.rows[1][static_cast<std::size_t>(optics.column("rlnMagMat00"))], "1");
  const ParticleSet b = tessera::read_particles_star(out, dir.path());
  EXPECT_TRUE(b.optics_extra_labels.empty());
  EXPECT_EQ(b.optics[0].beam_tilt_y_mrad, -0.25);
  EXPECT_EQ(b.optics[0].odd_zernike, (std::vector<double>{0, 0}));
  EXPECT_EQ(b.optics[1].odd_zernike, (std::vector<double>{0.5, -1.5}));
  EXPECT_EQ(b.optics[1].even_zernike, (std::vector<double>{0, 0, 2e-3}));
  EXPECT_EQ(b.optics[0].mag_matrix, (std::array<double, 4>{1.02, 0.001, 0.001, 0.98}));
  EXPECT_EQ(b.optics[1].mag_matrix, (std::array<double, 4>{1, 0, 0, 1}));
}

TEST(ParticlesStar, BadAberrationValueNamesTheFileGroupAndColumn) {
  TempDir dir;
  const fs::path star = dir.path() / "bad.star";
  write_text(star,
             "data_optics\nloop_\n_rlnOpticsGroup\n_rlnImagePixelSize\n_rlnOddZernike\n1 1.0 [0.1,x]\n\n"
             "data_particles\nloop_\n_rlnImageName\n_rlnOpticsGroup\n1@s.mrcs 1\n");
  try {
    (void)tessera::read_particles_star(star);
    FAIL() << "no error";
  } catch (const tessera::InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("bad.star"), std::string::npos) << m;
    EXPECT_NE(m.find("optics group 1: rlnOddZernike"), std::string::npos) << m;
    EXPECT_NE(m.find("'x' is not a finite number"), std::string::npos) << m;
  }
}

}  // namespace
