// Scipion SetOfParticles sqlite reading and writing.
//
// Oracles: (1) the real set files written by pyworkflow/pwem in
// shared_data()/scipion, with the ground-truth table of its README (RELION
// STAR tokens the set was imported from, per-micrograph CTF) and
// ground_truth.json (the stored matrices as parsed doubles); (2) the fixture's
// own schema, read with plain SQL, for the written file's layout; (3) small
// files built here with SQL, and analytic matrices (identity, 90-degree tilt).
// Tolerances: matrices 1e-12 (stored values agree with the STAR-token formula
// to 1e-15, README); angles 1e-9 deg (measured 5.7e-14 deg); origins 1e-9 A
// (STAR tokens have 6 decimals, reconstruction error ~1e-15 A).
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

namespace tessera {
namespace {
namespace fs = std::filesystem;

constexpr double kMatrixTol = 1e-12, kAngleTol = 1e-9, kOriginTol = 1e-9;
const char* kImportSet = "Runs/000002_ProtImportParticles/particles.sqlite";
const char* kSubset = "Runs/000098_ProtSubSet/particles.sqlite";
const char* kStack = "Runs/000002_ProtImportParticles/extra/Particles/particles.mrcs";

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

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

double angle_diff(double a, double b) { return std::abs(std::remainder(a - b, 360.0)); }

const std::string& extra(const ParticleSet& s, const Particle& p, const std::string& label) {
  const int k = s.particle_extra_index(label);
  if (k < 0) throw std::runtime_error("no extra " + label);
  return p.extra[static_cast<std::size_t>(k)];
}

const Particle& by_id(const ParticleSet& s, long id) {
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
void expect_truth(const ParticleSet& s, const Truth& t, const nlohmann::json& gt) {
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

TEST_F(ScipionSetTest, ReadsImportSetAgainstGroundTruth) {
  NEED_DATA();
  ScipionSetInfo info;
  const ParticleSet s = read_scipion_particles(data_ / kImportSet, &info);
  EXPECT_TRUE(fs::equivalent(info.project_root, data_));
  EXPECT_EQ(info.alignment, "Projection");
  EXPECT_TRUE(info.has_ctf);
  EXPECT_FALSE(info.phase_flipped);
  EXPECT_EQ(info.pixel_A, 3.0);
  EXPECT_EQ(info.total_items, 1000);
  EXPECT_TRUE(info.dropped_labels.empty());
  ASSERT_EQ(s.particles.size(), 1000u);
  ASSERT_EQ(s.optics.size(), 1u);
  const OpticsGroup& g = s.optics[0];
  EXPECT_EQ(g.number, 1);
  EXPECT_EQ(g.name, "opticsGroup1");
  EXPECT_EQ(g.pixel_A, 3.0);
  EXPECT_EQ(g.image_size, 64);
  EXPECT_EQ(g.voltage_kV, 300.0);
  EXPECT_EQ(g.cs_mm, 2.7);
  EXPECT_EQ(g.amplitude_contrast, 0.1);
  EXPECT_EQ(s.optics_extra_labels, std::vector<std::string>{"rlnImageDimensionality"});
  EXPECT_EQ(g.extra, std::vector<std::string>{"2"});
  EXPECT_EQ(s.particle_extra_labels,
            (std::vector<std::string>{"rlnCtfMaxResolution", "rlnCtfFigureOfMerit", "rlnMicrographId", "rlnClassNumber",
                                      "rlnGroupNumber", "rlnImageId"}));
  const fs::path stack = s.stack_path(s.particles[0]);
  EXPECT_TRUE(fs::is_regular_file(stack)) << stack;
  EXPECT_TRUE(fs::equivalent(stack, data_ / kStack));

  const auto gt = nlohmann::json::parse(slurp(data_ / "ground_truth.json"));
  for (const auto& t : kTruth) expect_truth(s, t, gt);
  // Every particle, in id order: the README's per-micrograph CTF and constant columns.
  for (std::size_t i = 0; i < s.particles.size(); ++i) {
    const Particle& p = s.particles[i];
    const std::size_t mic = i / 100;
    SCOPED_TRACE("particle " + std::to_string(i + 1));
    EXPECT_EQ(extra(s, p, "rlnImageId"), std::to_string(i + 1));
    EXPECT_EQ(p.image.index, static_cast<long>(i) + 1);
    EXPECT_EQ(p.defocus_u_A, kMicCtf[mic][0]);
    EXPECT_EQ(p.defocus_v_A, kMicCtf[mic][1]);
    EXPECT_EQ(p.defocus_angle_deg, kMicCtf[mic][2]);
    EXPECT_EQ(extra(s, p, "rlnMicrographId"), std::to_string(mic + 1));
    EXPECT_EQ(extra(s, p, "rlnClassNumber"), "1");
    // rlnGroupNumber is the micrograph number (ground_truth.json: id 1000 has 10; the
    // README's "all rows _rlnGroupNumber = 1" holds for ids 1..100 only).
    EXPECT_EQ(extra(s, p, "rlnGroupNumber"), std::to_string(mic + 1));
    EXPECT_EQ(extra(s, p, "rlnCtfMaxResolution"), "0.0");
    EXPECT_EQ(p.ctf_bfactor, 0.0);
    EXPECT_EQ(p.optics_group, 1);
    EXPECT_TRUE(p.half_set == 1 || p.half_set == 2);
    EXPECT_TRUE(p.pose.has_value());
  }
}

TEST_F(ScipionSetTest, ReadsSubsetLikeTheImportRows) {
  NEED_DATA();
  ScipionSetInfo info;
  const ParticleSet sub = read_scipion_particles(data_ / kSubset, &info);
  EXPECT_TRUE(fs::equivalent(info.project_root, data_));
  ASSERT_EQ(sub.particles.size(), 100u);
  EXPECT_EQ(info.total_items, 100);
  const auto gt = nlohmann::json::parse(slurp(data_ / "ground_truth.json"));
  for (const auto& t : kTruth)
    if (t.id <= 100) expect_truth(sub, t, gt);
  // README: the subset's rows are the import's rows 1..100.
  const ParticleSet all = read_scipion_particles(data_ / kImportSet);
  for (std::size_t i = 0; i < 100; ++i) {
    const Particle &a = all.particles[i], &b = sub.particles[i];
    EXPECT_EQ(a.extra, b.extra);
    EXPECT_EQ(a.half_set, b.half_set);
    EXPECT_EQ(a.pose->angles.rot, b.pose->angles.rot);
    EXPECT_EQ(a.pose->origin_y_A, b.pose->origin_y_A);
  }
}

TEST_F(ScipionSetTest, ReadingLeavesTheFileUnchanged) {
  NEED_DATA();
  for (const char* name : {kImportSet, kSubset}) {
    const std::string before = slurp(data_ / name);
    read_scipion_particles(data_ / name);
    EXPECT_EQ(slurp(data_ / name), before) << name;
  }
  // A writable copy: same bytes after reading, and no journal or lock file left.
  const fs::path copy = dir_ / kSubset;
  fs::create_directories(copy.parent_path());
  fs::copy_file(data_ / kSubset, copy);
  const std::string before = slurp(copy);
  ScipionSetInfo info;
  read_scipion_particles(copy, &info);
  EXPECT_EQ(slurp(copy), before);
  EXPECT_EQ(listing(copy.parent_path()), std::vector<std::string>{"particles.sqlite"});
  EXPECT_EQ(info.project_root, fs::absolute(dir_).lexically_normal());  // from _mapperPath
}

TEST_F(ScipionSetTest, RoundTripKeepsEveryValue) {
  NEED_DATA();
  link_import_run();
  ScipionSetInfo info1, info2;
  const ParticleSet a = read_scipion_particles(dir_ / kImportSet, &info1);
  EXPECT_EQ(info1.project_root, fs::absolute(dir_).lexically_normal());
  const fs::path out = dir_ / "Runs/000099_Tessera/particles.sqlite";
  fs::create_directories(out.parent_path());
  write_scipion_particles(out, a, dir_);
  EXPECT_EQ(listing(out.parent_path()), std::vector<std::string>{"particles.sqlite"});  // no temporary left
  const ParticleSet b = read_scipion_particles(out, &info2);
  EXPECT_EQ(info2.project_root, info1.project_root);
  EXPECT_EQ(info2.alignment, "Projection");
  EXPECT_TRUE(info2.has_ctf);
  EXPECT_EQ(info2.pixel_A, 3.0);
  EXPECT_EQ(b.particle_extra_labels, a.particle_extra_labels);
  EXPECT_EQ(b.optics_extra_labels, a.optics_extra_labels);
  ASSERT_EQ(b.optics.size(), 1u);
  EXPECT_EQ(b.optics[0].name, a.optics[0].name);
  EXPECT_EQ(b.optics[0].image_size, 64);
  EXPECT_EQ(b.optics[0].voltage_kV, a.optics[0].voltage_kV);
  EXPECT_EQ(b.optics[0].extra, a.optics[0].extra);
  ASSERT_EQ(b.particles.size(), a.particles.size());
  for (std::size_t i = 0; i < a.particles.size(); ++i) {
    const Particle &p = a.particles[i], &q = b.particles[i];
    SCOPED_TRACE("particle " + std::to_string(i + 1));
    EXPECT_EQ(q.image.path, p.image.path);
    EXPECT_EQ(q.image.index, p.image.index);
    EXPECT_EQ(q.defocus_u_A, p.defocus_u_A);
    EXPECT_EQ(q.defocus_v_A, p.defocus_v_A);
    EXPECT_EQ(q.defocus_angle_deg, p.defocus_angle_deg);
    EXPECT_EQ(q.phase_shift_deg, p.phase_shift_deg);
    EXPECT_EQ(q.half_set, p.half_set);
    EXPECT_EQ(q.extra, p.extra);
    ASSERT_TRUE(q.pose.has_value());
    EXPECT_LT(angle_diff(q.pose->angles.rot, p.pose->angles.rot), kAngleTol);
    EXPECT_LT(angle_diff(q.pose->angles.tilt, p.pose->angles.tilt), kAngleTol);
    EXPECT_LT(angle_diff(q.pose->angles.psi, p.pose->angles.psi), kAngleTol);
    EXPECT_NEAR(q.pose->origin_x_A, p.pose->origin_x_A, kOriginTol);
    EXPECT_NEAR(q.pose->origin_y_A, p.pose->origin_y_A, kOriginTol);
  }
  // The stored matrix text: Python json.dumps style, values within 1e-12 of the fixture's.
  Sql db(out);
  const std::string col = db.one("SELECT column_name FROM Classes WHERE label_property = '_transform._matrix'");
  const std::string text = db.one("SELECT " + col + " FROM Objects WHERE id = 1");
  EXPECT_TRUE(std::regex_match(text, std::regex(R"(\[(\[[-0-9.e]+, [-0-9.e]+, [-0-9.e]+, [-0-9.e]+\](, )?){4}\])")))
      << text;
  EXPECT_NE(text.find("[0.0, 0.0, 0.0, 1.0]]"), std::string::npos) << text;
  const auto gt = nlohmann::json::parse(slurp(data_ / "ground_truth.json"));
  const auto m = nlohmann::json::parse(text);
  for (std::size_t i = 0; i < 4; ++i)
    for (std::size_t k = 0; k < 4; ++k)
      EXPECT_NEAR(m[i][k].get<double>(), gt["particles"][0]["sqlite_matrix_parsed"][i][k].get<double>(), kMatrixTol);
}

TEST_F(ScipionSetTest, WrittenSchemaMatchesTheFixture) {
  NEED_DATA();
  link_import_run();
  const fs::path out = dir_ / "Runs/000099_Tessera/particles.sqlite";
  fs::create_directories(out.parent_path());
  write_scipion_particles(out, read_scipion_particles(dir_ / kImportSet), dir_);
  Sql fix(data_ / kImportSet), got(out);
  const std::string tables = "SELECT name, name FROM sqlite_master WHERE type='table'";
  EXPECT_EQ(got.map(tables), fix.map(tables));
  const std::string indexes = "SELECT name, type FROM sqlite_master WHERE name LIKE 'index__%'";
  EXPECT_EQ(got.map(indexes), fix.map(indexes));
  EXPECT_EQ(got.one("PRAGMA user_version"), fix.one("PRAGMA user_version"));
  // Properties: the same keys; the same values except the set's own path and size
  // (opticsGroupInfo differs in layout only: its values are checked by the round trip).
  const auto pf = fix.map("SELECT key, value FROM Properties"), pg = got.map("SELECT key, value FROM Properties");
  ASSERT_EQ(pg.size(), pf.size());
  for (const auto& [key, value] : pf) {
    ASSERT_TRUE(pg.count(key)) << key;
    const auto want =
        key == "_mapperPath" ? std::optional<std::string>("Runs/000099_Tessera/particles.sqlite, ") : value;
    if (key != "_acquisition.opticsGroupInfo") {
      EXPECT_EQ(pg.at(key), want) << key;
    }
  }
  // Classes: every fixture label except the two all-zero RELION extras the writer leaves out
  // (_rlnCtfBfactor, _rlnPhaseShift: Particle fields at their default), with the same class,
  // declared column type, and stored type in row 1.
  const auto cls_f = fix.query("SELECT label_property, column_name, class_name FROM Classes ORDER BY id");
  const auto cls_g = got.query("SELECT label_property, column_name, class_name FROM Classes ORDER BY id");
  std::map<std::string, std::vector<std::optional<std::string>>> by_label;
  for (const auto& r : cls_g) by_label[*r[0]] = r;
  const auto decl = [](Sql& db) { return db.map("SELECT name, type FROM pragma_table_info('Objects')"); };
  const auto decl_f = decl(fix), decl_g = decl(got);
  for (const auto& r : cls_f) {
    const std::string label = *r[0];
    if (label == "_rlnCtfBfactor" || label == "_rlnPhaseShift") continue;
    SCOPED_TRACE(label);
    ASSERT_TRUE(by_label.count(label));
    const auto& w = by_label[label];
    EXPECT_EQ(w[2], r[2]);
    if (label == "self") continue;
    EXPECT_EQ(decl_g.at(*w[1]), decl_f.at(*r[1]));
    EXPECT_EQ(got.one("SELECT typeof(" + *w[1] + ") FROM Objects WHERE id = 1"),
              fix.one("SELECT typeof(" + *r[1] + ") FROM Objects WHERE id = 1"));
    if (label != "_acquisition.opticsGroupInfo" && label != "_transform._matrix") {
      EXPECT_EQ(got.one("SELECT group_concat(" + *w[1] + ") FROM Objects"),
                fix.one("SELECT group_concat(" + *r[1] + ") FROM Objects"));
    }
  }
  EXPECT_EQ(cls_g.size(), cls_f.size() - 2);
  // pyworkflow reads Objects columns by position in Classes order (SqliteFlatMapper._objColumns).
  const auto cols = got.query("SELECT name FROM pragma_table_info('Objects') ORDER BY cid");
  ASSERT_EQ(cols.size(), cls_g.size() + 4);  // id, enabled, label, comment, creation; minus 'self'
  for (std::size_t k = 1; k < cls_g.size(); ++k) EXPECT_EQ(cols[k + 4][0], cls_g[k][1]);
  EXPECT_EQ(got.one("SELECT count(*) FROM Objects WHERE enabled = 1 AND label = '' AND comment = ''"), "1000");
  EXPECT_TRUE(std::regex_match(got.one("SELECT creation FROM Objects WHERE id = 7"),
                               std::regex(R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")));
}

ParticleSet synthetic_set(const fs::path& base_dir) {
  ParticleSet s;
  s.base_dir = base_dir;
  OpticsGroup g1, g2;
  g1.number = 1, g1.name = "og1", g1.pixel_A = 1.5, g1.image_size = 128, g1.voltage_kV = 300, g1.extra = {"2"};
  g2.number = 2, g2.name = "og2", g2.pixel_A = 1.5, g2.image_size = 128, g2.voltage_kV = 200, g2.cs_mm = 0.01,
  g2.amplitude_contrast = 0.07, g2.extra = {"2"};
  s.optics = {g1, g2};
  s.optics_extra_labels = {"rlnImageDimensionality"};
  s.particle_extra_labels = {"rlnImageId",   "rlnCoordinateX",           "rlnCoordinateY", "rlnMicrographId",
                             "rlnGroupName", "rlnLogLikeliContribution", "rlnClassNumber"};
  const char* ids[] = {"30", "10", "20"};
  for (int i = 0; i < 3; ++i) {
    Particle p;
    p.image = {i + 1, "Runs/000005_Extract/stack.mrcs"};
    p.optics_group = i == 2 ? 2 : 1;
    p.micrograph = "Runs/000003_Mics/mic" + std::to_string(i) + ".mrc";
    p.defocus_u_A = 15000.25 + i, p.defocus_v_A = 14000.5, p.defocus_angle_deg = 33.3 * i;
    p.phase_shift_deg = 10.0 * i, p.ctf_bfactor = -25.0 * i, p.scale = 1.0 - 0.1 * i, p.half_set = 1 + i % 2;
    p.pose = ProjectionPose{{-170.25 + 100 * i, 10.5 + 60 * i, 3.75 - 90 * i}, 1.25 * i, -2.5, 0.75};
    p.extra = {ids[i],
               std::to_string(100 + i),
               std::to_string(200 + 7 * i),
               std::to_string(4 + i),
               "group " + std::to_string(i),
               "12345.5",
               "3"};
    s.particles.push_back(p);
  }
  // Analytic matrices: identity rotation with origin (3, -6, 0) A -> shift (2, -4, 0) px;
  // tilt 90 about Y: A = [[0,0,-1],[0,1,0],[1,0,0]], M = A^T.
  s.particles[1].pose = ProjectionPose{{0, 0, 0}, 3.0, -6.0, 0};
  s.particles[2].pose = ProjectionPose{{0, 90, 0}, 0, 0, 0};
  s.particles[2].image.path = "/elsewhere/stack.mrcs";
  return s;
}

TEST_F(ScipionSetTest, SyntheticSetRoundTrip) {
  const ParticleSet s = synthetic_set(dir_);
  const fs::path out = dir_ / "Runs/000007_Tessera/particles.sqlite";
  fs::create_directories(out.parent_path());
  write_scipion_particles(out, s, dir_);
  ScipionSetInfo info;
  const ParticleSet r = read_scipion_particles(out, &info);
  EXPECT_EQ(info.project_root, fs::absolute(dir_).lexically_normal());
  EXPECT_EQ(info.alignment, "Projection");
  EXPECT_TRUE(info.dropped_labels.empty());
  ASSERT_EQ(r.optics.size(), 2u);
  for (std::size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(r.optics[k].number, s.optics[k].number);
    EXPECT_EQ(r.optics[k].name, s.optics[k].name);
    EXPECT_EQ(r.optics[k].voltage_kV, s.optics[k].voltage_kV);
    EXPECT_EQ(r.optics[k].cs_mm, s.optics[k].cs_mm);
    EXPECT_EQ(r.optics[k].amplitude_contrast, s.optics[k].amplitude_contrast);
    EXPECT_EQ(r.optics[k].pixel_A, 1.5);
    EXPECT_EQ(r.optics[k].image_size, 128);
  }
  // Coordinates and micrograph id go through _coordinate and _micId, class number through _classId.
  EXPECT_EQ(r.particle_extra_labels,
            (std::vector<std::string>{"rlnCoordinateX", "rlnCoordinateY", "rlnMicrographId", "rlnClassNumber",
                                      "rlnGroupName", "rlnLogLikeliContribution", "rlnImageId"}));
  ASSERT_EQ(r.particles.size(), 3u);
  const std::size_t order[] = {1, 2, 0};  // read back in id order: 10, 20, 30
  for (std::size_t j = 0; j < 3; ++j) {
    const Particle &p = s.particles[order[j]], &q = r.particles[j];
    SCOPED_TRACE("id " + p.extra[0]);
    EXPECT_EQ(extra(r, q, "rlnImageId"), p.extra[0]);
    EXPECT_EQ(extra(r, q, "rlnCoordinateX"), p.extra[1]);
    EXPECT_EQ(extra(r, q, "rlnCoordinateY"), p.extra[2]);
    EXPECT_EQ(extra(r, q, "rlnMicrographId"), p.extra[3]);
    EXPECT_EQ(extra(r, q, "rlnGroupName"), p.extra[4]);
    EXPECT_EQ(extra(r, q, "rlnLogLikeliContribution"), p.extra[5]);
    EXPECT_EQ(extra(r, q, "rlnClassNumber"), p.extra[6]);
    EXPECT_EQ(q.image.path, p.image.path);
    EXPECT_EQ(q.image.index, p.image.index);
    EXPECT_EQ(q.optics_group, p.optics_group);
    EXPECT_EQ(q.micrograph, p.micrograph);
    EXPECT_EQ(q.defocus_u_A, p.defocus_u_A);
    EXPECT_EQ(q.defocus_v_A, p.defocus_v_A);
    EXPECT_EQ(q.defocus_angle_deg, p.defocus_angle_deg);
    EXPECT_EQ(q.phase_shift_deg, p.phase_shift_deg);
    EXPECT_EQ(q.ctf_bfactor, p.ctf_bfactor);
    EXPECT_EQ(q.scale, p.scale);
    EXPECT_EQ(q.half_set, p.half_set);
    ASSERT_TRUE(q.pose.has_value());
    const Mat3 ap = euler_to_matrix(p.pose->angles), aq = euler_to_matrix(q.pose->angles);
    EXPECT_LT(max_abs_diff(ap, aq), kMatrixTol);  // tilt 0 sets psi to 0: compare rotations
    EXPECT_NEAR(q.pose->origin_x_A, p.pose->origin_x_A, kOriginTol);
    EXPECT_NEAR(q.pose->origin_y_A, p.pose->origin_y_A, kOriginTol);
    EXPECT_NEAR(q.pose->origin_z_A, p.pose->origin_z_A, kOriginTol);
  }
  Sql db(out);
  const auto col = db.map("SELECT label_property, column_name FROM Classes");
  const auto matrix = [&](int id) {
    return nlohmann::json::parse(
        db.one("SELECT " + *col.at("_transform._matrix") + " FROM Objects WHERE id = " + std::to_string(id)));
  };
  const double m10[4][4] = {{1, 0, 0, 2}, {0, 1, 0, -4}, {0, 0, 1, 0}, {0, 0, 0, 1}};
  const double m20[4][4] = {{0, 0, 1, 0}, {0, 1, 0, 0}, {-1, 0, 0, 0}, {0, 0, 0, 1}};
  for (std::size_t i = 0; i < 4; ++i)
    for (std::size_t k = 0; k < 4; ++k) {
      EXPECT_NEAR(matrix(10)[i][k].get<double>(), m10[i][k], 1e-15);
      EXPECT_NEAR(matrix(20)[i][k].get<double>(), m20[i][k], 1e-15);
    }
  EXPECT_EQ(db.one("SELECT class_name FROM Classes WHERE label_property = '_rlnLogLikeliContribution'"), "Float");
  EXPECT_EQ(db.one("SELECT class_name FROM Classes WHERE label_property = '_rlnGroupName'"), "String");
  EXPECT_EQ(db.one("SELECT class_name FROM Classes WHERE label_property = '_rlnOpticsGroup'"), "Integer");
  EXPECT_EQ(db.one("SELECT " + *col.at("_coordinate._x") + " FROM Objects WHERE id = 30"), "100");
  EXPECT_NEAR(std::stod(db.one("SELECT " + *col.at("_ctfModel._defocusRatio") + " FROM Objects WHERE id = 10")),
              15001.25 / 14000.5, 1e-13);  // U/V (the CLI-style text has 15 digits)
  EXPECT_EQ(db.one("SELECT " + *col.at("_filename") + " FROM Objects WHERE id = 20"),
            "/elsewhere/stack.mrcs");  // outside the project: absolute
}

TEST_F(ScipionSetTest, PartialPosesAreWrittenWithoutAlignment) {
  ParticleSet s = synthetic_set(dir_);
  s.particles[0].pose.reset();
  const fs::path out = dir_ / "Runs/particles.sqlite";
  write_scipion_particles(out, s, dir_);
  ScipionSetInfo info;
  const ParticleSet r = read_scipion_particles(out, &info);
  EXPECT_EQ(info.alignment, "None");
  for (const auto& p : r.particles) EXPECT_FALSE(p.pose.has_value());
  EXPECT_EQ(Sql(out).one("SELECT count(*) FROM Classes WHERE label_property LIKE '_transform%'"), "0");
}

/// A small set file built with SQL: Classes rows (label, column, class, SQL type), Properties, Objects values.
struct Handmade {
  std::vector<std::array<std::string, 4>> classes{{"self", "c00", "Particle", ""},
                                                  {"_filename", "c01", "String", "TEXT"},
                                                  {"_samplingRate", "c02", "Float", "REAL"},
                                                  {"_index", "c03", "Integer", "INTEGER"}};
  std::vector<std::pair<std::string, std::string>> props{{"self", "'SetOfParticles'"},
                                                         {"_samplingRate", "'1.5'"},
                                                         {"_hasCtf", "'False'"},
                                                         {"_alignment", "'None'"},
                                                         {"_acquisition._voltage", "'200.0'"},
                                                         {"_acquisition._sphericalAberration", "'2.7'"},
                                                         {"_acquisition._amplitudeContrast", "'0.07'"}};
  std::vector<std::string> rows{"1, 1, '', '', NULL, 'Runs/stack.mrcs', 1.5, 1",
                                "2, 1, '', '', NULL, 'Runs/stack.mrcs', 1.5, 2"};
  void write(const fs::path& p) const {
    Sql db(p, true);
    db.query("BEGIN");
    db.query("CREATE TABLE Properties (key TEXT UNIQUE, value TEXT)");
    db.query(
        "CREATE TABLE Classes (id INTEGER PRIMARY KEY AUTOINCREMENT, label_property TEXT UNIQUE, "
        "column_name TEXT UNIQUE, class_name TEXT)");
    std::string create =
        "CREATE TABLE Objects (id INTEGER PRIMARY KEY, enabled INTEGER, label TEXT, comment TEXT, creation DATE";
    for (const auto& c : classes) {
      db.query("INSERT INTO Classes (label_property, column_name, class_name) VALUES ('" + c[0] + "', '" + c[1] +
               "', '" + c[2] + "')");
      if (c[0] != "self") create += ", " + c[1] + " " + c[3];
    }
    db.query(create + ")");
    for (const auto& [k, v] : props) db.query("INSERT INTO Properties VALUES ('" + k + "', " + v + ")");
    for (const auto& r : rows) db.query("INSERT INTO Objects VALUES (" + r + ")");
    db.query("COMMIT");
  }
};

TEST_F(ScipionSetTest, ColumnsAreFoundByLabelNotPosition) {
  Handmade h;  // _filename in c01, _index in c03 (the fixture has them the other way round)
  h.classes.insert(h.classes.end(), {{"_xmipp_zScore", "c04", "Float", "REAL"},
                                     {"_coordinate", "c05", "Coordinate", "TEXT"},
                                     {"_coordinate._x", "c06", "Integer", "INTEGER"},
                                     {"_coordinate._micName", "c07", "String", "TEXT"},
                                     {"_other", "c08", "SomeObject", "TEXT"},
                                     {"_other._value", "c09", "Float", "REAL"}});
  h.rows = {"7, 1, '', '', NULL, 'Runs/stack.mrcs', 1.5, 3, 0.25, NULL, 10, 'mic7.mrc', NULL, 1.0",
            "8, 0, '', '', NULL, 'Runs/stack.mrcs', 1.5, 4, 0.5, NULL, 11, 'mic8.mrc', NULL, 2.0",
            "9, 1, '', '', NULL, 'Runs/stack.mrcs', 1.5, 5, 1e-05, NULL, 12, 'mic9.mrc', NULL, 3.0"};
  const fs::path f = dir_ / "Runs/000004_Hand/particles.sqlite";  // no _mapperPath: root = parent of Runs
  fs::create_directories(f.parent_path());
  h.write(f);
  ScipionSetInfo info;
  const ParticleSet s = read_scipion_particles(f, &info);
  EXPECT_EQ(info.project_root, fs::absolute(dir_).lexically_normal());
  EXPECT_EQ(info.alignment, "None");
  EXPECT_FALSE(info.has_ctf);
  EXPECT_EQ(info.total_items, 3);
  EXPECT_EQ(info.dropped_labels, std::vector<std::string>{"_other._value"});
  ASSERT_EQ(s.optics.size(), 1u);
  EXPECT_EQ(s.optics[0].voltage_kV, 200.0);
  EXPECT_EQ(s.optics[0].amplitude_contrast, 0.07);
  EXPECT_EQ(s.optics[0].pixel_A, 1.5);
  EXPECT_EQ(s.optics[0].image_size, 0);
  EXPECT_EQ(s.particle_extra_labels, (std::vector<std::string>{"xmipp_zScore", "rlnCoordinateX", "rlnImageId"}));
  ASSERT_EQ(s.particles.size(), 2u);  // id 8 is disabled
  EXPECT_EQ(s.particles[0].image.index, 3);
  EXPECT_EQ(s.particles[1].image.index, 5);
  EXPECT_EQ(s.particles[0].image.path, "Runs/stack.mrcs");
  EXPECT_EQ(s.particles[1].micrograph, "mic9.mrc");
  EXPECT_EQ(s.particles[1].extra, (std::vector<std::string>{"1e-05", "12", "9"}));
  EXPECT_FALSE(s.particles[0].pose.has_value());
  EXPECT_EQ(s.particles[0].defocus_u_A, 0.0);
}

/// Runs f, expects an InputError whose one-line message names `file` and contains `what`.
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

TEST_F(ScipionSetTest, BadFilesAreInputErrors) {
  const fs::path missing = dir_ / "missing.sqlite";
  expect_input_error([&] { read_scipion_particles(missing); }, missing, "no such file");
  const fs::path text = dir_ / "text.sqlite";
  std::ofstream(text) << std::string(300, 'x');
  expect_input_error([&] { read_scipion_particles(text); }, text, "not an SQLite database");
  const fs::path empty = dir_ / "props.sqlite";
  Sql(empty, true).query("CREATE TABLE Properties (key TEXT, value TEXT)");
  expect_input_error([&] { read_scipion_particles(empty); }, empty, "no Classes table");

  Handmade no_filename;
  no_filename.classes.erase(no_filename.classes.begin() + 1);
  no_filename.rows = {"1, 1, '', '', NULL, 1.5, 1"};
  const fs::path nf = dir_ / "Runs/nofilename.sqlite";
  no_filename.write(nf);
  expect_input_error([&] { read_scipion_particles(nf); }, nf, "no _filename attribute");

  const char* bad_matrices[][2] = {{"not json", "is not JSON"},
                                   {"[[1, 0], [0, 1]]", "not a 4x4"},
                                   {"[[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]]", "not a rotation"},
                                   {"[[-1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1]]", "mirror"},
                                   {"[[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0.5, 1]]", "last row"}};
  int n = 0;
  for (const auto& [matrix, what] : bad_matrices) {
    Handmade h;
    h.classes.insert(h.classes.end(),
                     {{"_transform", "c04", "Transform", "TEXT"}, {"_transform._matrix", "c05", "Matrix", "TEXT"}});
    h.props[3].second = "'Projection'";
    h.rows = {std::string("3, 1, '', '', NULL, 'Runs/stack.mrcs', 1.5, 1, NULL, '") + matrix + "'"};
    const fs::path f = dir_ / ("Runs/matrix" + std::to_string(n++) + ".sqlite");
    h.write(f);
    expect_input_error([&] { read_scipion_particles(f); }, f, what);
    expect_input_error([&] { read_scipion_particles(f); }, f, "item id 3: _transform._matrix");
  }
  if (!data_.empty()) {
    const fs::path mics = data_ / "Runs/000002_ProtImportParticles/micrographs.sqlite";
    expect_input_error([&] { read_scipion_particles(mics); }, mics, "its items are Micrograph");
  }
}

TEST_F(ScipionSetTest, WritingRefusesBadTargetsAndLeavesNothing) {
  const ParticleSet s = synthetic_set(dir_);
  const fs::path out = dir_ / "Runs/particles.sqlite";
  write_scipion_particles(out, s, dir_);
  const std::string before = slurp(out);
  // The file a set was read from (or any existing file) is never replaced.
  const ParticleSet again = read_scipion_particles(out);
  expect_input_error([&] { write_scipion_particles(out, again, dir_); }, out, "already exists");
  EXPECT_EQ(slurp(out), before);
  const fs::path outside = dir_ / "elsewhere.sqlite";
  expect_input_error([&] { write_scipion_particles(outside, s, dir_ / "Runs/project"); }, outside,
                     "not inside the Scipion project folder");
  ParticleSet dup = s;
  dup.particles[1].extra[0] = "30";
  const fs::path d = dir_ / "Runs/dup.sqlite";
  expect_input_error([&] { write_scipion_particles(d, dup, dir_); }, d, "rlnImageId '30'");
  ParticleSet pixels = s;
  pixels.optics[1].pixel_A = 1.6;
  expect_input_error([&] { write_scipion_particles(d, pixels, dir_); }, d, "one pixel size");
  ParticleSet group = s;
  group.particles[0].optics_group = 9;
  expect_input_error([&] { write_scipion_particles(d, group, dir_); }, d, "optics group 9");
  EXPECT_EQ(listing(dir_ / "Runs"), std::vector<std::string>{"particles.sqlite"});  // no temporaries left
}

}  // namespace
}  // namespace tessera
