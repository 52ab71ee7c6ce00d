#pragma once
// Shared by test_scipion_set_read.cpp and test_scipion_set_write.cpp: the real
// pwem set files, their ground truth, and SQL access for checking written files.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "tessera/error.hpp"
#include "tessera/geometry.hpp"
#include "tessera/scipion_set.hpp"
#include "test_data.hpp"

namespace tessera::scipion_test {
namespace fs = std::filesystem;

constexpr double kMatrixTol = 1e-12, kAngleTol = 1e-9, kOriginTol = 1e-9;
inline const char* const kImportSet = "Runs/000002_ProtImportParticles/particles.sqlite";
inline const char* const kSubset = "Runs/000098_ProtSubSet/particles.sqlite";
inline const char* const kStack = "Runs/000002_ProtImportParticles/extra/Particles/particles.mrcs";

// README "Ground truth for tests": STAR tokens, shifts in px, CTF, _micId, _rlnRandomSubset.
struct Truth {
  long id;
  double rot, tilt, psi, ox_A, oy_A, sx_px, sy_px, du, dv, da;
  int mic, subset;
};
const Truth kTruth[] = {
    {1, -74.75501, 151.743895, -49.54711, 2.114738, 4.146488, 0.7049126666666666, 1.3821626666666667, 22252.3, 21699.15,
     177.18, 1, 2},
    {2, 159.484624, 94.295508, 161.462447, -2.53076, 0.469238, -0.8435866666666666, 0.15641266666666667, 22252.3,
     21699.15, 177.18, 1, 1},
    {3, -50.49862, 135.297941, -18.39068, -7.85351, 0.469238, -2.617836666666667, 0.15641266666666667, 22252.3,
     21699.15, 177.18, 1, 2},
    {100, -14.91574, 131.876371, 86.970243, -3.20801, 1.146488, -1.0693366666666666, 0.38216266666666665, 22252.3,
     21699.15, 177.18, 1, 2},
    {1000, 99.774512, 87.152552, 34.411290, 1.146488, 5.114738, 0.38216266666666665, 1.7049126666666667, 12173.71,
     11870.27, 9.28, 10, 2},
};
// README: per micrograph k (ids 100(k-1)+1 .. 100k) defocus U / V / angle.
const double kMicCtf[10][3] = {{22252.3, 21699.15, 177.18}, {14120.28, 13812.51, 40.2},  {18239.05, 17864.9, 87.84},
                               {18244.51, 18030.01, 26.91}, {19039.61, 18873.86, 63.0},  {10832.29, 10530.38, 129.12},
                               {12529.28, 12352.69, 31.4},  {12417.88, 12211.7, 104.64}, {14530.77, 14259.12, 75.01},
                               {12173.71, 11870.27, 9.28}};

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

inline double angle_diff(double a, double b) { return std::abs(std::remainder(a - b, 360.0)); }

inline const std::string& extra(const ParticleSet& s, const Particle& p, const std::string& label) {
  const int k = s.particle_extra_index(label);
  if (k < 0) throw std::runtime_error("no extra " + label);
  return p.extra[static_cast<std::size_t>(k)];
}

inline const Particle& by_id(const ParticleSet& s, long id) {
  for (const auto& p : s.particles)
    if (extra(s, p, "rlnImageId") == std::to_string(id)) return p;
  throw std::runtime_error("no particle id " + std::to_string(id));
}

/// Plain SQL on a test file; every call checked.
class Sql {
 public:
  explicit Sql(const fs::path& p, bool write = false) {
    const int flags = write ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
    if (sqlite3_open_v2(p.c_str(), &db_, flags, nullptr) != SQLITE_OK) throw std::runtime_error(sqlite3_errmsg(db_));
  }
  ~Sql() { sqlite3_close(db_); }
  Sql(const Sql&) = delete;
  Sql& operator=(const Sql&) = delete;
  /// Rows of text values; NULL as std::nullopt.
  std::vector<std::vector<std::optional<std::string>>> query(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK)
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    std::vector<std::vector<std::optional<std::string>>> rows;
    int rc = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      auto& row = rows.emplace_back();
      for (int c = 0; c < sqlite3_column_count(s); ++c) {
        const auto* t = sqlite3_column_text(s, c);
        row.push_back(t ? std::optional<std::string>(reinterpret_cast<const char*>(t)) : std::nullopt);
      }
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    return rows;
  }
  std::string one(const std::string& sql) { return query(sql).at(0).at(0).value_or("NULL"); }
  std::map<std::string, std::optional<std::string>> map(const std::string& sql) {
    std::map<std::string, std::optional<std::string>> m;
    for (auto& r : query(sql)) m[*r.at(0)] = r.at(1);
    return m;
  }

 private:
  sqlite3* db_ = nullptr;
};

class ScipionSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tessera_test_scipion_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "Runs");
    if (const auto d = test::shared_data()) data_ = *d / "scipion";
  }
  void TearDown() override { fs::remove_all(dir_); }
  /// A project in dir_ whose import run is a link to the fixture's (images stay project-relative).
  void link_import_run() {
    fs::create_directory_symlink(data_ / "Runs/000002_ProtImportParticles", dir_ / "Runs/000002_ProtImportParticles");
  }
  std::vector<std::string> listing(const fs::path& d) const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(d)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  fs::path dir_, data_;
};

#define NEED_DATA() \
  if (data_.empty()) GTEST_SKIP() << "shared test data not present"

/// Checks one particle of a fixture set against the README table and ground_truth.json.
inline void expect_truth(const ParticleSet& s, const Truth& t, const nlohmann::json& gt) {
  SCOPED_TRACE("id " + std::to_string(t.id));
  const Particle& p = by_id(s, t.id);
  EXPECT_EQ(p.image.index, t.id);
  EXPECT_EQ(p.image.path, kStack);
  ASSERT_TRUE(p.pose.has_value());
  EXPECT_LT(angle_diff(p.pose->angles.rot, t.rot), kAngleTol);
  EXPECT_LT(angle_diff(p.pose->angles.tilt, t.tilt), kAngleTol);
  EXPECT_LT(angle_diff(p.pose->angles.psi, t.psi), kAngleTol);
  EXPECT_NEAR(p.pose->origin_x_A, t.ox_A, kOriginTol);
  EXPECT_NEAR(p.pose->origin_y_A, t.oy_A, kOriginTol);
  EXPECT_NEAR(p.pose->origin_x_A / 3.0, t.sx_px, kOriginTol);
  EXPECT_NEAR(p.pose->origin_y_A / 3.0, t.sy_px, kOriginTol);
  EXPECT_NEAR(p.pose->origin_z_A, 0.0, kOriginTol);
  EXPECT_EQ(p.defocus_u_A, t.du);  // the stored doubles are the decimal values: exact
  EXPECT_EQ(p.defocus_v_A, t.dv);
  EXPECT_EQ(p.defocus_angle_deg, t.da);
  EXPECT_EQ(p.phase_shift_deg, 0.0);
  EXPECT_EQ(extra(s, p, "rlnMicrographId"), std::to_string(t.mic));
  EXPECT_EQ(p.half_set, t.subset);
  bool found = false;
  for (const auto& g : gt["particles"]) {
    if (g["id"].get<long>() != t.id) continue;
    found = true;
    const Mat4 m = pose_to_scipion_matrix(*p.pose, 3.0);
    for (std::size_t i = 0; i < 4; ++i)
      for (std::size_t k = 0; k < 4; ++k)
        EXPECT_NEAR(m[i][k], g["sqlite_matrix_parsed"][i][k].get<double>(), kMatrixTol) << i << "," << k;
  }
  EXPECT_TRUE(found);
}

template <class F>
void expect_input_error(F f, const fs::path& file, const std::string& what) {
  try {
    f();
    ADD_FAILURE() << "no InputError; expected: " << what;
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(file.filename().string()), std::string::npos) << m;
    EXPECT_NE(m.find(what), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

}  // namespace tessera::scipion_test
