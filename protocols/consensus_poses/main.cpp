// tessera_consensus_poses: how far two pose assignments of the same particles
// are apart (engine/analysis/include/tessera/pose_consensus.hpp). Particles come from
// any package (RELION STAR, Scipion set, cryoSPARC .cs) and are matched by
// name, never by order. Per particle: the angular distance (to the closest
// symmetry mate, RELION's convention), the distance between view directions
// and the shift distance; the particles within both thresholds are kept as a
// subset of the first set.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "common/cli.hpp"
#include "common/consensus.hpp"
#include "common/io.hpp"
#include "common/run_context.hpp"
#include "tessera/error.hpp"
#include "tessera/pose_consensus.hpp"
#include "tessera/star.hpp"

namespace tp = tessera::protocol;
namespace fs = std::filesystem;
using namespace tessera;

namespace {

// A median beyond this fraction of what unrelated poses give: the assignments look unrelated.
constexpr double kUnrelatedFraction = 0.7;

tp::Schema make_schema() {
  tp::Schema s;
  s.name = "tessera_consensus_poses";
  s.version = "0.1.0";
  s.label = "pose consensus";
  s.description =
      "Compares two pose assignments of the same particles (two refinements, a refinement and the truth, RELION "
      "against cryoSPARC), matched particle by particle by image name. Per particle: the angular distance (the "
      "angle of the rotation between the two poses, to the closest symmetry mate: poses A and A R project a "
      "symmetric map alike, RELION's convention), the distance between the view directions (in-plane rotation "
      "ignored) and the distance between the 2D origins in A. The particles within both thresholds are kept as a "
      "subset of the first set. A 3D refinement has no mirrors: poses refined against maps of "
      "opposite hands, or against references in different frames, cannot be compared as given. The program "
      "detects both (the median distance with one hand flipped; the global rotation that best relates the "
      "poses, which --align-frames removes) and assignments that look unrelated (median distance near what "
      "random poses give), and says so.";
  s.scipion_base_class = "ProtAnalysis3D";
  s.support.threads = false;
  const std::string formats = "RELION STAR, Scipion particle set or cryoSPARC .cs, with poses.";
  s.add_input("particles", tp::InputKind::Particles, "Particles (assignment A)",
              {.help = "The first pose assignment: " + formats +
                       " The agreeing subset is made of its particles "
                       "(with their poses, CTFs and other columns).",
               .pointer_condition = "hasAlignmentProj"});
  s.add_input("particles_B", tp::InputKind::Particles, "Particles (assignment B)",
              {.help = "The second pose assignment of the same particles: " + formats,
               .pointer_condition = "hasAlignmentProj"});
  s.add_string("symmetry", "Symmetry",
               {.default_value = "C1",
                .help = "Point group of the map both assignments were refined with (RELION names: C<n>, D<n>, T, O, "
                        "I, I1-I4). Distances are to the closest symmetry mate. cryoSPARC's D<n> with odd n puts the "
                        "2-fold on Y, RELION's on X: give poses in one convention."});
  s.add_float("max_angle_deg", "Maximum angular distance",
              {.default_value = 5.0,
               .min = 0.0,
               .unit = "deg",
               .help = "Particles whose poses differ by at most this angle (and shift) agree. 5 deg is about twice "
                       "the pose error of a refinement at 6-8 A (RELION on relion_7DDO: median 2.2 deg, 90% within "
                       "4.3 deg of the truth) and about three steps of RELION's usual finest angular sampling (1.8 "
                       "deg, HEALPix order 5): larger differences are not sampling noise."});
  s.add_float("max_shift_A", "Maximum shift distance",
              {.default_value = 3.0,
               .min = 0.0,
               .unit = "A",
               .help = "Particles whose origins differ by at most this distance (and angle) agree. 3 A is about one "
                       "pixel at the usual 1-3 A/px and several times a refinement's shift error (relion_7DDO: "
                       "median 0.53 A)."});
  tp::add_match_by_param(s);
  s.add_bool("align_frames", "Align the frames",
             {.default_value = false,
              .help = "Two refinements started from different references may differ by a global rotation of their "
                      "maps (and, with symmetry, a choice of mate). Find that rotation Q (B = A R Q for every "
                      "particle, robustly over the particles) and compare A with B Q^T. Off: the poses are compared "
                      "as they are.",
              .level = tp::Level::Advanced});
  s.add_bool("write_disagreeing", "Write the disagreeing particles",
             {.default_value = true, .help = "Also write the particles outside either threshold as a subset."});
  s.add_int("bins", "Histogram bins",
            {.default_value = 50,
             .min = 2,
             .max = 1000,
             .help = "Bins of the histograms of the distances.",
             .level = tp::Level::Advanced});
  s.add_output("summary", tp::OutputKind::Table, "Summary (JSON)",
               {.help = "Matching, thresholds, medians and 90th percentiles, the diagnosis of unrelated poses, the "
                        "frame alignment, and the histograms tessera_view_consensus draws."});
  s.add_output("table", tp::OutputKind::Table, "Per-particle distances (STAR)",
               {.help = "One row per matched particle: image names in A and B, angular, view and shift distances, "
                        "the closest symmetry mate (k of RELION's R(k), 1 the identity, with A ~ B R(k)) and whether "
                        "it agrees (1 or 0)."});
  s.add_output("agreeing_star", tp::OutputKind::ParticlesStar, "Agreeing particles (STAR)",
               {.help = "The particles of A within both thresholds."});
  s.add_output("agreeing", tp::OutputKind::ParticlesSqlite, "Agreeing particles",
               {.help = "The same set for Scipion."});
  s.add_output("disagreeing_star", tp::OutputKind::ParticlesStar, "Disagreeing particles (STAR)",
               {.help = "The particles of A outside either threshold.", .optional = true});
  s.add_output("disagreeing", tp::OutputKind::ParticlesSqlite, "Disagreeing particles",
               {.help = "The same set for Scipion.", .optional = true});
  tp::add_cs_subset_output(s, "agreeing", "Agreeing particles");
  tp::add_cs_subset_output(s, "disagreeing", "Disagreeing particles");
  return s;
}

struct Inputs {
  tp::MatchedSets matched;
  SymmetryGroup group;
  std::vector<ProjectionPose> a, b;  // per matched particle, in the order of set A
};

// The poses of set `s` of the matched particles: InputError naming the file for one without.
std::vector<ProjectionPose> matched_poses(const tp::MatchedSets& m, std::size_t s) {
  std::vector<ProjectionPose> poses;
  poses.reserve(m.match.rows.size());
  for (const auto& row : m.match.rows) {
    const Particle& p = m.sets[s].particles[static_cast<std::size_t>(row[s])];
    if (!p.pose)
      throw InputError(
          fmt::format("{}: particle {} has no pose (no rlnAngleRot/Tilt/Psi, or no alignment); pose "
                      "consensus compares refined poses",
                      m.files[s].string(), p.image.to_string()));
    poses.push_back(*p.pose);
  }
  return poses;
}

std::shared_ptr<Inputs> load_inputs(const tp::Values& v) {
  SymmetryGroup group = tp::load_symmetry(v, "symmetry");
  tp::MatchedSets m = tp::load_matched_sets(v, {v.input("particles"), v.input("particles_B")});
  auto in = std::make_shared<Inputs>(Inputs{std::move(m), std::move(group), {}, {}});
  in->a = matched_poses(in->matched, 0);
  in->b = matched_poses(in->matched, 1);
  return in;
}

std::vector<Mat3> matrices(const std::vector<ProjectionPose>& poses) {
  std::vector<Mat3> r;
  r.reserve(poses.size());
  for (const auto& p : poses) r.push_back(euler_to_matrix(p.angles));
  return r;
}

// B's poses as they would be against a map of the opposite hand (opposite_hand()).
std::vector<ProjectionPose> other_hand(std::vector<ProjectionPose> poses) {
  for (auto& p : poses) p.angles = matrix_to_euler(opposite_hand(euler_to_matrix(p.angles)));
  return poses;
}

tp::Json frame_json(const FrameAlignment& f) {
  const Euler e = matrix_to_euler(f.rotation);
  tp::Json rows = tp::Json::array();
  for (const auto& row : f.rotation) rows.push_back({row[0], row[1], row[2]});
  return {{"rotation", std::move(rows)},
          {"angle_deg", f.angle_deg},
          {"axis", {f.axis[0], f.axis[1], f.axis[2]}},
          {"euler", {{"rot", e.rot}, {"tilt", e.tilt}, {"psi", e.psi}}},
          {"median_residual_deg", f.median_residual_deg},
          {"particles_used", f.particles_used}};
}

// The global rotation between the assignments when asked for (identity otherwise),
// described into `json` under `key`.
Mat3 frame_of(bool align, const std::vector<ProjectionPose>& a, const std::vector<ProjectionPose>& b,
              const SymmetryGroup& g, tp::Json& json, const char* key) {
  if (!align) {
    json[key] = nullptr;
    return identity3();
  }
  const FrameAlignment f = align_frames(matrices(a), matrices(b), g);
  json[key] = frame_json(f);
  return f.rotation;
}

void write_table(tp::RunContext& ctx, const Inputs& in, const PoseDistances& d, const std::vector<bool>& agree) {
  StarTable t;
  t.name = "pose_consensus";
  t.labels = {"rlnImageName",           "tesseraImageNameB",         "tesseraAngularDistanceDeg",
              "tesseraViewDistanceDeg", "tesseraShiftDistanceAngst", "tesseraSymmetryMate",
              "tesseraPoseAgree"};
  const auto& m = in.matched;
  for (std::size_t r = 0; r < m.match.rows.size(); ++r) {
    const auto& row = m.match.rows[r];
    t.rows.push_back({m.sets[0].particles[static_cast<std::size_t>(row[0])].image.to_string(),
                      m.sets[1].particles[static_cast<std::size_t>(row[1])].image.to_string(),
                      fmt::format("{:.12g}", d.angle_deg[r]), fmt::format("{:.12g}", d.view_deg[r]),
                      fmt::format("{:.12g}", d.shift_A[r]), std::to_string(d.mate[r] + 1), agree[r] ? "1" : "0"});
  }
  StarFile f;
  f.blocks.push_back(std::move(t));
  write_star(ctx.path("pose_consensus.star"), f);
  ctx.add_output("table", "pose_consensus.star", {{"rows", m.match.rows.size()}});
}

struct Split {
  std::vector<bool> agree;       // per matched particle
  std::vector<long> kept, rest;  // indices in set A of the agreeing and the other particles
  long angle_only = 0, shift_only = 0;
};

Split split(const Inputs& in, const PoseDistances& d, double max_angle, double max_shift) {
  Split s;
  s.agree.resize(d.angle_deg.size());
  for (std::size_t r = 0; r < s.agree.size(); ++r) {
    const bool angle_ok = d.angle_deg[r] <= max_angle, shift_ok = d.shift_A[r] <= max_shift;
    s.agree[r] = angle_ok && shift_ok;
    s.angle_only += !angle_ok && shift_ok;
    s.shift_only += angle_ok && !shift_ok;
    (s.agree[r] ? s.kept : s.rest).push_back(in.matched.match.rows[r][0]);
  }
  return s;
}

// Whether the assignments look unrelated, refined against maps of opposite hands, or
// in frames that differ by a global rotation (the last only checked when the frames
// were not aligned and most particles disagree).
tp::Json diagnosis(const Inputs& in, const PoseDistances& d, bool align, double max_angle) {
  const SymmetryGroup& g = in.group;
  const double median = percentile(d.angle_deg, 50);
  const RandomDistances random = random_pose_distances(g);
  tp::Json doc = {{"random_median_angle_deg", random.median_angle_deg},
                  {"random_median_view_deg", random.median_view_deg},
                  {"unrelated", median > kUnrelatedFraction * random.median_angle_deg}};
  const std::vector<ProjectionPose> flipped = other_hand(in.b);
  tp::Json hand = tp::Json::object();
  const Mat3 flipped_frame = frame_of(align, in.a, flipped, g, hand, "frame");
  const double flipped_median = percentile(pose_distances(in.a, flipped, g, flipped_frame).angle_deg, 50);
  hand["median_angle_deg"] = flipped_median;
  hand["likely"] = median > max_angle && flipped_median < 0.5 * median;
  doc["opposite_hand"] = std::move(hand);
  doc["global_rotation"] = nullptr;
  if (!align && median > max_angle) {
    const FrameAlignment f = align_frames(matrices(in.a), matrices(in.b), g);
    const double aligned = percentile(pose_distances(in.a, in.b, g, f.rotation).angle_deg, 50);
    tp::Json rotation = frame_json(f);
    rotation["median_angle_deg_aligned"] = aligned;
    rotation["likely"] = aligned < 0.5 * median;
    doc["global_rotation"] = std::move(rotation);
  }
  return doc;
}

// Warns about what diagnosis() found, the likeliest explanation first.
void warn_diagnosis(tp::RunContext& ctx, const tp::Json& doc, const tp::Json& diag) {
  const double median = doc["median_angle_deg"].get<double>();
  if (diag["opposite_hand"]["likely"].get<bool>()) {
    ctx.warn(
        fmt::format("the assignments look refined against maps of opposite hands: median angular distance "
                    "{:.1f} deg as given, {:.2f} deg with B's hand flipped; flip the hand of one map (and its "
                    "poses) before comparing",
                    median, diag["opposite_hand"]["median_angle_deg"].get<double>()));
  } else if (const auto& r = diag["global_rotation"]; !r.is_null() && r["likely"].get<bool>()) {
    ctx.warn(fmt::format(
        "the assignments differ by a global rotation of {:.1f} deg about {} (median angular "
        "distance {:.1f} deg as given, {:.2f} deg after aligning): their references were in "
        "different frames; compare with --align-frames",
        r["angle_deg"].get<double>(), r["axis"].dump(), median, r["median_angle_deg_aligned"].get<double>()));
  } else if (diag["unrelated"].get<bool>()) {
    ctx.warn(
        fmt::format("the two assignments look unrelated: median angular distance {:.1f} deg, random poses give "
                    "{:.1f} deg under {} (different hands, different references, or different symmetry "
                    "settings)",
                    median, diag["random_median_angle_deg"].get<double>(), doc["symmetry"].get<std::string>()));
  }
}

// Inputs are read and checked first: an InputError there (exit 2) leaves
// nothing behind, as the output folder is made only by ctx.start().
void work(const tp::Values& v, tp::RunContext& ctx) {
  const std::shared_ptr<Inputs> in = load_inputs(v);
  ctx.start();
  const double max_angle = v.get<double>("max_angle_deg"), max_shift = v.get<double>("max_shift_A");
  const bool align = v.get<bool>("align_frames");
  const int bins = static_cast<int>(v.get<std::int64_t>("bins"));
  const SymmetryGroup& g = in->group;

  tp::Json doc = {{"matching", tp::report_matching(ctx, in->matched)},
                  {"symmetry", g.name()},
                  {"symmetry_order", g.order()},
                  {"max_angle_deg", max_angle},
                  {"max_shift_A", max_shift}};
  const Mat3 frame = frame_of(align, in->a, in->b, g, doc, "frame");
  const PoseDistances d = pose_distances(in->a, in->b, g, frame);
  if (align) doc["frame"]["median_angle_deg_unaligned"] = percentile(pose_distances(in->a, in->b, g).angle_deg, 50);
  const Split s = split(*in, d, max_angle, max_shift);
  const auto n = static_cast<double>(s.agree.size());
  doc["compared"] = s.agree.size();
  doc["agreeing"] = s.kept.size();
  doc["agreeing_fraction"] = static_cast<double>(s.kept.size()) / n;
  doc["disagreeing"] = {{"total", s.rest.size()},
                        {"angle_only", s.angle_only},
                        {"shift_only", s.shift_only},
                        {"both", static_cast<long>(s.rest.size()) - s.angle_only - s.shift_only}};
  doc["median_angle_deg"] = percentile(d.angle_deg, 50);
  doc["p90_angle_deg"] = percentile(d.angle_deg, 90);
  doc["median_view_deg"] = percentile(d.view_deg, 50);
  doc["p90_view_deg"] = percentile(d.view_deg, 90);
  doc["median_shift_A"] = percentile(d.shift_A, 50);
  doc["p90_shift_A"] = percentile(d.shift_A, 90);
  doc["percentiles"] = "linear interpolation between order statistics (numpy.percentile's default)";
  std::vector<long> mates(static_cast<std::size_t>(g.order()), 0);
  for (int k : d.mate) ++mates[static_cast<std::size_t>(k)];
  doc["mate_counts"] = mates;
  doc["diagnosis"] = diagnosis(*in, d, align, max_angle);
  doc["figures"] = {{"histograms",
                     {tp::histogram_json("angle", "Angular distance", "deg", d.angle_deg, bins, max_angle),
                      tp::histogram_json("view", "View-direction distance", "deg", d.view_deg, bins, std::nullopt),
                      tp::histogram_json("shift", "Shift distance", "A", d.shift_A, bins, max_shift)}}};

  write_table(ctx, *in, d, s.agree);
  const ParticleSet& a = in->matched.sets[0];
  tp::save_subset(ctx, tp::subset_of(a, s.kept), "agreeing", in->matched.files[0]);
  if (v.get<bool>("write_disagreeing")) tp::save_subset(ctx, tp::subset_of(a, s.rest), "disagreeing", in->matched.files[0]);
  tp::atomic_write_text(ctx.path("pose_consensus.json"), doc.dump(2) + "\n");
  // The headline figures also in outputs.json, where Scipion's summary shows them.
  ctx.add_output("summary", "pose_consensus.json",
                 {{"median_angle_deg", doc["median_angle_deg"]},
                  {"median_shift_A", doc["median_shift_A"]},
                  {"agreeing_fraction", doc["agreeing_fraction"]}});
  ctx.event(
      "consensus",
      {{"agreeing", s.kept.size()},
       {"median_angle_deg", doc["median_angle_deg"]},
       {"median_shift_A", doc["median_shift_A"]}},
      fmt::format("{} of {} particles agree within {} deg and {} A ({:.1f}%); median angular distance {:.2f} "
                  "deg (90% within {:.2f}), view {:.2f} deg, shift {:.2f} A",
                  s.kept.size(), s.agree.size(), max_angle, max_shift, 100.0 * static_cast<double>(s.kept.size()) / n,
                  doc["median_angle_deg"].get<double>(), doc["p90_angle_deg"].get<double>(),
                  doc["median_view_deg"].get<double>(), doc["median_shift_A"].get<double>()));
  if (s.kept.empty()) ctx.warn("no particle agrees within the thresholds: the agreeing subset is empty");
  warn_diagnosis(ctx, doc, doc["diagnosis"]);
}

}  // namespace

int main(int argc, char** argv) {
  return tp::run_program(make_schema(), argc, argv, work);
}
