#pragma once
/// What tessera_view_orientations reads from a tessera_orientation_diagnostics
/// run folder (protocols/orientation_diagnostics/main.cpp writes them):
///   view_counts.json             {"bin_deg", "cell_solid_angle_sr", "particles",
///                                 "cells": [{"xyz": [x, y, z], "rot_deg", "tilt_deg",
///                                 "count"}, ...]}: the cells of the engine's
///                                 EqualAreaGrid(bin_deg) in its order, each with the
///                                 view directions counted in it
///   orientation_diagnostics.json "views": {"scf_star", ...}, "conical_fsc": {"cfar", ...}
///                                 (either may be missing)
///   cfsc.json                    "box", "voxel_A", "global": [FSC per shell],
///                                 "cones": [{"xyz", "area", "curve": [per shell], ...}]
/// Each file is optional, but the folder must hold view_counts.json or cfsc.json.
/// The cells are checked against EqualAreaGrid(bin_deg) (same number, centres
/// within 1e-6), so that the map can be painted cell by cell from the grid.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "fsc/fsc_data.hpp"
#include "tessera/geometry.hpp"
#include "tessera/orientation_diagnostics.hpp"

namespace tessera::viewer {

struct ViewCounts {
  double bin_deg = 0;
  long particles = 0;
  std::vector<Vec3> centres;  ///< per cell, unit vectors
  std::vector<long> counts;   ///< per cell
  EqualAreaGrid grid{90};     ///< EqualAreaGrid(bin_deg)
};

struct ConicalCurves {
  FscCurveData global, worst, best;       ///< named so; worst / best: the cones of least and largest area
  Euler worst_direction, best_direction;  ///< their axes as RELION angles (rot, tilt)
  std::vector<FscCurveData> cones;        ///< every cone (drawn faintly)
  std::optional<double> cfar;
};

struct OrientationRun {
  std::string label;  ///< the folder's name
  std::optional<ViewCounts> views;
  std::optional<double> scf_star;
  std::optional<double> cfar;
  std::optional<ConicalCurves> cones;
};

/// Reads a run folder, or one of the files above (its folder is read then).
/// InputError naming the file on bad or missing input.
OrientationRun load_orientation_run(const std::filesystem::path& path);

}  // namespace tessera::viewer
