#pragma once
// The bad-input matrix's pieces (test_bad_inputs.cpp): the valid set every row
// starts from, the writers that make one bad file, and the rows' builders. The
// rows themselves live with the programs they test: test_bad_inputs.cpp and
// test_bad_inputs_consensus.cpp.
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

namespace bad_input {

namespace fs = std::filesystem;
using namespace tessera;
using test::RunResult;
using test::TempDir;

constexpr int kBox = 32;
constexpr double kPixelA = 3.0;

// The valid inputs every row starts from, made once per process.
struct Valid {
  TempDir root;  // the valid set in root/valid, each row's inputs in root/<row>
  fs::path dir, star, sqlite, stack, truth, mask, keep_mask, half_a, half_b;
};

// Two half maps: the truth plus independent white noise, so their FSC falls
// below 0.8 before Nyquist as real half maps do.
inline void write_half_maps(Valid& v) {
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
inline void write_keep_mask(Valid& v) {
  RealGrid m = read_mrc(v.mask).data;
  for (int z = 0; z < kBox; ++z)
    for (int y = 0; y < kBox; ++y)
      for (int x = kBox / 2; x < kBox; ++x) m(x, y, z) = 0.0f;
  write_mrc(v.keep_mask, m, kPixelA);
}

inline void make_valid(Valid& s) {
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

inline const Valid& valid() {
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

inline Writer text(const std::string& content) {
  return [content](const Maker&, const fs::path& p) { test::write_text(p, content); };
}
inline Writer volume(const std::function<RealGrid(const Valid&)>& grid, double voxel_A = kPixelA) {
  return [=](const Maker& m, const fs::path& p) { write_mrc(p, grid(m.ok), voxel_A); };
}
inline Writer volume(const RealGrid& grid, double voxel_A = kPixelA) {
  return volume([grid](const Valid&) { return grid; }, voxel_A);
}
// A copy of one of the valid files, cut to `fraction` of its size.
inline Writer cut(fs::path Valid::*from, double fraction) {
  return [=](const Maker& m, const fs::path& p) {
    fs::copy_file(m.ok.*from, p);
    fs::resize_file(p, static_cast<std::uintmax_t>(static_cast<double>(fs::file_size(p)) * fraction));
  };
}
// A copy of one of the valid files with the 32-bit word at byte `offset` set to `value`.
inline Writer patched(fs::path Valid::*from, std::size_t offset, std::int32_t value) {
  return [=](const Maker& m, const fs::path& p) {
    std::string bytes = test::read_text(m.ok.*from);
    std::memcpy(bytes.data() + offset, &value, sizeof value);
    test::write_text(p, bytes);
  };
}
// The valid particles, changed by `edit`, as a STAR.
inline Writer particles(const std::function<void(const Maker&, ParticleSet&)>& edit) {
  return [edit](const Maker& m, const fs::path& p) {
    ParticleSet set = read_particles_star(m.ok.star);
    edit(m, set);
    write_particles_star(p, set, m.dir);
  };
}
inline Writer star(const std::function<void(StarFile&)>& edit) {
  return [edit](const Maker& m, const fs::path& p) {
    StarFile f = particles_to_star(read_particles_star(m.ok.star), m.dir);
    edit(f);
    write_star(p, f);
  };
}
inline Writer table(const std::function<void(StarTable&)>& edit) {
  return star([edit](StarFile& f) { edit(*f.find("particles")); });
}
inline Writer column(const std::string& label, const std::function<std::string(std::size_t row)>& value) {
  return table([=](StarTable& t) {
    const auto c = static_cast<std::size_t>(t.column(label));
    for (std::size_t r = 0; r < t.rows.size(); ++r) t.rows[r][c] = value(r);
  });
}
inline Writer drop_column(const std::string& label) {
  return table([label](StarTable& t) {
    const auto c = t.labels.begin() + t.column(label);
    for (auto& row : t.rows) row.erase(row.begin() + (c - t.labels.begin()));
    t.labels.erase(c);
  });
}
// The valid particles, with pixel (x, y) of image `index` set to `value` in a
// copy of their stack, <STAR stem>.mrcs beside the STAR.
inline Writer image(long index, int x, int y, float value) {
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
inline Writer sqlite(const std::string& sql) {
  return [sql](const Maker& m, const fs::path& p) {
    fs::copy_file(m.ok.sqlite, p);
    sqlite3* db = nullptr;
    if (sqlite3_open(p.c_str(), &db) != SQLITE_OK || sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr))
      ADD_FAILURE() << "sqlite: " << sqlite3_errmsg(db);
    sqlite3_close(db);
  };
}

inline RealGrid constant(float value) {
  return RealGrid(kBox, kBox, kBox, value);
}

// A map of another box that is not constant either (x in every voxel).
inline RealGrid ramp(int box) {
  RealGrid g(box, box, box);
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(i % static_cast<std::size_t>(box));
  return g;
}

inline RealGrid read_with(const fs::path& file, std::size_t i, float value) {
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
inline Args valid_args(const std::string& program, const Valid& ok) {
  if (program == "simulate") return {"--count", "4"};
  if (program == "reconstruct") return {"--particles", ok.star.string()};
  if (program == "refine_homo")
    return {"--particles", ok.star.string(), "--reference", ok.truth.string(), "--max-iterations", "1"};
  if (program == "subtract")
    return {"--particles", ok.star.string(), "--map", ok.truth.string(), "--mask", ok.keep_mask.string()};
  if (program == "refine_local")
    return {"--particles",
            ok.star.string(),
            "--half-map-A",
            ok.half_a.string(),
            "--half-map-B",
            ok.half_b.string(),
            "--mask",
            ok.keep_mask.string(),
            "--rounds",
            "1",
            "--iterations-per-module",
            "1"};
  if (program == "consensus_ctf") return {"--ctf-A", ok.star.string(), "--ctf-B", ok.sqlite.string()};
  if (program == "consensus_poses") return {"--particles", ok.star.string(), "--particles-B", ok.sqlite.string()};
  if (program == "ctf_refine") return {"--particles", ok.star.string(), "--map", ok.truth.string()};
  // validate_fsc, local_resolution
  return {"--half-map-A", ok.half_a.string(), "--half-map-B", ok.half_b.string(), "--mask", ok.mask.string()};
}

// `args` with each option of `changes` set to its value there (added when new,
// left out when the value is "").
inline Args changed(Args args, const Args& changes) {
  for (std::size_t i = 0; i + 1 < changes.size(); i += 2) {
    auto it = std::find(args.begin(), args.end(), changes[i]);
    if (it == args.end()) it = args.insert(args.end(), {changes[i], ""});
    *(it + 1) = changes[i + 1];
    if (changes[i + 1].empty()) args.erase(it, it + 2);
  }
  return args;
}

inline Args plus(Args a, const Args& b) {
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

inline void PrintTo(const Row& row, std::ostream* os) {
  *os << row.name;
}

// A bad parameter value (or values).
inline Row option(const std::string& name, const std::string& program, const Args& changes) {
  return {name, program, [changes](Maker&) { return changes; }, changes.at(changes.size() - 2)};
}
// A bad file `file`, made by `write`, given as `option`; the error must name the file (or `names`).
inline Row bad_file(const std::string& name, const std::string& program, const std::string& option,
                    const std::string& file, const Writer& write, const std::string& names = "",
                    After after = After::NoFolder) {
  const auto make = [=](Maker& m) {
    write(m, m.dir / file);
    return Args{option, (m.dir / file).string()};
  };
  return {name, program, make, names.empty() ? file : names, after};
}
// --out made by `prepare` before the run: it must hold the same afterwards.
inline Row bad_out(const std::string& name, const std::string& program,
                   const std::function<void(const fs::path&)>& prepare) {
  const auto make = [prepare](Maker& m) {
    prepare(m.out);
    return Args{};
  };
  return {name, program, make, "--out", After::Untouched};
}

// --out holding a user's file in a subfolder: it must be left as it was.
inline Row user_files_in_out(const std::string& name, const std::string& program) {
  return bad_out(name, program, [](const fs::path& out) {
    fs::create_directories(out / "sub");
    test::write_text(out / "sub" / "map.mrc", "mine\n");
  });
}

inline void clear_ctf(const Maker&, ParticleSet& s) {
  for (Particle& p : s.particles) p.defocus_u_A = p.defocus_v_A = p.defocus_angle_deg = 0;
}

// The row with --disorder on (what its bad file or value is for).
inline Row with_disorder(Row row) {
  row.make = [make = row.make](Maker& m) { return plus(make(m), {"--disorder", "true"}); };
  return row;
}

// The rows of the consensus programs (test_bad_inputs_consensus.cpp).
std::vector<Row> consensus_ctf_rows();
std::vector<Row> consensus_poses_rows();
std::vector<Row> ctf_refine_rows();

}  // namespace bad_input
