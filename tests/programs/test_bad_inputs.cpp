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

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bad_input_matrix.hpp"

using namespace bad_input;

namespace {

std::vector<Row> simulate_rows() {
  const std::string s = "simulate", mask = "--disorder-mask";
  return {
      option("simulate_count_beyond_maximum", s, {"--count", "99999999999"}),
      option("simulate_count_beyond_free_disk", s, {"--phantom-box-px", "512", "--count", "9000000"}),
      option("simulate_count_zero", s, {"--count", "0"}),
      option("simulate_negative_snr", s, {"--snr", "-1"}),
      option("simulate_defocus_max_below_min", s, {"--defocus-min-A", "20000", "--defocus-max-A", "100"}),
      option("simulate_ewald_sphere_without_ctf", s, {"--ctf", "false", "--ewald-sphere", "negative"}),
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
      option("simulate_disorder_resolution_finer_than_4_px", s, {"--disorder", "true", "--disorder-resolution-A", "6"}),
      option("simulate_disorder_negative_amplitude", s, {"--disorder", "true", "--disorder-amplitude", "-0.5"}),
      with_disorder(bad_file("simulate_disorder_mask_wrong_box", s, mask, "belt48.mrc", volume(ramp(48)))),
      with_disorder(
          bad_file("simulate_disorder_mask_above_one", s, mask, "belt2.mrc", volume(RealGrid(64, 64, 64, 2.0f)))),
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
      option("reconstruct_ewald_sphere_without_ctf", r, {"--ctf", "false", "--ewald-sphere", "positive"}),
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
      option("refine_homo_symmetry_relaxation_in_c1", r, {"--symmetry-relaxation", "maximization"}),
      option("refine_homo_unknown_ewald_sphere", r, {"--ewald-sphere", "both"}),
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
          [](Maker&) {
            return Args{"--more-module-masks", "no_such_mask.mrc"};
          },
          "no_such_mask.mrc"},
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
      option("subtract_gain_ratio_below_one", s, {"--gain-model", "linear", "--max-gain-ratio", "0.5"}),
      option("subtract_pose_step_zero", s, {"--refine-removed-pose", "true", "--pose-shift-step-A", "0"}),
      option("subtract_pose_step_above_range", s,
             {"--refine-removed-pose", "true", "--pose-shift-step-A", "4", "--pose-shift-range-A", "2"}),
      option("subtract_pose_angle_search_too_wide", s,
             {"--refine-removed-pose", "true", "--pose-angle-step-deg", "5", "--pose-angle-steps", "3"}),
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

std::vector<Row> all_rows() {
  std::vector<Row> rows;
  for (auto make : {simulate_rows, reconstruct_rows, refine_rows, subtract_rows, validate_rows, consensus_ctf_rows,
                    consensus_poses_rows, ctf_refine_rows})
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
