// tessera_view_particles: a paged gallery of a particle stack, a RELION STAR
// or a Scipion set, sorted by any column; only the shown page's images are read.
#include <fmt/format.h>

#include <iostream>

#include "common/viewer_app.hpp"
#include "particles/gallery.hpp"
#include "particles/gallery_window.hpp"
#include "tessera/error.hpp"

using namespace tessera;
using namespace tessera::viewer;

namespace {

std::pair<int, int> parse_grid(const QCommandLineParser& p) {
  const QStringList parts = p.value("grid").toLower().split('x');
  bool ok_c = false, ok_r = false;
  const int c = parts.size() == 2 ? parts[0].toInt(&ok_c) : 0, r = parts.size() == 2 ? parts[1].toInt(&ok_r) : 0;
  if (!ok_c || !ok_r || c < 1 || r < 1 || c > 100 || r > 100)
    throw InputError(fmt::format("--grid: '{}' is not CxR with 1 <= C, R <= 100", p.value("grid").toStdString()));
  return {c, r};
}

std::unique_ptr<Figure> make_figure(const QCommandLineParser& p) {
  const QStringList args = p.positionalArguments();
  if (args.size() != 1) throw InputError("give one particle STAR, Scipion .sqlite or .mrcs stack");
  ParticleTable table = ParticleTable::open(args[0].toStdString());
  if (p.isSet("list-columns")) {
    for (int c = 0; c < static_cast<int>(table.columns().size()); ++c)
      std::cout << table.columns()[c] << (table.is_numeric(c) ? "\tnumber" : "\ttext") << "\n";
    return nullptr;
  }
  GallerySettings s;
  const std::string sort = p.value("sort").toStdString();
  s.sort_column = table.column(sort);
  if (s.sort_column < 0) {
    std::string have;
    for (const auto& c : table.columns()) have += (have.empty() ? "" : ", ") + c;
    throw InputError(fmt::format("--sort: no column '{}' in {} (there are: {})", sort, args[0].toStdString(), have));
  }
  s.descending = p.isSet("descending");
  std::tie(s.columns, s.rows) = parse_grid(p);
  if (p.isSet("tile-px")) s.tile_px = option_int(p, "tile-px", 8, 1024);
  s.contrast = ContrastSpec::parse(p.value("contrast").toStdString());
  const int page = option_int(p, "page", 1, 1 << 30);
  auto figure = std::make_unique<GalleryFigure>(std::move(table), s);
  if (page > figure->pages())
    throw InputError(fmt::format("--page: {} is past the last page, {}", page, figure->pages()));
  s.page = page - 1;
  figure->set_settings(s);
  return figure;
}

void add_options(QCommandLineParser& p) {
  p.addOption({"sort",
               "Column to sort by (e.g. rlnCtfScalefactor, rlnLogLikeliContribution; stacks: index, mean, "
               "stddev, min, max).",
               "COLUMN", "index"});
  p.addOption({"descending", "Sort from the largest value down."});
  p.addOption({"page", "Page to show, from 1.", "N", "1"});
  p.addOption({"grid", "Tiles per page, columns x rows.", "CxR", "8x6"});
  p.addOption({"tile-px", "Tile size in pixels (default: the image size, within 48..160).", "PX"});
  p.addOption({"contrast", "Per image: minmax, sigma:K, percentile:P; for all: range:LO,HI.", "SPEC", "sigma:3"});
  p.addOption(
      {"list-columns", "Print the columns that can be sorted by (name, number or text), one per line, and exit."});
}

}  // namespace

int main(int argc, char** argv) {
  ViewerSpec spec;
  spec.name = "tessera_view_particles";
  spec.description =
      "A gallery of particle images from a RELION STAR, a Scipion set or an MRC stack, sorted by any column and "
      "paged: only the shown page's images are read.";
  spec.positional = "particles";
  spec.positional_help = "particles.star, particles.sqlite or a .mrcs stack.";
  spec.add_options = add_options;
  spec.make_figure = make_figure;
  spec.make_window = [](Figure& f) { return make_gallery_window(static_cast<GalleryFigure&>(f)); };
  return run_viewer(argc, argv, spec);
}
