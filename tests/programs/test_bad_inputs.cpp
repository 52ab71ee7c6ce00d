// The bad-input matrix (issue 9): every program, given one bad input file or
// parameter, exits with 2 and one line "ERROR: ..." on stderr naming the file
// or the parameter, leaves no output folder behind (or, when --out was there
// already, exactly what it held) and changes none of its inputs.
//
// One row per kind of bad input, each made from one small valid set that
// tessera_simulate makes once per test program (box 32, 24 particles). A bad
// value inside one particle image is seen only while the work runs, after the
// run folder was made: those rows check that the folder says "failed" and
// registers no outputs instead.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "run_programs.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/scipion_set.hpp"
#include "tessera/star.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using test::RunResult;
using test::TempDir;

namespace {

constexpr int kBox = 32;
constexpr double kPixelA = 3.0;

// The valid inputs every row starts from, made once per process.
struct Valid {
  TempDir root;  // the valid set in root/valid, each row's inputs in root/<row>
  fs::path dir, star, sqlite, stack, truth, mask, keep_mask, half_a, half_b;
};

// Two half maps: the truth plus independent white noise, so their FSC falls
// below 0.8 before Nyquist as real half maps do.
void write_half_maps(Valid& v) {
  const RealGrid truth = read_mrc(v.truth).data;
  std::mt19937 rng(5);
  const float peak = *std::max_element(truth.values().begin(), truth.values().end());
  std::normal_distribution<float> noise(0.0f, 0.3f * peak);
  for (const fs::path& p : {v.half_a, v.half_b}) {
    RealGrid h = truth;
    for (float& x : h.values()) x += noise(rng);
    write_mrc(p, h, kPixelA);
  }
}

// The mask of the truth cut to the half box x < 16: the region subtract keeps.
void write_keep_mask(Valid& v) {
  RealGrid m = read_mrc(v.mask).data;
  for (int z = 0; z < kBox; ++z)
    for (int y = 0; y < kBox; ++y)
      for (int x = kBox / 2; x < kBox; ++x) m(x, y, z) = 0.0f;
  write_mrc(v.keep_mask, m, kPixelA);
}

void make_valid(Valid& s) {
  s.dir = s.root / "valid";
  const RunResult r =
      test::run_program(s.root, "simulate",
                        {"--out", s.dir.string(), "--count", "24", "--phantom-box-px", std::to_string(kBox), "--snr",
                         "0.5", "--scale-sigma", "0.1", "--seed", "7", "--threads", "1", "--quiet"});
  if (r.exit_code != 0) throw std::runtime_error("tessera_simulate failed: " + r.err);
  s.star = s.dir / "particles.star";
  s.sqlite = s.dir / "particles.sqlite";
  s.stack = s.dir / "particles.mrcs";
  s.truth = s.dir / "truth.mrc";
  s.mask = s.dir / "truth_mask.mrc";
  s.keep_mask = s.root / "keep_mask.mrc";
  s.half_a = s.root / "half_a.mrc";
  s.half_b = s.root / "half_b.mrc";
  write_half_maps(s);
  write_keep_mask(s);
}

const Valid& valid() {
  static Valid v;
  static const bool made = (make_valid(v), true);
  EXPECT_TRUE(made);
  return v;
}

// ---- making bad inputs -------------------------------------------------------

// Where a row makes its bad inputs: its own folder beside the valid set.
struct Maker {
  const Valid& ok;
  fs::path dir;  // this row's folder
  fs::path out;  // --out: <dir>/out, unless the row's options name another
};

// Writes one bad input file at the path it is given.
using Writer = std::function<void(const Maker&, const fs::path&)>;

Writer text(const std::string& content) {
  return [content](const Maker&, const fs::path& p) { test::write_text(p, content); };
}
Writer volume(const std::function<RealGrid(const Valid&)>& grid, double voxel_A = kPixelA) {
  return [=](const Maker& m, const fs::path& p) { write_mrc(p, grid(m.ok), voxel_A); };
}
Writer volume(const RealGrid& grid, double voxel_A = kPixelA) {
  return volume([grid](const Valid&) { return grid; }, voxel_A);
}
// A copy of one of the valid files, cut to `fraction` of its size.
Writer cut(fs::path Valid::*from, double fraction) {
  return [=](const Maker& m, const fs::path& p) {
    fs::copy_file(m.ok.*from, p);
    fs::resize_file(p, static_cast<std::uintmax_t>(static_cast<double>(fs::file_size(p)) * fraction));
  };
}
// A copy of one of the valid files with the 32-bit word at byte `offset` set to `value`.
Writer patched(fs::path Valid::*from, std::size_t offset, std::int32_t value) {
  return [=](const Maker& m, const fs::path& p) {
    std::string bytes = test::read_text(m.ok.*from);
    std::memcpy(bytes.data() + offset, &value, sizeof value);
    test::write_text(p, bytes);
  };
}
// The valid particles, changed by `edit`, as a STAR.
Writer particles(const std::function<void(const Maker&, ParticleSet&)>& edit) {
  return [edit](const Maker& m, const fs::path& p) {
    ParticleSet set = read_particles_star(m.ok.star);
    edit(m, set);
    write_particles_star(p, set, m.dir);
  };
}
Writer star(const std::function<void(StarFile&)>& edit) {
  return [edit](const Maker& m, const fs::path& p) {
    StarFile f = particles_to_star(read_particles_star(m.ok.star), m.dir);
    edit(f);
    write_star(p, f);
  };
}
Writer table(const std::function<void(StarTable&)>& edit) {
  return star([edit](StarFile& f) { edit(*f.find("particles")); });
}
Writer column(const std::string& label, const std::function<std::string(std::size_t row)>& value) {
  return table([=](StarTable& t) {
    const auto c = static_cast<std::size_t>(t.column(label));
    for (std::size_t r = 0; r < t.rows.size(); ++r) t.rows[r][c] = value(r);
  });
}
Writer drop_column(const std::string& label) {
  return table([label](StarTable& t) {
    const auto c = t.labels.begin() + t.column(label);
    for (auto& row : t.rows) row.erase(row.begin() + (c - t.labels.begin()));
    t.labels.erase(c);
  });
}
// The valid particles, with pixel (x, y) of image `index` set to `value` in a
// copy of their stack, <STAR stem>.mrcs beside the STAR.
Writer image(long index, int x, int y, float value) {
  return [=](const Maker& m, const fs::path& p) {
    MrcMap stack = read_mrc(m.ok.stack);
    stack.data(x, y, static_cast<int>(index - 1)) = value;
    const fs::path copy = fs::path(p).replace_extension(".mrcs");
    write_mrc(copy, stack.data, kPixelA, true);
    particles([&](const Maker&, ParticleSet& s) {
      for (Particle& q : s.particles) q.image.path = copy.string();
    })(m, p);
  };
}
// A copy of the valid Scipion set on which `sql` was run.
Writer sqlite(const std::string& sql) {
  return [sql](const Maker& m, const fs::path& p) {
    fs::copy_file(m.ok.sqlite, p);
    sqlite3* db = nullptr;
    if (sqlite3_open(p.c_str(), &db) != SQLITE_OK || sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr))
      ADD_FAILURE() << "sqlite: " << sqlite3_errmsg(db);
    sqlite3_close(db);
  };
}

RealGrid constant(float value) {
  return RealGrid(kBox, kBox, kBox, value);
}

// A map of another box that is not constant either (x in every voxel).
RealGrid ramp(int box) {
  RealGrid g(box, box, box);
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(i % static_cast<std::size_t>(box));
  return g;
}

RealGrid read_with(const fs::path& file, std::size_t i, float value) {
  RealGrid g = read_mrc(file).data;
  g[i] = value;
  return g;
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// ---- the rows ----------------------------------------------------------------

enum class After {
  NoFolder,   // --out does not exist afterwards
  Failed,     // --out holds a run that says "failed", exit code 2, no outputs
  Untouched,  // --out was there before and holds exactly what it held
};

// Options as pairs: "--name", "value" ("" as the value: leave the option out).
using Args = std::vector<std::string>;

// The arguments with which each program runs on the valid set (but --out).
Args valid_args(const std::string& program, const Valid& ok) {
  if (program == "simulate") return {"--count", "4"};
  if (program == "reconstruct") return {"--particles", ok.star.string()};
  if (program == "refine_homo")
    return {"--particles", ok.star.string(), "--reference", ok.truth.string(), "--max-iterations", "1"};
  if (program == "subtract")
    return {"--particles", ok.star.string(), "--map", ok.truth.string(), "--mask", ok.keep_mask.string()};
  if (program == "refine_local")
    return {"--particles", ok.star.string(), "--half-map-A", ok.half_a.string(), "--half-map-B", ok.half_b.string(),
            "--mask", ok.keep_mask.string(), "--rounds", "1", "--iterations-per-module", "1"};
  if (program == "consensus_ctf") return {"--ctf-A", ok.star.string(), "--ctf-B", ok.sqlite.string()};
  if (program == "consensus_poses") return {"--particles", ok.star.string(), "--particles-B", ok.sqlite.string()};
  // validate_fsc, local_resolution
  return {"--half-map-A", ok.half_a.string(), "--half-map-B", ok.half_b.string(), "--mask", ok.mask.string()};
}

// `args` with each option of `changes` set to its value there (added when new,
// left out when the value is "").
Args changed(Args args, const Args& changes) {
  for (std::size_t i = 0; i + 1 < changes.size(); i += 2) {
    auto it = std::find(args.begin(), args.end(), changes[i]);
    if (it == args.end()) it = args.insert(args.end(), {changes[i], ""});
    *(it + 1) = changes[i + 1];
    if (changes[i + 1].empty()) args.erase(it, it + 2);
  }
  return args;
}

Args plus(Args a, const Args& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct Row {
  std::string name;                  // the test's name: <program>_<what is wrong>
  std::string program;               // tessera_<program>: simulate, reconstruct, refine_homo, ...
  std::function<Args(Maker&)> make;  // makes the bad input; returns the changes to valid_args
  std::string names;                 // what the error line must contain: the file or the parameter
  After after = After::NoFolder;
};

void PrintTo(const Row& row, std::ostream* os) {
  *os << row.name;
}

// A bad parameter value (or values).
Row option(const std::string& name, const std::string& program, const Args& changes) {
  return {name, program, [changes](Maker&) { return changes; }, changes.at(changes.size() - 2)};
}
// A bad file `file`, made by `write`, given as `option`; the error must name the file (or `names`).
Row bad_file(const std::string& name, const std::string& program, const std::string& option, const std::string& file,
             const Writer& write, const std::string& names = "", After after = After::NoFolder) {
  const auto make = [=](Maker& m) {
    write(m, m.dir / file);
    return Args{option, (m.dir / file).string()};
  };
  return {name, program, make, names.empty() ? file : names, after};
}
// --out made by `prepare` before the run: it must hold the same afterwards.
Row bad_out(const std::string& name, const std::string& program, const std::function<void(const fs::path&)>& prepare) {
  const auto make = [prepare](Maker& m) {
    prepare(m.out);
    return Args{};
  };
  return {name, program, make, "--out", After::Untouched};
}

// --out holding a user's file in a subfolder: it must be left as it was.
Row user_files_in_out(const std::string& name, const std::string& program) {
  return bad_out(name, program, [](const fs::path& out) {
    fs::create_directories(out / "sub");
    test::write_text(out / "sub" / "map.mrc", "mine\n");
  });
}

void clear_ctf(const Maker&, ParticleSet& s) {
  for (Particle& p : s.particles) p.defocus_u_A = p.defocus_v_A = p.defocus_angle_deg = 0;
}

// The row with --disorder on (what its bad file or value is for).
Row with_disorder(Row row) {
  row.make = [make = row.make](Maker& m) { return plus(make(m), {"--disorder", "true"}); };
  return row;
}

std::vector<Row> simulate_rows() {
  const std::string s = "simulate", mask = "--disorder-mask";
  return {
      option("simulate_count_beyond_maximum", s, {"--count", "99999999999"}),
      option("simulate_count_beyond_free_disk", s, {"--phantom-box-px", "512", "--count", "9000000"}),
      option("simulate_count_zero", s, {"--count", "0"}),
      option("simulate_negative_snr", s, {"--snr", "-1"}),
      option("simulate_defocus_max_below_min", s, {"--defocus-min-A", "20000", "--defocus-max-A", "100"}),
      bad_file("simulate_all_zero_volume", s, "--volume", "zero.mrc", volume(constant(0))),
      bad_file("simulate_volume_not_mrc", s, "--volume", "notes.mrc", text("a map\n")),
      bad_file("simulate_volume_is_a_stack", s, "--volume", "stack.mrc", cut(&Valid::stack, 1.0)),
      bad_file("simulate_missing_module_volume", s, "--module-volumes", "gone.mrc",
               [](const Maker&, const fs::path&) {}),
      bad_file("simulate_params_not_json", s, "--params", "params.json", text("{\"count\": ")),
      bad_file("simulate_params_wrong_type", s, "--params", "typed.json", text("{\"count\": \"many\"}")),
      bad_out("simulate_out_holds_user_files", s,
              [](const fs::path& out) {
                fs::create_directories(out);
                test::write_text(out / "my_notes.txt", "mine\n");
              }),
      bad_out("simulate_out_is_a_file", s, [](const fs::path& out) { test::write_text(out, "a file\n"); }),
      // The phantom's box is 64 at 3 A/px: its inscribed sphere has a radius of 96 A.
      option("simulate_disorder_belt_beyond_box", s, {"--disorder", "true", "--disorder-belt-outer-radius-A", "100"}),
      option("simulate_disorder_belt_outer_below_inner", s,
             {"--disorder", "true", "--disorder-belt-outer-radius-A", "30", "--disorder-belt-inner-radius-A", "40"}),
      option("simulate_disorder_resolution_finer_than_4_px", s,
             {"--disorder", "true", "--disorder-resolution-A", "6"}),
      option("simulate_disorder_negative_amplitude", s, {"--disorder", "true", "--disorder-amplitude", "-0.5"}),
      with_disorder(bad_file("simulate_disorder_mask_wrong_box", s, mask, "belt48.mrc", volume(ramp(48)))),
      with_disorder(bad_file("simulate_disorder_mask_above_one", s, mask, "belt2.mrc",
                             volume(RealGrid(64, 64, 64, 2.0f)))),
      with_disorder(bad_file("simulate_disorder_mask_all_zero", s, mask, "belt0.mrc", volume(RealGrid(64, 64, 64)))),
  };
}

std::vector<Row> reconstruct_rows() {
  const std::string r = "reconstruct", p = "--particles";
  const auto in_stack = [](const std::string& stack, Writer write) {
    return particles([=](const Maker& m, ParticleSet& s) {
      write(m, m.dir / stack);
      for (Particle& q : s.particles) q.image.path = (m.dir / stack).string();
    });
  };
  return {
      bad_file("reconstruct_truncated_stack", r, p, "cut.star", in_stack("cut.mrcs", cut(&Valid::stack, 0.5)),
               "cut.mrcs"),
      bad_file("reconstruct_missing_stack", r, p, "gone.star", particles([](const Maker& m, ParticleSet& s) {
                 s.particles[3].image.path = (m.dir / "x.mrcs").string();
               }),
               "x.mrcs"),
      bad_file("reconstruct_image_number_beyond_stack", r, p, "beyond.star",
               particles([](const Maker&, ParticleSet& s) { s.particles[5].image.index = 99; }), "particles.mrcs"),
      bad_file("reconstruct_image_number_zero", r, p, "zero_index.star",
               table([](StarTable& t) { t.rows[2][0] = "000000@" + t.rows[2][0].substr(t.rows[2][0].find('@') + 1); })),
      bad_file("reconstruct_no_particles_block", r, p, "optics.star", star([](StarFile& f) { f.blocks.resize(1); })),
      bad_file("reconstruct_no_image_name_column", r, p, "names.star", drop_column("rlnImageName"), "rlnImageName"),
      bad_file("reconstruct_empty_set", r, p, "empty.star", table([](StarTable& t) { t.rows.clear(); })),
      bad_file("reconstruct_one_particle", r, p, "one.star", table([](StarTable& t) { t.rows.resize(1); })),
      bad_file("reconstruct_all_in_half_set_1", r, p, "half1.star",
               column("rlnRandomSubset", [](std::size_t) { return "1"; })),
      bad_file("reconstruct_random_subset_3", r, p, "subset3.star",
               column("rlnRandomSubset", [](std::size_t i) { return i == 4 ? "3" : "1"; })),
      bad_file("reconstruct_no_ctf_with_ctf_on", r, p, "no_ctf.star", particles(clear_ctf)),
      bad_file("reconstruct_no_poses", r, p, "no_poses.star", particles([](const Maker&, ParticleSet& s) {
                 for (Particle& q : s.particles) q.pose.reset();
               })),
      bad_file("reconstruct_value_not_a_number", r, p, "text.star",
               column("rlnDefocusU", [](std::size_t) { return "abc"; })),
      bad_file("reconstruct_undefined_optics_group", r, p, "group7.star",
               column("rlnOpticsGroup", [](std::size_t) { return "7"; })),
      bad_file("reconstruct_stack_named_star", r, p, "stack.star", cut(&Valid::stack, 1.0)),
      bad_file("reconstruct_sqlite_not_a_database", r, p, "broken.sqlite", text(std::string(4096, 'x'))),
      bad_file("reconstruct_nan_in_one_image", r, p, "nan.star", image(8, 12, 9, kNaN), "000008@nan.mrcs",
               After::Failed),
      bad_file("reconstruct_reference_wrong_box", r, "--reference", "ref48.mrc", volume(ramp(48))),
      bad_file("reconstruct_reference_wrong_pixel_size", r, "--reference", "ref2A.mrc",
               volume([](const Valid& ok) { return read_mrc(ok.truth).data; }, 2.0)),
      option("reconstruct_max_resolution_coarser_than_box", r, {"--max-res-A", "1000"}),
      option("reconstruct_unknown_symmetry", r, {"--symmetry", "X5"}),
      bad_file("reconstruct_params_unknown_name", r, "--params", "typo.json", text("{\"symetry\": \"C2\"}")),
      // Nobody, root included, can make a folder in /proc.
      option("reconstruct_out_cannot_be_created", r, {"--out", "/proc/tessera-bad-input/out"}),
      bad_out("reconstruct_out_holds_another_programs_run", r,
              [](const fs::path& out) {
                fs::create_directories(out);
                test::write_text(out / "outputs.json", "{\"program\": \"tessera_simulate\", \"status\": \"done\"}\n");
                test::write_text(out / "particles.star", "data_\n");
              }),
  };
}

std::vector<Row> refine_rows() {
  const std::string r = "refine_homo", p = "--particles", ref = "--reference", rl = "refine_local";
  return {
      option("refine_homo_particle_diameter_beyond_box", r, {"--particle-diameter-A", "100000"}),
      option("refine_homo_window_inner_above_outer", r, {"--window-outer-frac", "0.5", "--window-inner-frac", "0.9"}),
      option("refine_homo_window_outer_zero", r, {"--window-outer-frac", "0"}),
      option("refine_homo_initial_lowpass_coarser_than_box", r, {"--initial-lowpass-A", "1000"}),
      option("refine_homo_continue_without_a_run", r, {"--continue", "true"}),
      bad_file("refine_homo_mask_above_one", r, "--mask", "mask2.mrc", volume(constant(2))),
      bad_file("refine_homo_all_zero_reference", r, ref, "zero.mrc", volume(constant(0))),
      bad_file("refine_homo_constant_reference", r, ref, "flat.mrc", volume(constant(0.5f))),
      bad_file("refine_homo_reference_with_nan", r, ref, "nan.mrc",
               volume([](const Valid& ok) { return read_with(ok.truth, 1000, kNaN); })),
      bad_file("refine_homo_reference_wrong_box", r, ref, "ref48.mrc", volume(ramp(48))),
      bad_file("refine_homo_truncated_reference", r, ref, "cut.mrc", cut(&Valid::truth, 0.7)),
      bad_file("refine_homo_one_particle", r, p, "one.star",
               particles([](const Maker&, ParticleSet& s) { s.particles.resize(1); })),
      bad_file("refine_homo_all_in_half_set_2", r, p, "half2.star", particles([](const Maker&, ParticleSet& s) {
                 for (Particle& q : s.particles) q.half_set = 2;
               })),
      bad_file("refine_homo_no_ctf", r, p, "no_ctf.star", particles(clear_ctf)),
      bad_file("refine_homo_images_smaller_than_box", r, p, "small.star", particles([](const Maker& m, ParticleSet& s) {
                 write_mrc(m.dir / "small.mrcs", RealGrid(16, 16, 24, 1.0f), kPixelA, true);
                 for (Particle& q : s.particles) q.image.path = (m.dir / "small.mrcs").string();
               }),
               "small.mrcs"),
      bad_file("refine_homo_no_optics_block_nor_pixel_size", r, p, "no_optics.star",
               star([](StarFile& f) { f.blocks.erase(f.blocks.begin()); })),
      bad_file("refine_homo_sqlite_without_objects_table", r, p, "no_objects.sqlite", sqlite("DROP TABLE Objects;")),
      // Found while the refinement starts (the noise model reads up to 500 images), before
      // the folder exists; in image 501 and beyond it would be found late (After::Failed).
      bad_file("refine_homo_inf_in_one_image", r, p, "inf.star", image(3, 3, 20, kInf), "000003@inf.mrcs"),
      bad_file("refine_local_mask_wrong_box", rl, "--mask", "mask48.mrc", volume(ramp(48))),
      bad_file("refine_local_all_zero_mask", rl, "--mask", "zero_mask.mrc", volume(constant(0))),
      Row{"refine_local_more_masks_missing_file", rl,
          [](Maker&) { return Args{"--more-module-masks", "no_such_mask.mrc"}; }, "no_such_mask.mrc"},
      bad_file("refine_local_half_map_b_wrong_pixel_size", rl, "--half-map-B", "half_b_2A.mrc",
               volume([](const Valid& ok) { return read_mrc(ok.half_b).data; }, 2.0)),
      option("refine_local_zero_rounds", rl, {"--rounds", "0"}),
      user_files_in_out("refine_local_out_holds_user_files", rl),
  };
}

std::vector<Row> subtract_rows() {
  const std::string s = "subtract", p = "--particles";
  Row no_scales = bad_file("subtract_refinement_scale_without_scales", s, p, "no_scales.star",
                           drop_column("rlnCtfScalefactor"), "rlnCtfScalefactor");
  no_scales.make = [make = no_scales.make](Maker& m) { return plus(make(m), {"--scale", "refinement"}); };
  Row halves = bad_file("subtract_half_map_b_wrong_box", s, "--half-map-B", "half48.mrc", volume(ramp(48)));
  halves.make = [make = halves.make](Maker& m) {
    return plus(make(m), {"--map", "", "--half-map-A", m.ok.half_a.string()});
  };
  return {
      no_scales,
      halves,
      bad_file("subtract_no_ctf", s, p, "no_ctf.star", particles(clear_ctf)),
      bad_file("subtract_all_zero_map", s, "--map", "zero.mrc", volume(constant(0))),
      bad_file("subtract_all_zero_mask", s, "--mask", "zero_mask.mrc", volume(constant(0))),
      bad_file("subtract_mask_wrong_pixel_size", s, "--mask", "mask2A.mrc",
               volume([](const Valid& ok) { return read_mrc(ok.keep_mask).data; }, 2.0)),
      bad_file("subtract_truncated_sqlite", s, p, "cut.sqlite", cut(&Valid::sqlite, 0.3)),
      option("subtract_odd_new_box", s, {"--new-box-px", "23"}),
      option("subtract_lowpass_coarser_than_box", s, {"--lowpass-A", "1000"}),
      option("subtract_fit_radius_below_two_pixels", s, {"--fit-radius-A", "1"}),
      bad_file(
          "subtract_params_file_missing", s, "--params", "none.json", [](const Maker&, const fs::path&) {}, "--params"),
      bad_file("subtract_nan_in_one_image", s, p, "nan.star", image(5, 30, 1, kNaN), "000005@nan.mrcs", After::Failed),
  };
}

std::vector<Row> validate_rows() {
  const std::string v = "validate_fsc", b = "--half-map-B", lr = "local_resolution";
  Row zero = bad_file("validate_fsc_all_zero_half_maps", v, b, "zero.mrc", volume(constant(0)));
  zero.make = [make = zero.make](Maker& m) {
    const Args a = make(m);
    return plus(a, {"--half-map-A", a[1]});
  };
  return {
      option("validate_fsc_negative_mask_threshold", v, {"--mask", "", "--mask-threshold", "-1"}),
      option("validate_fsc_mask_threshold_above_maximum", v, {"--mask", "", "--mask-threshold", "1e6"}),
      option("validate_fsc_negative_pixel_size", v, {"--voxel-A", "-1"}),
      zero,
      bad_file("validate_fsc_inf_in_half_map", v, b, "inf.mrc",
               volume([](const Valid& ok) { return read_with(ok.half_b, 77, kInf); })),
      bad_file("validate_fsc_half_map_b_wrong_pixel_size", v, b, "half_b_2A.mrc",
               volume([](const Valid& ok) { return read_mrc(ok.half_b).data; }, 2.0)),
      bad_file("validate_fsc_half_map_not_mrc", v, "--half-map-A", "text.mrc", text(std::string(2000, 'a'))),
      bad_file("validate_fsc_unknown_mrc_mode", v, b, "mode99.mrc", patched(&Valid::half_b, 12, 99)),
      bad_file("validate_fsc_mask_wrong_box", v, "--mask", "mask48.mrc", volume(ramp(48))),
      bad_file("validate_fsc_all_zero_mask", v, "--mask", "zero_mask.mrc", volume(constant(0))),
      user_files_in_out("validate_fsc_out_holds_user_files", v),
      option("local_resolution_window_below_four_voxels", lr, {"--window-A", "2"}),
      option("local_resolution_threshold_above_one", lr, {"--threshold", "1.5"}),
      bad_file("local_resolution_half_map_b_wrong_box", lr, b, "half_b48.mrc", volume(ramp(48))),
      bad_file("local_resolution_half_map_not_mrc", lr, "--half-map-A", "text.mrc", text(std::string(2000, 'a'))),
      bad_file("local_resolution_mask_wrong_box", lr, "--mask", "mask48.mrc", volume(ramp(48))),
      user_files_in_out("local_resolution_out_holds_user_files", lr),
  };
}

// A micrograph CTF table (RELION's micrographs_ctf.star layout) with `optics_row` as its optics.
std::string micrographs_star(const std::string& optics_labels, const std::string& optics_row,
                             const std::string& group = "1") {
  return "data_optics\nloop_\n_rlnOpticsGroup\n_rlnVoltage\n_rlnSphericalAberration\n_rlnAmplitudeContrast\n" +
         optics_labels + optics_row + "\n\ndata_micrographs\nloop_\n_rlnMicrographName\n_rlnOpticsGroup\n" +
         "_rlnDefocusU\n_rlnDefocusV\n_rlnDefocusAngle\nMovies/mic_1.mrc " + group + " 15000 14000 30\n" +
         "Movies/mic_2.mrc 1 21000 20500 -10\n";
}
const std::string kMicrographs = micrographs_star("_rlnMicrographPixelSize\n", "1 300 2.7 0.1 1.0");

// Two micrograph tables as --ctf-A and --ctf-B: A (named `file`) made by `write`, B valid.
Row micrographs_row(const std::string& name, const std::string& file, const Writer& write, const Args& more = {}) {
  const auto make = [=](Maker& m) {
    write(m, m.dir / file);
    test::write_text(m.dir / "valid_mics.star", kMicrographs);
    return plus({"--ctf-A", (m.dir / file).string(), "--ctf-B", (m.dir / "valid_mics.star").string()}, more);
  };
  return {name, "consensus_ctf", make, file};
}

std::vector<Row> consensus_ctf_rows() {
  const std::string c = "consensus_ctf", b = "--ctf-B";
  return {
      bad_file("consensus_ctf_micrographs_against_particles", c, b, "mics.star", text(kMicrographs)),
      bad_file("consensus_ctf_no_ctf", c, b, "no_ctf.star", particles(clear_ctf)),
      bad_file("consensus_ctf_no_particle_in_common", c, b, "other.star", particles([](const Maker&, ParticleSet& s) {
                 for (Particle& q : s.particles) q.image.path = "elsewhere.mrcs";
               })),
      micrographs_row("consensus_ctf_micrographs_without_pixel_size", "no_pixel.star",
                      text(micrographs_star("", "1 300 2.7 0.1"))),
      micrographs_row("consensus_ctf_micrographs_undefined_optics_group", "group7.star",
                      text(micrographs_star("_rlnMicrographPixelSize\n", "1 300 2.7 0.1 1.0", "7"))),
      micrographs_row("consensus_ctf_micrographs_matched_by_id", "by_id.star", text(kMicrographs),
                      {"--match-by", "id"}),
      option("consensus_ctf_min_resolution_zero", c, {"--min-resolution-A", "0"}),
      option("consensus_ctf_negative_max_defocus_diff", c, {"--max-defocus-diff-A", "-5"}),
  };
}

std::vector<Row> consensus_poses_rows() {
  const std::string c = "consensus_poses", b = "--particles-B";
  return {
      bad_file("consensus_poses_no_poses", c, b, "no_poses.star", particles([](const Maker&, ParticleSet& s) {
                 for (Particle& q : s.particles) q.pose.reset();
               })),
      bad_file("consensus_poses_no_particle_in_common", c, b, "other.star", particles([](const Maker&, ParticleSet& s) {
                 for (Particle& q : s.particles) q.image.path = "elsewhere.mrcs";
               })),
      option("consensus_poses_unknown_symmetry", c, {"--symmetry", "X5"}),
      option("consensus_poses_negative_max_angle", c, {"--max-angle-deg", "-1"}),
  };
}

std::vector<Row> all_rows() {
  std::vector<Row> rows;
  for (auto make : {simulate_rows, reconstruct_rows, refine_rows, subtract_rows, validate_rows, consensus_ctf_rows,
                     consensus_poses_rows})
    for (Row& r : make()) rows.push_back(std::move(r));
  return rows;
}

// ---- checking a row -------------------------------------------------------------

// Every file and folder under `dir` (but `skip`) with a hash of its bytes.
std::map<std::string, std::size_t> snapshot(const fs::path& dir, const fs::path& skip = {}) {
  std::map<std::string, std::size_t> files;
  if (!fs::exists(dir)) return files;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
    if (!skip.empty() && it->path() == skip) {
      it.disable_recursion_pending();
      continue;
    }
    files[it->path().string()] =
        it->is_regular_file() ? std::hash<std::string>{}(test::read_text(it->path())) : std::size_t{0};
  }
  return files;
}

// Runs tessera_<program> with `args` (which hold --out), on one thread (programs
// without --threads run on one anyway).
RunResult run_program(const std::string& program, Args args) {
  const std::vector<std::string> single_threaded = {"validate_fsc", "consensus_poses"};
  if (std::find(single_threaded.begin(), single_threaded.end(), program) == single_threaded.end())
    args = plus(args, {"--threads", "1"});
  static const TempDir logs;
  return test::run_program(logs, program, args);
}

// The arguments of a row: --out and the valid ones, changed by what the row made.
Args row_args(const Row& row, Maker& m) {
  const Args args = changed(plus({"--out", m.out.string()}, valid_args(row.program, m.ok)), row.make(m));
  m.out = *(std::find(args.begin(), args.end(), "--out") + 1);
  return args;
}

void expect_failed_run(const fs::path& out) {
  ASSERT_TRUE(fs::exists(out / "outputs.json")) << out;
  const auto manifest = nlohmann::json::parse(test::read_text(out / "outputs.json"));
  EXPECT_EQ(manifest["status"], "failed");
  EXPECT_EQ(manifest["exit_code"], 2);
  EXPECT_TRUE(manifest["outputs"].empty()) << manifest.dump();
  for (const auto& e : fs::recursive_directory_iterator(out))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

class BadInput : public testing::TestWithParam<Row> {};

TEST_P(BadInput, ExitsTwoWithOneLineAndWritesNothing) {
  const Row& row = GetParam();
  const Valid& ok = valid();
  Maker m{ok, ok.root / row.name, ok.root / row.name / "out"};
  fs::create_directories(m.dir);
  const Args args = row_args(row, m);
  const fs::path skip = row.after == After::Failed ? m.out : fs::path();
  const auto inputs_before = snapshot(ok.dir), row_before = snapshot(m.dir, skip);

  const RunResult r = run_program(row.program, args);

  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("ERROR: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
  EXPECT_NE(r.err.find(row.names), std::string::npos) << "does not name '" << row.names << "': " << r.err;
  EXPECT_EQ(snapshot(ok.dir), inputs_before) << "the valid inputs changed";
  EXPECT_EQ(snapshot(m.dir, skip), row_before) << "the row's inputs or --out changed";
  if (row.after == After::NoFolder) {
    EXPECT_FALSE(fs::exists(m.out)) << "left " << m.out;
  } else if (row.after == After::Failed) {
    expect_failed_run(m.out);
  }
}

INSTANTIATE_TEST_SUITE_P(Matrix, BadInput, testing::ValuesIn(all_rows()),
                         [](const testing::TestParamInfo<Row>& row) { return row.param.name; });

// The matrix means something only if the valid set it starts from runs.
TEST(BadInputMatrix, ValidInputsRunInEveryProgram) {
  const Valid& ok = valid();
  const std::vector<std::pair<std::string, Args>> runs = {
      {"simulate", {}},
      {"reconstruct", {}},
      {"reconstruct", {"--particles", ok.sqlite.string()}},
      {"refine_homo", {}},
      {"subtract", {"--scale", "refinement"}},
      {"validate_fsc", {}},
      {"consensus_ctf", {}},
      {"consensus_poses", {}},
  };
  for (std::size_t k = 0; k < runs.size(); ++k) {
    const auto& [program, changes] = runs[k];
    SCOPED_TRACE(program);
    const fs::path out = ok.root / ("ok_" + std::to_string(k));
    const RunResult r = run_program(program, changed(plus({"--out", out.string()}, valid_args(program, ok)), changes));
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
}

}  // namespace
