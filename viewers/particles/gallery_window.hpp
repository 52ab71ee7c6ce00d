#pragma once
/// The window of tessera_view_particles: the gallery page (gallery.hpp) under a
/// toolbar to choose the sort column and order, the page, the grid, the tile
/// size and the contrast. Clicking a tile shows all of its row's columns.
#include <memory>

#include "common/viewer_app.hpp"
#include "particles/gallery.hpp"

namespace tessera::viewer {

std::unique_ptr<ViewerWindow> make_gallery_window(GalleryFigure& figure);

}  // namespace tessera::viewer
