// tessera_refine_nu: non-uniform refinement (Punjani, Zhang and Fleet 2020).
// The shared refinement program (refinement/program.hpp) with the adaptive
// regularizer of nu_regularizer.hpp: within each half set the particles are
// split again into cross-validation folds, and every voxel's low-pass cut-off
// is chosen from them. --nu-regularizer false gives uniform refinement (the
// Wiener filter) on the same code. Writes refine_homo's outputs and the last
// iteration's cut-off map in A (local_resolution.mrc).
#include <algorithm>

#include "common/io.hpp"
#include "refinement/program.hpp"
#include "tessera/nu_regularizer.hpp"

namespace tp = tessera::protocol;
using namespace tessera;

namespace {

void declare(tp::Schema& s) {
  const std::string sec = "Non-uniform regularization", on = "nu_regularizer";
  s.add_bool("nu_regularizer", "Adaptive regularization",
             {.default_value = true,
              .help = "Filter each voxel at the cut-off chosen by cross-validation within each half set "
                      "(non-uniform refinement); off: one Wiener filter for the whole map (uniform refinement).",
              .section = sec});
  s.add_int("cv_folds", "Cross-validation folds",
            {.default_value = 2, .min = 2, .max = 8,
             .help = "Each half set is split into this many folds by the particle's index within it.",
             .section = sec, .level = tp::Level::Advanced, .condition = on});
  s.add_float("awf", "Adaptive window factor",
              {.default_value = 3.0, .min = 1.5, .max = 20.0,
               .help = "Width of the window that judges a cut-off, in wavelengths of that cut-off.",
               .section = sec, .condition = on});
  s.add_choice("filter_shape", "Filter shape", {"butterworth", "rectangular", "gaussian"},
               {.default_value = "butterworth", .section = sec, .level = tp::Level::Advanced, .condition = on});
  s.add_int("butterworth_order", "Butterworth order",
            {.default_value = 8, .min = 1, .max = 32, .section = sec, .level = tp::Level::Advanced,
             .condition = "nu_regularizer and filter_shape == 'butterworth'"});
  s.add_int("nu_candidates", "Candidate cut-offs",
            {.default_value = 50, .min = 2, .max = 200,
             .help = "Cut-offs tried at every voxel, equispaced in Fourier radius up to Nyquist (those beyond "
                     "an iteration's reconstruction band are skipped).",
             .section = sec, .level = tp::Level::Advanced, .condition = on});
  s.add_float("cutoff_smoothing_px", "Cut-off map smoothing",
              {.default_value = 2.0, .min = 0.0, .max = 20.0, .unit = "px",
               .help = "Standard deviation of the Gaussian that smooths the chosen cut-off map.", .section = sec,
               .level = tp::Level::Advanced, .condition = on});
  s.add_output("local_resolution", tp::OutputKind::Volume, "Local resolution (A)",
               {.help = "The last iteration's filter cut-off per voxel as a resolution (box x pixel / cut-off), "
                        "mean of the half sets' choices; with the adaptive regularization only.",
                .optional = true});
}

std::unique_ptr<Regularizer> regularizer(const tp::Values& v) {
  if (!v.get<bool>("nu_regularizer")) return nullptr;
  LocalFilterOptions f;
  f.cutoffs = v.get<int>("nu_candidates");
  f.awf = v.get<double>("awf");
  const std::string shape = v.get<std::string>("filter_shape");
  f.shape = shape == "rectangular" ? FilterShape::Rectangular
            : shape == "gaussian"  ? FilterShape::Gaussian
                                   : FilterShape::Butterworth;
  f.butterworth_order = v.get<int>("butterworth_order");
  f.smooth_px = v.get<double>("cutoff_smoothing_px");
  return make_nu_regularizer(f, v.get<int>("cv_folds"));
}

void write_local_resolution(tp::RunContext& ctx, const RefineState& st, double pixel_A) {
  if (st.local_cutoff_px.empty()) return;
  RealGrid res = st.local_cutoff_px;
  const double span_A = res.nx() * pixel_A;
  for (float& c : res.values()) c = static_cast<float>(span_A / std::max(1e-3, double(c)));
  tp::save_volume(ctx, "local_resolution", "local_resolution.mrc", res, pixel_A);
}

}  // namespace

int main(int argc, char** argv) {
  tp::RefinementProgram p;
  p.name = "tessera_refine_nu";
  p.label = "non-uniform refinement";
  p.description =
      "Non-uniform refinement (Punjani, Zhang and Fleet 2020): homogeneous refinement's gold-standard loop "
      "(half sets, global then local pose search, noise model, per-particle scale, dynamic masking, symmetry, "
      "mini-batches, --continue, MPI) with an adaptive regularizer: within each half set the particles are split "
      "again into cross-validation folds, and every voxel's low-pass cut-off is chosen by cross-validation in a "
      "window that follows the cut-off's wavelength, so ordered regions keep their detail while disordered ones "
      "(micelles, flexible loops) are filtered. Adaptive marginalization is on by default. Writes refine_homo's "
      "outputs and the local resolution (the cut-off map in A).";
  p.citations = {"10.1038/s41592-020-00990-8"};
  p.marginalize_by_default = true;
  p.declare = declare;
  p.regularizer = regularizer;
  p.write_outputs = write_local_resolution;
  return tp::run_refinement_program(p, argc, argv);
}
