// The declaration of a run folder's files (protocols/common/run_files.json, which the Scipion plugin
// also reads) against the header the build writes from it, and against what the writers write:
// outputs.json and run.log.jsonl (RunContext), fsc.json and fsc.star (save_fsc), the entries of
// iterations.json and the iteration events (iteration_json). Oracle: the JSON file itself, read here.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <stdexcept>

#include "common/cli.hpp"
#include "common/io.hpp"
#include "common/run_context.hpp"
#include "fake_program.hpp"
#include "refinement/state.hpp"
#include "tessera/run_files.hpp"
#include "tessera/star.hpp"

namespace tessera::protocol {
namespace {

namespace fs = std::filesystem;
using Names = std::set<std::string>;

nlohmann::json declaration() {
  return nlohmann::json::parse(test::read_text(fs::path(TESSERA_SOURCE_DIR) / "protocols/common/run_files.json"));
}

nlohmann::json declared_file(const std::string& id) { return declaration().at("files").at(id); }

// The names of a group as they appear in the files: the entry's key, or its "value".
Names declared(const std::string& file, const std::string& group) {
  // A copy: a range-for over a member of a temporary would outlive the temporary.
  const nlohmann::json names = declared_file(file).at("groups").at(group).at("names");
  Names out;
  for (const auto& [ident, entry] : names.items())
    out.insert(entry.is_object() ? entry.at("value").get<std::string>() : ident);
  return out;
}

template <std::size_t N>
Names names(const std::array<std::string_view, N>& all) {
  return Names(all.begin(), all.end());
}

template <class J>
Names keys_of(const J& object) {
  Names out;
  for (const auto& [key, value] : object.items()) out.insert(key);
  return out;
}

template <class V>
Names keys_of(const std::map<std::string, V>& map) {
  Names out;
  for (const auto& [key, value] : map) out.insert(key);
  return out;
}

Names minus(Names a, const Names& b) {
  for (const auto& x : b) a.erase(x);
  return a;
}

std::vector<Json> read_log(const fs::path& file) {
  std::ifstream f(file);
  std::vector<Json> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(Json::parse(line));
  return lines;
}

struct HeaderFile {
  std::string_view name;
  int version;
  std::map<std::string, Names> groups;
};

TEST(RunFiles, TheHeaderIsTheDeclaration) {
  namespace rf = run_files;
  const std::map<std::string, HeaderFile> header{
      {"manifest",
       {rf::manifest::kName, rf::manifest::kVersion,
        {{"key", names(rf::manifest::key::kAll)},
         {"output_key", names(rf::manifest::output_key::kAll)},
         {"input_key", names(rf::manifest::input_key::kAll)},
         {"status", names(rf::manifest::status::kAll)}}}},
      {"run_log",
       {rf::run_log::kName, rf::run_log::kVersion,
        {{"key", names(rf::run_log::key::kAll)},
         {"event", names(rf::run_log::event::kAll)},
         {"level", names(rf::run_log::level::kAll)}}}},
      {"iterations", {rf::iterations::kName, rf::iterations::kVersion, {{"key", names(rf::iterations::key::kAll)}}}},
      {"fsc",
       {rf::fsc::kName, rf::fsc::kVersion,
        {{"key", names(rf::fsc::key::kAll)},
         {"shell_key", names(rf::fsc::shell_key::kAll)},
         {"randomized_from_key", names(rf::fsc::randomized_from_key::kAll)},
         {"guinier_fit_key", names(rf::fsc::guinier_fit_key::kAll)},
         {"curve", names(rf::fsc::curve::kAll)},
         {"separator", names(rf::fsc::separator::kAll)}}}},
      {"fsc_star",
       {rf::fsc_star::kName, rf::fsc_star::kVersion,
        {{"table", names(rf::fsc_star::table::kAll)},
         {"column", names(rf::fsc_star::column::kAll)},
         {"curve_column", names(rf::fsc_star::curve_column::kAll)}}}},
  };
  EXPECT_EQ(keys_of(declaration().at("files")), keys_of(header)) << "a file this test does not know yet";
  for (const auto& [id, file] : header) {
    SCOPED_TRACE(id);
    const nlohmann::json decl = declared_file(id);
    EXPECT_EQ(decl.at("name").get<std::string>(), file.name);
    EXPECT_EQ(decl.at("version").get<int>(), file.version);
    EXPECT_EQ(keys_of(decl.at("groups")), keys_of(file.groups));
    for (const auto& [group, values] : file.groups) EXPECT_EQ(declared(id, group), values) << group;
  }
  // Spot checks of the generated constants themselves (identifier -> value).
  EXPECT_EQ(rf::manifest::kName, "outputs.json");
  EXPECT_EQ(rf::manifest::key::manifest_version, "manifest_version");
  EXPECT_EQ(rf::fsc::separator::threshold, "@");
  EXPECT_EQ(rf::fsc_star::curve_column::corrected, "rlnFourierShellCorrelationCorrected");
}

struct RunFilesTest : ::testing::Test {
  test::TempDir dir;
  std::string particles = dir.write("particles.star", "x").string();
  fs::path out = dir / "run";
};

TEST_F(RunFilesTest, OutputsJsonAndTheLogHoldTheDeclaredKeys) {
  const test::FakeRunResult r =
      test::run_fake(test::Argv{"--out", out.string(), "--particles", particles}, [](const Values&, RunContext& ctx) {
        atomic_write_text(ctx.path("v.mrc"), "MAP");
        ctx.add_output("volume", "v.mrc", {{"resolution_A", 6.0}});
        ctx.progress("step", 1, 1);
        ctx.info("a message");
        ctx.event(run_files::run_log::event::iteration, iteration_json(IterationStats{}));
      });
  ASSERT_EQ(r.code, 0) << r.err;
  const Json m = test::read_json(out / "outputs.json");
  EXPECT_EQ(keys_of(m), minus(declared("manifest", "key"), {"partial_outputs"}));
  EXPECT_EQ(m.at("manifest_version"), declared_file("manifest").at("version"));
  EXPECT_EQ(declared("manifest", "status").count(m.at("status").get<std::string>()), 1u);
  ASSERT_EQ(m.at("outputs").size(), 1u);
  EXPECT_EQ(minus(keys_of(m.at("outputs")[0]), {"resolution_A"}),  // less the program's own extra
            declared("manifest", "output_key"));
  EXPECT_EQ(keys_of(m.at("inputs").at("particles")), declared("manifest", "input_key"));

  const Names every_line{"time", "elapsed_s", "event"};
  const Names events = declared("run_log", "event"), levels = declared("run_log", "level");
  const Names iteration_keys = declared("iterations", "key");
  Names seen;
  for (const Json& e : read_log(out / "run.log.jsonl")) {
    SCOPED_TRACE(e.dump());
    const Names keys = keys_of(e);
    for (const auto& k : every_line) EXPECT_EQ(keys.count(k), 1u) << k;
    const std::string event = e.at("event").get<std::string>();
    EXPECT_EQ(events.count(event), 1u);
    seen.insert(event);
    if (event == "iteration") {
      EXPECT_EQ(minus(keys, every_line), iteration_keys);
      continue;
    }
    EXPECT_EQ(minus(keys, declared("run_log", "key")), Names{});
    if (event == "log") {
      EXPECT_EQ(levels.count(e.at("level").get<std::string>()), 1u);
    }
  }
  EXPECT_EQ(seen, minus(events, {"error"}));

  // A failed run: every manifest key, and an error event.
  const fs::path failed = dir / "failed";
  const test::FakeRunResult f = test::run_fake(test::Argv{"--out", failed.string(), "--particles", particles},
                                               [](const Values&, RunContext&) { throw std::runtime_error("boom"); });
  ASSERT_EQ(f.code, 1) << f.err;
  const Json fm = test::read_json(failed / "outputs.json");
  EXPECT_EQ(keys_of(fm), declared("manifest", "key"));
  EXPECT_EQ(fm.at("status"), "failed");
  const std::vector<Json> log = read_log(failed / "run.log.jsonl");
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back().at("event"), "error");
  EXPECT_EQ(minus(keys_of(log.back()), declared("run_log", "key")), Names{});
}

TEST_F(RunFilesTest, FscJsonAndFscStarHoldTheDeclaredKeys) {
  Schema schema = test::fake_schema();
  schema.add_output("fsc_star", OutputKind::FscStar, "FSC (STAR)");
  schema.add_output("fsc_json", OutputKind::FscJson, "FSC (JSON)");
  const test::Argv argv{"--out", out.string(), "--particles", particles};
  std::ostringstream human, errors;
  const int code = run_program(
      schema, argv.argc(), argv.argv(),
      [](const Values&, RunContext& ctx) {
        ctx.start();
        atomic_write_text(ctx.path("v.mrc"), "MAP");
        ctx.add_output("volume", "v.mrc");
        const std::vector<double> falling{1, 0.9, 0.6, 0.3, 0.1, 0.0};
        namespace curve = run_files::fsc::curve;
        namespace column = run_files::fsc_star::curve_column;
        save_fsc(ctx, "fsc_star", "fsc_json",
                 {{curve::gold_standard, column::gold_standard, falling, 0.143},
                  {curve::vs_reference, column::vs_reference, falling, 0.5}},
                 10, 2.0);
      },
      human, errors);
  ASSERT_EQ(code, 0) << errors.str();

  const Json doc = test::read_json(out / "fsc.json");
  EXPECT_EQ(keys_of(doc), (Names{"box", "voxel_A", "shells", "curves", "resolution_A"}));
  EXPECT_EQ(minus(keys_of(doc), declared("fsc", "key")), Names{});
  ASSERT_EQ(doc.at("shells").size(), 6u);
  for (const Json& shell : doc.at("shells")) EXPECT_EQ(keys_of(shell), declared("fsc", "shell_key"));
  EXPECT_EQ(keys_of(doc.at("curves")), (Names{"gold_standard", "vs_reference"}));
  EXPECT_EQ(minus(keys_of(doc.at("curves")), declared("fsc", "curve")), Names{});
  EXPECT_EQ(keys_of(doc.at("resolution_A")), (Names{"gold_standard@0.143", "vs_reference@0.5"}));

  const StarFile star = read_star(out / "fsc.star");
  ASSERT_EQ(star.blocks.size(), 1u);
  EXPECT_EQ(declared("fsc_star", "table"), Names{star.blocks[0].name});
  const std::vector<std::string> labels = star.blocks[0].labels;
  ASSERT_EQ(labels.size(), 5u);
  // The fixed columns, in RELION's order, then one per curve.
  EXPECT_EQ(std::vector<std::string>(labels.begin(), labels.begin() + 3),
            (std::vector<std::string>{"rlnSpectralIndex", "rlnResolution", "rlnAngstromResolution"}));
  EXPECT_EQ(Names(labels.begin(), labels.begin() + 3), declared("fsc_star", "column"));
  EXPECT_EQ(labels[3], "rlnFourierShellCorrelation");
  EXPECT_EQ(labels[4], "rlnFourierShellCorrelationReference");
  for (std::size_t i = 3; i < labels.size(); ++i) EXPECT_EQ(declared("fsc_star", "curve_column").count(labels[i]), 1u);
}

TEST(RunFiles, AnIterationHoldsTheDeclaredKeys) {
  EXPECT_EQ(keys_of(iteration_json(IterationStats{})), declared("iterations", "key"));
}

}  // namespace
}  // namespace tessera::protocol
