#include "subtract/schema.hpp"

namespace tessera::protocol {

Schema subtract_schema() {
  Schema s;
  s.name = "tessera_subtract";
  s.version = "0.1.0";
  s.label = "subtract particles";
  s.description =
      "Subtracts the signal of one region of a map from every particle: the region is projected at the "
      "particle's pose, multiplied by its CTF, scaled to the particle's own contrast (fitted by least squares "
      "over a resolution band and radius, or taken from the refinement, or fixed) and subtracted, so no shadow "
      "is left where the contrast varies from particle to particle. With two half maps each half set is "
      "subtracted with its own. Optionally re-centres the particles on the kept region in a new box, with the "
      "poses updated; the original image names are kept (rlnImageOriginalName) so the step can be reverted.";
  s.scipion_base_class = "ProtOperateParticles";
  s.add_input("particles", InputKind::Particles, "Particles",
              {.help = "Particles with poses and CTF (RELION STAR or Scipion sqlite).",
               .pointer_condition = "hasAlignmentProj"});
  s.add_input("map", InputKind::Volume, "Map",
              {.help = "The refined map. Give it, or the two half maps.", .required = false});
  s.add_input(
      "half_map_A", InputKind::Volume, "Half map A",
      {.help = "Half map of half set 1 (rlnRandomSubset 1); with half map B instead of the map.", .required = false});
  s.add_input("half_map_B", InputKind::Volume, "Half map B",
              {.help = "Half map of half set 2.", .required = false});
  s.add_input("mask", InputKind::Mask, "Mask",
              {.help = "Soft mask (values in [0, 1]) of the region to keep: everything outside it is subtracted "
                       "(or, with --mask-role remove, of the region to subtract)."});
  s.add_choice("mask_role", "Mask is", {"keep", "remove"},
               {.default_value = "keep", .help = "keep: the mask marks what stays; remove: what is subtracted."});
  s.add_choice("envelope", "Envelope of the removed region", {"auto", "none"},
               {.default_value = "auto",
                .help = "auto: the removed region is restricted to the molecule's envelope, a soft mask of the "
                        "map (of the half maps' average) low-passed to 15 A, thresholded at 0.2 of its maximum, "
                        "dilated by 3 A with a 6 A soft edge; what the map holds outside it is solvent noise, which "
                        "subtracting would add to every particle. none: subtract everything outside the mask. "
                        "Ignored when --envelope-mask is given."});
  s.add_input("envelope_mask", InputKind::Mask, "Envelope mask",
              {.help = "Soft mask of the molecule (values in [0, 1]) to restrict the removed region to, instead of "
                       "the automatic envelope.",
               .required = false});
  s.add_choice("half_map_weighting", "Half-map weighting", {"fsc", "none"},
               {.default_value = "fsc",
                .help = "With two half maps: fsc multiplies what is subtracted, shell by shell, by the FSC of the "
                        "two halves' removed regions (after the envelope: what is projected), the Wiener estimate "
                        "of the signal in a half map (wiener_gains in fsc.hpp), so the subtraction removes the "
                        "signal the half map holds without adding its noise to every particle; each particle's "
                        "contrast is fitted on the unfiltered projection (fitting the filtered one measured worse). "
                        "none subtracts the half maps as they are.",
                .condition = "half_map_A"});
  s.add_choice("scale", "Contrast scale", {"fit", "refinement", "fixed"},
               {.default_value = "fit",
                .help = "fit: least squares per particle; refinement: the particles' rlnCtfScalefactor; fixed: "
                        "one scale for all."});
  s.add_float("fixed_scale", "Fixed scale",
              {.default_value = 1.0,
               .help = "Scale of the subtracted projection for every particle.",
               .condition = "scale == 'fixed'"});
  s.add_choice("fit_model", "Fitted model", {"whole", "separate"},
               {.default_value = "whole",
                .help = "whole: one contrast for the whole particle (map projection); separate: the kept region "
                        "gets a free coefficient of its own (robust when it moved, noisier).",
                .section = "Fit",
                .condition = "scale == 'fit'"});
  s.add_choice("gain_model", "Contrast model", {"constant", "linear", "best"},
               {.default_value = "constant",
                .help = "constant: one contrast per particle; linear: a contrast that varies with frequency, "
                        "b0 + b1 |k| (as Xmipp's subtract-projection), clamped to --max-gain-ratio around the "
                        "constant one; best: per particle the one with the higher adjusted R^2.",
                .section = "Fit",
                .condition = "scale == 'fit'"});
  s.add_float("max_gain_ratio", "Gain clamp",
              {.default_value = 2.0,
               .min = 1.0,
               .help = "A linear contrast is clamped, frequency by frequency, to [s/r, s r] with s the constant "
                       "contrast and r this ratio.",
               .section = "Fit",
               .level = Level::Advanced,
               .condition = "scale == 'fit' and gain_model != 'constant'"});
  s.add_bool("fit_offset", "Fit an offset",
             {.help = "Also fit a constant with the zero frequency included: the image's additive offset (the "
                      "k = 0 term the model does not explain); it is reported, not subtracted.",
              .section = "Fit",
              .condition = "scale == 'fit'"});
  s.add_bool("refine_removed_pose", "Refine the pose locally",
             {.help = "Before subtracting, refine each particle's pose locally against the fitted model: the "
                      "origin on a grid (--pose-shift-range-A, --pose-shift-step-A), then small rotations about "
                      "the image axes (--pose-angle-step-deg, --pose-angle-steps), then the origin again. With "
                      "--fit-model whole the particle moves as one body; with separate only the removed region.",
              .section = "Pose"});
  s.add_float("pose_shift_range_A", "Shift range",
              {.default_value = 3.0,
               .min = 0.0,
               .unit = "A",
               .help = "Search origins within this distance of the given one, per axis.",
               .section = "Pose",
               .condition = "refine_removed_pose"});
  s.add_float("pose_shift_step_A", "Shift step",
              {.default_value = 1.0,
               .min = 0.0,
               .min_exclusive = true,
               .unit = "A",
               .help = "Grid step of the origin search (then refined by a parabola).",
               .section = "Pose",
               .condition = "refine_removed_pose"});
  s.add_float("pose_angle_step_deg", "Angle step",
              {.default_value = 1.0,
               .min = 0.0,
               .min_exclusive = true,
               .unit = "deg",
               .help = "Step of the rotations about the image's x, y and z axes (then refined by a parabola).",
               .section = "Pose",
               .condition = "refine_removed_pose"});
  s.add_int("pose_angle_steps", "Angle steps",
            {.default_value = 2,
             .min = 0,
             .help = "At most this many steps each way per axis; 0 refines the origin only.",
             .section = "Pose",
             .condition = "refine_removed_pose"});
  s.add_float("fit_low_res_A", "Fit from resolution",
              {.min = 0.0,
               .min_exclusive = true,
               .unit = "A",
               .help = "Lowest resolution used in the fit; default: every frequency but zero.",
               .section = "Fit"});
  s.add_float("fit_high_res_A", "Fit up to resolution",
              {.min = 0.0,
               .min_exclusive = true,
               .unit = "A",
               .help = "Highest resolution used in the fit (e.g. the map's); default: Nyquist.",
               .section = "Fit"});
  s.add_float("fit_radius_A", "Fit radius",
              {.min = 0.0,
               .min_exclusive = true,
               .unit = "A",
               .help = "Fit the pixels within this radius of the particle centre; default: half the box.",
               .section = "Fit"});
  s.add_float("lowpass_A", "Low-pass reference",
              {.min = 0.0,
               .min_exclusive = true,
               .unit = "A",
               .help = "Low-pass the map (raised cosine, 2 shells) before projecting it.",
               .section = "Fit"});
  s.add_bool("ctf", "Apply CTF", {.default_value = true, .help = "Multiply the projections by the particles' CTF."});
  s.add_bool("recentre", "Re-centre on the kept region",
             {.help = "Move each particle so the kept region's centre of mass (the keep mask's, or with "
                      "--mask-role remove the kept density's) is at the image centre; poses are updated.",
              .section = "Re-centring"});
  s.add_int("new_box_px", "New box",
            {.min = 8,
             .unit = "px",
             .help = "Cut the subtracted particles to this (even) box; default: the same box.",
             .section = "Re-centring"});
  s.add_int(
      "padding", "Padding",
      {.default_value = 2, .min = 1, .max = 4, .help = "Oversampling of the projector.", .level = Level::Advanced});
  s.add_output("particles_star", OutputKind::ParticlesStar, "Subtracted particles (STAR)");
  s.add_output("particles_sqlite", OutputKind::ParticlesSqlite, "Subtracted particles (Scipion)");
  s.add_output(
      "table", OutputKind::Table, "Per-particle scales",
      {.help = "STAR table: scale, offset, fit residual and the removed region's coefficient left, per particle."});
  s.add_output("summary", OutputKind::Table, "Summary",
               {.help = "JSON: scale statistics and the estimated fraction of the removed region's signal left."});
  s.add_output("left_by_shell", OutputKind::Table, "Left per shell",
               {.help = "JSON in fsc.json's shape: the estimated share of the removed region's signal left, per "
                        "shell and by cause; tessera_view_fsc draws it (--thresholds none --crossings none)."});
  s.add_output("kept_map", OutputKind::Volume, "Kept region",
               {.help = "The map times the kept mask, re-centred and cut like the particles: a reference for them."});
  return s;
}

}  // namespace tessera::protocol
