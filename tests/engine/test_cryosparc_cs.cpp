// Tests for cryoSPARC .cs particle files (cryosparc_cs.hpp).
//
// Oracles: rotations computed by hand (identity, 90 deg about z, 120 deg about
// (1,1,1), 180 deg cases); pyem's expmap typed in from its source (the formula
// cryoSPARC's author contributed: RELION's A = expmap(pose)); .cs files built
// byte by byte here, independently of the writer, with values whose meaning is
// worked out by hand; RELION's run_data.star of ../shared/data/relion_7DDO.
// Values stored as float32 in a .cs are compared exactly where they are decimal
// numbers of at most 7 significant digits (the reader returns the double of a
// float32's shortest decimal form, which is then the same decimal), otherwise
// to float precision with the tolerance stated.
// The physical check of the conventions (projections of a map at the .cs poses
// against simulated images) is tests/interop/cryosparc, with real cryosparc-tools.
#include <gtest/gtest.h>

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "input_error.hpp"
#include "run_programs.hpp"
#include "tessera/cryosparc_cs.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/random.hpp"
#include "test_data.hpp"

namespace fs = std::filesystem;
using tessera::Euler;
using tessera::Mat3;
using tessera::ParticleSet;
using tessera::Vec3;
using tessera::test::input_error;
using tessera::test::TempDir;

namespace {

constexpr double kPi = 3.14159265358979323846;

/// pyem's geom.expmap (pyem/geom/convert.py), written out: RELION's A for a cryoSPARC pose.
Mat3 pyem_expmap(const Vec3& e) {
  const double t = std::sqrt(e[0] * e[0] + e[1] * e[1] + e[2] * e[2]);
  if (t < 1e-16) return tessera::identity3();
  const double w0 = e[0] / t, w1 = e[1] / t, w2 = e[2] / t;
  const Mat3 k{{{0, w2, -w1}, {-w2, 0, w0}, {w1, -w0, 0}}};
  const Mat3 kk = tessera::multiply(k, k);
  Mat3 r = tessera::identity3();
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) r[i][j] += std::sin(t) * k[i][j] + (1 - std::cos(t)) * kk[i][j];
  return r;
}

double max_diff(const Vec3& a, const Vec3& b) {
  return std::max({std::abs(a[0] - b[0]), std::abs(a[1] - b[1]), std::abs(a[2] - b[2])});
}

/// A .npy file built by hand: a header dict and packed little-endian rows.
class Npy {
 public:
  explicit Npy(std::string descr, int rows) : descr_(std::move(descr)), rows_(rows) {}
  template <class T>
  Npy& put(T v) {
    const auto bits = std::bit_cast<std::array<char, sizeof(T)>>(v);
    data_.append(bits.data(), bits.size());
    return *this;
  }
  Npy& put_text(const std::string& s, std::size_t width) {
    data_ += s;
    data_.append(width - s.size(), '\0');
    return *this;
  }
  std::string bytes() const {
    std::string header =
        "{'descr': " + descr_ + ", 'fortran_order': False, 'shape': (" + std::to_string(rows_) + ",), }";
    header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
    header += '\n';
    std::string out = "\x93NUMPY";
    out += '\x01';
    out += '\x00';
    out += static_cast<char>(header.size() & 0xFF);
    out += static_cast<char>(header.size() >> 8);
    return out + header + data_;
  }

 private:
  std::string descr_;
  int rows_;
  std::string data_;
};

const std::string kMinimalDescr = "[('blob/path', '|S10'), ('blob/idx', '<u4'), ('blob/psize_A', '<f4')]";

}  // namespace

// ------------------------------------------------------------- rotation vectors

TEST(CryosparcPose, RotationVectorsByHand) {
  EXPECT_EQ(tessera::max_abs_diff(tessera::rotation_vector_to_matrix({0, 0, 0}), tessera::identity3()), 0.0);
  EXPECT_EQ(tessera::matrix_to_rotation_vector(tessera::identity3()), (Vec3{0, 0, 0}));
  // 90 deg counter-clockwise about z: x -> y, y -> -x.
  const Mat3 z90{{{0, -1, 0}, {1, 0, 0}, {0, 0, 1}}};
  EXPECT_LT(tessera::max_abs_diff(tessera::rotation_vector_to_matrix({0, 0, kPi / 2}), z90), 1e-15);
  EXPECT_LT(max_diff(tessera::matrix_to_rotation_vector(z90), {0, 0, kPi / 2}), 1e-15);
  // 120 deg about (1,1,1): x -> y -> z -> x.
  const Mat3 cyclic{{{0, 0, 1}, {1, 0, 0}, {0, 1, 0}}};
  const double a = 2 * kPi / 3 / std::sqrt(3.0);
  EXPECT_LT(tessera::max_abs_diff(tessera::rotation_vector_to_matrix({a, a, a}), cyclic), 1e-15);
  EXPECT_LT(max_diff(tessera::matrix_to_rotation_vector(cyclic), {a, a, a}), 1e-15);
}

TEST(CryosparcPose, HalfTurnsRoundTrip) {
  // 180 deg about x, and about (1,1,0)/sqrt2: R = 2 n n^T - I.
  const Mat3 x180{{{1, 0, 0}, {0, -1, 0}, {0, 0, -1}}};
  EXPECT_LT(tessera::max_abs_diff(tessera::rotation_vector_to_matrix({kPi, 0, 0}), x180), 1e-15);
  EXPECT_LT(max_diff(tessera::matrix_to_rotation_vector(x180), {kPi, 0, 0}), 1e-15);
  // -pi x is the same rotation: it comes back as the canonical +pi x.
  EXPECT_LT(max_diff(tessera::matrix_to_rotation_vector(tessera::rotation_vector_to_matrix({-kPi, 0, 0})), {kPi, 0, 0}),
            1e-15);
  const double h = kPi / std::sqrt(2.0);
  const Mat3 xy180{{{0, 1, 0}, {1, 0, 0}, {0, 0, -1}}};
  EXPECT_LT(tessera::max_abs_diff(tessera::rotation_vector_to_matrix({h, h, 0}), xy180), 1e-15);
  EXPECT_LT(max_diff(tessera::matrix_to_rotation_vector(xy180), {h, h, 0}), 1e-15);
  for (const Vec3& v : {Vec3{0, h, -h}, Vec3{0, 0, kPi}, Vec3{h, 0, -h}})
    EXPECT_LT(max_diff(tessera::matrix_to_rotation_vector(tessera::rotation_vector_to_matrix(v)), v), 1e-14)
        << v[0] << " " << v[1] << " " << v[2];
  // Just short of a half turn, and tiny angles: accurate, not only the same rotation.
  tessera::Rng rng(7);
  for (int i = 0; i < 200; ++i) {
    Vec3 n{tessera::normal01(rng), tessera::normal01(rng), tessera::normal01(rng)};
    const double len = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
    for (const double angle : {kPi - 1e-7, 1e-9, 2.5 * tessera::uniform01(rng)}) {
      const Vec3 v{n[0] / len * angle, n[1] / len * angle, n[2] / len * angle};
      EXPECT_LT(max_diff(tessera::matrix_to_rotation_vector(tessera::rotation_vector_to_matrix(v)), v),
                1e-13 + 1e-12 * angle);
    }
  }
}

TEST(CryosparcPose, RelionMatrixIsPyemExpmapAndTheTranspose) {
  // 90 deg about z in cryoSPARC is RELION's (rot + psi = 90, tilt 0): A = R^T.
  const Euler e = tessera::cryosparc_pose_to_euler({0, 0, kPi / 2});
  const Mat3 a{{{0, 1, 0}, {-1, 0, 0}, {0, 0, 1}}};
  EXPECT_LT(tessera::max_abs_diff(tessera::euler_to_matrix(e), a), 1e-15);
  tessera::Rng rng(11);
  for (int i = 0; i < 500; ++i) {
    const Vec3 v{2 * tessera::normal01(rng), 2 * tessera::normal01(rng), 2 * tessera::normal01(rng)};
    EXPECT_LT(tessera::max_abs_diff(tessera::euler_to_matrix(tessera::cryosparc_pose_to_euler(v)), pyem_expmap(v)),
              1e-12);
    const Euler r = tessera::random_euler(rng);
    EXPECT_LT(tessera::max_abs_diff(pyem_expmap(tessera::euler_to_cryosparc_pose(r)), tessera::euler_to_matrix(r)),
              1e-12);
  }
}

TEST(CryosparcPose, ExtraLabels) {
  EXPECT_EQ(tessera::cryosparc_extra_label("location/center_x_frac"), "cs_location__center_x_frac");
  EXPECT_EQ(tessera::cryosparc_field_of_extra("cs_location__center_x_frac"), "location/center_x_frac");
  EXPECT_EQ(tessera::cryosparc_extra_label("a__b"), std::nullopt);
  EXPECT_EQ(tessera::cryosparc_extra_label("a b"), std::nullopt);
  EXPECT_EQ(tessera::cryosparc_field_of_extra("rlnClassNumber"), std::nullopt);
}

// ------------------------------------------------------------- reading by hand

TEST(CryosparcCs, ReadsAHandBuiltFile) {
  TempDir tmp;
  // Two particles, every mapped field; values worked out by hand below.
  Npy npy(
      "[('uid', '<u8'), ('blob/path', '|S12'), ('blob/idx', '<u4'), ('blob/shape', '<u4', (2,)), "
      "('blob/psize_A', '<f4'), ('blob/sign', '<f4'), ('ctf/exp_group_id', '<u4'), ('ctf/accel_kv', '<f4'), "
      "('ctf/cs_mm', '<f4'), ('ctf/amp_contrast', '<f4'), ('ctf/df1_A', '<f4'), ('ctf/df2_A', '<f4'), "
      "('ctf/df_angle_rad', '<f4'), ('ctf/phase_shift_rad', '<f4'), ('ctf/scale', '<f4'), ('ctf/bfactor', '<f4'), "
      "('ctf/tilt_A', '<f4', (2,)), ('alignments3D/split', '<u4'), ('alignments3D/shift', '<f4', (2,)), "
      "('alignments3D/pose', '<f4', (3,)), ('alignments3D/psize_A', '<f4'), ('alignments3D/class', '<u4'), "
      "('location/micrograph_path', '|S5'), ('', '|V3'), ('pick_stats/template_idx', '<u4')]",
      2);
  for (int r = 0; r < 2; ++r) {
    npy.put<std::uint64_t>(r == 0 ? 18446744073709551615u : 42).put_text(r == 0 ? ">J3/a.mrcs" : "J3/a.mrcs", 12);
    npy.put<std::uint32_t>(r == 0 ? 0 : 7).put<std::uint32_t>(64).put<std::uint32_t>(64).put<float>(1.5f);
    npy.put<float>(-1.0f).put<std::uint32_t>(r).put<float>(300.0f).put<float>(2.7f).put<float>(0.07f);
    npy.put<float>(15000.5f).put<float>(14000.25f).put<float>(static_cast<float>(kPi / 2)).put<float>(0.0f);
    npy.put<float>(r == 0 ? 0.8f : 1.0f).put<float>(-20.0f).put<float>(0.5f).put<float>(-0.25f);
    npy.put<std::uint32_t>(r).put<float>(2.0f).put<float>(-4.0f);
    npy.put<float>(0.0f).put<float>(0.0f).put<float>(static_cast<float>(kPi / 2));
    npy.put<float>(3.0f).put<std::uint32_t>(r == 0 ? 2 : 0).put_text("m.mrc", 5).put_text("", 3);
    npy.put<std::uint32_t>(9);
  }
  const fs::path cs = tmp.write("particles.cs", npy.bytes());
  const ParticleSet s = tessera::read_cryosparc_particles(cs, tmp.path());
  ASSERT_EQ(s.particles.size(), 2u);
  ASSERT_EQ(s.optics.size(), 2u);  // two exposure groups -> groups 1 and 2 (exp_group_id + 1)
  EXPECT_EQ(s.optics[0].number, 1);
  EXPECT_EQ(s.optics[1].number, 2);
  EXPECT_EQ(s.optics[1].name, "opticsGroup2");
  EXPECT_EQ(s.optics[0].pixel_A, 1.5);
  EXPECT_EQ(s.optics[0].image_size, 64);
  EXPECT_EQ(s.optics[0].cs_mm, 2.7);  // the float32 2.7f reads as 2.7
  EXPECT_EQ(s.optics[0].amplitude_contrast, 0.07);
  EXPECT_EQ(s.base_dir, tmp.path());
  const auto& p = s.particles[0];
  EXPECT_EQ(p.image.to_string(), "000001@J3/a.mrcs");  // '>' removed, idx 0 -> 1
  EXPECT_EQ(s.particles[1].image.to_string(), "000008@J3/a.mrcs");
  EXPECT_EQ(p.optics_group, 1);
  EXPECT_EQ(s.particles[1].optics_group, 2);
  EXPECT_EQ(p.defocus_u_A, 15000.5);
  EXPECT_EQ(p.defocus_v_A, 14000.25);
  EXPECT_NEAR(p.defocus_angle_deg, 90.0, 1e-5);
  EXPECT_EQ(p.scale, 0.8);
  EXPECT_EQ(p.ctf_bfactor, -20.0);
  EXPECT_TRUE(s.has_scales);
  EXPECT_EQ(p.micrograph, "m.mrc");
  EXPECT_EQ(p.half_set, 1);
  EXPECT_EQ(s.particles[1].half_set, 2);
  // Pose (0, 0, pi/2): A = R^T is RELION's rot + psi = 90; shift (2, -4) px at 3 A/px.
  ASSERT_TRUE(p.pose);
  EXPECT_LT(tessera::max_abs_diff(tessera::euler_to_matrix(p.pose->angles), Mat3{{{0, 1, 0}, {-1, 0, 0}, {0, 0, 1}}}),
            1e-7);
  EXPECT_EQ(p.pose->origin_x_A, 6.0);
  EXPECT_EQ(p.pose->origin_y_A, -12.0);
  EXPECT_EQ(s.particle_extra_labels, (std::vector<std::string>{"csUid", "rlnClassNumber", "cs_blob__sign",
                                                               "cs_ctf__tilt_A", "cs_pick_stats__template_idx"}));
  EXPECT_EQ(p.extra, (std::vector<std::string>{"18446744073709551615", "3", "-1.0", "0.5,-0.25", "9"}));
  EXPECT_EQ(s.particles[1].extra[1], "1");
}

TEST(CryosparcCs, OneSplitValueForAllIsNoSplitAndMissingFieldsDefault) {
  TempDir tmp;
  Npy npy("[('blob/path', '|S10'), ('blob/idx', '<u4'), ('blob/psize_A', '<f4'), ('alignments3D/split', '<u4')]", 2);
  for (int r = 0; r < 2; ++r) npy.put_text("s.mrcs", 10).put<std::uint32_t>(r).put<float>(2.0f).put<std::uint32_t>(0);
  const ParticleSet s = tessera::read_cryosparc_particles(tmp.write("a.cs", npy.bytes()));
  ASSERT_EQ(s.particles.size(), 2u);
  EXPECT_EQ(s.particles[0].half_set, 0);
  EXPECT_FALSE(s.has_scales);
  EXPECT_FALSE(s.particles[0].pose);
  ASSERT_EQ(s.optics.size(), 1u);
  EXPECT_EQ(s.optics[0].image_size, 0);
  EXPECT_EQ(s.optics[0].voltage_kV, 300.0);
  EXPECT_TRUE(s.particle_extra_labels.empty());
}

TEST(CryosparcCs, BadInputsNameTheFile) {
  TempDir tmp;
  const auto error_of = [&](const std::string& name, const std::string& bytes) {
    const fs::path p = tmp.write(name, bytes);
    const std::string e = input_error([&] { tessera::read_cryosparc_particles(p); });
    EXPECT_NE(e.find(p.string()), std::string::npos) << e;
    return e;
  };
  const auto one_row = [](const std::string& descr, int bytes) { return Npy(descr, 1).put_text("", bytes).bytes(); };
  const std::string missing = input_error([&] { tessera::read_cryosparc_particles(tmp / "absent.cs"); });
  EXPECT_NE(missing.find((tmp / "absent.cs").string()), std::string::npos);
  EXPECT_NE(missing.find("no such file"), std::string::npos);
  EXPECT_NE(error_of("text.cs", "uid blob/path\n1 a.mrcs\n").find("not a NumPy .npy file"), std::string::npos);
  EXPECT_NE(error_of("csdat.cs", std::string("\x95"
                                             "CSDAT") +
                                     "xxxx")
                .find("CSDAT"),
            std::string::npos);
  EXPECT_NE(error_of("big.cs", one_row("[('blob/path', '|S4'), ('blob/idx', '>u4'), ('blob/psize_A', '<f4')]", 12))
                .find("big-endian"),
            std::string::npos);
  EXPECT_NE(error_of("object.cs", one_row("[('blob/path', '|O'), ('blob/idx', '<u4'), ('blob/psize_A', '<f4')]", 16))
                .find("Python objects"),
            std::string::npos);
  EXPECT_NE(error_of("nopath.cs", one_row("[('uid', '<u8'), ('blob/idx', '<u4')]", 12)).find("has no blob/path"),
            std::string::npos);
  EXPECT_NE(error_of("plain.cs", Npy("'<f4'", 1).put<float>(1).bytes()).find("not a structured array"),
            std::string::npos);
  EXPECT_NE(error_of("short.cs", Npy(kMinimalDescr, 3).put_text("a", 10).bytes()).find("truncated"), std::string::npos);
  EXPECT_NE(error_of("pose.cs", one_row("[('blob/path', '|S4'), ('blob/idx', '<u4'), ('blob/psize_A', '<f4'), "
                                        "('alignments3D/pose', '<f4', (4,))]",
                                        28))
                .find("expected 3 numbers"),
            std::string::npos);
  EXPECT_NE(error_of("header.cs", std::string("\x93NUMPY\x01\x00\x08\x00{'descr'", 18)).find("bad .npy header"),
            std::string::npos);
  EXPECT_NE(
      error_of("psize.cs", Npy(kMinimalDescr, 1).put_text("a.mrcs", 10).put<std::uint32_t>(0).put<float>(0).bytes())
          .find("blob/psize_A 0 is not positive"),
      std::string::npos);
}

// ------------------------------------------------------------------ round trips

namespace {

/// Two optics groups, particles with every mapped value set, and extras.
ParticleSet example_set(const fs::path& base_dir, int count) {
  ParticleSet s;
  s.base_dir = base_dir;
  tessera::OpticsGroup g1, g2;
  g1.number = 1, g1.name = "opticsGroup1", g1.pixel_A = 1.25, g1.image_size = 128;
  g2.number = 2, g2.name = "opticsGroup2", g2.pixel_A = 0.85, g2.image_size = 200, g2.voltage_kV = 200, g2.cs_mm = 0.01,
  g2.amplitude_contrast = 0.07;
  s.optics = {g1, g2};
  s.particle_extra_labels = {"rlnClassNumber", "cs_blob__sign", "cs_location__center_x_frac", "rlnCoordinateX"};
  tessera::Rng rng(3);
  for (int i = 0; i < count; ++i) {
    tessera::Particle p;
    p.image = {i + 1, i % 3 == 0 ? "Stacks/a.mrcs" : "Stacks/b.mrcs"};
    p.optics_group = 1 + i % 2;
    p.micrograph = "mic" + std::to_string(i % 4) + ".mrc";
    p.defocus_u_A = 12345.6 + i, p.defocus_v_A = 12000.5 - i, p.defocus_angle_deg = -33.5 + i;
    p.phase_shift_deg = i % 5 == 0 ? 45 : 0;
    p.ctf_bfactor = -i * 2.5, p.scale = 0.75 + 0.125 * i;
    tessera::ProjectionPose pose;
    pose.angles = tessera::random_euler(rng);
    pose.origin_x_A = 2.5 * tessera::normal01(rng), pose.origin_y_A = -1.75 + 0.5 * i;
    p.pose = pose;
    p.half_set = 1 + (i * 7) % 2;
    p.extra = {std::to_string(1 + i % 3), i % 2 ? "1.0" : "-1.0", "0.25", "100"};
    s.particles.push_back(p);
  }
  return s;
}

void expect_same_pose(const tessera::Particle& a, const tessera::Particle& b, double deg, double angstrom) {
  ASSERT_TRUE(a.pose && b.pose);
  EXPECT_LT(tessera::rotation_distance_deg(tessera::euler_to_matrix(a.pose->angles),
                                           tessera::euler_to_matrix(b.pose->angles)),
            deg);
  EXPECT_NEAR(a.pose->origin_x_A, b.pose->origin_x_A, angstrom);
  EXPECT_NEAR(a.pose->origin_y_A, b.pose->origin_y_A, angstrom);
}

std::string extra(const ParticleSet& s, std::size_t i, const std::string& label) {
  const int e = s.particle_extra_index(label);
  return e < 0 ? "(absent)" : s.particles[i].extra[static_cast<std::size_t>(e)];
}

}  // namespace

TEST(CryosparcCs, SetRoundTripKeepsValues) {
  TempDir tmp;
  const ParticleSet a = example_set(tmp.path(), 12);
  tessera::write_cryosparc_particles(tmp / "a.cs", a, tmp.path());
  const ParticleSet b = tessera::read_cryosparc_particles(tmp / "a.cs", tmp.path());
  ASSERT_EQ(b.optics.size(), 2u);
  for (std::size_t g = 0; g < 2; ++g) {
    const auto &x = a.optics[g], &y = b.optics[g];
    EXPECT_EQ(std::tie(x.number, x.name, x.pixel_A, x.image_size, x.voltage_kV, x.cs_mm, x.amplitude_contrast),
              std::tie(y.number, y.name, y.pixel_A, y.image_size, y.voltage_kV, y.cs_mm, y.amplitude_contrast));
  }
  ASSERT_EQ(b.particles.size(), a.particles.size());
  for (std::size_t i = 0; i < a.particles.size(); ++i) {
    const auto &p = a.particles[i], &q = b.particles[i];
    EXPECT_EQ(p.image.to_string(), q.image.to_string());
    EXPECT_EQ(p.optics_group, q.optics_group);
    EXPECT_EQ(p.micrograph, q.micrograph);
    EXPECT_EQ(p.defocus_u_A, q.defocus_u_A);
    EXPECT_EQ(p.defocus_v_A, q.defocus_v_A);
    EXPECT_NEAR(p.defocus_angle_deg, q.defocus_angle_deg, 1e-5);  // degrees -> float32 radians -> degrees
    EXPECT_NEAR(p.phase_shift_deg, q.phase_shift_deg, 1e-5);
    EXPECT_EQ(p.ctf_bfactor, q.ctf_bfactor);
    EXPECT_EQ(p.scale, q.scale);
    EXPECT_EQ(p.half_set, q.half_set);
    expect_same_pose(p, q, 2e-5, 1e-5);  // float32 rotation vector and shift in pixels
    EXPECT_EQ(extra(a, i, "rlnClassNumber"), extra(b, i, "rlnClassNumber"));
    EXPECT_EQ(extra(a, i, "cs_blob__sign"), extra(b, i, "cs_blob__sign"));
    EXPECT_EQ(extra(b, i, "cs_location__center_x_frac"), "0.25");
    EXPECT_EQ(extra(b, i, "rlnCoordinateX"), "(absent)");  // RELION extras have no place in a .cs
    EXPECT_EQ(extra(b, i, "cs_ctf__type"), "imported");
    EXPECT_EQ(extra(b, i, "cs_ctf__tetra_A"), "0.0,0.0,0.0,0.0");
  }
  // New uids: distinct, and the same for the same set.
  std::set<std::string> uids;
  for (std::size_t i = 0; i < b.particles.size(); ++i) uids.insert(extra(b, i, "csUid"));
  EXPECT_EQ(uids.size(), b.particles.size());
  tessera::write_cryosparc_particles(tmp / "again.cs", a, tmp.path());
  EXPECT_EQ(tessera::test::read_text(tmp / "again.cs"), tessera::test::read_text(tmp / "a.cs"));
  // The set read back writes the same file: its uids, sign and defaults come from its extras.
  tessera::write_cryosparc_particles(tmp / "b.cs", b, tmp.path());
  EXPECT_EQ(tessera::test::read_text(tmp / "b.cs"), tessera::test::read_text(tmp / "a.cs"));
}

TEST(CryosparcCs, CsToStarToCsKeepsPosesToFloatPrecision) {
  TempDir tmp;
  tessera::write_cryosparc_particles(tmp / "a.cs", example_set(tmp.path(), 300), tmp.path());
  const ParticleSet a = tessera::read_cryosparc_particles(tmp / "a.cs", tmp.path());
  tessera::write_particles_star(tmp / "a.star", a, tmp.path());
  const ParticleSet s = tessera::read_particles_star(tmp / "a.star", tmp.path());
  tessera::write_cryosparc_particles(tmp / "b.cs", s, tmp.path());
  const ParticleSet b = tessera::read_cryosparc_particles(tmp / "b.cs", tmp.path());
  ASSERT_EQ(b.particles.size(), a.particles.size());
  for (std::size_t i = 0; i < a.particles.size(); ++i) {
    expect_same_pose(a.particles[i], b.particles[i], 1e-5, 1e-5);
    EXPECT_EQ(a.particles[i].extra, b.particles[i].extra);
  }
  // Every float32 came back bit for bit: the files are the same.
  EXPECT_EQ(tessera::test::read_text(tmp / "b.cs"), tessera::test::read_text(tmp / "a.cs"));
}

TEST(CryosparcCs, RelionRunDataThroughCsAndBack) {
  const auto data = tessera::test::shared_data();
  if (!data) GTEST_SKIP() << "shared test data not present";
  TempDir tmp;
  const fs::path root = *data / "relion_7DDO";
  const ParticleSet star = tessera::read_particles_star(root / "Refine3D/run_data.star");
  tessera::write_cryosparc_particles(tmp / "run_data.cs", star, root);
  const ParticleSet cs = tessera::read_cryosparc_particles(tmp / "run_data.cs", root);
  tessera::write_particles_star(tmp / "back.star", cs, root);
  const ParticleSet back = tessera::read_particles_star(tmp / "back.star", root);
  ASSERT_EQ(back.particles.size(), 1000u);
  ASSERT_EQ(back.optics.size(), 1u);
  EXPECT_EQ(back.optics[0].pixel_A, 3.0);
  EXPECT_EQ(back.optics[0].image_size, 64);
  EXPECT_EQ(back.optics[0].amplitude_contrast, 0.1);
  for (std::size_t i = 0; i < star.particles.size(); ++i) {
    const auto &p = star.particles[i], &q = back.particles[i];
    EXPECT_EQ(p.image.to_string(), q.image.to_string());
    EXPECT_TRUE(fs::exists(back.stack_path(q)));
    EXPECT_EQ(p.defocus_u_A, q.defocus_u_A);
    EXPECT_EQ(p.defocus_v_A, q.defocus_v_A);
    EXPECT_NEAR(p.defocus_angle_deg, q.defocus_angle_deg, 2e-5);
    EXPECT_EQ(p.micrograph, q.micrograph);
    EXPECT_EQ(p.half_set, q.half_set);
    expect_same_pose(p, q, 2e-5, 2e-6);
    EXPECT_EQ(extra(star, i, "rlnClassNumber"), extra(back, i, "rlnClassNumber"));
  }
  EXPECT_EQ(extra(back, 0, "rlnNormCorrection"), "(absent)");
}

TEST(CryosparcCs, WriterErrorsNameTheFile) {
  TempDir tmp;
  const fs::path out = tmp / "out.cs";
  const auto error_of = [&](const ParticleSet& s) {
    const std::string e = input_error([&] { tessera::write_cryosparc_particles(out, s, tmp.path()); });
    EXPECT_NE(e.find(out.string()), std::string::npos) << e;
    EXPECT_FALSE(fs::exists(out));
    return e;
  };
  ParticleSet s = example_set(tmp.path(), 3);
  s.particles[1].optics_group = 5;
  EXPECT_NE(error_of(s).find("optics group 5, which is not defined"), std::string::npos);
  s = example_set(tmp.path(), 3);
  s.particles[2].extra[0] = "x";
  EXPECT_NE(error_of(s).find("rlnClassNumber 'x' is not a positive integer"), std::string::npos);
  s.particles[2].extra[0] = "1";
  s.particles[2].extra[1] = "heavy";
  EXPECT_NE(error_of(s).find("blob/sign value 'heavy' is not a number"), std::string::npos);
  s = example_set(tmp.path(), 3);
  s.particle_extra_labels.push_back("csUid");
  for (auto& p : s.particles) p.extra.push_back("12");
  s.particles[0].extra.back() = "-3";
  EXPECT_NE(error_of(s).find("csUid '-3' is not an unsigned 64-bit integer"), std::string::npos);
  s = example_set(tmp.path(), 3);
  s.optics[0].image_size = 0;  // and no stack to read it from
  EXPECT_NE(error_of(s).find("image size of optics group 1 is unknown"), std::string::npos);
}
