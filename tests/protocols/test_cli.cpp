// The user side: argv and --params files against fake_schema(). Oracles:
// the declared defaults, the values the tests pass, and the documented rules
// (defaults < --params < command line; exit 2 with "ERROR: " naming the
// parameter and no output folder; exit 1 for failures while running).
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "common/cli.hpp"
#include "common/run_context.hpp"
#include "fake_program.hpp"
#include "tessera/error.hpp"

namespace tessera::protocol {
namespace {

using test::Argv;
using test::TempDir;

struct CliTest : ::testing::Test {
  TempDir dir;
  std::string particles = dir.write("particles.star", "data_particles\n").string();
  std::string out = (dir / "run").string();

  Values parse(std::initializer_list<std::string> extra) const {
    std::vector<std::string> args{"--out", out, "--particles", particles};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<const char*> argv{"tessera_fake"};
    for (const auto& a : args) argv.push_back(a.c_str());
    Invocation inv = parse_arguments(test::fake_schema(), static_cast<int>(argv.size()), argv.data());
    EXPECT_EQ(inv.action, Action::Run);
    return std::move(*inv.values);
  }
};

TEST_F(CliTest, DefaultsApplyWhenNothingIsGiven) {
  const Values v = parse({});
  EXPECT_EQ(v.get<double>("max_res_A"), 8.0);
  EXPECT_EQ(v.get<std::string>("mask_mode"), "none");
  EXPECT_EQ(v.get<std::string>("symmetry"), "C1");
  EXPECT_EQ(v.get<int>("iterations"), 10);
  EXPECT_FALSE(v.get<bool>("use_scale"));
  EXPECT_FALSE(v.get_optional<int>("box_px"));  // no default, not given
  EXPECT_FALSE(v.has("box_px"));
  EXPECT_EQ(v.input("particles"), particles);
  EXPECT_EQ(v.run().out, out);
  EXPECT_EQ(v.run().threads, 1);
  EXPECT_TRUE(v.run().gpus.empty());
  EXPECT_EQ(v.run().seed, 1);
  EXPECT_FALSE(v.run().resume);
  EXPECT_EQ(v.run().log_level, LogLevel::Normal);
  EXPECT_FALSE(std::filesystem::exists(out));  // parsing writes nothing
}

TEST_F(CliTest, ParamsFileOverridesDefaultsAndCommandLineOverridesFile) {
  const std::string file = dir.write("p.json", R"({"max_res_A": 4.5, "box_px": 128, "symmetry": "D7",
                                                   "threads": 3, "box_px": 64.0})").string();
  const Values v = parse({"--params", file, "--symmetry", "C2"});
  EXPECT_EQ(v.get<double>("max_res_A"), 4.5);  // file over default
  EXPECT_EQ(v.get<int>("box_px"), 64);         // integral JSON float accepted for an int
  EXPECT_EQ(v.get<std::string>("symmetry"), "C2");  // command line over file
  EXPECT_EQ(v.run().threads, 3);
}

TEST_F(CliTest, OptionSpellings) {
  const Values v = parse({"--max-res-A", "3.2", "--box-px=256", "--use-scale", "--scale-limit=+1e-1",
                          "--gpu", "0, 2", "--seed", "0", "--continue=yes", "--verbose"});
  EXPECT_EQ(v.get<double>("max_res_A"), 3.2);
  EXPECT_EQ(v.get<std::int64_t>("box_px"), 256);
  EXPECT_TRUE(v.get<bool>("use_scale"));
  EXPECT_EQ(v.get<double>("scale_limit"), 0.1);
  EXPECT_EQ(v.run().gpus, (std::vector<int>{0, 2}));
  EXPECT_EQ(v.run().seed, 0);
  EXPECT_TRUE(v.run().resume);
  EXPECT_EQ(v.run().log_level, LogLevel::Verbose);
  EXPECT_FALSE(parse({"--use-scale=false"}).get<bool>("use_scale"));
  EXPECT_FALSE(parse({"--use-scale", "no"}).get<bool>("use_scale"));
}

TEST_F(CliTest, ConditionsDecideWhatIsActive) {
  // mask_threshold only counts when mask_mode == 'threshold'; given otherwise
  // it is ignored (range not checked, reported) but still type-checked.
  const Values off = parse({"--mask-threshold", "5"});
  EXPECT_FALSE(off.has("mask_threshold"));
  EXPECT_FALSE(off.get_optional<double>("mask_threshold"));
  EXPECT_THROW(off.get<double>("mask_threshold"), std::logic_error);
  ASSERT_EQ(off.ignored().size(), 1u);
  EXPECT_NE(off.ignored()[0].find("--mask-threshold"), std::string::npos);
  EXPECT_FALSE(off.to_json().contains("mask_threshold"));

  const Values on = parse({"--mask-mode", "threshold"});
  EXPECT_EQ(on.get<double>("mask_threshold"), 0.01);
  EXPECT_TRUE(on.ignored().empty());
  EXPECT_FALSE(on.has("scale_limit"));  // use_scale defaults to false
  EXPECT_TRUE(parse({"--use-scale"}).has("scale_limit"));

  const std::string mask = dir.write("mask.mrc", "m").string();
  EXPECT_EQ(parse({"--mask-mode", "file", "--mask", mask}).input("mask"), mask);
  EXPECT_FALSE(parse({"--mask", mask}).input_optional("mask"));  // ignored: mode is none
}

TEST_F(CliTest, ValuesRejectMisuseByTheProgram) {
  const Values v = parse({});
  EXPECT_THROW(v.get<int>("max_res_A"), std::logic_error);         // declared float
  EXPECT_THROW(v.get<double>("no_such_param"), std::logic_error);  // undeclared
  EXPECT_THROW(v.get<int>("box_px"), std::logic_error);            // unset
  EXPECT_THROW(v.input("mask"), std::logic_error);                 // not given
}

TEST_F(CliTest, ToJsonReproducesTheRunAsParamsFile) {
  const Values first = parse({"--max-res-A", "6", "--mask-mode", "threshold", "--box-px", "96"});
  const std::string file = dir.write("again.json", first.to_json().dump()).string();
  std::vector<const char*> argv{"tessera_fake", "--params", file.c_str()};
  const Invocation again = parse_arguments(test::fake_schema(), 3, argv.data());
  EXPECT_EQ(again.values->to_json(), first.to_json());
  EXPECT_EQ(first.to_json()["max_res_A"], 6.0);
  EXPECT_EQ(first.to_json()["particles"], particles);
}

// Every kind of bad input: exit 2, "ERROR: " + one line containing `needle`
// (the parameter), no output folder, work never called.
struct BadInput {
  std::vector<std::string> args;  // besides --out
  std::string needle;
  std::string params_json = "";  // if set, written to p.json and passed with --params
};

void PrintTo(const BadInput& b, std::ostream* os) { *os << "expecting \"" << b.needle << '"'; }

class BadInputTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(BadInputTest, ExitsTwoNamingTheParameterAndWritesNothing) {
  TempDir dir;
  const std::string particles = dir.write("particles.star", "x").string();
  const std::string out = (dir / "run").string();
  std::vector<std::string> args{"tessera_fake", "--out", out};
  for (std::string a : GetParam().args) args.push_back(a == "PARTICLES" ? particles : a);
  if (!GetParam().params_json.empty()) {
    args.push_back("--params");
    args.push_back(dir.write("p.json", GetParam().params_json).string());
  }
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream o, e;
  bool called = false;
  const int code = run_program(test::fake_schema(), static_cast<int>(argv.size()), argv.data(),
                               [&](const Values&, RunContext&) { called = true; }, o, e);
  const std::string message = e.str();
  EXPECT_EQ(code, 2);
  EXPECT_FALSE(called);
  EXPECT_EQ(message.rfind("ERROR: ", 0), 0u) << message;
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 1) << message;
  EXPECT_NE(message.find(GetParam().needle), std::string::npos) << message;
  EXPECT_FALSE(std::filesystem::exists(out));
}

INSTANTIATE_TEST_SUITE_P(
    Cli, BadInputTest,
    ::testing::Values(
        BadInput{{"--particles", "PARTICLES", "--max-res-A", "0.1"},
                 "--max-res-A: 0.1 is out of range (must be >= 0.5 and <= 100 A)"},
        BadInput{{"--particles", "PARTICLES", "--scale-limit", "0", "--use-scale"},
                 "--scale-limit: 0 is out of range (must be > 0"},
        BadInput{{"--particles", "PARTICLES"}, "p.json: max_res_A: 200", R"({"max_res_A": 200})"},
        BadInput{{"--particles", "PARTICLES", "--mask-mode", "auto"},
                 "--mask-mode: 'auto' is not one of: none, threshold, file"},
        BadInput{{"--particles", "PARTICLES"},
                 "p.json: max_res_A: expected a number, got \"high\"", R"({"max_res_A": "high"})"},
        BadInput{{"--particles", "PARTICLES"},
                 "p.json: box_px: expected an integer, got 64.5", R"({"box_px": 64.5})"},
        BadInput{{"--particles", "PARTICLES"},
                 "p.json: use_scale: expected true or false, got 1", R"({"use_scale": 1})"},
        BadInput{{"--particles", "PARTICLES", "--box-px", "big"}, "--box-px: expected an integer, got 'big'"},
        BadInput{{"--particles", "PARTICLES", "--max-res-A", "nan"}, "--max-res-A: expected a number"},
        BadInput{{"--particles", "PARTICLES", "--mask-threshold", "abc"},
                 "--mask-threshold: expected a number"},
        BadInput{{"--particles", "PARTICLES"}, "p.json: unknown parameter 'max_res'", R"({"max_res": 4})"},
        BadInput{{"--particles", "PARTICLES"},
                 "unknown parameter 'max-res-A' (did you mean 'max_res_A'?)", R"({"max-res-A": 4})"},
        BadInput{{"--particles", "PARTICLES"}, "p.json: not valid JSON", R"({"max_res_A": 4,})"},
        BadInput{{"--particles", "PARTICLES"}, "p.json: expected an object", "[1, 2]"},
        BadInput{{"--particles", "PARTICLES", "--max-res", "4"}, "unrecognised option '--max-res'"},
        BadInput{{"--particles", "PARTICLES", "stray"}, "unexpected argument 'stray'"},
        BadInput{{}, "--particles: required input is missing"},
        BadInput{{"--particles", "missing.star"}, "--particles: 'missing.star' does not exist"},
        BadInput{{"--particles", "/"}, "--particles: '/' is a folder"},
        BadInput{{"--particles", "PARTICLES", "--mask-mode", "file"}, "--mask: required input is missing"},
        BadInput{{"--particles", "PARTICLES", "--params", "nowhere.json"},
                 "--params: 'nowhere.json' is not a file"},
        BadInput{{"--particles", "PARTICLES", "--gpu", "0,x"},
                 "--gpu: '0,x' is not a list of device numbers"},
        BadInput{{"--particles", "PARTICLES", "--threads", "0"}, "--threads: 0 is out of range"},
        BadInput{{"--particles", "PARTICLES", "--threads", "1e12"}, "--threads: expected an integer"},
        BadInput{{"--particles", "PARTICLES", "--threads", "9999"}, "--threads: 9999 is out of range"},
        BadInput{{"--particles", "PARTICLES", "--verbose", "--quiet"}, "--verbose and --quiet"},
        BadInput{{"--particles", "PARTICLES", "--use-scale=maybe"}, "--use-scale: expected true or false"}));

TEST(Cli, OutMustBeACreatableFolder) {
  TempDir dir;
  const std::string particles = dir.write("particles.star", "x").string();
  const std::string file = dir.write("taken", "x").string();
  for (const std::string& out : {file, file + "/sub"}) {
    const test::FakeRunResult r = test::run_fake(Argv{"--out", out, "--particles", particles});
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("--out: '" + file + "' exists and is not a folder"), std::string::npos) << r.err;
  }
  const test::FakeRunResult r = test::run_fake(Argv{"--particles", particles});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--out: required parameter is missing"), std::string::npos) << r.err;
}

TEST(Cli, HelpListsEveryOptionBySection) {
  const test::FakeRunResult r = test::run_fake(Argv{"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_FALSE(r.work_called);
  for (const char* needle :
       {"tessera_fake 0.1.0: Fake reconstruction", "Reconstruction:\n", "Masking:\n", "Run:\n",
        "--max-res-A X  (default 8; >= 0.5 and <= 100 A)", "--mask-mode {none|threshold|file}",
        "Only used when: mask_mode == 'threshold'", "--particles FILE  (particles; required)",
        "--iterations N  (default 10; >= 1; advanced)", "--out DIR  (required)", "--use-scale [=true|false]"})
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle << "\n" << r.out;
  EXPECT_EQ(test::run_fake(Argv{"-h"}).out, r.out);
}

TEST(Cli, RunProgramMapsExceptionsToExitCodes) {
  TempDir dir;
  const std::string particles = dir.write("particles.star", "x").string();
  auto argv = [&](const std::string& out) { return Argv{"--out", (dir / out).string(), "--particles", particles}; };

  // After start(): the folder stays and records the failure.
  const test::FakeRunResult failure = test::run_fake(argv("failure"), [](const Values&, RunContext&) {
    throw std::runtime_error("boom\nsecond line");
  });
  EXPECT_EQ(failure.code, 1);
  EXPECT_EQ(failure.err, "ERROR: boom second line\n");
  const Json failed = test::read_json(dir / "failure/outputs.json");
  EXPECT_EQ(failed["status"], "failed");
  EXPECT_EQ(failed["error"], "boom second line");
  EXPECT_EQ(failed["exit_code"], 1);

  const test::FakeRunResult late = test::run_fake(argv("late"), [](const Values&, RunContext&) {
    throw InputError("particles.star: image 12 is NaN");
  });
  EXPECT_EQ(late.code, 2);
  EXPECT_EQ(late.err, "ERROR: particles.star: image 12 is NaN\n");
  EXPECT_EQ(test::read_json(dir / "late/outputs.json")["exit_code"], 2);
  EXPECT_EQ(test::read_json(dir / "late/outputs.json")["status"], "failed");

  // Before start(): nothing on disk, whatever the error.
  for (const bool input_error : {true, false}) {
    const test::FakeRunResult early = test::run_fake(
        argv("early"),
        [&](const Values&, RunContext&) {
          if (input_error) throw InputError("particles.star: no data_particles block");
          throw std::runtime_error("cannot allocate");
        },
        test::Start::ByWork);
    EXPECT_EQ(early.code, input_error ? 2 : 1);
    EXPECT_FALSE(std::filesystem::exists(dir / "early")) << early.err;
  }

  const test::FakeRunResult no_output = test::run_fake(argv("no_output"));  // declared "volume" never added
  EXPECT_EQ(no_output.code, 1);
  EXPECT_NE(no_output.err.find("declared output 'volume' was not produced"), std::string::npos);
}

TEST(Cli, BrokenSchemaIsAFailureNotBadInput) {
  Schema s = test::fake_schema();
  s.add_int("box_px", "Duplicate");
  const Argv argv{"--help"};
  std::ostringstream o, e;
  EXPECT_EQ(run_program(s, argv.argc(), argv.argv(), [](const Values&, RunContext&) {}, o, e), 1);
  EXPECT_NE(e.str().find("box_px"), std::string::npos);
}

}  // namespace
}  // namespace tessera::protocol
