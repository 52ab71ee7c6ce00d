// tessera_view_consensus: the figures of a consensus run (tessera_consensus_classes,
// tessera_consensus_poses, tessera_consensus_ctf): the histograms of the distances
// between two assignments with their thresholds, and the heat maps of the similarity
// between two classifications' classes, from the "figures" block of the run's summary.
#include "common/figure_window.hpp"
#include "common/viewer_app.hpp"
#include "consensus/consensus_chart.hpp"
#include "tessera/error.hpp"

using namespace tessera;
using namespace tessera::viewer;

namespace {

std::unique_ptr<Figure> make_figure(const QCommandLineParser& p) {
  const QStringList args = p.positionalArguments();
  if (args.size() != 1)
    throw InputError(
        "give one consensus run folder (or its consensus_classes.json, pose_consensus.json or ctf_consensus.json)");
  return std::make_unique<ConsensusFigure>(load_consensus(args[0].toStdString()));
}

}  // namespace

int main(int argc, char** argv) {
  ViewerSpec spec;
  spec.name = "tessera_view_consensus";
  spec.description =
      "The figures of a consensus run: histograms (pose_consensus.json: angular, view and shift distances; "
      "ctf_consensus.json: defocus and astigmatism differences, consensus resolution) with their thresholds and "
      "medians, and heat maps (consensus_classes.json: the Jaccard similarity between two classifications' "
      "classes; defocus_change.json of tessera_ctf_refine: the defocus change per particle and per micrograph), "
      "from the summary's \"figures\" block.";
  spec.positional = "run";
  spec.positional_help = "The run folder of tessera_consensus_classes, _poses, _ctf or tessera_ctf_refine (or its JSON summary).";
  spec.make_figure = make_figure;
  spec.make_window = [](Figure& f) -> std::unique_ptr<ViewerWindow> {
    const ConsensusFigures& d = static_cast<ConsensusFigure&>(f).data();
    return make_figure_window(f, "tessera_view_consensus: " + d.label + " (" + d.file + ")");
  };
  return run_viewer(argc, argv, spec);
}
