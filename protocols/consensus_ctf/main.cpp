// tessera_consensus_ctf: two CTF estimates of the same micrographs (CTFFIND4
// against Gctf, say) or of the same particles (cryoSPARC's per-particle defocus
// against RELION's), compared item by item: the difference of their mean defoci,
// of their astigmatisms and astigmatism axes, and the consensus resolution, the
// resolution at which the two CTFs' phases differ by 90 degrees (Xmipp's CTF
// consensus criterion; engine/analysis/include/tessera/ctf_consensus.hpp says what is
// computed and where it differs from Xmipp). Items within both thresholds are
// kept as a subset of the first input.
//
// The two inputs are particle files (RELION STAR, Scipion sqlite or cryoSPARC
// .cs: load_particles, matched by common/consensus.hpp) or micrograph CTF tables
// (RELION micrographs_ctf.star: tessera/micrographs_star.hpp, matched by
// micrograph file name). A STAR is a micrograph table when its table is
// data_micrographs (or, RELION 3.0, has rlnMicrographName without rlnImageName);
// both inputs must be of one kind. The inputs are declared as CTFs
// (InputKind::Ctfs): the Scipion plugin passes a SetOfCTF converted to a
// micrograph STAR.
#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <optional>

#include "common/cli.hpp"
#include "common/consensus.hpp"
#include "common/io.hpp"
#include "common/run_context.hpp"
#include "tessera/ctf_consensus.hpp"
#include "tessera/error.hpp"
#include "tessera/micrographs_star.hpp"
#include "tessera/star.hpp"

namespace tp = tessera::protocol;
namespace fs = std::filesystem;
using namespace tessera;

namespace {

tp::Schema make_schema() {
  tp::Schema s;
  s.name = "tessera_consensus_ctf";
  s.version = "0.1.0";
  s.label = "CTF consensus";
  s.description =
      "Compares two CTF estimates of the same micrographs (e.g. CTFFIND4 and Gctf) or of the same particles (e.g. "
      "cryoSPARC's and RELION's per-particle CTF refinement), item by item: the difference of the mean defoci, of "
      "the astigmatisms and of the astigmatism axes, and the consensus resolution, at which the two CTFs' phases "
      "first differ by 90 degrees in any direction (Xmipp's CTF consensus criterion, from the worst direction "
      "rather than Xmipp's area average). Items whose consensus resolution is worse than the minimum (or whose "
      "defoci differ by more than the maximum, when given) are rejected; the others are kept as a subset of the "
      "first input.";
  s.scipion_base_class = "EMProtocol";
  s.citations = {"10.1016/j.jsb.2015.04.003"};
  s.support.threads = true;
  const std::string formats =
      "particles (RELION STAR, Scipion particle set or cryoSPARC .cs) or a micrograph CTF table (RELION "
      "micrographs_ctf.star, data_optics + data_micrographs)";
  s.add_input("ctf_A", tp::InputKind::Ctfs, "CTF estimates A",
              {.help = "The first CTF estimates: " + formats + ". The accepted subset is made of its items."});
  s.add_input("ctf_B", tp::InputKind::Ctfs, "CTF estimates B",
              {.help = "The second estimates of the same items, of the same kind as A: " + formats +
                       ". Micrographs are matched by file name without folders."});
  s.add_float("min_resolution_A", "Minimum consensus resolution",
              {.default_value = 15.0,
               .min = 0.0,
               .min_exclusive = true,
               .unit = "A",
               .help = "Reject an item whose two CTFs differ in phase by 90 degrees at a resolution worse (larger) "
                       "than this. 15 A is Xmipp's CTF consensus default. An item whose CTFs agree up to Nyquist "
                       "is never rejected."});
  s.add_float("max_defocus_diff_A", "Maximum defocus difference",
              {.min = 0.0,
               .unit = "A",
               .help = "Also reject an item whose mean defoci ((U + V) / 2) differ by more than this. Unset by "
                       "default, as in Xmipp, which reports the defocus difference without a threshold: the "
                       "consensus resolution already bounds it (at 300 kV, 15 A allows about 5,700 A), and it "
                       "weighs defocus, astigmatism and axis together. Per-particle estimates usually agree to a "
                       "few hundred A."});
  tp::add_match_by_param(s);
  s.add_bool("write_rejected", "Write the rejected items",
             {.default_value = true, .help = "Also write the rejected items of A as a subset."});
  s.add_int("bins", "Histogram bins",
            {.default_value = 50,
             .min = 2,
             .max = 1000,
             .help = "Bins of the histograms of the differences.",
             .level = tp::Level::Advanced});
  s.add_output("summary", tp::OutputKind::Table, "Summary (JSON)",
               {.help = "Matching, thresholds, counts, medians and the histograms tessera_view_consensus draws."});
  s.add_output("table", tp::OutputKind::Table, "Per-item comparison (STAR)",
               {.help = "One row per matched item: its name in A, both mean defoci, the differences, the consensus "
                        "resolution and whether it is accepted."});
  s.add_output("accepted_star", tp::OutputKind::ParticlesStar, "Accepted particles (STAR)",
               {.help = "Particles: the accepted particles of A.", .optional = true});
  s.add_output("accepted", tp::OutputKind::ParticlesSqlite, "Accepted particles",
               {.help = "The same set for Scipion.", .optional = true});
  s.add_output("rejected_star", tp::OutputKind::ParticlesStar, "Rejected particles (STAR)",
               {.help = "Particles: the rejected particles of A.", .optional = true});
  s.add_output("rejected", tp::OutputKind::ParticlesSqlite, "Rejected particles",
               {.help = "The same set for Scipion.", .optional = true});
  tp::add_cs_subset_output(s, "accepted", "Accepted particles");
  tp::add_cs_subset_output(s, "rejected", "Rejected particles");
  s.add_output("accepted_micrographs", tp::OutputKind::Table, "Accepted micrographs (STAR)",
               {.help = "Micrographs: the rows of A accepted, every column kept.", .optional = true});
  s.add_output("rejected_micrographs", tp::OutputKind::Table, "Rejected micrographs (STAR)",
               {.help = "Micrographs: the rows of A rejected, every column kept.", .optional = true});
  return s;
}

enum class Kind { Particles, Micrographs };

const char* name_of(Kind k) {
  return k == Kind::Particles ? "particle file" : "micrograph CTF table";
}

Kind kind_of(const fs::path& file) {
  return file.extension() == ".star" && is_micrographs_star(file) ? Kind::Micrographs : Kind::Particles;
}

struct Inputs {
  Kind kind = Kind::Particles;
  std::optional<tp::MatchedSets> particles;     // Kind::Particles
  std::vector<MicrographCtfTable> micrographs;  // Kind::Micrographs: A and B
  std::vector<fs::path> files;                  // A and B
  ParticleMatch match;                          // rows[k] = {index in A, index in B}
  std::vector<CtfPair> pairs;                   // one per match row
  std::vector<std::string> names;               // each item's name in A
};

double nyquist_invA(double pixel_A, const fs::path& file, const std::string& item) {
  if (!(pixel_A > 0) || !std::isfinite(pixel_A))
    throw InputError(fmt::format("{}: {} has pixel size {} A", file.string(), item, pixel_A));
  return 1.0 / (2.0 * pixel_A);
}

void load_particle_pairs(const tp::Values& v, Inputs& in) {
  in.particles = tp::load_matched_sets(v, in.files);
  const auto& sets = in.particles->sets;
  for (std::size_t s = 0; s < 2; ++s)
    tp::check_ctf(sets[s], in.files[s], "give particles with CTF estimates (rlnDefocusU/V)");
  in.match = in.particles->match;
  for (const auto& row : in.match.rows) {
    const Particle& a = sets[0].particles[static_cast<std::size_t>(row[0])];
    const Particle& b = sets[1].particles[static_cast<std::size_t>(row[1])];
    const OpticsGroup& ga = sets[0].optics_of(a);
    in.pairs.push_back({CtfParams::of(a, ga), CtfParams::of(b, sets[1].optics_of(b)),
                        nyquist_invA(ga.pixel_A, in.files[0], a.image.to_string())});
    in.names.push_back(a.image.to_string());
  }
}

void load_micrograph_pairs(const tp::Values& v, Inputs& in) {
  for (const fs::path& f : in.files) in.micrographs.push_back(read_micrographs_ctf_star(f));
  const auto& a = in.micrographs[0].micrographs;
  const auto& b = in.micrographs[1].micrographs;
  in.match = match_micrographs(in.micrographs[0], in.files[0], in.micrographs[1], in.files[1],
                               parse_match_by(v.get<std::string>("match_by")));
  for (const auto& row : in.match.rows) {
    const MicrographCtf& ma = a[static_cast<std::size_t>(row[0])];
    in.pairs.push_back(
        {ma.ctf, b[static_cast<std::size_t>(row[1])].ctf, nyquist_invA(ma.pixel_A, in.files[0], ma.name)});
    in.names.push_back(ma.name);
  }
}

std::shared_ptr<Inputs> load_inputs(const tp::Values& v) {
  auto in = std::make_shared<Inputs>();
  in->files = {v.input("ctf_A"), v.input("ctf_B")};
  in->kind = kind_of(in->files[0]);
  const Kind kind_b = kind_of(in->files[1]);
  if (kind_b != in->kind)
    throw InputError(
        fmt::format("{}: a {}, but --ctf-A ({}) is a {}; give two particle files or two micrograph CTF "
                    "tables",
                    in->files[1].string(), name_of(kind_b), in->files[0].string(), name_of(in->kind)));
  if (in->kind == Kind::Particles)
    load_particle_pairs(v, *in);
  else
    load_micrograph_pairs(v, *in);
  return in;
}

tp::Json report_micrograph_matching(tp::RunContext& ctx, const Inputs& in, MatchBy by) {
  const auto& mics = in.micrographs;
  return tp::report_matching(
      ctx, in.match, by, in.files, {mics[0].micrographs.size(), mics[1].micrographs.size()}, "micrograph",
      [&](std::size_t s, long i) { return mics[s].micrographs[static_cast<std::size_t>(i)].name; });
}

std::string number(double x) {
  return std::isinf(x) ? "inf" : fmt::format("{:.10g}", x);
}

// The consensus resolution as the table and the histogram show it: Nyquist's for
// an item that agrees beyond it, infinite for one that disagrees from k = 0.
double shown_resolution_A(const CtfConsensus& c) {
  return c.agreement.resolution_A().value_or(1.0 / c.max_frequency_invA);
}

void write_table(tp::RunContext& ctx, const Inputs& in, const std::vector<CtfConsensus>& results) {
  StarTable t;
  t.name = "ctf_consensus";
  t.labels = {in.kind == Kind::Particles ? "rlnImageName" : "rlnMicrographName",
              "tesseraMeanDefocusAAngst",
              "tesseraMeanDefocusBAngst",
              "tesseraDefocusDiffAngst",
              "tesseraAstigmatismDiffAngst",
              "tesseraAstigmatismAxisDiffDeg",
              "tesseraPhaseShiftDiffDeg",
              "tesseraCtfConsensusResolutionAngst",
              "tesseraCtfConsensusBeyondNyquist",
              "tesseraCtfConsensusAzimuthDeg",
              "tesseraCtfConsensusAccepted"};
  for (std::size_t r = 0; r < results.size(); ++r) {
    const CtfConsensus& c = results[r];
    const CtfPair& p = in.pairs[r];
    t.rows.push_back({in.names[r], number(0.5 * (p.a.defocus_u_A + p.a.defocus_v_A)),
                      number(0.5 * (p.b.defocus_u_A + p.b.defocus_v_A)), number(c.difference.defocus_A),
                      number(c.difference.astigmatism_A), number(c.difference.angle_deg),
                      number(c.difference.phase_shift_deg), number(shown_resolution_A(c)),
                      c.agreement.frequency_invA ? "0" : "1", number(c.agreement.azimuth_deg),
                      c.accepted() ? "1" : "0"});
  }
  StarFile f;
  f.blocks.push_back(std::move(t));
  write_star(ctx.path("ctf_consensus.star"), f);
  ctx.add_output("table", "ctf_consensus.star", {{"rows", results.size()}});
}

void write_subsets(const tp::Values& v, tp::RunContext& ctx, const Inputs& in, const std::vector<long>& accepted,
                   const std::vector<long>& rejected) {
  const bool with_rejected = v.get<bool>("write_rejected");
  if (in.kind == Kind::Particles) {
    const ParticleSet& a = in.particles->sets[0];
    const fs::path& source = in.particles->files[0];
    tp::save_subset(ctx, tp::subset_of(a, accepted), "accepted", source);
    if (with_rejected) tp::save_subset(ctx, tp::subset_of(a, rejected), "rejected", source);
    return;
  }
  write_star(ctx.path("micrographs_accepted.star"), micrographs_subset(in.micrographs[0], accepted));
  ctx.add_output("accepted_micrographs", "micrographs_accepted.star", {{"count", accepted.size()}});
  if (!with_rejected) return;
  write_star(ctx.path("micrographs_rejected.star"), micrographs_subset(in.micrographs[0], rejected));
  ctx.add_output("rejected_micrographs", "micrographs_rejected.star", {{"count", rejected.size()}});
}

// Which items of A are accepted and rejected, and the summary's JSON (the
// program's headline figures, counts and histograms).
struct Summary {
  std::vector<long> accepted, rejected;  // indices in A
  tp::Json doc;
};

Summary summarize(const Inputs& in, const std::vector<CtfConsensus>& results, const CtfConsensusCriteria& criteria,
                  int bins, tp::Json matching) {
  Summary out;
  std::vector<double> defocus, astigmatism, axis, resolution;
  long by_defocus = 0, by_resolution = 0, beyond = 0, from_zero = 0;
  double finest_nyquist = 0, coarsest_nyquist = 0;
  for (std::size_t r = 0; r < results.size(); ++r) {
    const CtfConsensus& c = results[r];
    (c.accepted() ? out.accepted : out.rejected).push_back(in.match.rows[r][0]);
    by_defocus += c.defocus_rejected;
    by_resolution += c.resolution_rejected;
    beyond += !c.agreement.frequency_invA;
    defocus.push_back(c.difference.defocus_A);
    astigmatism.push_back(c.difference.astigmatism_A);
    axis.push_back(c.difference.angle_deg);
    const double shown = shown_resolution_A(c), nyquist = 1.0 / c.max_frequency_invA;
    if (std::isinf(shown))
      ++from_zero;
    else
      resolution.push_back(shown);
    finest_nyquist = r ? std::min(finest_nyquist, nyquist) : nyquist;
    coarsest_nyquist = r ? std::max(coarsest_nyquist, nyquist) : nyquist;
  }
  const tp::Json histograms = {
      tp::histogram_json("defocus_diff", "Mean defocus difference", "A", defocus, bins, criteria.max_defocus_diff_A),
      tp::histogram_json("astigmatism_diff", "Astigmatism difference", "A", astigmatism, bins, std::nullopt),
      tp::histogram_json("astigmatism_axis_diff", "Astigmatism axis difference", "deg", axis, bins, std::nullopt),
      tp::histogram_json("consensus_resolution",
                         "Consensus resolution (90 deg phase difference; beyond Nyquist shown at Nyquist)", "A",
                         resolution, bins, criteria.min_resolution_A)};
  out.doc = {
      {"kind", in.kind == Kind::Particles ? "particles" : "micrographs"},
      {"matching", std::move(matching)},
      {"thresholds",
       {{"min_resolution_A", criteria.min_resolution_A},
        {"max_defocus_diff_A", criteria.max_defocus_diff_A ? tp::Json(*criteria.max_defocus_diff_A) : tp::Json()},
        {"phase_limit_deg", kConsensusPhaseDeg},
        {"azimuth_step_deg", kConsensusAzimuthStepDeg}}},
      {"nyquist_A", {{"finest", finest_nyquist}, {"coarsest", coarsest_nyquist}}},
      {"counts",
       {{"compared", results.size()},
        {"accepted", out.accepted.size()},
        {"rejected", out.rejected.size()},
        {"rejected_by_defocus", by_defocus},
        {"rejected_by_resolution", by_resolution},
        {"beyond_nyquist", beyond},
        {"differ_at_zero_frequency", from_zero}}},
      {"medians",
       {{"defocus_diff_A", histograms[0]["median"]},
        {"astigmatism_diff_A", histograms[1]["median"]},
        {"astigmatism_axis_diff_deg", histograms[2]["median"]},
        {"consensus_resolution_A", histograms[3]["median"]}}},
      {"figures", {{"histograms", histograms}, {"heatmaps", tp::Json::array()}}}};

  return out;
}

// Inputs are read and checked first: an InputError there (exit 2) leaves
// nothing behind, as the output folder is made only by ctx.start().
void work(const tp::Values& v, tp::RunContext& ctx) {
  const std::shared_ptr<Inputs> in = load_inputs(v);
  ctx.start();
  const CtfConsensusCriteria criteria{v.get_optional<double>("max_defocus_diff_A"), v.get<double>("min_resolution_A")};
  const int bins = static_cast<int>(v.get<std::int64_t>("bins"));
  const MatchBy by = parse_match_by(v.get<std::string>("match_by"));
  const tp::Json matching =
      in->kind == Kind::Particles ? tp::report_matching(ctx, *in->particles) : report_micrograph_matching(ctx, *in, by);
  const std::vector<CtfConsensus> results = ctf_consensus(in->pairs, criteria, ctx.options().threads);
  const Summary sum = summarize(*in, results, criteria, bins, matching);
  const tp::Json& doc = sum.doc;
  const std::size_t accepted = sum.accepted.size(), rejected = sum.rejected.size();
  write_table(ctx, *in, results);
  write_subsets(v, ctx, *in, sum.accepted, sum.rejected);
  tp::atomic_write_text(ctx.path("ctf_consensus.json"), doc.dump(2) + "\n");
  // The headline figures also in outputs.json, where Scipion's summary shows them.
  ctx.add_output("summary", "ctf_consensus.json",
                 {{"accepted", accepted},
                  {"rejected", rejected},
                  {"median_defocus_diff_A", doc["medians"]["defocus_diff_A"]},
                  {"median_consensus_resolution_A", doc["medians"]["consensus_resolution_A"]}});
  const tp::Json &median_res = doc["medians"]["consensus_resolution_A"], &counts = doc["counts"];
  ctx.event("consensus", {{"accepted", accepted}, {"rejected", rejected}},
            fmt::format("{} of {} {} accepted ({} rejected by the consensus resolution worse than {} A, {} by the "
                        "defocus difference); median defocus difference {:.1f} A, median consensus resolution {}; "
                        "{} agree beyond Nyquist ({:.2f} A)",
                        accepted, results.size(), in->kind == Kind::Particles ? "particles" : "micrographs",
                        counts["rejected_by_resolution"].get<long>(), criteria.min_resolution_A,
                        counts["rejected_by_defocus"].get<long>(), doc["medians"]["defocus_diff_A"].get<double>(),
                        median_res.is_null() ? "none" : fmt::format("{:.2f} A", median_res.get<double>()),
                        counts["beyond_nyquist"].get<long>(), doc["nyquist_A"]["finest"].get<double>()));
  if (const long from_zero = counts["differ_at_zero_frequency"].get<long>(); from_zero > 0)
    ctx.warn(
        fmt::format("{} items' CTFs differ by 90 degrees or more already at zero frequency (phase shifts or "
                    "amplitude contrasts that far apart): rejected, left out of the resolution histogram",
                    from_zero));
  if (accepted == 0) ctx.warn("no item passes the thresholds: the accepted subset is empty");
}

}  // namespace

int main(int argc, char** argv) {
  return tp::run_program(make_schema(), argc, argv, work);
}
