// The run side: outputs.json, run.log.jsonl, progress, atomic writes.
// Oracles: what the work function did (files, events, values passed) and
// the documented formats; elapsed-time checks use the wall clock with the
// margins stated next to them.
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <thread>

#include "common/cli.hpp"
#include "common/run_context.hpp"
#include "fake_program.hpp"

namespace tessera::protocol {
namespace {

using test::Argv;
using test::read_text;
using test::TempDir;

std::vector<Json> read_log(const std::filesystem::path& file) {
  std::ifstream f(file);
  std::vector<Json> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(Json::parse(line));
  return lines;
}

std::vector<Json> events_of(const std::vector<Json>& log, const std::string& type) {
  std::vector<Json> out;
  for (const Json& j : log)
    if (j["event"] == type) out.push_back(j);
  return out;
}

// "2024-05-01T12:00:00.123Z": '0' in the pattern stands for a digit.
bool is_iso_time(const std::string& t) {
  const std::string pattern = "0000-00-00T00:00:00.000Z";
  if (t.size() != pattern.size()) return false;
  for (std::size_t i = 0; i < t.size(); ++i)
    if (pattern[i] == '0' ? !std::isdigit(static_cast<unsigned char>(t[i])) : t[i] != pattern[i])
      return false;
  return true;
}

struct RunContextTest : ::testing::Test {
  TempDir dir;
  std::string particles = dir.write("particles.star", "x").string();
  std::filesystem::path out = dir / "run";
};

TEST_F(RunContextTest, SuccessfulRunWritesManifestAndLog) {
  std::string status_while_running;
  const test::FakeRunResult r = test::run_fake(
      Argv{"--out", out.string(), "--particles", particles, "--max-res-A", "4.5", "--mask-threshold", "3"},
      [&](const Values& v, RunContext& ctx) {
        status_while_running = test::read_json(out / "outputs.json")["status"];
        EXPECT_EQ(ctx.out_dir(), out);
        std::filesystem::create_directories(ctx.path("maps"));
        atomic_write_text(ctx.path("maps/volume.mrc"), "MAP");
        ctx.add_output("volume", "maps/volume.mrc", {{"resolution_A", v.get<double>("max_res_A")}});
        ctx.event("iteration", {{"iteration", 1}, {"resolution_A", 6.1}}, "iteration 1: 6.1 A");
        ctx.info("plain info");
        ctx.debug("hidden debug");
        ctx.warn("careful");
      });
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(status_while_running, "running");
  EXPECT_EQ(r.err, "");

  const Json m = test::read_json(out / "outputs.json");
  EXPECT_EQ(m["manifest_version"], 1);
  EXPECT_EQ(m["program"], "tessera_fake");
  EXPECT_EQ(m["version"], "0.1.0");
  EXPECT_EQ(m["status"], "done");
  EXPECT_EQ(m["exit_code"], 0);
  EXPECT_TRUE(m["error"].is_null());
  EXPECT_EQ(m["parameters"]["max_res_A"], 4.5);
  EXPECT_EQ(m["parameters"]["particles"], particles);
  EXPECT_EQ(m["parameters"]["out"], out.string());
  EXPECT_FALSE(m["parameters"].contains("mask_threshold"));  // inactive
  EXPECT_FALSE(m["parameters"].contains("box_px"));          // unset
  ASSERT_EQ(m["outputs"].size(), 1u);
  EXPECT_EQ(m["outputs"][0], Json({{"name", "volume"}, {"type", "volume"}, {"path", "maps/volume.mrc"},
                                   {"resolution_A", 4.5}}));
  EXPECT_TRUE(is_iso_time(m["started"])) << m["started"];
  EXPECT_TRUE(is_iso_time(m["finished"])) << m["finished"];
  // The whole run takes well under a minute on any machine.
  EXPECT_GE(m["wall_s"].get<double>(), 0.0);
  EXPECT_LT(m["wall_s"].get<double>(), 60.0);

  const std::vector<Json> log = read_log(out / "run.log.jsonl");
  ASSERT_GE(log.size(), 6u);
  EXPECT_EQ(log.front()["event"], "start");
  EXPECT_EQ(log.front()["parameters"], m["parameters"]);
  EXPECT_EQ(log.back()["event"], "done");
  for (const Json& j : log) {
    EXPECT_TRUE(is_iso_time(j["time"])) << j["time"];
    EXPECT_TRUE(j["elapsed_s"].is_number());
  }
  const std::vector<Json> iterations = events_of(log, "iteration");
  ASSERT_EQ(iterations.size(), 1u);
  EXPECT_EQ(iterations[0]["resolution_A"], 6.1);
  EXPECT_EQ(events_of(log, "output")[0]["path"], "maps/volume.mrc");
  std::vector<std::string> messages;
  for (const Json& j : events_of(log, "log"))
    messages.push_back(j["level"].get<std::string>() + ":" + j["message"].get<std::string>());
  const std::string ignored =
      "warning:--mask-threshold is ignored because its condition (mask_mode == 'threshold') is false";
  EXPECT_EQ(messages, (std::vector<std::string>{ignored, "info:plain info", "warning:careful"}));

  // The same events, for humans, on stdout.
  EXPECT_NE(r.out.find("[00:00:00] tessera_fake 0.1.0: writing to " + out.string()), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("] iteration 1: 6.1 A\n"), std::string::npos);
  EXPECT_NE(r.out.find("] WARNING: careful\n"), std::string::npos);
  EXPECT_NE(r.out.find("] wrote maps/volume.mrc (volume)\n"), std::string::npos);
  EXPECT_NE(r.out.find("] done in "), std::string::npos);
  EXPECT_EQ(r.out.find("hidden debug"), std::string::npos);
}

TEST_F(RunContextTest, LogLevels) {
  auto work = [](const Values&, RunContext& ctx) {
    atomic_write_text(ctx.path("v.mrc"), "MAP");
    ctx.add_output("volume", "v.mrc");
    ctx.debug("dbg");
    ctx.info("inf");
    ctx.warn("wrn");
  };
  const test::FakeRunResult quiet =
      test::run_fake(Argv{"--out", out.string(), "--particles", particles, "--quiet"}, work);
  ASSERT_EQ(quiet.code, 0) << quiet.err;
  EXPECT_EQ(quiet.out, quiet.out.substr(0, quiet.out.find('\n') + 1));  // one line only
  EXPECT_NE(quiet.out.find("WARNING: wrn"), std::string::npos);
  EXPECT_EQ(events_of(read_log(out / "run.log.jsonl"), "log").size(), 2u);  // info and warning, no debug

  const test::FakeRunResult verbose =
      test::run_fake(Argv{"--out", out.string(), "--particles", particles, "--verbose", "--overwrite"}, work);
  ASSERT_EQ(verbose.code, 0) << verbose.err;
  EXPECT_NE(verbose.out.find("] dbg\n"), std::string::npos);
  EXPECT_EQ(events_of(read_log(out / "run.log.jsonl"), "log").size(), 3u);
}

TEST_F(RunContextTest, ContinueAppendsToTheLog) {
  auto work = [](const Values&, RunContext& ctx) {
    atomic_write_text(ctx.path("v.mrc"), "MAP");
    ctx.add_output("volume", "v.mrc");
  };
  const Argv fresh{"--out", out.string(), "--particles", particles};
  const Argv resume{"--out", out.string(), "--particles", particles, "--continue"};
  ASSERT_EQ(test::run_fake(fresh, work).code, 0);
  ASSERT_EQ(test::run_fake(resume, work).code, 0);
  EXPECT_EQ(events_of(read_log(out / "run.log.jsonl"), "start").size(), 2u);
  const Argv replace{"--out", out.string(), "--particles", particles, "--overwrite"};
  ASSERT_EQ(test::run_fake(replace, work).code, 0);
  EXPECT_EQ(events_of(read_log(out / "run.log.jsonl"), "start").size(), 1u);
}

TEST_F(RunContextTest, ProgressIsThrottledAndEstimatesTimeLeft) {
  std::string stdout_text;
  const test::FakeRunResult r = test::run_fake(Argv{"--out", out.string(), "--particles", particles},
                                           [&](const Values&, RunContext& ctx) {
    // 101 reports within far less than the 1 s throttle: only the first and the last are kept.
    for (long i = 0; i <= 100; ++i) ctx.progress("particles", i, 100);
    // After more than 1 s, one step of four done: time left = elapsed * 3 steps / 1 step.
    ctx.progress("iterations", 0, 4);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    ctx.progress("iterations", 1, 4);
    atomic_write_text(ctx.path("v.mrc"), "MAP");
    ctx.add_output("volume", "v.mrc");
  });
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<Json> progress = events_of(read_log(out / "run.log.jsonl"), "progress");
  ASSERT_EQ(progress.size(), 4u);
  EXPECT_EQ(progress[0]["done"], 0);
  EXPECT_TRUE(progress[0]["eta_s"].is_null());
  EXPECT_EQ(progress[1]["done"], 100);
  EXPECT_EQ(progress[1]["total"], 100);
  EXPECT_EQ(progress[1]["eta_s"], 0.0);
  EXPECT_EQ(progress[3]["task"], "iterations");
  // Elapsed is at least the 1.1 s slept and, allowing a loaded machine, below 1.6 s.
  EXPECT_GE(progress[3]["eta_s"].get<double>(), 3 * 1.1 - 0.003);  // eta is rounded to 1 ms
  EXPECT_LT(progress[3]["eta_s"].get<double>(), 3 * 1.6);
  EXPECT_NE(r.out.find("] particles 0/100 (0%)\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("] particles 100/100 (100%)\n"), std::string::npos);
  EXPECT_NE(r.out.find("] iterations 1/4 (25%), about "), std::string::npos) << r.out;
}

TEST_F(RunContextTest, AddOutputRejectsMistakes) {
  const test::FakeRunResult r = test::run_fake(Argv{"--out", out.string(), "--particles", particles},
                                           [&](const Values&, RunContext& ctx) {
    atomic_write_text(ctx.path("v.mrc"), "MAP");
    EXPECT_THROW(ctx.add_output("map", "v.mrc"), std::logic_error);             // undeclared
    EXPECT_THROW(ctx.add_output("volume", "absent.mrc"), std::logic_error);     // no file
    EXPECT_THROW(ctx.add_output("volume", particles), std::logic_error);        // outside out
    EXPECT_THROW(ctx.add_output("volume", "v.mrc", {{"path", "x"}}), std::logic_error);  // reserved
    ctx.add_output("volume", ctx.path("v.mrc"));  // absolute inside: fine
    ctx.add_output("volume", "v.mrc", {{"note", 2}});  // again: replaces
  });
  ASSERT_EQ(r.code, 0) << r.err;
  const Json m = test::read_json(out / "outputs.json");
  ASSERT_EQ(m["outputs"].size(), 1u);
  EXPECT_EQ(m["outputs"][0]["path"], "v.mrc");
  EXPECT_EQ(m["outputs"][0]["note"], 2);
}

TEST(AtomicWrite, LeavesNoFileWhenTheWriterThrows) {
  TempDir dir;
  const std::filesystem::path target = dir / "volume.mrc";
  EXPECT_THROW(atomic_write(target,
                            [](const std::filesystem::path& tmp) {
                              std::ofstream(tmp) << "half a map";
                              throw std::runtime_error("disk on fire");
                            }),
               std::runtime_error);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));  // neither the target nor the temporary

  atomic_write_text(target, "old");
  EXPECT_THROW(atomic_write(target,
                            [](const std::filesystem::path& tmp) {
                              std::ofstream(tmp) << "new but broken";
                              throw std::runtime_error("interrupted");
                            }),
               std::runtime_error);
  EXPECT_EQ(read_text(target), "old");  // the previous version is untouched
  EXPECT_THROW(atomic_write(target, [](const std::filesystem::path&) {}), std::logic_error);
  EXPECT_EQ(read_text(target), "old");

  std::filesystem::path seen;
  atomic_write(target, [&](const std::filesystem::path& tmp) {
    seen = tmp;
    EXPECT_FALSE(std::filesystem::exists(tmp));
    std::ofstream(tmp) << "new";
    EXPECT_EQ(read_text(target), "old");  // not visible until renamed
  });
  EXPECT_EQ(seen.parent_path(), dir.path());
  EXPECT_EQ(seen.extension(), ".mrc");
  EXPECT_EQ(read_text(target), "new");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

}  // namespace
}  // namespace tessera::protocol
