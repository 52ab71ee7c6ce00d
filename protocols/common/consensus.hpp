#pragma once
/// What the consensus programs share: particle files from any package
/// (load_particles), matched particle by particle (tessera/particle_matching.hpp),
/// the report of what did not match, and subsets of an input set.
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/run_context.hpp"
#include "common/schema.hpp"
#include "tessera/particle_matching.hpp"
#include "tessera/particles.hpp"

namespace tessera::protocol {

/// Declares the choice parameter "match_by" (filename, path, original, id).
void add_match_by_param(Schema& s);

struct MatchedSets {
  std::vector<ParticleSet> sets;
  std::vector<std::filesystem::path> files;
  MatchBy by = MatchBy::FileName;
  ParticleMatch match;
};

/// Reads every file (load_particles) and matches the sets by the "match_by"
/// parameter. InputError (one line, naming the file) on a file that cannot be
/// read, on duplicate keys, or when no particle is common to all files.
MatchedSets load_matched_sets(const Values& v, const std::vector<std::filesystem::path>& files);

/// Logs how many items matched and, per file, how many did not (with the
/// first few names, name_of(file, index)); a warning when some did not.
/// Returns the same as JSON: {"match_by", "matched", "files": [{"file",
/// "<item>s" (the count), "unmatched", "unmatched_examples": [...]}]}.
Json report_matching(RunContext& ctx, const ParticleMatch& match, MatchBy by,
                     const std::vector<std::filesystem::path>& files, const std::vector<std::size_t>& counts,
                     const std::string& item, const std::function<std::string(std::size_t, long)>& name_of);
/// The same for particle sets (items "particle", named by their image).
Json report_matching(RunContext& ctx, const MatchedSets& m);

/// The particles of `set` at `indices` (in that order), with the set's optics,
/// extra labels and base folder.
ParticleSet subset_of(const ParticleSet& set, const std::vector<long>& indices);

/// Declares the optional output "<stem>_cs": the subset `stem` (saved by
/// save_subset) as a cryoSPARC .cs file, written when the particles it comes
/// from were read from one, so the subset goes back into cryoSPARC with its uids.
void add_cs_subset_output(Schema& s, const std::string& stem, const std::string& label);

/// save_particles(ctx, set, stem, stem + "_star", stem): out/<stem>.star and
/// out/<stem>.sqlite; and, when `source` (the file the particles were read
/// from) is a cryoSPARC .cs, out/<stem>.cs as output stem + "_cs"
/// (cryosparc_cs.hpp; image paths relative to the output folder).
void save_subset(RunContext& ctx, const ParticleSet& set, const std::string& stem,
                 const std::filesystem::path& source);

/// The figures block every consensus program writes into its JSON summary,
/// which tessera_view_consensus draws:
///   {"histograms": [histogram_json...], "heatmaps": [heatmap_json...]}
/// A histogram of `values` over [0, max] (max: the largest value, or the
/// threshold times 2 when larger) in `bins` equal bins:
///   {"name", "label", "unit", "edges": [bins + 1], "counts": [bins],
///    "threshold": t or null, "median", "mean", "count"}
Json histogram_json(const std::string& name, const std::string& label, const std::string& unit,
                    const std::vector<double>& values, int bins, std::optional<double> threshold);
/// A matrix to draw as a heat map: {"name", "label", "rows": [labels],
/// "columns": [labels], "values": [[row]], "row_title", "column_title"}.
Json heatmap_json(const std::string& name, const std::string& label, const std::vector<std::string>& rows,
                  const std::vector<std::string>& columns, const std::vector<std::vector<double>>& values,
                  const std::string& row_title, const std::string& column_title);

}  // namespace tessera::protocol
