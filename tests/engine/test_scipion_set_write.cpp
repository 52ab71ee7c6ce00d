// Scipion SetOfParticles sqlite writing.
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
#include "scipion_set_fixture.hpp"

namespace tessera::scipion_test {
namespace {

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
  g2.beam_tilt_x_mrad = 0.5, g2.beam_tilt_y_mrad = -0.3, g2.odd_zernike = {0.1, -0.2, 0.3, 0, 0, 0.05};
  g2.even_zernike = {0, 0, 0, 0, 1.5e-3}, g2.mag_matrix = {1.01, 0.002, 0.002, 0.99};
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
    // The aberrations travel in opticsGroupInfo's STAR text (optics_aberrations.hpp).
    EXPECT_EQ(r.optics[k].beam_tilt_x_mrad, s.optics[k].beam_tilt_x_mrad);
    EXPECT_EQ(r.optics[k].beam_tilt_y_mrad, s.optics[k].beam_tilt_y_mrad);
    EXPECT_EQ(r.optics[k].odd_zernike, k == 0 ? std::vector<double>(6, 0.0) : s.optics[k].odd_zernike);
    EXPECT_EQ(r.optics[k].even_zernike, k == 0 ? std::vector<double>(5, 0.0) : s.optics[k].even_zernike);
    EXPECT_EQ(r.optics[k].mag_matrix, s.optics[k].mag_matrix);
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
}  // namespace tessera::scipion_test
