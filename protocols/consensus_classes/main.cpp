// tessera_consensus_classes: what two or more classifications of the same
// particles agree on (engine/analysis/include/tessera/class_consensus.hpp). Particles
// come from any package (RELION STAR with rlnClassNumber, Scipion sets with
// _classId, cryoSPARC .cs with alignments3D/class) and are matched by name,
// never by order. Every intersection of classes gets its size and a p-value
// against chance; the intersections of at least --min-size particles are kept,
// together as one set whose rlnClassNumber is the intersection's number, and
// each as its own STAR.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/cli.hpp"
#include "common/consensus.hpp"
#include "common/io.hpp"
#include "common/run_context.hpp"
#include "tessera/class_consensus.hpp"
#include "tessera/error.hpp"
#include "tessera/particles_star.hpp"

namespace tp = tessera::protocol;
namespace fs = std::filesystem;
using namespace tessera;

namespace {

constexpr const char* kInputs[] = {"classes_A", "classes_B", "classes_C"};

tp::Schema make_schema() {
  tp::Schema s;
  s.name = "tessera_consensus_classes";
  s.version = "0.1.0";
  s.label = "consensus of classifications";
  s.description =
      "Compares two or three classifications of the same particles (RELION's rlnClassNumber, Scipion classes, "
      "cryoSPARC class assignments), matched particle by particle by image name. Every intersection of classes gets "
      "its size, the size chance would give (independent classifications: the product of the class fractions) and "
      "a binomial p-value; the Jaccard similarity between the classifications' classes is given for every pair. "
      "Intersections of at least the minimum size are kept as subsets: together as one set whose class number is "
      "the intersection's (largest first), and each as a RELION STAR.";
  s.scipion_base_class = "ProtClassify3D";
  s.support.threads = false;
  s.citations = {"10.1107/S2059798320000923"};
  const std::string formats =
      "RELION STAR (rlnClassNumber), Scipion particle set (_classId) or cryoSPARC .cs (alignments3D/class).";
  s.add_input("classes_A", tp::InputKind::Classes, "Classification A",
              {.help = "The first classification: " + formats +
                       " The subsets are made of its particles (with "
                       "their poses, CTFs and other columns)."});
  s.add_input("classes_B", tp::InputKind::Classes, "Classification B",
              {.help = "The second classification of the same particles: " + formats});
  s.add_input("classes_C", tp::InputKind::Classes, "Classification C",
              {.help = "Optionally a third: " + formats, .required = false});
  s.add_int("min_size", "Minimum subset size",
            {.default_value = 100,
             .min = 1,
             .help = "Intersections with at least this many particles are written as subsets; smaller ones are "
                     "listed only."});
  s.add_string("class_label", "Class column",
               {.default_value = "rlnClassNumber",
                .help = "The particle column that holds the class (RELION label without '_'). Scipion's _classId "
                        "and cryoSPARC's alignments3D/class are read as rlnClassNumber.",
                .section = "Matching",
                .level = tp::Level::Advanced});
  tp::add_match_by_param(s);
  s.add_output("consensus", tp::OutputKind::Table, "Consensus (JSON)",
               {.help = "Classes, intersections with sizes, expected sizes and p-values, Jaccard matrices, and the "
                        "figures (heat maps) tessera_view_consensus draws."});
  s.add_output("intersections_star", tp::OutputKind::Table, "Intersections (STAR)",
               {.help = "One row per intersection: its number, classes, size, expected size and p-value."});
  s.add_output("particles_star", tp::OutputKind::ParticlesStar, "Particles in kept intersections (STAR)",
               {.help = "Classification A's particles in the intersections kept, rlnClassNumber = intersection "
                        "number, the input classes as rlnClassNumberA/B/C.",
                .optional = true});
  s.add_output("particles", tp::OutputKind::ParticlesSqlite, "Particles in kept intersections",
               {.help = "The same set for Scipion.", .optional = true});
  tp::add_cs_subset_output(s, "particles", "Particles in kept intersections");
  return s;
}

struct Inputs {
  tp::MatchedSets matched;
  std::vector<std::vector<std::string>> labels;  // [classification][matched row]
};

std::shared_ptr<Inputs> load_inputs(const tp::Values& v) {
  std::vector<fs::path> files;
  for (const char* name : kInputs)
    if (auto f = v.input_optional(name)) files.push_back(*f);
  auto in = std::make_shared<Inputs>();
  in->matched = tp::load_matched_sets(v, files);
  const std::string label = v.get<std::string>("class_label");
  for (std::size_t s = 0; s < files.size(); ++s) {
    const ParticleSet& set = in->matched.sets[s];
    const int column = set.particle_extra_index(label);
    if (column < 0)
      throw InputError(fmt::format("{}: no class column {} (a classification is needed)", files[s].string(), label));
    std::vector<std::string> l;
    for (const auto& row : in->matched.match.rows) {
      const Particle& p = set.particles[static_cast<std::size_t>(row[s])];
      const std::string& c = p.extra[static_cast<std::size_t>(column)];
      if (c.empty())
        throw InputError(
            fmt::format("{}: particle {} has no class ({} is empty)", files[s].string(), p.image.to_string(), label));
      l.push_back(c);
    }
    in->labels.push_back(std::move(l));
  }
  return in;
}

std::string letter(std::size_t s) {
  return std::string(1, static_cast<char>('A' + s));
}

std::string classes_text(const ClassIntersection& x) {
  std::string t;
  for (std::size_t s = 0; s < x.classes.size(); ++s) t += (s ? " & " : "") + letter(s) + x.classes[s];
  return t;
}

// Classification A's particles of the kept intersections, rlnClassNumber = the
// intersection's number, each input's class as rlnClassNumber<letter>.
ParticleSet kept_particles(const Inputs& in, const ClassConsensus& c, int kept, const std::string& label) {
  const ParticleSet& a = in.matched.sets[0];
  std::vector<long> rows;
  for (std::size_t r = 0; r < in.matched.match.rows.size(); ++r)
    if (c.intersection_of[r] < kept) rows.push_back(static_cast<long>(r));
  std::vector<long> indices;
  for (long r : rows) indices.push_back(in.matched.match.rows[static_cast<std::size_t>(r)][0]);
  ParticleSet out = tp::subset_of(a, indices);
  auto column = [&](const std::string& name) {
    int k = out.particle_extra_index(name);
    if (k >= 0) return static_cast<std::size_t>(k);
    out.particle_extra_labels.push_back(name);
    for (auto& p : out.particles) p.extra.emplace_back();
    return out.particle_extra_labels.size() - 1;
  };
  const std::size_t number = column(label);
  std::vector<std::size_t> per_input;
  for (std::size_t s = 0; s < in.labels.size(); ++s) per_input.push_back(column(label + letter(s)));
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto r = static_cast<std::size_t>(rows[i]);
    auto& extra = out.particles[i].extra;
    extra[number] = std::to_string(c.intersection_of[r] + 1);
    for (std::size_t s = 0; s < in.labels.size(); ++s) extra[per_input[s]] = in.labels[s][r];
  }
  return out;
}

void work(const tp::Values& v, tp::RunContext& ctx) {
  const std::shared_ptr<Inputs> in = load_inputs(v);
  ctx.start();
  const tp::Json matching = tp::report_matching(ctx, in->matched);
  const ClassConsensus c = class_consensus(in->labels);
  const long min_size = v.get<std::int64_t>("min_size");
  const std::string label = v.get<std::string>("class_label");
  const int kept = static_cast<int>(std::count_if(c.intersections.begin(), c.intersections.end(),
                                                  [&](const ClassIntersection& x) { return x.size >= min_size; }));
  const std::size_t m = in->labels.size();

  tp::Json inputs = tp::Json::array();
  for (std::size_t s = 0; s < m; ++s) {
    tp::Json classes = tp::Json::array();
    for (std::size_t k = 0; k < c.classes[s].size(); ++k)
      classes.push_back({{"class", c.classes[s][k]},
                         {"size", c.class_sizes[s][k]},
                         {"fraction", static_cast<double>(c.class_sizes[s][k]) / static_cast<double>(c.particles)}});
    inputs.push_back({{"name", letter(s)}, {"file", in->matched.files[s].string()}, {"classes", std::move(classes)}});
  }

  fs::create_directories(ctx.path("intersections"));
  StarTable table;
  table.name = "intersections";
  table.labels = {"tesseraIntersection", "tesseraClasses",     "tesseraSize",
                  "tesseraExpectedSize", "tesseraLog10PValue", "tesseraKept"};
  tp::Json intersections = tp::Json::array();
  const ParticleSet kept_set = kept_particles(*in, c, kept, label);
  // The particles of each kept intersection in kept_set (which lists the matched rows in order).
  std::vector<std::vector<long>> members(static_cast<std::size_t>(kept));
  long next = 0;
  for (int x : c.intersection_of)
    if (x < kept) members[static_cast<std::size_t>(x)].push_back(next++);
  for (std::size_t k = 0; k < c.intersections.size(); ++k) {
    const ClassIntersection& x = c.intersections[k];
    const bool keep = static_cast<int>(k) < kept;
    tp::Json j = {{"number", k + 1},      {"classes", x.classes},
                  {"size", x.size},       {"expected", x.expected},
                  {"p_value", x.p_value}, {"log10_p_value", x.log10_p_value},
                  {"kept", keep}};
    if (keep) {
      // Each kept intersection also on its own, for RELION users.
      const std::string file = fmt::format("intersections/intersection_{:03d}.star", k + 1);
      write_particles_star(ctx.path(file), tp::subset_of(kept_set, members[k]), fs::absolute(ctx.out_dir()));
      j["file"] = file;
    }
    table.rows.push_back({std::to_string(k + 1), classes_text(x), std::to_string(x.size),
                          fmt::format("{:.6g}", x.expected), fmt::format("{:.6g}", x.log10_p_value), keep ? "1" : "0"});
    intersections.push_back(std::move(j));
    if (k < 10)
      ctx.info(fmt::format("intersection {}: {}, {} particles (chance: {:.1f}, p = 1e{:.1f}){}", k + 1, classes_text(x),
                           x.size, x.expected, x.log10_p_value, keep ? "" : ", not kept"));
  }
  StarFile table_file;
  table_file.blocks.push_back(std::move(table));
  write_star(ctx.path("intersections.star"), table_file);
  ctx.add_output("intersections_star", "intersections.star");

  tp::Json heatmaps = tp::Json::array();
  tp::Json jaccard = tp::Json::array();
  for (std::size_t s = 0; s < m; ++s)
    for (std::size_t t = s + 1; t < m; ++t) {
      const auto j = jaccard_matrix(c, in->labels, static_cast<int>(s), static_cast<int>(t));
      std::vector<std::string> rows, cols;
      for (const auto& x : c.classes[s]) rows.push_back(letter(s) + x);
      for (const auto& x : c.classes[t]) cols.push_back(letter(t) + x);
      const std::string name = "jaccard_" + letter(s) + letter(t);
      heatmaps.push_back(tp::heatmap_json(name, fmt::format("Jaccard similarity, {} vs {}", letter(s), letter(t)), rows,
                                          cols, j, "classification " + letter(s), "classification " + letter(t)));
      jaccard.push_back({{"a", letter(s)}, {"b", letter(t)}, {"values", j}});
    }

  if (kept > 0) {
    tp::save_subset(ctx, kept_set, "particles", in->matched.files[0]);
  } else {
    ctx.warn(fmt::format("no intersection has {} or more particles (the largest has {}): no subset written", min_size,
                         c.intersections.front().size));
  }
  const long kept_particles_count = static_cast<long>(kept_set.particles.size());
  ctx.info(fmt::format("{} intersections, {} with at least {} particles ({} particles kept of {})",
                       c.intersections.size(), kept, min_size, kept_particles_count, c.particles));
  const tp::Json doc = {{"matching", matching},
                        {"particles", c.particles},
                        {"min_size", min_size},
                        {"inputs", std::move(inputs)},
                        {"intersections", std::move(intersections)},
                        {"kept_intersections", kept},
                        {"kept_particles", kept_particles_count},
                        {"jaccard", std::move(jaccard)},
                        {"figures", {{"heatmaps", std::move(heatmaps)}, {"histograms", tp::Json::array()}}}};
  tp::atomic_write_text(ctx.path("consensus_classes.json"), doc.dump(1) + "\n");
  ctx.add_output("consensus", "consensus_classes.json",
                 {{"intersections", c.intersections.size()},
                  {"kept_intersections", kept},
                  {"kept_particles", kept_particles_count},
                  {"matched_particles", c.particles}});
}

}  // namespace

int main(int argc, char** argv) {
  return tp::run_program(make_schema(), argc, argv, work);
}
