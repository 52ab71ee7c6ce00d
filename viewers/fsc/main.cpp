// tessera_view_fsc: FSC curves (several files or runs in one plot) with the
// 0.143 and 0.5 lines and the crossings marked, and a refinement's statistics
// per iteration from its run.log.jsonl.
#include <fmt/format.h>

#include <QChartView>
#include <QGraphicsSimpleTextItem>
#include <QGridLayout>
#include <QLegendMarker>
#include <QPainter>
#include <QVBoxLayout>
#include <algorithm>
#include <filesystem>
#include <set>

#include "common/number.hpp"
#include "common/viewer_app.hpp"
#include "fsc/fsc_chart.hpp"
#include "fsc/fsc_data.hpp"
#include "tessera/error.hpp"
#include "tessera/run_files.hpp"

using namespace tessera;
using namespace tessera::viewer;
namespace fs = std::filesystem;

namespace {

constexpr int kStatsPerRow = 3;

struct FscInputs {
  std::vector<FscCurveData> curves;
  std::vector<IterationSeries> runs;
  std::vector<std::string> stats;  ///< statistics to plot, in order
  FscPlotOptions plot;
  QSize fsc_size{900, 560};
  int stats_height = 260;
};

class FscFigure : public Figure {
 public:
  explicit FscFigure(FscInputs in) : in_(std::move(in)) {}
  const FscInputs& inputs() const { return in_; }
  int stat_rows() const { return (static_cast<int>(in_.stats.size()) + kStatsPerRow - 1) / kStatsPerRow; }
  bool has_fsc() const { return !in_.curves.empty(); }
  QSize natural_size() const override {
    return {in_.fsc_size.width(), (has_fsc() ? in_.fsc_size.height() : 0) + stat_rows() * in_.stats_height};
  }
  Json paint(QPainter& painter, QSize size) override {
    const int stats_h = stat_rows() * in_.stats_height;
    const int fsc_h = has_fsc() ? std::max(200, size.height() - stats_h) : 0;
    const int row_h = stat_rows() ? (size.height() - fsc_h) / stat_rows() : 0;
    Json g{{"charts", Json::array()}};
    if (has_fsc()) {
      std::unique_ptr<QChart> chart(make_fsc_chart(in_.curves, in_.plot));
      Json c = paint_chart(*chart, painter, QRect(0, 0, size.width(), fsc_h));
      c["name"] = "fsc";
      g["charts"].push_back(std::move(c));
    }
    const int per_row = std::min<int>(kStatsPerRow, static_cast<int>(in_.stats.size()));
    const int w = per_row ? size.width() / per_row : 0;
    for (std::size_t i = 0; i < in_.stats.size(); ++i) {
      const int row = static_cast<int>(i) / per_row, col = static_cast<int>(i) % per_row;
      std::unique_ptr<QChart> chart(make_stat_chart(in_.stats[i], in_.runs));
      Json c = paint_chart(*chart, painter, QRect(col * w, fsc_h + row * row_h, w, row_h));
      c["name"] = "stat:" + in_.stats[i];
      g["charts"].push_back(std::move(c));
    }
    return g;
  }

 private:
  FscInputs in_;
};

// Clicking a legend entry hides or shows that curve with its crossing marks.
void make_legend_toggle(QChart* chart) {
  for (QLegendMarker* marker : chart->legend()->markers()) {
    QObject::connect(marker, &QLegendMarker::clicked, chart, [chart, marker] {
      QAbstractSeries* s = marker->series();
      const bool show = !s->isVisible();
      const QVariant curve = s->property("curve");
      for (QAbstractSeries* other : chart->series())
        if (other == s || (curve.isValid() && other->property("curve") == curve)) other->setVisible(show);
      for (QGraphicsItem* item : chart->childItems())
        if (curve.isValid() && item->data(0) == curve) item->setVisible(show);
      marker->setVisible(true);
      QFont f = marker->font();
      f.setStrikeOut(!show);
      marker->setFont(f);
    });
  }
}

class FscWindow : public ViewerWindow {
 public:
  explicit FscWindow(FscFigure& figure) {
    const FscInputs& in = figure.inputs();
    auto* central = new QWidget;
    auto* layout = new QVBoxLayout(central);
    if (figure.has_fsc()) {
      QChart* chart = make_fsc_chart(in.curves, in.plot);
      make_legend_toggle(chart);
      auto* view = add_view(chart, "fsc");
      view->setRubberBand(QChartView::RectangleRubberBand);
      view->setMinimumSize(in.fsc_size / 2);
      layout->addWidget(view, 2);
    }
    auto* grid = new QGridLayout;
    for (std::size_t i = 0; i < in.stats.size(); ++i) {
      auto* view = add_view(make_stat_chart(in.stats[i], in.runs), "stat:" + in.stats[i]);
      view->setMinimumHeight(in.stats_height * 3 / 4);
      grid->addWidget(view, static_cast<int>(i) / kStatsPerRow, static_cast<int>(i) % kStatsPerRow);
    }
    if (!in.stats.empty()) layout->addLayout(grid, 1);
    setCentralWidget(central);
    setWindowTitle("tessera_view_fsc");
    add_file_menu(*this, figure, [&figure] { return figure.natural_size(); });
    resize(figure.natural_size() + QSize(40, 60));
  }
  Json figure_geometry() const override {
    Json g{{"charts", Json::array()}};
    for (const auto& [name, view] : views_) {
      const QPoint origin = view->viewport()->mapTo(this, view->mapFromScene(QPointF(0, 0)));
      Json c = chart_geometry(*view->chart(), origin.x(), origin.y());
      c["name"] = name;
      g["charts"].push_back(std::move(c));
    }
    return g;
  }

 private:
  QChartView* add_view(QChart* chart, const std::string& name) {
    auto* view = new QChartView(chart);
    view->setRenderHint(QPainter::Antialiasing);
    views_.emplace_back(name, view);
    return view;
  }
  std::vector<std::pair<std::string, QChartView*>> views_;
};

// A label per input: its folder's name (the run), or the path when names repeat.
std::vector<std::string> input_labels(const std::vector<fs::path>& inputs, const std::vector<std::string>& given) {
  if (!given.empty()) {
    if (given.size() != inputs.size())
      throw InputError(fmt::format("--labels: {} labels for {} inputs", given.size(), inputs.size()));
    return given;
  }
  std::vector<std::string> labels;
  for (const auto& p : inputs) {
    const fs::path abs = fs::absolute(p).lexically_normal();
    const fs::path folder = fs::is_directory(p) ? abs : abs.parent_path();
    labels.push_back(folder.filename().empty() ? folder.string() : folder.filename().string());
  }
  if (std::set<std::string>(labels.begin(), labels.end()).size() != labels.size())
    for (std::size_t i = 0; i < inputs.size(); ++i) labels[i] = inputs[i].string();
  return labels;
}

void select_curves(std::vector<FscCurveData>& curves, const std::vector<std::string>& names) {
  if (names.empty()) return;
  std::vector<FscCurveData> kept;
  for (const auto& n : names) {
    auto it = std::find_if(curves.begin(), curves.end(), [&](const FscCurveData& c) { return c.name == n; });
    if (it == curves.end()) {
      std::string have;
      for (const auto& c : curves) have += (have.empty() ? "" : ", ") + c.name;
      throw InputError(fmt::format("--curves: no curve '{}' (there are: {})", n, have));
    }
    kept.push_back(*it);
  }
  curves = std::move(kept);
}

void select_stats(FscInputs& in, const std::vector<std::string>& wanted) {
  std::vector<std::string> all;
  for (const auto& r : in.runs)
    for (const auto& [name, values] : r.stats)
      if (std::find(all.begin(), all.end(), name) == all.end()) all.push_back(name);
  // resolution_A first: it is what a refinement is watched for.
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a == "resolution_A" && b != a; });
  if (wanted.size() == 1 && wanted[0] == "none") return;
  if (wanted.empty()) {
    in.stats.assign(all.begin(), all.begin() + std::min<std::size_t>(all.size(), 6));
    return;
  }
  for (const auto& w : wanted) {
    if (std::find(all.begin(), all.end(), w) == all.end())
      throw InputError(fmt::format("--stats: no statistic '{}' in the iteration events", w));
    in.stats.push_back(w);
  }
}

FscPlotOptions plot_options(const QCommandLineParser& p) {
  FscPlotOptions o;
  o.thresholds.clear();
  const std::vector<std::string> thresholds = option_list(p, "thresholds");
  for (const auto& t : thresholds == std::vector<std::string>{"none"} ? std::vector<std::string>() : thresholds) {
    const std::optional<double> v = parse_finite(t);
    if (!v || !(*v > -1 && *v < 1)) throw InputError(fmt::format("--thresholds: '{}' is not in (-1, 1)", t));
    o.thresholds.push_back(*v);
  }
  const std::string mode = p.value("crossings").toStdString();
  if (mode == "own")
    o.crossings = FscPlotOptions::Crossings::Own;
  else if (mode == "all")
    o.crossings = FscPlotOptions::Crossings::All;
  else if (mode == "none")
    o.crossings = FscPlotOptions::Crossings::None;
  else
    throw InputError(fmt::format("--crossings: '{}' is not own, all or none", mode));
  o.title = p.value("title").toStdString();
  o.y_label = p.value("y-label").toStdString();
  if (p.isSet("max-res-A")) o.max_frequency = 1.0 / option_double(p, "max-res-A", 0.1);
  return o;
}

std::unique_ptr<Figure> make_figure(const QCommandLineParser& p) {
  std::vector<fs::path> inputs;
  for (const QString& a : p.positionalArguments()) inputs.emplace_back(a.toStdString());
  for (const QString& a : p.values("log")) inputs.emplace_back(a.toStdString());
  if (inputs.empty()) throw InputError("give at least one fsc.json, FSC STAR file, run.log.jsonl or run folder");
  const std::vector<std::string> labels = input_labels(inputs, option_list(p, "labels"));
  FscInputs in;
  in.plot = plot_options(p);
  std::size_t fsc_inputs = 0;
  const fs::path log_name(run_files::run_log::kName);  // run.log.jsonl; any *.jsonl is a log too
  const auto is_log_file = [&](const fs::path& path) { return path.extension() == log_name.extension(); };
  for (const auto& path : inputs) fsc_inputs += !is_log_file(path);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const fs::path& path = inputs[i];
    if (!fs::exists(path)) throw InputError(fmt::format("{}: no such file or folder", path.string()));
    const bool is_log = is_log_file(path);
    if (!is_log) {
      auto curves = load_fsc(path, fsc_inputs > 1 ? labels[i] + ": " : "");
      in.curves.insert(in.curves.end(), curves.begin(), curves.end());
    }
    const fs::path log = is_log ? path : path / log_name;
    if (is_log || (fs::is_directory(path) && fs::is_regular_file(log))) {
      IterationSeries run = load_iterations(log, labels[i]);
      if (!run.stats.empty()) in.runs.push_back(std::move(run));  // e.g. a reconstruction: no iterations
    }
  }
  select_curves(in.curves, option_list(p, "curves"));
  select_stats(in, option_list(p, "stats"));
  if (in.curves.empty() && in.stats.empty()) throw InputError("nothing to show: no FSC curves and no iteration events");
  in.stats_height = option_int(p, "stats-height", 120, 2000);
  return std::make_unique<FscFigure>(std::move(in));
}

void add_options(QCommandLineParser& p) {
  p.addOption({"curves", "Curves to show, by name as in the legend (default: all).", "A,B"});
  p.addOption({"labels", "A label per input, used before curve names and for runs (default: folder names).", "L1,L2"});
  p.addOption({"log", "A run.log.jsonl whose iteration events to plot (repeatable).", "FILE"});
  p.addOption({"thresholds", "FSC threshold lines ('none': no line).", "T1,T2", "0.143,0.5"});
  p.addOption({"y-label", "Title of the y axis (e.g. for curves that are not FSCs, such as tessera_subtract's "
                          "left_by_shell.json).",
               "TEXT", "FSC"});
  p.addOption(
      {"crossings", "Mark crossings: own (each curve at its threshold), all (at every line), none.", "MODE", "own"});
  p.addOption({"title", "Title of the FSC plot.", "TEXT"});
  p.addOption({"max-res-A", "End the x axis at this resolution (A) instead of Nyquist.", "A"});
  p.addOption({"stats", "Iteration statistics to plot (default: all, at most 6; 'none' for none).", "A,B"});
  p.addOption({"stats-height", "Height in pixels of a row of statistics plots.", "PX", "260"});
}

}  // namespace

int main(int argc, char** argv) {
  ViewerSpec spec;
  spec.name = "tessera_view_fsc";
  spec.description =
      "FSC curves from fsc.json / fsc.star files (tessera) or postprocess.star (RELION), several in one plot, with "
      "threshold lines and crossings; per-iteration statistics from run.log.jsonl. Inputs: files or run folders "
      "(their fsc.json and run.log.jsonl).";
  spec.positional = "inputs";
  spec.positional_help = "fsc.json, FSC STAR files, run.log.jsonl files or run folders.";
  spec.add_options = add_options;
  spec.make_figure = make_figure;
  spec.make_window = [](Figure& f) -> std::unique_ptr<ViewerWindow> {
    return std::make_unique<FscWindow>(static_cast<FscFigure&>(f));
  };
  return run_viewer(argc, argv, spec);
}
