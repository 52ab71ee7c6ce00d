#pragma once
/// The window of tessera_view_volume: the figure (volume_figure.hpp) beside its
/// controls: a slider per slice, contrast, zoom, which panels, the view angles
/// and surface level, the overlay's style, opacity and level. Clicking a slice
/// moves the other two slices through the clicked voxel.
#include <memory>

#include "common/viewer_app.hpp"
#include "volume/volume_figure.hpp"

namespace tessera::viewer {

std::unique_ptr<ViewerWindow> make_volume_window(VolumeFigure& figure);

}  // namespace tessera::viewer
