#pragma once
/// The figure of tessera_view_orientations: a title with the run's SCF* and cFAR
/// (orientation_diagnostics.json, when present), the view-direction map
/// (sky_map.hpp) with its colour bar of counts, and beside it the conical FSCs
/// (cfsc.json): the global FSC, the worst and the best cone, with their 0.143
/// crossings (the FSC chart of tessera_view_fsc, fsc_chart.hpp). Either panel is
/// left out when its file is missing.
#include "common/figure.hpp"
#include "orientations/orientation_data.hpp"
#include "orientations/sky_map.hpp"

namespace tessera::viewer {

struct OrientationSettings {
  CountScale scale = CountScale::Linear;
  int map_width = 640;  ///< pixels; the map is half as high
};

class OrientationFigure : public Figure {
 public:
  OrientationFigure(OrientationRun run, OrientationSettings settings);
  QSize natural_size() const override;
  Json paint(QPainter& painter, QSize size) override;
  const OrientationRun& run() const { return run_; }

 private:
  std::string title() const;
  std::string subtitle() const;
  OrientationRun run_;
  OrientationSettings settings_;
};

}  // namespace tessera::viewer
