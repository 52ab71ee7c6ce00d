// Tests for the generic STAR reader/writer (star.hpp) and the particle STAR
// conversion (particles_star.hpp).
//
// Oracles: values typed in from the files themselves (read by eye and with
// Debian RELION's relion_star_printtable), the ground-truth table of
// ../shared/data/scipion/README.md for Refine3D/run_data.star, hand-derived
// results for small synthetic inputs, and Debian's RELION 3.1.3 reading what we
// write. Number comparisons are exact (EXPECT_EQ on doubles) where both sides
// are the correctly rounded double of the same decimal text (std::from_chars
// and the C++ compiler both round correctly), or where the writer promises a
// shortest round-trip representation.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <tuple>

#include "input_error.hpp"
#include "run_programs.hpp"
#include "tessera/error.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/star.hpp"
#include "test_data.hpp"

namespace fs = std::filesystem;
using tessera::InputError;
using tessera::ParticleSet;
using tessera::StarFile;
using tessera::StarTable;
using tessera::test::input_error;
using tessera::test::on_path;
using tessera::test::read_text;
using tessera::test::run_command;
using tessera::test::RunResult;
using tessera::test::shell_quote;
using tessera::test::TempDir;
using tessera::test::write_text;

namespace {

/// Same text, same number, or the same image ("3@a.mrcs" and "000003@a.mrcs").
bool numeric_equal(const std::string& a, const std::string& b) {
  if (a == b) return true;
  if (a.find('@') != std::string::npos && b.find('@') != std::string::npos) {
    const auto x = tessera::ImageRef::parse(a), y = tessera::ImageRef::parse(b);
    return x.index == y.index && x.path == y.path;
  }
  char *ea = nullptr, *eb = nullptr;
  const double x = std::strtod(a.c_str(), &ea), y = std::strtod(b.c_str(), &eb);
  return *ea == '\0' && *eb == '\0' && !a.empty() && !b.empty() && x == y;
}

/// Every column of `original` is in `written` with, row by row, the same text or
/// the same number (e.g. "22252.300000" and "22252.3").
void expect_table_kept(const StarTable& original, const StarTable& written) {
  ASSERT_EQ(original.rows.size(), written.rows.size()) << original.name;
  for (std::size_t c = 0; c < original.labels.size(); ++c) {
    const int w = written.column(original.labels[c]);
    ASSERT_GE(w, 0) << "column " << original.labels[c] << " lost from data_" << original.name;
    for (std::size_t r = 0; r < original.rows.size(); ++r)
      ASSERT_TRUE(numeric_equal(original.rows[r][c], written.rows[r][static_cast<std::size_t>(w)]))
          << original.labels[c] << " row " << r << ": " << original.rows[r][c] << " vs "
          << written.rows[r][static_cast<std::size_t>(w)];
  }
}

/// Every field of an optics group / a particle, for exact comparison.
auto fields(const tessera::OpticsGroup& g) {
  return std::tuple(g.number, g.name, g.pixel_A, g.image_size, g.voltage_kV, g.cs_mm, g.amplitude_contrast,
                    g.beam_tilt_x_mrad, g.beam_tilt_y_mrad, g.odd_zernike, g.even_zernike, g.mag_matrix, g.extra);
}
auto fields(const tessera::Particle& p) {
  const tessera::ProjectionPose pose = p.pose.value_or(tessera::ProjectionPose{});
  return std::tuple(p.image.to_string(), p.optics_group, p.micrograph, p.defocus_u_A, p.defocus_v_A,
                    p.defocus_angle_deg, p.phase_shift_deg, p.ctf_bfactor, p.scale, p.half_set, p.pose.has_value(),
                    pose.angles.rot, pose.angles.tilt, pose.angles.psi, pose.origin_x_A, pose.origin_y_A,
                    pose.origin_z_A, p.extra);
}

void expect_same_sets(const ParticleSet& a, const ParticleSet& b) {
  EXPECT_EQ(a.optics_extra_labels, b.optics_extra_labels);
  EXPECT_EQ(a.particle_extra_labels, b.particle_extra_labels);
  ASSERT_EQ(a.optics.size(), b.optics.size());
  for (std::size_t i = 0; i < a.optics.size(); ++i) EXPECT_EQ(fields(a.optics[i]), fields(b.optics[i]));
  ASSERT_EQ(a.particles.size(), b.particles.size());
  for (std::size_t i = 0; i < a.particles.size(); ++i) ASSERT_EQ(fields(a.particles[i]), fields(b.particles[i])) << i;
}

}  // namespace

// ---------------------------------------------------------------- generic STAR

TEST(Star, ParsesCommentsQuotesKeyValuesLoopsAndCrlf) {
  const std::string text =
      "# written by hand\r\n"
      "\r\n"
      "# version 30001\r\n"
      "data_general\r\n"
      "_rlnFinalResolution   6.19   # a comment\r\n"
      "_rlnMaskName 'my mask.mrc'\r\n"
      "\r\n"
      "data_fsc\r\n"
      "loop_\r\n"
      "_rlnSpectralIndex #1\r\n"
      "_rlnMicrographName #2 \r\n"
      "  0  \"a b.mrc\"\r\n"
      "   \r\n"
      "  1  it's\r\n"
      "data_empty\r\n"
      "loop_\r\n"
      "_rlnImageName\r\n"
      "\r\n"
      "data_\r\n"
      "loop_\n"
      "_a\n"
      "_b\n"
      "x \"\"\n";
  const StarFile f = tessera::parse_star(text, "t.star");
  ASSERT_EQ(f.version, 30001);
  ASSERT_EQ(f.blocks.size(), 4u);
  const StarTable* general = f.find("data_general");
  ASSERT_NE(general, nullptr);
  EXPECT_FALSE(general->is_loop);
  EXPECT_EQ(general->labels, (std::vector<std::string>{"rlnFinalResolution", "rlnMaskName"}));
  EXPECT_EQ(general->value("rlnFinalResolution"), "6.19");
  EXPECT_EQ(general->value("rlnMaskName"), "my mask.mrc");
  EXPECT_EQ(general->value("rlnNothing"), std::nullopt);
  const StarTable* fsc = f.find("fsc");
  ASSERT_NE(fsc, nullptr);
  EXPECT_TRUE(fsc->is_loop);
  EXPECT_EQ(fsc->column("rlnMicrographName"), 1);
  EXPECT_EQ(fsc->column("rlnAbsent"), -1);
  ASSERT_EQ(fsc->rows.size(), 2u);
  EXPECT_EQ(fsc->rows[0], (std::vector<std::string>{"0", "a b.mrc"}));
  EXPECT_EQ(fsc->rows[1], (std::vector<std::string>{"1", "it's"}));  // a quote inside a word is text
  EXPECT_EQ(fsc->row_lines, (std::vector<int>{12, 14}));
  const StarTable* empty = f.find("empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->labels.size(), 1u);
  EXPECT_TRUE(empty->rows.empty());
  const StarTable* unnamed = f.find("");
  ASSERT_NE(unnamed, nullptr);
  EXPECT_EQ(unnamed->rows.at(0), (std::vector<std::string>{"x", ""}));
  EXPECT_EQ(f.find("nope"), nullptr);
}

TEST(Star, ErrorsNameFileAndLine) {
  const std::string bad_row = "data_x\nloop_\n_a #1\n_b #2\n1 2\n\n3\n";
  EXPECT_NE(input_error([&] { tessera::parse_star(bad_row, "bad.star"); }).find("bad.star:7:"), std::string::npos);
  EXPECT_NE(input_error([&] { tessera::parse_star("_a 1\n", "s.star"); }).find("s.star:1:"), std::string::npos);
  EXPECT_NE(input_error([&] { tessera::parse_star("data_x\n_a 1\n_a 2\n", "s.star"); }).find("s.star:3:"),
            std::string::npos);
  EXPECT_NE(input_error([&] { tessera::parse_star("data_x\nloop_\n_a\n\"open\n", "s.star"); }).find("s.star:4:"),
            std::string::npos);
  EXPECT_NE(input_error([&] { tessera::parse_star("data_x\n_a\n", "s.star"); }).find("s.star:2:"),
            std::string::npos);
  const std::string missing = input_error([] { tessera::read_star("/nonexistent/dir/file.star"); });
  EXPECT_NE(missing.find("/nonexistent/dir/file.star"), std::string::npos) << missing;
}

TEST(Star, FormatQuotesWhatNeedsQuotesAndParsesBack) {
  StarFile f;
  f.version = 30001;
  StarTable loop{"particles", true, {"rlnImageName", "rlnMicrographName"}, {}, {}};
  for (const std::string v : {"with space", "", "#hash", "_under", "it's", "say \"hi\" there", "data_x", "LOOP_",
                              "plain", "tab\there", "'lead"})
    loop.rows.push_back({"1@a.mrcs", v});
  f.blocks.push_back(loop);
  f.blocks.push_back(StarTable{"general", false, {"rlnA", "rlnLongerLabel"}, {{"1", "two words"}}, {}});
  const std::string text = tessera::format_star(f);
  EXPECT_NE(text.find("# version 30001"), std::string::npos);
  EXPECT_NE(text.find("_rlnMicrographName #2"), std::string::npos);
  const StarFile back = tessera::parse_star(text, "formatted");
  ASSERT_EQ(back.blocks.size(), 2u);
  EXPECT_EQ(back.blocks[0].labels, loop.labels);
  EXPECT_EQ(back.blocks[0].rows, loop.rows);
  EXPECT_FALSE(back.blocks[1].is_loop);
  EXPECT_EQ(back.blocks[1].value("rlnLongerLabel"), "two words");
  // A value with both quote kinds followed by a space, or a line break, cannot be written.
  StarFile bad;
  bad.blocks.push_back(StarTable{"x", true, {"a"}, {{"a\" b' c"}}, {}});
  EXPECT_THROW(tessera::format_star(bad), std::invalid_argument);
  bad.blocks[0].rows = {{"a\nb"}};
  EXPECT_THROW(tessera::format_star(bad), std::invalid_argument);
  bad.blocks[0].rows = {{"1", "2"}};
  EXPECT_THROW(tessera::format_star(bad), std::invalid_argument);
}

TEST(Star, WriteIsAtomicAndOverwrites) {
  TempDir dir;
  const fs::path out = dir.path() / "out.star";
  write_text(out, "old contents");
  StarFile f;
  f.blocks.push_back(StarTable{"x", true, {"a", "b"}, {{"1", "2"}, {"3", "4"}}, {}});
  tessera::write_star(out, f);
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(dir.path())) entries.push_back(e.path());
  EXPECT_EQ(entries, std::vector<fs::path>{out});  // no temporary file left behind
  const StarFile back = tessera::read_star(out);
  ASSERT_EQ(back.blocks.size(), 1u);
  EXPECT_EQ(back.blocks[0].rows, f.blocks[0].rows);
  EXPECT_FALSE(back.version.has_value());
  // Writing into a folder that does not exist fails and leaves nothing.
  EXPECT_THROW(tessera::write_star(dir.path() / "no" / "such.star", f), std::runtime_error);
}

TEST(Star, ReadsRelionPostprocessKeyValueBlock) {
  const auto data = tessera::test::shared_data();
  if (!data) GTEST_SKIP() << "shared test data not present";
  const StarFile f = tessera::read_star(*data / "relion_7DDO/PostProcess/postprocess.star");
  EXPECT_EQ(f.version, 30001);
  const StarTable* general = f.find("general");
  ASSERT_NE(general, nullptr);
  EXPECT_FALSE(general->is_loop);
  EXPECT_EQ(general->value("rlnFinalResolution"), "6.193548");  // 6.19 A, relion_7DDO/README.md
  EXPECT_EQ(general->value("rlnMaskName"), "mask_full.mrc");
  const StarTable* fsc = f.find("fsc");
  ASSERT_NE(fsc, nullptr);
  EXPECT_TRUE(fsc->is_loop);
  EXPECT_EQ(fsc->labels.at(2), "rlnAngstromResolution");
}

// ------------------------------------------------------------ RELION 3.1 files

TEST(ParticlesStar, SixOpticsGroups) {
  const auto data = tessera::test::shared_data();
  if (!data) GTEST_SKIP() << "shared test data not present";
  const ParticleSet s = tessera::read_particles_star(*data / "star/cryodrgn_relion31.6opticsgroups.star");
  // Counts from relion_star_printtable: 139 particles, per group 48 29 5 7 26 24.
  ASSERT_EQ(s.optics.size(), 6u);
  ASSERT_EQ(s.particles.size(), 139u);
  std::vector<int> per_group(7, 0);
  for (const auto& p : s.particles) ++per_group.at(static_cast<std::size_t>(p.optics_group));
  EXPECT_EQ(per_group, (std::vector<int>{0, 48, 29, 5, 7, 26, 24}));
  const auto& g1 = s.optics[0];
  EXPECT_EQ(g1.number, 1);
  EXPECT_EQ(g1.name, "opticsGroup5");
  EXPECT_EQ(g1.pixel_A, 1.25);
  EXPECT_EQ(g1.image_size, 196);
  EXPECT_EQ(g1.voltage_kV, 200.0);
  EXPECT_EQ(s.optics[3].cs_mm, 2.6);
  EXPECT_EQ(s.optics[1].pixel_A, 1.24);
  EXPECT_EQ(s.optics[5].amplitude_contrast, 0.1);
  // The aberration columns are typed (optics_aberrations.hpp); the rest stay text.
  EXPECT_EQ(s.optics_extra_labels, (std::vector<std::string>{"rlnImageDimensionality", "rlnCtfDataAreCtfPremultiplied",
                                                             "rlnMicrographPixelSize"}));
  EXPECT_EQ(g1.beam_tilt_x_mrad, 0.657334);
  EXPECT_EQ(g1.beam_tilt_y_mrad, 0.884982);
  EXPECT_EQ(s.optics[5].beam_tilt_y_mrad, 2.446621);
  EXPECT_EQ(s.optics[5].extra.at(2), "1.035000");
  EXPECT_EQ(g1.odd_zernike, (std::vector<double>{1.70554063513, 1.2131261042, 2.54522458134, 0, 0, 3.56183614819}));
  ASSERT_EQ(g1.even_zernike.size(), 9u);
  EXPECT_EQ(g1.even_zernike[1], 27.0686280677);
  EXPECT_EQ(s.optics[5].even_zernike[8], -1.61338028088);
  EXPECT_EQ(g1.mag_matrix, (std::array<double, 4>{1.011472, 0.004231, 0.004560, 1.008858}));
  EXPECT_EQ(s.optics[5].mag_matrix, (std::array<double, 4>{1.006131, -0.00887, -0.00768, 0.999765}));
  const auto& first = s.particles.front();
  EXPECT_EQ(first.image.index, 3);
  EXPECT_EQ(first.image.path, "Polish/job520/Micrographs/0003_shiny.mrcs");
  EXPECT_EQ(first.optics_group, 6);
  EXPECT_EQ(first.micrograph, "MotionCorr/job002/Micrographs/0003.mrc");
  EXPECT_EQ(first.defocus_u_A, 10352.805929);
  EXPECT_EQ(first.defocus_angle_deg, 60.889370);
  ASSERT_TRUE(first.pose.has_value());
  EXPECT_EQ(first.pose->angles.rot, -128.10516);
  EXPECT_EQ(first.pose->origin_x_A, 13.284554);
  EXPECT_EQ(first.half_set, 2);
  const auto& last = s.particles.back();
  EXPECT_EQ(last.image.index, 183);
  EXPECT_EQ(last.optics_group, 4);
  EXPECT_EQ(last.pose->angles.psi, -169.98067);
  EXPECT_EQ(last.pose->origin_y_A, 3.032991);
  EXPECT_EQ(last.extra.at(static_cast<std::size_t>(s.particle_extra_index("rlnGroupNumber"))), "2695");
  EXPECT_EQ(last.extra.at(static_cast<std::size_t>(s.particle_extra_index("rlnLogLikeliContribution"))),
            "1.316011e+05");
  EXPECT_EQ(s.particle_extra_index("rlnAngleRot"), -1);  // interpreted, so not an extra
  // The stacks are not there: base_dir falls back to the STAR's folder.
  EXPECT_EQ(s.base_dir, fs::absolute(*data / "star").lexically_normal());
}

TEST(ParticlesStar, Relion31WithColumnIndices) {
  const auto data = tessera::test::shared_data();
  if (!data) GTEST_SKIP() << "shared test data not present";
  const ParticleSet s = tessera::read_particles_star(*data / "star/cryodrgn_relion31.star");
  ASSERT_EQ(s.optics.size(), 1u);
  ASSERT_EQ(s.particles.size(), 5u);
  EXPECT_EQ(s.optics[0].pixel_A, 2.806);
  EXPECT_EQ(s.optics[0].cs_mm, 0.01);
  EXPECT_EQ(s.optics[0].image_size, 256);
  EXPECT_EQ(s.optics_extra_labels, (std::vector<std::string>{"rlnMicrographOriginalPixelSize", "rlnImageDimensionality"}));
  const auto& p = s.particles[0];
  EXPECT_EQ(p.image.to_string(), "000001@relion31.mrcs");
  EXPECT_EQ(p.defocus_u_A, 13108.082418);
  EXPECT_EQ(p.defocus_v_A, 12845.582418);
  EXPECT_EQ(p.defocus_angle_deg, -160.39);
  EXPECT_EQ(p.scale, 1.0);
  EXPECT_EQ(p.half_set, 1);
  EXPECT_EQ(p.pose->angles.tilt, 82.318041);
  EXPECT_EQ(p.pose->origin_x_A, 0.019324);
  EXPECT_EQ(p.pose->origin_y_A, -0.64686);
  EXPECT_EQ(s.particle_extra_labels.front(), "rlnCoordinateX");
  EXPECT_EQ(p.extra.front(), "3277.000000");
}

// ------------------------------------------------------------ RELION 3.0 files

TEST(ParticlesStar, LegacyPixelSizeAndOrigins) {
  const auto data = tessera::test::shared_data();
  if (!data) GTEST_SKIP() << "shared test data not present";
  const ParticleSet s = tessera::read_particles_star(*data / "star/relion_tests_ap_s_c2d_red_legacy.star");
  ASSERT_EQ(s.particles.size(), 9u);
  ASSERT_EQ(s.optics.size(), 1u);  // all rows share 300 kV, Cs 2, Q0 0.1, 14 um at 39548x
  const double pixel = 14.0 * 1e4 / 39548.0;  // = 3.54 A, det_um * 1e4 / mag
  EXPECT_EQ(s.optics[0].pixel_A, pixel);
  EXPECT_EQ(s.optics[0].cs_mm, 2.0);
  EXPECT_EQ(s.optics[0].voltage_kV, 300.0);
  EXPECT_EQ(s.optics[0].image_size, 0);  // the stack is not there
  EXPECT_EQ(s.optics[0].name, "opticsGroup1");
  EXPECT_EQ(s.optics_extra_labels, std::vector<std::string>{"rlnImageDimensionality"});
  for (const char* consumed : {"rlnOriginX", "rlnMagnification", "rlnDetectorPixelSize", "rlnVoltage"})
    EXPECT_EQ(s.particle_extra_index(consumed), -1) << consumed;
  const auto& p = s.particles[1];  // 000042@..., origin (0.967665, 1.967665) px, psi 124.838324
  EXPECT_EQ(p.image.index, 42);
  ASSERT_TRUE(p.pose.has_value());
  // Both sides compute the same product of the same doubles.
  EXPECT_EQ(p.pose->origin_x_A, 0.967665 * pixel);
  EXPECT_EQ(p.pose->origin_y_A, 1.967665 * pixel);
  EXPECT_EQ(p.pose->angles.psi, 124.838324);
  EXPECT_EQ(p.defocus_v_A, 34295.921875);
}

TEST(ParticlesStar, LegacyGroupsByOpticsAndReadsImageSize) {
  TempDir dir;
  fs::create_directories(dir.path() / "Extract");
  tessera::write_mrc(dir.path() / "Extract/s.mrcs", tessera::RealGrid(24, 24, 2), 1.5, true);
  const std::string text =
      "data_images\nloop_\n_rlnImageName\n_rlnVoltage\n_rlnImagePixelSize\n_rlnOriginX\n_rlnOriginY\n"
      "1@Extract/s.mrcs 300 1.5 2 -1\n2@Extract/s.mrcs 300 1.5 0 0\n1@Extract/missing.mrcs 200 1.5 1 1\n"
      "1@Extract/s.mrcs 300 2.0 1 0.5\n";
  write_text(dir.path() / "Extract/legacy.star", text);
  const ParticleSet s = tessera::read_particles_star(dir.path() / "Extract/legacy.star");
  EXPECT_EQ(s.base_dir, fs::absolute(dir.path()).lexically_normal());  // the STAR's parent folder has Extract/s.mrcs
  ASSERT_EQ(s.optics.size(), 3u);  // (300, 1.5), (200, 1.5), (300, 2.0)
  EXPECT_EQ((std::vector<int>{s.particles[0].optics_group, s.particles[1].optics_group,
                              s.particles[2].optics_group, s.particles[3].optics_group}),
            (std::vector<int>{1, 1, 2, 3}));
  EXPECT_EQ(s.optics[0].image_size, 24);  // from the MRC header we wrote
  EXPECT_EQ(s.optics[1].image_size, 0);   // unreadable stack
  EXPECT_EQ(s.optics[1].voltage_kV, 200.0);
  EXPECT_EQ(s.optics[2].pixel_A, 2.0);
  EXPECT_FALSE(s.particles[0].pose.has_value());  // no angles: origins become extra Angstrom columns
  EXPECT_EQ(s.particle_extra_labels, (std::vector<std::string>{"rlnOriginXAngst", "rlnOriginYAngst"}));
  EXPECT_EQ(s.particles[0].extra, (std::vector<std::string>{"3", "-1.5"}));
  EXPECT_EQ(s.particles[3].extra, (std::vector<std::string>{"2", "1"}));
}

// ------------------------------------------------------------------ relion_7DDO

TEST(ParticlesStar, RunDataMatchesScipionGroundTruth) {
  const auto data = tessera::test::shared_data();
  if (!data) GTEST_SKIP() << "shared test data not present";
  const fs::path root = *data / "relion_7DDO";
  const ParticleSet s = tessera::read_particles_star(root / "Refine3D/run_data.star");
  ASSERT_EQ(s.particles.size(), 1000u);
  ASSERT_EQ(s.optics.size(), 1u);
  EXPECT_EQ(s.optics[0].pixel_A, 3.0);
  EXPECT_EQ(s.optics[0].image_size, 64);
  EXPECT_EQ(s.base_dir, fs::absolute(root).lexically_normal());
  EXPECT_TRUE(fs::exists(s.stack_path(s.particles[0])));
  EXPECT_TRUE(s.has_poses());
  // ../shared/data/scipion/README.md, "Ground truth for tests" (ids are 1-based rows).
  struct Truth {
    std::size_t id;
    double rot, tilt, psi, ox, oy, du, dv, dangle;
    const char* mic;
    int half;
  };
  const Truth truth[] = {
      {1, -74.75501, 151.743895, -49.54711, 2.114738, 4.146488, 22252.3, 21699.15, 177.18, "mic001.mrc", 2},
      {2, 159.484624, 94.295508, 161.462447, -2.53076, 0.469238, 22252.3, 21699.15, 177.18, "mic001.mrc", 1},
      {3, -50.49862, 135.297941, -18.39068, -7.85351, 0.469238, 22252.3, 21699.15, 177.18, "mic001.mrc", 2},
      {100, -14.91574, 131.876371, 86.970243, -3.20801, 1.146488, 22252.3, 21699.15, 177.18, "mic001.mrc", 2},
      {1000, 99.774512, 87.152552, 34.411290, 1.146488, 5.114738, 12173.71, 11870.27, 9.28, "mic010.mrc", 2}};
  for (const Truth& t : truth) {
    const auto& p = s.particles[t.id - 1];
    EXPECT_EQ(p.image.index, static_cast<long>(t.id));
    EXPECT_EQ(p.image.path, "Particles/particles.mrcs");
    EXPECT_EQ(p.pose->angles.rot, t.rot) << t.id;
    EXPECT_EQ(p.pose->angles.tilt, t.tilt) << t.id;
    EXPECT_EQ(p.pose->angles.psi, t.psi) << t.id;
    EXPECT_EQ(p.pose->origin_x_A, t.ox) << t.id;
    EXPECT_EQ(p.pose->origin_y_A, t.oy) << t.id;
    EXPECT_EQ(p.pose->origin_z_A, 0.0) << t.id;
    EXPECT_EQ(p.defocus_u_A, t.du) << t.id;
    EXPECT_EQ(p.defocus_v_A, t.dv) << t.id;
    EXPECT_EQ(p.defocus_angle_deg, t.dangle) << t.id;
    EXPECT_EQ(p.micrograph, t.mic) << t.id;
    EXPECT_EQ(p.half_set, t.half) << t.id;
  }
  EXPECT_EQ(s.particle_extra_labels,
            (std::vector<std::string>{"rlnGroupNumber", "rlnClassNumber", "rlnNormCorrection",
                                      "rlnLogLikeliContribution", "rlnMaxValueProbDistribution",
                                      "rlnNrOfSignificantSamples"}));
  EXPECT_EQ(s.particles[0].extra.at(2), "0.572425");
}

TEST(ParticlesStar, BaseDirFoundAboveTheStarFolder) {
  const auto data = tessera::test::shared_data();
  if (!data) GTEST_SKIP() << "shared test data not present";
  const fs::path root = *data / "relion_7DDO";
  if (fs::exists(fs::current_path() / "Particles/particles.mrcs")) GTEST_SKIP() << "run from inside relion_7DDO";
  // The STAR is in Particles/, the images are "Particles/particles.mrcs" relative to relion_7DDO/.
  const ParticleSet s = tessera::read_particles_star(root / "Particles/particles.star");
  ASSERT_EQ(s.particles.size(), 1000u);
  EXPECT_EQ(s.base_dir, fs::absolute(root).lexically_normal());
  EXPECT_EQ(s.stack_path(s.particles[0]), fs::absolute(root).lexically_normal() / "Particles/particles.mrcs");
  EXPECT_EQ(s.particles[0].half_set, 0);  // no rlnRandomSubset in the simulation STAR
  EXPECT_EQ(s.particles[0].pose->angles.rot, 278.624177);
  // An explicit base_dir wins, even where the stack is not.
  const ParticleSet t = tessera::read_particles_star(root / "Particles/particles.star", fs::path("/tmp"));
  EXPECT_EQ(t.base_dir, fs::path("/tmp"));
}

TEST(ParticlesStar, RoundTripKeepsEveryValueAndColumn) {
  const auto data = tessera::test::shared_data();
  if (!data) GTEST_SKIP() << "shared test data not present";
  TempDir dir;
  const fs::path root = *data / "relion_7DDO";
  for (const fs::path& in : {root / "Refine3D/run_data.star", *data / "star/cryodrgn_relion31.6opticsgroups.star",
                            *data / "star/cryodrgn_relion31.star"}) {
    SCOPED_TRACE(in.string());
    const ParticleSet a = tessera::read_particles_star(in);
    const fs::path out = dir.path() / "out.star";
    tessera::write_particles_star(out, a, a.base_dir);  // paths stay relative to the same folder
    const std::string text = read_text(out);
    EXPECT_EQ(text.rfind("\n# version 30001\n\ndata_optics\n", 0), 0u);
    EXPECT_LT(text.find("data_optics"), text.find("data_particles"));
    const ParticleSet b = tessera::read_particles_star(out, a.base_dir);
    expect_same_sets(a, b);
    const StarFile original = tessera::read_star(in), written = tessera::read_star(out);
    expect_table_kept(*original.find("optics"), *written.find("optics"));
    expect_table_kept(*original.find("particles"), *written.find("particles"));
  }
}

TEST(ParticlesStar, LegacyWrittenAs31) {
  const auto data = tessera::test::shared_data();
  if (!data) GTEST_SKIP() << "shared test data not present";
  TempDir dir;
  const ParticleSet a = tessera::read_particles_star(*data / "star/relion_tests_ap_s_c2d_red_legacy.star");
  tessera::write_particles_star(dir.path() / "out.star", a, a.base_dir);
  const StarFile written = tessera::read_star(dir.path() / "out.star");
  EXPECT_EQ(written.version, 30001);
  ASSERT_NE(written.find("optics"), nullptr);
  EXPECT_TRUE(written.find("particles")->has("rlnOriginXAngst"));
  EXPECT_FALSE(written.find("particles")->has("rlnOriginX"));
  const ParticleSet b = tessera::read_particles_star(dir.path() / "out.star", a.base_dir);
  expect_same_sets(a, b);
}

// ---------------------------------------------------------------- image paths

TEST(ParticlesStar, WrittenPathsRelativeInsideAbsoluteOutside) {
  ParticleSet s;
  s.optics.push_back(tessera::OpticsGroup{});
  s.base_dir = "/data/project";
  for (const char* path : {"Particles/a.mrcs", "../other/b.mrcs", "/abs/c.mrcs", "./Particles/../d.mrcs"}) {
    tessera::Particle p;
    p.image = tessera::ImageRef::parse(std::string("7@") + path);
    s.particles.push_back(p);
  }
  const auto names = [&](const fs::path& relative_to) {
    const StarFile f = tessera::particles_to_star(s, relative_to);
    const StarTable& t = f.blocks.at(1);
    std::vector<std::string> out;
    for (const auto& r : t.rows) out.push_back(r.at(static_cast<std::size_t>(t.column("rlnImageName"))));
    return out;
  };
  EXPECT_EQ(names("/data/project"), (std::vector<std::string>{"000007@Particles/a.mrcs", "000007@/data/other/b.mrcs",
                                                              "000007@/abs/c.mrcs", "000007@d.mrcs"}));
  EXPECT_EQ(names("/data/"), (std::vector<std::string>{"000007@project/Particles/a.mrcs", "000007@other/b.mrcs",
                                                       "000007@/abs/c.mrcs", "000007@project/d.mrcs"}));
  EXPECT_EQ(names("/elsewhere"),
            (std::vector<std::string>{"000007@/data/project/Particles/a.mrcs", "000007@/data/other/b.mrcs",
                                      "000007@/abs/c.mrcs", "000007@/data/project/d.mrcs"}));
}

// ----------------------------------------------------------------------- errors

TEST(ParticlesStar, Errors) {
  TempDir dir;
  const fs::path f = dir.path() / "p.star";
  write_text(f, "data_optics\nloop_\n_rlnOpticsGroup\n_rlnImagePixelSize\n1 1.5\n\n"
                "data_particles\nloop_\n_rlnMicrographName\n_rlnOpticsGroup\nm.mrc 1\n");
  std::string msg = input_error([&] { tessera::read_particles_star(f); });
  EXPECT_NE(msg.find(f.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("rlnImageName"), std::string::npos) << msg;

  write_text(f, "data_optics\nloop_\n_rlnOpticsGroup\n_rlnImageSize\n1 64\n\n"
                "data_particles\nloop_\n_rlnImageName\n1@a.mrcs\n");
  msg = input_error([&] { tessera::read_particles_star(f); });
  EXPECT_NE(msg.find("rlnImagePixelSize"), std::string::npos) << msg;

  write_text(f, "data_optics\nloop_\n_rlnOpticsGroup\n_rlnImagePixelSize\n1 1.5\n\n"
                "data_particles\nloop_\n_rlnImageName\n_rlnOpticsGroup\n1@a.mrcs 1\n2@a.mrcs 3\n");
  msg = input_error([&] { tessera::read_particles_star(f); });
  EXPECT_NE(msg.find(f.string() + ":12:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("optics group 3"), std::string::npos) << msg;

  write_text(f, "data_optics\nloop_\n_rlnOpticsGroup\n_rlnImagePixelSize\n1 1.5\n\n"
                "data_particles\nloop_\n_rlnImageName\n_rlnDefocusU\n1@a.mrcs 1e4\n2@a.mrcs\n");
  msg = input_error([&] { tessera::read_particles_star(f); });
  EXPECT_NE(msg.find(f.string() + ":12:"), std::string::npos) << msg;

  write_text(f, "data_optics\nloop_\n_rlnOpticsGroup\n_rlnImagePixelSize\n1 1.5\n\n"
                "data_particles\nloop_\n_rlnImageName\n_rlnDefocusU\n1@a.mrcs 1e4\n2@a.mrcs 1.2.3\n");
  msg = input_error([&] { tessera::read_particles_star(f); });
  EXPECT_NE(msg.find(f.string() + ":12:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1.2.3"), std::string::npos) << msg;

  write_text(f, "data_images\nloop_\n_rlnImageName\n1@a.mrcs\n");
  msg = input_error([&] { tessera::read_particles_star(f); });
  EXPECT_NE(msg.find("pixel size"), std::string::npos) << msg;

  msg = input_error([&] { tessera::read_particles_star(dir.path() / "missing.star"); });
  EXPECT_NE(msg.find("missing.star"), std::string::npos) << msg;
}

// ------------------------------------------------------- RELION reads our files

TEST(ParticlesStar, DebianRelionReadsWhatWeWrite) {
  if (!on_path("relion_star_handler")) GTEST_SKIP() << "relion_star_handler not on PATH";
  TempDir dir;
  ParticleSet s;
  s.base_dir = dir.path();
  tessera::OpticsGroup g1, g2;
  g1.number = 1, g1.pixel_A = 1.25, g1.image_size = 128, g1.voltage_kV = 300, g1.cs_mm = 2.7;
  g1.amplitude_contrast = 0.1, g1.beam_tilt_x_mrad = 0.5, g1.mag_matrix = {1.02, 0.001, -0.002, 0.985};
  g1.extra = {"2"};
  g2.number = 2, g2.name = "second", g2.pixel_A = 0.8, g2.image_size = 200, g2.voltage_kV = 200, g2.cs_mm = 0.01;
  g2.amplitude_contrast = 0.07, g2.beam_tilt_x_mrad = -0.25, g2.odd_zernike = {0.125, -0.25, 0.5, 0, 0, 0.75};
  g2.extra = {"2"};
  s.optics_extra_labels = {"rlnImageDimensionality"};
  s.optics = {g1, g2};
  s.particle_extra_labels = {"rlnClassNumber"};
  for (int i = 1; i <= 3; ++i) {
    tessera::Particle p;
    p.image = tessera::ImageRef{i, "Particles/stack.mrcs"};
    p.optics_group = i == 3 ? 2 : 1;
    p.micrograph = "mic " + std::to_string(i) + ".mrc";  // written quoted; RELION 3.1 reads quotes
    p.defocus_u_A = 15000.5 + i;
    p.defocus_v_A = 14800.25;
    p.defocus_angle_deg = -30.125 * i;
    p.half_set = 1 + i % 2;
    p.pose = tessera::ProjectionPose{{10.5 * i, 90.25, -45.75}, 1.5, -2.25, 0};
    p.extra = {std::to_string(i)};
    s.particles.push_back(p);
  }
  const fs::path ours = dir / "ours.star", theirs = dir / "theirs.star";
  tessera::write_particles_star(ours, s, dir.path());
  const RunResult run = run_command(dir.path(), "relion_star_handler --i " + shell_quote(ours.string()) + " --o " +
                                                    shell_quote(theirs.string()));
  const std::string log = run.out + run.err;
  ASSERT_EQ(run.exit_code, 0) << log;
  // RELION recognised a 3.1 file: no conversion from an older version.
  EXPECT_EQ(log.find("previous version"), std::string::npos) << log;
  const ParticleSet r = tessera::read_particles_star(theirs, dir.path());
  ASSERT_EQ(r.optics.size(), 2u);
  ASSERT_EQ(r.particles.size(), 3u);
  // RELION writes doubles with 6 decimals: every value above has at most 3, so equal to 1e-9.
  const double tol = 1e-9;
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(r.optics[i].number, s.optics[i].number);
    EXPECT_NEAR(r.optics[i].pixel_A, s.optics[i].pixel_A, tol);
    EXPECT_NEAR(r.optics[i].voltage_kV, s.optics[i].voltage_kV, tol);
    EXPECT_NEAR(r.optics[i].cs_mm, s.optics[i].cs_mm, tol);
    EXPECT_NEAR(r.optics[i].amplitude_contrast, s.optics[i].amplitude_contrast, tol);
    EXPECT_EQ(r.optics[i].image_size, s.optics[i].image_size);
    EXPECT_NEAR(r.optics[i].beam_tilt_x_mrad, s.optics[i].beam_tilt_x_mrad, tol);
    for (std::size_t j = 0; j < 4; ++j) EXPECT_NEAR(r.optics[i].mag_matrix[j], s.optics[i].mag_matrix[j], tol);
  }
  ASSERT_EQ(r.optics[1].odd_zernike.size(), 6u);
  for (std::size_t j = 0; j < 6; ++j) EXPECT_NEAR(r.optics[1].odd_zernike[j], s.optics[1].odd_zernike[j], tol);
  EXPECT_EQ(r.optics[0].name, "opticsGroup1");
  EXPECT_EQ(r.optics[1].name, "second");
  for (std::size_t i = 0; i < 3; ++i) {
    const auto &p = s.particles[i], &q = r.particles[i];
    EXPECT_EQ(q.image.to_string(), p.image.to_string());
    EXPECT_EQ(q.optics_group, p.optics_group);
    EXPECT_EQ(q.micrograph, p.micrograph);
    EXPECT_NEAR(q.defocus_u_A, p.defocus_u_A, tol);
    EXPECT_NEAR(q.defocus_angle_deg, p.defocus_angle_deg, tol);
    EXPECT_EQ(q.half_set, p.half_set);
    EXPECT_NEAR(q.pose->angles.rot, p.pose->angles.rot, tol);
    EXPECT_NEAR(q.pose->angles.psi, p.pose->angles.psi, tol);
    EXPECT_NEAR(q.pose->origin_y_A, p.pose->origin_y_A, tol);
  }
}
