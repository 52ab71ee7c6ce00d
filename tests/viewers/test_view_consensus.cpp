// tessera_view_consensus rendered offscreen (--export) and checked against the
// figures it draws (the "figures" block of a consensus summary):
//   heat maps: every cell, at (grid x + c cell, grid y + r cell), has the heat
//     colour map's colour of its value (written out here): a value of 1 the
//     map's top colour, 0 its bottom one; values outside [0, 1] are scaled
//     between the smallest and the largest; values are written in big cells;
//   histograms: each bar fills its bin up to its count under the reported axes;
//     the threshold is a dashed red line at its value, absent without one;
//   a real tessera_consensus_classes run: its Jaccard matrix drawn cell by cell;
//   bad input: exit 2, one line naming the file, no picture.
#include <array>
#include <cmath>
#include <tuple>

#include "viewer_test_util.hpp"

namespace tessera::test {
namespace {

const QColor kThresholdRed(0xd6, 0x27, 0x28), kBarFill(0x6b, 0xae, 0xd6);

Json heatmap(const std::string& name, const std::vector<std::vector<double>>& values) {
  std::vector<std::string> rows, cols;
  for (std::size_t r = 0; r < values.size(); ++r) rows.push_back("A" + std::to_string(r + 1));
  for (std::size_t c = 0; c < values[0].size(); ++c) cols.push_back("B" + std::to_string(c + 1));
  return {{"name", name},
          {"label", "Jaccard similarity, " + name},
          {"rows", rows},
          {"columns", cols},
          {"values", values},
          {"row_title", "classification A"},
          {"column_title", "classification B"}};
}

Json histogram(const std::string& name, const std::string& unit, const std::vector<long>& counts, double bin,
               const Json& threshold, double median) {
  std::vector<double> edges;
  long n = 0;
  for (std::size_t b = 0; b <= counts.size(); ++b) edges.push_back(static_cast<double>(b) * bin);
  for (long c : counts) n += c;
  return {{"name", name},     {"label", name + " distance"}, {"unit", unit},     {"edges", edges},
          {"counts", counts}, {"threshold", threshold},      {"median", median}, {"mean", median * 1.2},
          {"count", n}};
}

// The point of a heat map's cell (r, c) a fifth of the way in from its top-left
// corner: inside the cell, clear of the lines between cells and of its value.
QPointF cell_point(const Json& map, int r, int c) {
  const double cell = map.at("cell_size"), x = map.at("grid_rect")[0], y = map.at("grid_rect")[1];
  const double in = std::max(2.0, std::floor(cell / 5));
  return {x + c * cell + in, y + r * cell + in};
}

// How many cells of a heat map show the colour of their value under [lo, hi] (to 3 levels).
int cells_in_their_colour(const QImage& img, const Json& map, const std::vector<std::vector<double>>& v, double lo,
                          double hi) {
  int matched = 0;
  for (std::size_t r = 0; r < v.size(); ++r)
    for (std::size_t c = 0; c < v[r].size(); ++c) {
      const QPointF p = cell_point(map, static_cast<int>(r), static_cast<int>(c));
      const QColor want = heat((v[r][c] - lo) / (hi - lo));
      const int d = color_distance(img.pixel(static_cast<int>(p.x()), static_cast<int>(p.y())), want);
      if (d <= 3) {
        ++matched;
      } else {
        ADD_FAILURE() << map.at("name") << " cell " << r << "," << c << " value " << v[r][c] << ": off by " << d;
      }
    }
  return matched;
}

class ViewConsensus : public ::testing::Test {
 protected:
  TempDir tmp_;
};

TEST_F(ViewConsensus, HeatMapCellsHaveTheColoursOfTheirValues) {
  // A similarity matrix with a 1 and a 0; a larger one; one outside [0, 1].
  const std::vector<std::vector<double>> ab{{0.02, 1.0, 0.3}, {0.0, 0.05, 0.6}, {0.45, 0.1, 0.9}, {0.75, 0.2, 0.0}};
  std::vector<std::vector<double>> big(12, std::vector<double>(15));
  for (int r = 0; r < 12; ++r)
    for (int c = 0; c < 15; ++c) big[r][c] = (r * 15 + c) / 179.0;
  const std::vector<std::vector<double>> counts{{-5, 0, 20}, {10, 15, 5}};
  fs::create_directories(tmp_ / "run");
  write_text(tmp_ / "run" / "consensus_classes.json",
             Json{{"particles", 100},
                  {"figures",
                   {{"heatmaps", {heatmap("AB", ab), heatmap("AC", big), heatmap("counts", counts)}},
                    {"histograms", Json::array()}}}}
                 .dump());
  QImage img;
  const Json g = export_png(tmp_, "consensus", {(tmp_ / "run").string()}, "consensus_heatmaps.png", img);
  const Json& f = g.at("figure");
  EXPECT_EQ(f.at("title"), "Class consensus: run (consensus_classes.json)");
  ASSERT_EQ(f.at("heatmaps").size(), 3u);
  EXPECT_TRUE(f.at("histograms").empty());
  EXPECT_EQ(f.at("columns"), 2);
  const Json& m = f.at("heatmaps")[0];
  const int cell = m.at("cell_size");
  EXPECT_EQ(m.at("grid_rect")[2].get<int>(), 3 * cell);
  EXPECT_EQ(m.at("grid_rect")[3].get<int>(), 4 * cell);
  EXPECT_EQ(m.at("limits"), Json::array({0.0, 1.0}));
  // The 1 (row 0, column 1) and the 0s (row 1, column 0; row 3, column 2): the map's ends.
  for (const auto& [r, c, want] :
       {std::tuple{0, 1, QColor(0x7f, 0x00, 0x00)}, std::tuple{1, 0, QColor(0xff, 0xf7, 0xbc)},
        std::tuple{3, 2, QColor(0xff, 0xf7, 0xbc)}}) {
    const QPointF p = cell_point(m, r, c);
    EXPECT_EQ(img.pixel(static_cast<int>(p.x()), static_cast<int>(p.y())) & 0xffffff, want.rgb() & 0xffffff)
        << r << "," << c;
  }
  EXPECT_EQ(cells_in_their_colour(img, m, ab, 0, 1), 12);
  // The values are written: white text on the dark cell of the 1, dark text on the light cell of a 0.
  ASSERT_TRUE(m.at("values_written").get<bool>());
  const double x0 = m.at("grid_rect")[0], y0 = m.at("grid_rect")[1];
  EXPECT_TRUE(color_near(img, x0 + 1.5 * cell, y0 + 0.5 * cell, Qt::white, cell / 4, 60));
  EXPECT_TRUE(color_near(img, x0 + 0.5 * cell, y0 + 1.5 * cell, Qt::black, cell / 4, 120));
  // The colour bar: 1 at the top, 0 at the bottom.
  const Json& bar = m.at("color_bar");
  const int bx = bar.at("rect")[0], by = bar.at("rect")[1], bw = bar.at("rect")[2], bh = bar.at("rect")[3];
  EXPECT_LE(color_distance(img.pixel(bx + bw / 2, by + 1), QColor(0x7f, 0, 0)), 8);
  EXPECT_LE(color_distance(img.pixel(bx + bw / 2, by + bh - 2), heat(0)), 8);
  // The 12 x 15 matrix, every cell; the one outside [0, 1] over its own range.
  EXPECT_EQ(cells_in_their_colour(img, f.at("heatmaps")[1], big, 0, 1), 180);
  EXPECT_EQ(f.at("heatmaps")[2].at("limits"), Json::array({-5.0, 20.0}));
  EXPECT_EQ(cells_in_their_colour(img, f.at("heatmaps")[2], counts, -5, 20), 6);
}

TEST_F(ViewConsensus, HistogramBarsAndThresholdLine) {
  const std::vector<long> counts{5, 40, 80, 60, 30, 12, 6, 3, 1, 2};
  fs::create_directories(tmp_ / "poses");
  write_text(tmp_ / "poses" / "pose_consensus.json", Json{{"median_angle_deg", 2.2},
                                                          {"figures",
                                                           {{"histograms",
                                                             {histogram("angle", "deg", counts, 1.0, 7.25, 2.2),
                                                              histogram("view", "deg", counts, 1.0, nullptr, 2.2)}}}}}
                                                         .dump());
  QImage img;
  const Json g = export_png(tmp_, "consensus", {(tmp_ / "poses").string()}, "consensus_histograms.png", img);
  const Json& f = g.at("figure");
  ASSERT_EQ(f.at("histograms").size(), 2u);
  EXPECT_TRUE(f.at("heatmaps").empty());
  const Json& h = f.at("histograms")[0];
  EXPECT_NE(h.at("title").get<std::string>().find("median 2.20°"), std::string::npos) << h.at("title");
  EXPECT_NE(h.at("title").get<std::string>().find("239 values"), std::string::npos) << h.at("title");
  const auto& a = h.at("plot_area");
  const double ax = a[0], ay = a[1], aw = a[2], ah = a[3];
  const double x0 = h.at("x_range")[0], x1 = h.at("x_range")[1], y0 = h.at("y_range")[0], y1 = h.at("y_range")[1];
  const auto px = [&](double v) { return ax + (v - x0) / (x1 - x0) * aw; };
  const auto py = [&](double v) { return ay + (y1 - v) / (y1 - y0) * ah; };
  EXPECT_LE(x0, 0.0);
  EXPECT_GE(x1, 10.0);
  EXPECT_EQ(y0, 0.0);
  EXPECT_GE(y1, 80.0);
  // Each bar: its fill halfway up its count at its bin's centre, white a little above its top.
  for (std::size_t b = 0; b < counts.size(); ++b) {
    const double x = px(b + 0.5), top = py(static_cast<double>(counts[b]));
    if (counts[b] >= 5) {
      EXPECT_TRUE(color_near(img, x, py(counts[b] / 2.0), kBarFill, 1, 6)) << "bin " << b;
    }
    EXPECT_FALSE(color_near(img, x, top - 4, kBarFill, 1, 30)) << "above bin " << b;
  }
  // The threshold: a dashed red line at 7.25 over the plot's height (dashes: some rows, not all).
  ASSERT_TRUE(h.at("threshold").is_object());
  EXPECT_EQ(h.at("threshold").at("value"), 7.25);
  const double tx = px(7.25);
  EXPECT_NEAR(h.at("threshold").at("x").get<double>(), tx, 1.0);
  int red = 0, rows = 0;
  for (int y = static_cast<int>(ay) + 20; y < ay + ah - 2; ++y, ++rows) {
    bool hit = false;  // the 2-pixel line, on this row
    for (int x = static_cast<int>(std::lround(tx)) - 1; x <= std::lround(tx) + 1; ++x)
      hit = hit || color_distance(img.pixel(x, y), kThresholdRed) <= 60;
    red += hit;
  }
  EXPECT_GT(red, rows * 3 / 10) << red << " of " << rows;
  EXPECT_LT(red, rows * 95 / 100) << red << " of " << rows << " (not dashed)";
  // The second histogram has no threshold: no red in its plot area.
  const Json& v = f.at("histograms")[1];
  EXPECT_TRUE(v.at("threshold").is_null());
  const auto& va = v.at("plot_area");
  int red2 = 0;
  for (int y = va[1].get<int>() + 1; y < va[1].get<int>() + va[3].get<int>() - 1; y += 2)
    for (int x = va[0].get<int>() + 1; x < va[0].get<int>() + va[2].get<int>() - 1; x += 2)
      red2 += color_distance(img.pixel(x, y), kThresholdRed) <= 60;
  EXPECT_EQ(red2, 0);
  // Not blank: the bars cover a good part of the first plot.
  int filled = 0;
  for (int y = static_cast<int>(ay); y < ay + ah; ++y)
    for (int x = static_cast<int>(ax); x < ax + aw; ++x) filled += color_distance(img.pixel(x, y), kBarFill) <= 6;
  EXPECT_GT(filled, static_cast<int>(aw * ah / 10));
}

// Two classifications of 300 particles into 3 classes (B numbers A's class c as c % 3 + 1) with 30 particles
// of B moved to another class; tessera_consensus_classes computes the Jaccard matrix, the viewer draws it.
TEST_F(ViewConsensus, DrawsWhatConsensusClassesWrites) {
  const auto star = [&](const std::string& name, const std::vector<int>& classes) {
    std::string s =
        "data_optics\nloop_\n_rlnOpticsGroupName #1\n_rlnOpticsGroup #2\n_rlnImagePixelSize #3\n_rlnImageSize #4\n"
        "_rlnVoltage #5\n_rlnSphericalAberration #6\n_rlnAmplitudeContrast #7\nopticsGroup1 1 1.5 64 300 2.7 0.1\n\n"
        "data_particles\nloop_\n_rlnImageName #1\n_rlnOpticsGroup #2\n_rlnDefocusU #3\n_rlnDefocusV #4\n"
        "_rlnDefocusAngle #5\n_rlnClassNumber #6\n";
    for (std::size_t i = 0; i < classes.size(); ++i)
      s += std::to_string(i + 1) + "@stack.mrcs 1 15000 15000 0 " + std::to_string(classes[i]) + "\n";
    return tmp_.write(name, s);
  };
  std::vector<int> a, b;
  for (int i = 0; i < 300; ++i) {
    a.push_back(i % 3 + 1);
    b.push_back(i < 30 ? (i + 1) % 3 + 1 : (i % 3 + 1) % 3 + 1);
  }
  const RunResult r = run_program(tmp_, "consensus_classes",
                                  {"--classes-A", star("a.star", a).string(), "--classes-B", star("b.star", b).string(),
                                   "--min-size", "5", "--out", (tmp_ / "classes").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json doc = load_json(tmp_ / "classes" / "consensus_classes.json");
  ASSERT_EQ(doc.at("figures").at("heatmaps").size(), 1u);
  const auto values = doc.at("figures").at("heatmaps")[0].at("values").get<std::vector<std::vector<double>>>();
  QImage img;
  const Json g = export_png(tmp_, "consensus", {(tmp_ / "classes").string()}, "consensus_classes_run.png", img);
  const Json& m = g.at("figure").at("heatmaps")[0];
  EXPECT_EQ(m.at("rows"), doc.at("figures").at("heatmaps")[0].at("rows"));
  EXPECT_EQ(cells_in_their_colour(img, m, values, 0, 1), 9);
}

TEST_F(ViewConsensus, BadInputExits2WithOneErrorLine) {
  const auto folder = [&](const std::string& name, const std::string& file, const Json& doc) {
    fs::create_directories(tmp_ / name);
    write_text(tmp_ / name / file, doc.dump());
    return (tmp_ / name).string();
  };
  Json short_edges = histogram("angle", "deg", {1, 2, 3}, 1.0, nullptr, 1.0);
  short_edges["edges"] = {0.0, 1.0, 2.0};
  Json ragged = heatmap("AB", {{0.1, 0.2}, {0.3, 0.4}});
  ragged["values"][1] = {0.3};
  fs::create_directories(tmp_ / "empty");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{(tmp_ / "missing").string()}, "missing"},
      {{(tmp_ / "empty").string()}, "empty"},
      {{folder("nofig", "pose_consensus.json", Json{{"median_angle_deg", 1.0}})}, "pose_consensus.json"},
      {{folder("edges", "pose_consensus.json", Json{{"figures", {{"histograms", {short_edges}}}}})},
       "pose_consensus.json"},
      {{folder("ragged", "consensus_classes.json", Json{{"figures", {{"heatmaps", {ragged}}}}})},
       "consensus_classes.json"},
      {{folder("nothing", "ctf_consensus.json", Json{{"figures", {{"histograms", Json::array()}}}})},
       "ctf_consensus.json"},
      {{tmp_.write("broken.json", "{\"figures\": [").string()}, "broken.json"},
      {{folder("nofig", "pose_consensus.json", Json{{"median_angle_deg", 1.0}}), "extra"}, "run folder"},
  };
  const fs::path png = tmp_ / "never.png";
  for (const auto& [args, culprit] : cases) {
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--export", png.string()});
    expect_one_error_line(run_viewer(tmp_, "consensus", a), culprit);
    EXPECT_FALSE(fs::exists(png)) << culprit;
  }
  // The message says what is wrong.
  const RunResult e = run_viewer(tmp_, "consensus", {(tmp_ / "edges").string(), "--export", png.string()});
  EXPECT_NE(e.err.find("3 counts need 4 edges, not 3"), std::string::npos) << e.err;
  const RunResult r = run_viewer(tmp_, "consensus", {(tmp_ / "ragged").string(), "--export", png.string()});
  EXPECT_NE(r.err.find("row 2: 1 value(s) for 2 columns"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tessera::test
