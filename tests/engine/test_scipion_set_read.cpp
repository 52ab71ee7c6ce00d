// Scipion SetOfParticles sqlite reading.
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

}  // namespace
}  // namespace tessera::scipion_test
