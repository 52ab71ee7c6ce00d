// tessera_view_orientations: the view directions of a tessera_orientation_diagnostics
// run on an equal-area map of the sphere, coloured by count, with SCF* and cFAR,
// and its conical FSCs (worst, best, global).
#include <fmt/format.h>

#include <filesystem>

#include "common/figure_window.hpp"
#include "common/viewer_app.hpp"
#include "orientations/orientation_figure.hpp"
#include "tessera/error.hpp"

using namespace tessera;
using namespace tessera::viewer;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<Figure> make_figure(const QCommandLineParser& p) {
  const QStringList args = p.positionalArguments();
  if (args.size() != 1)
    throw InputError("give one tessera_orientation_diagnostics run folder (or its view_counts.json / cfsc.json)");
  OrientationSettings s;
  const QString scale = p.value("scale");
  if (scale != "linear" && scale != "log")
    throw InputError(fmt::format("--scale: '{}' is not linear or log", scale.toStdString()));
  s.scale = scale == "log" ? CountScale::Log : CountScale::Linear;
  s.map_width = 2 * (option_int(p, "map-width", 200, 4000) / 2);
  return std::make_unique<OrientationFigure>(load_orientation_run(args[0].toStdString()), s);
}

void add_options(QCommandLineParser& p) {
  p.addOption({"scale", "Colour scale of the counts: linear or log.", "SCALE", "linear"});
  p.addOption({"map-width", "Width of the map in pixels (its height is half).", "PX", "640"});
}

}  // namespace

int main(int argc, char** argv) {
  ViewerSpec spec;
  spec.name = "tessera_view_orientations";
  spec.description =
      "View directions of a tessera_orientation_diagnostics run (view_counts.json) on a Hammer equal-area map of the "
      "sphere, coloured by count, with SCF* and cFAR (orientation_diagnostics.json), and its conical FSCs "
      "(cfsc.json: global, worst and best cone).";
  spec.positional = "run";
  spec.positional_help = "The run folder (or one of its files).";
  spec.add_options = add_options;
  spec.make_figure = make_figure;
  spec.make_window = [](Figure& f) -> std::unique_ptr<ViewerWindow> {
    return make_figure_window(f, "tessera_view_orientations: " + static_cast<OrientationFigure&>(f).run().label);
  };
  return run_viewer(argc, argv, spec);
}
