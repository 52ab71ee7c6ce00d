// tessera_view_overfitting: resolution against the number of particles from a
// tessera_validate_overfitting run (validate_overfitting.json): particles and
// noise, mean and spread over repeats, on Rosenthal-Henderson axes.
#include <filesystem>

#include "common/figure_window.hpp"
#include "common/viewer_app.hpp"
#include "overfitting/overfitting_chart.hpp"
#include "tessera/error.hpp"

using namespace tessera;
using namespace tessera::viewer;

namespace {

std::unique_ptr<Figure> make_figure(const QCommandLineParser& p) {
  const QStringList args = p.positionalArguments();
  if (args.size() != 1)
    throw InputError("give one tessera_validate_overfitting run folder (or its validate_overfitting.json)");
  return std::make_unique<OverfittingFigure>(load_overfitting(args[0].toStdString()));
}

}  // namespace

int main(int argc, char** argv) {
  ViewerSpec spec;
  spec.name = "tessera_view_overfitting";
  spec.description =
      "Resolution against the number of particles (tessera_validate_overfitting's validate_overfitting.json): x the "
      "number of particles on a log scale, y linear in 1/d^2 and labelled in A (Rosenthal & Henderson), the particles' "
      "and the noise images' curves with the spread over repeats, and the fitted B-factor.";
  spec.positional = "run";
  spec.positional_help = "The run folder (or its validate_overfitting.json).";
  spec.make_figure = make_figure;
  spec.make_window = [](Figure& f) -> std::unique_ptr<ViewerWindow> {
    return make_figure_window(f, "tessera_view_overfitting: " + static_cast<OverfittingFigure&>(f).run().label);
  };
  return run_viewer(argc, argv, spec);
}
