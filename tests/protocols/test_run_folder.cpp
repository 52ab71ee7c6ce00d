// The run folder's rules (common/run_folder.hpp): what --out may hold, inputs never inside it,
// --continue against changed values, the lock, temporaries, --overwrite. Oracles: the files on
// disk (bytes and checksums of what the user had there) and the exit code and message.
#include <gtest/gtest.h>

#include <sys/file.h>

#include <fcntl.h>
#include <unistd.h>

#include "common/cli.hpp"
#include "common/run_context.hpp"
#include "common/run_folder.hpp"
#include "fake_program.hpp"

namespace tessera::protocol {
namespace {

namespace fs = std::filesystem;
using test::Argv;
using test::read_text;
using test::TempDir;

struct RunFolderTest : ::testing::Test {
  TempDir dir;
  std::string particles = dir.write("particles.star", "x").string();
  fs::path out = dir / "run";

  static void work(const Values&, RunContext& ctx) {
    atomic_write_text(ctx.path("v.mrc"), "MAP");
    ctx.add_output("volume", "v.mrc");
  }
  test::FakeRunResult run(std::initializer_list<std::string> extra = {}) {
    std::vector<std::string> args{"--out", out.string(), "--particles", particles};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_args(args);
  }
  static test::FakeRunResult run_args(const std::vector<std::string>& args) {
    return test::run_fake(Argv(args), work);
  }
  static void expect_refused(const test::FakeRunResult& r, const std::string& needle) {
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_FALSE(r.work_called);
    EXPECT_EQ(r.err.rfind("ERROR: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  }
};

TEST_F(RunFolderTest, AFolderWithOtherFilesIsRefusedAndLeftAsItWas) {
  fs::create_directories(out);
  const fs::path users = out / "my_stack.mrcs";
  std::ofstream(users) << "the user's data";
  expect_refused(run(), "holds other files (my_stack.mrcs)");
  expect_refused(run({"--overwrite"}), "no run of tessera_fake");
  EXPECT_EQ(read_text(users), "the user's data");
  EXPECT_EQ(std::distance(fs::directory_iterator(out), fs::directory_iterator()), 1);
}

TEST_F(RunFolderTest, AnEmptyFolderIsUsed) {
  fs::create_directories(out);  // as Scipion makes a run's extra folder
  ASSERT_EQ(run().code, 0);
  EXPECT_EQ(read_text(out / "v.mrc"), "MAP");
}

TEST_F(RunFolderTest, AnInputInsideTheFolderIsRefusedWhateverTheFlags) {
  ASSERT_EQ(run().code, 0);
  const std::string inside = (out / "v.mrc").string();
  for (const char* flag : {"--overwrite", "--continue"}) {
    const auto r = run_args({"--out", out.string(), "--particles", inside, flag});
    expect_refused(r, "lies inside it");
  }
  EXPECT_EQ(read_text(out / "v.mrc"), "MAP");
}

TEST_F(RunFolderTest, AFinishedRunIsKeptUnlessTheUserSaysOverwrite) {
  ASSERT_EQ(run().code, 0);
  std::ofstream(out / "extra.txt") << "left by the earlier run";
  expect_refused(run(), "holds a run of tessera_fake already");
  EXPECT_TRUE(fs::exists(out / "extra.txt"));
  ASSERT_EQ(run({"--overwrite"}).code, 0);
  EXPECT_FALSE(fs::exists(out / "extra.txt"));  // the earlier run's files were replaced
  EXPECT_EQ(test::read_json(out / "outputs.json")["status"], "done");
  expect_refused(run({"--overwrite", "--continue"}), "contradict");
}

TEST_F(RunFolderTest, ContinueRefusesNothingToContinueAndChangedValues) {
  expect_refused(run({"--continue"}), "holds no run to continue");
  ASSERT_EQ(run({"--max-res-A", "5"}).code, 0);
  expect_refused(run({"--continue"}), "max_res_A was 5.0, now 8.0");
  expect_refused(run({"--max-res-A", "5", "--seed", "2", "--continue"}), "seed was 1, now 2");
  // Threads (how it runs) and how long it goes on may change; the values that shape the result may not.
  EXPECT_EQ(run({"--max-res-A", "5", "--threads", "2", "--continue"}).code, 0);
  EXPECT_EQ(run({"--max-res-A", "5", "--iterations", "20", "--continue"}).code, 0);
  // The same input bytes at another path are the same input; other bytes are not.
  const std::string copy = dir.write("copy.star", "x").string();
  EXPECT_EQ(run_args({"--out", out.string(), "--particles", copy, "--max-res-A", "5", "--continue"}).code, 0);
  std::ofstream(particles) << "changed";
  expect_refused(run({"--max-res-A", "5", "--continue"}), "is not the file the run started with");
}

TEST_F(RunFolderTest, ASecondRunIntoALockedFolderIsRefused) {
  fs::create_directories(out);
  const int fd = ::open((out / kLockFileName).c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);  // another run holds it (a lock per open file)
  const test::FakeRunResult r = run();
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("another run is writing into this folder"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out / "outputs.json"));
  ::close(fd);
  EXPECT_EQ(run().code, 0);
}

TEST_F(RunFolderTest, TemporariesOfAKilledRunAreRemovedAndAFailureRemovesItsOwn) {
  ASSERT_EQ(run().code, 0);
  fs::create_directories(out / "state/iter_002");
  std::ofstream(out / ".particles.mrcs.tmp-4242") << "75 MB of a killed run";
  std::ofstream(out / "state/iter_002/half_A.mrc.tmp-4242") << "partial";
  ASSERT_EQ(run({"--continue"}).code, 0);
  EXPECT_FALSE(fs::exists(out / ".particles.mrcs.tmp-4242"));
  EXPECT_FALSE(fs::exists(out / "state/iter_002/half_A.mrc.tmp-4242"));

  ASSERT_EQ(run_args({"--out", (dir / "second").string(), "--particles", particles}).code, 0);
  const test::FakeRunResult failed = test::run_fake(
      Argv{"--out", (dir / "second").string(), "--particles", particles, "--continue"},
      [](const Values&, RunContext& ctx) {
        std::ofstream(ctx.path(".stack.mrcs.tmp-1")) << "half";
        throw std::runtime_error("disk full");
      });
  EXPECT_EQ(failed.code, 1);
  EXPECT_FALSE(fs::exists(dir / "second/.stack.mrcs.tmp-1"));
  EXPECT_EQ(read_text(dir / "second/v.mrc"), "MAP");  // what the run had is kept
  EXPECT_EQ(test::read_json(dir / "second/outputs.json")["status"], "failed");
}


TEST_F(RunFolderTest, AFailedRunListsWhatItWroteOnlyAsPartialOutputs) {
  const test::FakeRunResult failed = test::run_fake(
      Argv{"--out", out.string(), "--particles", particles}, [](const Values&, RunContext& ctx) {
        atomic_write_text(ctx.path("v.mrc"), "MAP");
        ctx.add_output("volume", "v.mrc");
        throw std::runtime_error("disk full while writing the half maps");
      });
  EXPECT_EQ(failed.code, 1);
  const Json m = test::read_json(out / "outputs.json");
  EXPECT_EQ(m["status"], "failed");
  EXPECT_TRUE(m["outputs"].empty()) << m.dump();  // nothing that reads it takes a half set for usable
  ASSERT_EQ(m["partial_outputs"].size(), 1u) << m.dump();
  EXPECT_EQ(m["partial_outputs"][0]["path"], "v.mrc");
  EXPECT_EQ(read_text(out / "v.mrc"), "MAP");  // and the file stays
}

}  // namespace
}  // namespace tessera::protocol
