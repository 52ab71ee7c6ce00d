#pragma once
/// The plainest viewer window: the figure in a scroll area and the File menu
/// (Export figure..., Quit). For viewers whose figure has no controls.
#include <memory>
#include <string>

#include "common/viewer_app.hpp"

namespace tessera::viewer {

std::unique_ptr<ViewerWindow> make_figure_window(Figure& figure, const std::string& title);

}  // namespace tessera::viewer
