#include "common/consensus.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "common/io.hpp"
#include "tessera/cryosparc_cs.hpp"

namespace tessera::protocol {

namespace {
constexpr std::size_t kExamples = 5;
}

void add_match_by_param(Schema& s) {
  s.add_choice(
      "match_by", "Match particles by", {"filename", "path", "original", "id"},
      {.default_value = "filename",
       .help = "How the same particle is recognised in different files (never by order). filename: the "
               "image's index and its stack's file name without folders (cryoSPARC's import prefix removed, "
               ".mrcs read as .mrc), which survives import into RELION, Scipion and cryoSPARC; path: index "
               "and the stack's full path; original: as filename, of the image each particle was made from "
               "(rlnImageOriginalName, written by subtraction) when it has one, to compare subtracted particles with "
               "their originals; id: the Scipion item id (or the cryoSPARC uid), for sets derived "
               "from one another in one package.",
       .section = "Matching",
       .level = Level::Advanced});
}

MatchedSets load_matched_sets(const Values& v, const std::vector<std::filesystem::path>& files) {
  MatchedSets m;
  m.by = parse_match_by(v.get<std::string>("match_by"));
  m.files = files;
  m.sets.reserve(files.size());
  for (const auto& f : files) m.sets.push_back(load_particles(f));
  std::vector<NamedSet> named;
  for (std::size_t i = 0; i < files.size(); ++i) named.push_back({&m.sets[i], files[i]});
  m.match = match_particles(named, m.by);
  return m;
}

Json report_matching(RunContext& ctx, const ParticleMatch& match, MatchBy by,
                     const std::vector<std::filesystem::path>& files, const std::vector<std::size_t>& counts,
                     const std::string& item, const std::function<std::string(std::size_t, long)>& name_of) {
  Json out = Json::array();
  for (std::size_t s = 0; s < files.size(); ++s) {
    const auto& missing = match.unmatched[s];
    Json examples = Json::array();
    for (std::size_t i = 0; i < missing.size() && i < kExamples; ++i) examples.push_back(name_of(s, missing[i]));
    if (!missing.empty())
      ctx.warn(
          fmt::format("{}: {} of {} {}s are not in every other file (matched by {}), e.g. {}; they are left out "
                      "of the comparison",
                      files[s].string(), missing.size(), counts[s], item, to_string(by), examples.dump()));
    out.push_back({{"file", files[s].string()},
                   {item + "s", counts[s]},
                   {"unmatched", missing.size()},
                   {"unmatched_examples", std::move(examples)}});
  }
  ctx.info(fmt::format("{} {}s matched by {} across {} files", match.rows.size(), item, to_string(by), files.size()));
  return {{"match_by", to_string(by)}, {"matched", match.rows.size()}, {"files", std::move(out)}};
}

Json report_matching(RunContext& ctx, const MatchedSets& m) {
  std::vector<std::size_t> counts;
  for (const ParticleSet& set : m.sets) counts.push_back(set.particles.size());
  return report_matching(ctx, m.match, m.by, m.files, counts, "particle", [&](std::size_t s, long i) {
    return m.sets[s].particles[static_cast<std::size_t>(i)].image.to_string();
  });
}

ParticleSet subset_of(const ParticleSet& set, const std::vector<long>& indices) {
  ParticleSet out;
  out.optics = set.optics;
  out.optics_extra_labels = set.optics_extra_labels;
  out.particle_extra_labels = set.particle_extra_labels;
  out.base_dir = set.base_dir;
  out.has_scales = set.has_scales;
  out.particles.reserve(indices.size());
  for (long i : indices) out.particles.push_back(set.particles[static_cast<std::size_t>(i)]);
  return out;
}

void add_cs_subset_output(Schema& s, const std::string& stem, const std::string& label) {
  s.add_output(stem + "_cs", OutputKind::Table, label + " (cryoSPARC .cs)",
               {.help = "The same particles as a cryoSPARC .cs file (uids kept), written when they were read from "
                        "one.",
                .optional = true});
}

void save_subset(RunContext& ctx, const ParticleSet& set, const std::string& stem,
                 const std::filesystem::path& source) {
  save_particles(ctx, set, stem, stem + "_star", stem);
  if (source.extension() != ".cs") return;
  const std::filesystem::path out = std::filesystem::absolute(ctx.out_dir());
  write_cryosparc_particles(out / (stem + ".cs"), set, out);
  ctx.add_output(stem + "_cs", stem + ".cs", {{"count", set.particles.size()}});
}

Json histogram_json(const std::string& name, const std::string& label, const std::string& unit,
                    const std::vector<double>& values, int bins, std::optional<double> threshold) {
  double top = 0, sum = 0;
  for (double x : values) top = std::max(top, x), sum += x;
  if (threshold) top = std::max(top, 2 * *threshold);
  if (top <= 0) top = 1;
  std::vector<double> edges(static_cast<std::size_t>(bins) + 1);
  for (int b = 0; b <= bins; ++b) edges[static_cast<std::size_t>(b)] = top * b / bins;
  std::vector<long> counts(static_cast<std::size_t>(bins), 0);
  for (double x : values) {
    const int b = std::clamp(static_cast<int>(x / top * bins), 0, bins - 1);
    ++counts[static_cast<std::size_t>(b)];
  }
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  Json median = nullptr, mean = nullptr;
  if (!sorted.empty()) {
    const std::size_t n = sorted.size();
    median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    mean = sum / static_cast<double>(n);
  }
  return {{"name", name},     {"label", label},   {"unit", unit},
          {"edges", edges},   {"counts", counts}, {"threshold", threshold ? Json(*threshold) : Json(nullptr)},
          {"median", median}, {"mean", mean},     {"count", values.size()}};
}

Json heatmap_json(const std::string& name, const std::string& label, const std::vector<std::string>& rows,
                  const std::vector<std::string>& columns, const std::vector<std::vector<double>>& values,
                  const std::string& row_title, const std::string& column_title) {
  return {{"name", name},
          {"label", label},
          {"rows", rows},
          {"columns", columns},
          {"values", values},
          {"row_title", row_title},
          {"column_title", column_title}};
}

}  // namespace tessera::protocol
