#pragma once
// A fake program declared the way real ones are, and helpers to run it from
// tests with argv arrays (no subprocesses).
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cli.hpp"
#include "common/run_context.hpp"
#include "common/schema.hpp"
#include "run_programs.hpp"

namespace tessera::test {

inline protocol::Schema fake_schema() {
  using namespace tessera::protocol;
  Schema s{.name = "tessera_fake",
           .version = "0.1.0",
           .label = "Fake reconstruction",
           .description = "Reconstructs nothing; exists to test the schema machinery.",
           .scipion_base_class = "ProtReconstruct3D",
           .citations = {"10.1016/j.jsb.2012.09.006"},
           .support = {.threads = true, .mpi = true, .gpu = true, .resume = true}};
  s.add_input("particles", InputKind::Particles, "Input particles",
              {.help = "RELION .star or Scipion .sqlite", .pointer_condition = "hasAlignmentProj"});
  s.add_input("mask", InputKind::Mask, "Mask file", {.condition = "mask_mode == 'file'"});
  s.add_float("max_res_A", "Maximum resolution",
              {.default_value = 8, .min = 0.5, .max = 100, .unit = "A",
               .help = "Highest resolution used.", .section = "Reconstruction"});
  s.add_int("box_px", "Box size", {.min = 16, .max = 1024, .unit = "px", .section = "Reconstruction"});
  s.add_bool("use_scale", "Correct per-particle scale", {.section = "Reconstruction"});
  s.add_float("scale_limit", "Scale limit",
              {.default_value = 0.5, .min = 0, .max = 1, .min_exclusive = true,
               .section = "Reconstruction", .condition = "use_scale"});
  s.add_choice("mask_mode", "Mask", {"none", "threshold", "file"},
               {.default_value = "none", .section = "Masking"});
  s.add_float("mask_threshold", "Mask threshold",
              {.default_value = 0.01, .min = 0, .max = 1, .section = "Masking",
               .condition = "mask_mode == 'threshold'"});
  s.add_string("symmetry", "Symmetry", {.default_value = "C1", .section = "Reconstruction"});
  s.add_int("iterations", "Iterations",
            {.default_value = 10, .min = 1, .section = "Reconstruction", .level = Level::Advanced})
      .may_change_on_continue = true;
  s.add_output("volume", OutputKind::Volume, "Reconstructed map");
  s.add_output("fsc", OutputKind::FscJson, "FSC curve", {.optional = true});
  return s;
}

// argv for parse_arguments / run_program; argv[0] is the program name.
class Argv {
 public:
  Argv(std::initializer_list<std::string> args) : args_{"tessera_fake"} {
    args_.insert(args_.end(), args.begin(), args.end());
    for (const auto& a : args_) pointers_.push_back(a.c_str());
  }
  explicit Argv(const std::vector<std::string>& args) : args_{"tessera_fake"} {
    args_.insert(args_.end(), args.begin(), args.end());
    for (const auto& a : args_) pointers_.push_back(a.c_str());
  }
  int argc() const { return static_cast<int>(pointers_.size()); }
  const char* const* argv() const { return pointers_.data(); }

 private:
  std::vector<std::string> args_;
  std::vector<const char*> pointers_;
};

// What run_fake returns: the exit code, what was printed and whether `work` ran.
struct FakeRunResult {
  int code = -1;
  std::string out, err;
  bool work_called = false;
};

// How the fake's work begins: most tests want the run folder made (ctx.start()) before their
// work runs; those about reading inputs first start it themselves.
enum class Start { BeforeWork, ByWork };

inline FakeRunResult run_fake(const Argv& argv, const protocol::WorkFunction& work = {},
                              Start start = Start::BeforeWork) {
  std::ostringstream out, err;
  FakeRunResult r;
  const protocol::WorkFunction wrapped = [&](const protocol::Values& v, protocol::RunContext& ctx) {
    r.work_called = true;
    if (start == Start::BeforeWork) ctx.start();
    if (work) work(v, ctx);
  };
  r.code = protocol::run_program(fake_schema(), argv.argc(), argv.argv(), wrapped, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

inline protocol::Json read_json(const std::filesystem::path& p) {
  std::ifstream f(p);
  if (!f) throw std::runtime_error("cannot read " + p.string());
  return protocol::Json::parse(f);
}

}  // namespace tessera::test
