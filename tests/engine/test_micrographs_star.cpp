// Micrograph CTF tables (tessera/micrographs_star.hpp): RELION 3.1 CtfFind output
// (data_optics + data_micrographs) and RELION 3.0 (one table), read into CTF
// parameters; told apart from particle STARs; subsets written back with every
// column; matched by file name; and the errors a user's file can cause.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "input_error.hpp"
#include "run_programs.hpp"
#include "tessera/micrographs_star.hpp"

namespace fs = std::filesystem;

namespace tessera {
namespace {

// The layout of RELION's CtfFind/job*/micrographs_ctf.star.
const std::string kRelion31 = R"(
# version 30001

data_optics

loop_
_rlnOpticsGroupName #1
_rlnOpticsGroup #2
_rlnMicrographOriginalPixelSize #3
_rlnVoltage #4
_rlnSphericalAberration #5
_rlnAmplitudeContrast #6
_rlnMicrographPixelSize #7
opticsGroup1 1 0.885 200.0 1.4 0.1 0.885
opticsGroup2 2 0.5 300.0 2.7 0.07 1.0

# version 30001

data_micrographs

loop_
_rlnMicrographName #1
_rlnOpticsGroup #2
_rlnCtfImage #3
_rlnDefocusU #4
_rlnDefocusV #5
_rlnCtfAstigmatism #6
_rlnDefocusAngle #7
_rlnCtfFigureOfMerit #8
_rlnCtfMaxResolution #9
MotionCorr/job002/Movies/mic_001.mrc 1 CtfFind/job003/Movies/mic_001_PS.ctf:mrc 10865.0 10571.5 293.5 79.13 0.132 4.84
MotionCorr/job002/Movies/mic_002.mrc 2 CtfFind/job003/Movies/mic_002_PS.ctf:mrc 9839.2 9586.4 252.8 -70.59 0.168 3.57
MotionCorr/job002/Movies/mic_003.mrc 1 CtfFind/job003/Movies/mic_003_PS.ctf:mrc 12000 11000 1000 10 0.2 3.1
)";

// RELION 3.0: no optics; voltage, Cs, amplitude contrast and pixel size per row.
const std::string kRelion30 = R"(
data_

loop_
_rlnMicrographName #1
_rlnDefocusU #2
_rlnDefocusV #3
_rlnDefocusAngle #4
_rlnVoltage #5
_rlnSphericalAberration #6
_rlnAmplitudeContrast #7
_rlnDetectorPixelSize #8
_rlnMagnification #9
_rlnPhaseShift #10
Micrographs/a.mrc 20000 19000 45 300 2.7 0.1 5.0 50000 30
)";

const std::string kParticles = R"(
data_optics
loop_
_rlnOpticsGroup
_rlnImagePixelSize
1 1.5
data_particles
loop_
_rlnImageName
_rlnMicrographName
1@p.mrcs mic_001.mrc
)";

TEST(MicrographsStar, ReadsRelion31CtfFindOutput) {
  test::TempDir tmp;
  const MicrographCtfTable t = read_micrographs_ctf_star(tmp.write("mics.star", kRelion31));
  ASSERT_EQ(t.micrographs.size(), 3u);
  const MicrographCtf& a = t.micrographs[0];
  EXPECT_EQ(a.name, "MotionCorr/job002/Movies/mic_001.mrc");
  EXPECT_DOUBLE_EQ(a.ctf.defocus_u_A, 10865.0);
  EXPECT_DOUBLE_EQ(a.ctf.defocus_v_A, 10571.5);
  EXPECT_DOUBLE_EQ(a.ctf.defocus_angle_deg, 79.13);
  EXPECT_DOUBLE_EQ(a.ctf.voltage_kV, 200);
  EXPECT_DOUBLE_EQ(a.ctf.cs_mm, 1.4);
  EXPECT_DOUBLE_EQ(a.ctf.amplitude_contrast, 0.1);
  EXPECT_DOUBLE_EQ(a.ctf.phase_shift_deg, 0);
  EXPECT_DOUBLE_EQ(a.pixel_A, 0.885);
  const MicrographCtf& b = t.micrographs[1];  // optics group 2: the micrograph pixel size, not the original
  EXPECT_DOUBLE_EQ(b.ctf.voltage_kV, 300);
  EXPECT_DOUBLE_EQ(b.ctf.amplitude_contrast, 0.07);
  EXPECT_DOUBLE_EQ(b.pixel_A, 1.0);
  EXPECT_EQ(t.star.blocks[t.table].name, "micrographs");
}

TEST(MicrographsStar, ReadsRelion30WithOpticsPerRow) {
  test::TempDir tmp;
  const fs::path f = tmp.write("mics30.star", kRelion30);
  EXPECT_TRUE(is_micrographs_star(f));
  const MicrographCtfTable t = read_micrographs_ctf_star(f);
  ASSERT_EQ(t.micrographs.size(), 1u);
  EXPECT_DOUBLE_EQ(t.micrographs[0].pixel_A, 1.0);  // 5 um / 50,000
  EXPECT_DOUBLE_EQ(t.micrographs[0].ctf.phase_shift_deg, 30);
  EXPECT_DOUBLE_EQ(t.micrographs[0].ctf.voltage_kV, 300);
}

TEST(MicrographsStar, ToldApartFromParticles) {
  test::TempDir tmp;
  EXPECT_TRUE(is_micrographs_star(tmp.write("m.star", kRelion31)));
  EXPECT_FALSE(is_micrographs_star(tmp.write("p.star", kParticles)));
  EXPECT_FALSE(is_micrographs_star(tmp / "missing.star"));
}

TEST(MicrographsStar, SubsetKeepsEveryColumnAndBlock) {
  test::TempDir tmp;
  const MicrographCtfTable t = read_micrographs_ctf_star(tmp.write("mics.star", kRelion31));
  write_star(tmp / "sub.star", micrographs_subset(t, {2, 0}));
  const MicrographCtfTable sub = read_micrographs_ctf_star(tmp / "sub.star");
  ASSERT_EQ(sub.micrographs.size(), 2u);
  EXPECT_EQ(sub.micrographs[0].name, t.micrographs[2].name);
  EXPECT_EQ(sub.micrographs[1].name, t.micrographs[0].name);
  const StarTable& rows = sub.star.blocks[sub.table];
  EXPECT_EQ(rows.labels, t.star.blocks[t.table].labels);
  EXPECT_EQ(rows.rows[0][2], "CtfFind/job003/Movies/mic_003_PS.ctf:mrc");
  ASSERT_NE(sub.star.find("optics"), nullptr);
  EXPECT_EQ(sub.star.find("optics")->rows.size(), 2u);
}

TEST(MicrographsStar, MatchedByFileNameWithoutFolders) {
  test::TempDir tmp;
  const MicrographCtfTable a = read_micrographs_ctf_star(tmp.write("a.star", kRelion31));
  std::string other = kRelion31;
  for (std::string::size_type at; (at = other.find("MotionCorr/job002/Movies/")) != std::string::npos;)
    other.replace(at, 25, "Import/mics/");
  other.replace(other.find("mic_002.mrc"), 11, "mic_009.mrc");
  const MicrographCtfTable b = read_micrographs_ctf_star(tmp.write("b.star", other));
  const ParticleMatch m = match_micrographs(a, tmp / "a.star", b, tmp / "b.star", MatchBy::FileName);
  ASSERT_EQ(m.rows.size(), 2u);
  EXPECT_EQ(m.rows[0], (std::vector<long>{0, 0}));
  EXPECT_EQ(m.rows[1], (std::vector<long>{2, 2}));
  EXPECT_EQ(m.unmatched[0], std::vector<long>{1});
  EXPECT_EQ(m.unmatched[1], std::vector<long>{1});
  // By path the folders differ: nothing in common.
  const std::string none =
      test::input_error([&] { match_micrographs(a, tmp / "a.star", b, tmp / "b.star", MatchBy::Path); });
  EXPECT_NE(none.find("no micrograph in common"), std::string::npos) << none;
  const std::string id =
      test::input_error([&] { match_micrographs(a, tmp / "a.star", b, tmp / "b.star", MatchBy::Id); });
  EXPECT_NE(id.find("no ids"), std::string::npos) << id;
}

TEST(MicrographsStar, DuplicateFileNamesAreAnError) {
  test::TempDir tmp;
  std::string twice = kRelion31;
  twice.replace(twice.find("mic_003.mrc"), 11, "mic_001.mrc");
  const MicrographCtfTable t = read_micrographs_ctf_star(tmp.write("twice.star", twice));
  const std::string e =
      test::input_error([&] { match_micrographs(t, tmp / "twice.star", t, tmp / "twice.star", MatchBy::FileName); });
  EXPECT_NE(e.find("twice.star: micrographs 1 and 3"), std::string::npos) << e;
}

std::string without(std::string text, const std::string& what, const std::string& with = "") {
  text.replace(text.find(what), what.size(), with);
  return text;
}

TEST(MicrographsStar, ErrorsNameTheFileAndTheLine) {
  test::TempDir tmp;
  const auto error = [&](const std::string& name, const std::string& text) {
    const fs::path f = tmp.write(name, text);
    return test::input_error([&] { read_micrographs_ctf_star(f); });
  };
  EXPECT_NE(error("p.star", kParticles).find("p.star: no micrograph table"), std::string::npos);
  EXPECT_NE(error("nodef.star", without(kRelion30, "_rlnDefocusV #3\n", "_rlnDefocusX #3\n"))
                .find("has no rlnDefocusV column"),
            std::string::npos);
  const std::string group = error("g7.star", without(kRelion31, "mic_003.mrc 1", "mic_003.mrc 7"));
  EXPECT_NE(group.find("g7.star:"), std::string::npos) << group;
  EXPECT_NE(group.find("optics group 7 is not defined"), std::string::npos) << group;
  const std::string text = error("nan.star", without(kRelion31, "9839.2", "abc"));
  EXPECT_NE(text.find("nan.star:"), std::string::npos) << text;
  EXPECT_NE(text.find("rlnDefocusU value 'abc' is not a finite number"), std::string::npos) << text;
  const std::string pixel = error("px.star", without(kRelion31, " 0.885\nopticsGroup2", " -1\nopticsGroup2"));
  EXPECT_NE(pixel.find("pixel size -1 A is not positive"), std::string::npos) << pixel;
  const std::string no_pixel = error("nopx.star", without(kRelion30, "_rlnMagnification #9", "_rlnMag #9"));
  EXPECT_NE(no_pixel.find("no rlnMicrographPixelSize"), std::string::npos) << no_pixel;
  const std::string empty =
      error("empty.star", kRelion31.substr(0, kRelion31.find("MotionCorr/job002/Movies/mic_001")));
  EXPECT_NE(empty.find("has no micrographs"), std::string::npos) << empty;
}

}  // namespace
}  // namespace tessera
