// tessera_view_fsc rendered offscreen (--export) and checked against the data:
// the curves' pixels lie where the FSC values put them under the chart's axis
// mapping, the crossings sit at the interpolated resolution, the threshold
// lines at their FSC values; several runs and RELION's postprocess.star in one
// plot; iteration statistics from a run.log.jsonl; bad input.
//
// Axis mapping, from the plot area [x, y, w, h] and the axis ranges the viewer
// reports (--geometry-json): frequency f (1/A) -> x + (f - x0) / (x1 - x0) * w,
// FSC v -> y + (y1 - v) / (y1 - y0) * h. The curves' frequencies and values come
// from the files themselves (fsc.json, postprocess.star), read here.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "tessera/star.hpp"
#include "test_data.hpp"
#include "viewer_test_util.hpp"

namespace tessera::test {
namespace {

constexpr int kColorTolerance = 30;  // core pixels of a 2.5 px line are the pen colour; edges blend with white

struct Curve {
  std::string name;
  std::vector<double> f, v;  // frequency (1/A) and FSC per shell
};

struct Mapping {
  double x, y, w, h, x0, x1, y0, y1;
  explicit Mapping(const Json& chart) {
    const auto& a = chart.at("plot_area");
    x = a[0], y = a[1], w = a[2], h = a[3];
    x0 = chart.at("x_range")[0], x1 = chart.at("x_range")[1];
    y0 = chart.at("y_range")[0], y1 = chart.at("y_range")[1];
  }
  double px(double f) const { return x + (f - x0) / (x1 - x0) * w; }
  double py(double v) const { return y + (y1 - v) / (y1 - y0) * h; }
};

const Json& chart_named(const Json& geometry, const std::string& name) {
  for (const auto& c : geometry.at("figure").at("charts"))
    if (c.at("name") == name) return c;
  throw std::runtime_error("no chart " + name);
}

const Json& series(const Json& chart, const std::string& kind, const std::string& curve) {
  for (const auto& s : chart.at("series"))
    if (s.at("kind") == kind && s.value("curve", "") == curve) return s;
  throw std::runtime_error("no " + kind + " series for " + curve);
}

std::vector<Curve> curves_of_json(const fs::path& fsc_json) {
  const Json doc = load_json(fsc_json);
  const double box = doc.at("box"), voxel = doc.at("voxel_A");
  std::vector<Curve> out;
  for (const auto& [name, values] : doc.at("curves").items()) {
    Curve c{name, {}, values.get<std::vector<double>>()};
    for (std::size_t k = 0; k < c.v.size(); ++k) c.f.push_back(k / (box * voxel));
    out.push_back(std::move(c));
  }
  return out;
}

// The crossing computed here: first shell k >= 1 below t, linear between k - 1 and k.
double crossing_frequency(const Curve& c, double t) {
  for (std::size_t k = 1; k < c.v.size(); ++k)
    if (c.v[k] < t) {
      const double s = (c.v[k - 1] - t) / (c.v[k - 1] - c.v[k]);
      return c.f[k - 1] + s * (c.f[k] - c.f[k - 1]);
    }
  return NAN;
}

// Every shell and every midpoint between shells must have a pixel of the
// curve's colour within 2 px of where the data put it (points where another
// curve passes within 2 px may be hidden under it and are not counted; a
// label may hide a few more: at least 95% of the others); and in the column of
// each shell, no pixel of that colour may lie further from the curve than the
// line's slope and width allow (a curve drawn at the wrong values fails both).
void expect_curve_drawn(const QImage& img, const Json& chart, const std::string& legend_curve, const Curve& c) {
  const Mapping m(chart);
  const QColor color = color_of(series(chart, "curve", legend_curve).at("color"));
  std::vector<QColor> others;
  const Json* cross = nullptr;
  for (const auto& s : chart.at("series")) {
    if (s.at("kind") == "curve" && s.at("curve") != legend_curve) others.push_back(color_of(s.at("color")));
    if (s.at("kind") == "crossing" && s.at("curve") == legend_curve) cross = &s;
  }
  int found = 0, counted = 0, points = 0;
  for (std::size_t k = 0; k + 1 < c.v.size(); ++k)
    for (double t : {0.0, 0.5}) {
      const double f = c.f[k] + t * (c.f[k + 1] - c.f[k]), v = c.v[k] + t * (c.v[k + 1] - c.v[k]);
      ++points;
      const bool hidden = std::any_of(others.begin(), others.end(), [&](const QColor& o) {
        return color_near(img, m.px(f), m.py(v), o, 2, kColorTolerance);
      });
      if (hidden) continue;
      ++counted;
      found += color_near(img, m.px(f), m.py(v), color, 2, kColorTolerance);
    }
  EXPECT_GE(counted, points / 2) << legend_curve << ": most of the curve is hidden";
  EXPECT_GE(found, counted * 95 / 100) << legend_curve << ": " << found << " of " << counted << " points drawn";
  for (std::size_t k = 1; k + 1 < c.v.size(); ++k) {
    const int col = static_cast<int>(std::lround(m.px(c.f[k])));
    if (cross && std::abs(col - cross->at("center")[0].get<double>()) < 8) continue;  // the crossing's drop line
    const double slope = std::max(std::abs(m.py(c.v[k + 1]) - m.py(c.v[k])) / (m.px(c.f[k + 1]) - m.px(c.f[k])),
                                  std::abs(m.py(c.v[k]) - m.py(c.v[k - 1])) / (m.px(c.f[k]) - m.px(c.f[k - 1])));
    // Half a column along the steeper segment, plus the 2.5 px pen measured
    // vertically (1.25 sqrt(1 + slope^2)), plus 2 px of antialiasing.
    const double allowed = 0.5 * slope + 1.25 * std::sqrt(1 + slope * slope) + 2;
    for (int y = static_cast<int>(m.y); y < static_cast<int>(m.y + m.h); ++y)
      if (color_distance(img.pixel(col, y), color) <= kColorTolerance) {
        EXPECT_LE(std::abs(y - m.py(c.v[k])), allowed) << legend_curve << " shell " << k << " column " << col;
      }
  }
}

// The crossing's dot: at the frequency computed here, on the threshold, in the curve's colour.
void expect_crossing(const QImage& img, const Json& chart, const std::string& legend_curve, const Curve& c, double t) {
  const Mapping m(chart);
  const double f = crossing_frequency(c, t);
  ASSERT_TRUE(std::isfinite(f)) << legend_curve;
  const Json& dot = series(chart, "crossing", legend_curve);
  EXPECT_NEAR(dot.at("resolution_A").get<double>(), 1.0 / f, 1e-9 / f);
  EXPECT_NEAR(dot.at("threshold").get<double>(), t, 1e-12);
  // The reported centre is the viewer's own mapping: it must agree with ours.
  EXPECT_NEAR(dot.at("center")[0].get<double>(), m.px(f), 0.5);
  EXPECT_NEAR(dot.at("center")[1].get<double>(), m.py(t), 0.5);
  EXPECT_TRUE(color_near(img, m.px(f), m.py(t), color_of(dot.at("color")), 1, kColorTolerance)) << legend_curve;
  const std::string legend = series(chart, "curve", legend_curve).at("name");
  EXPECT_NE(legend.find(fmt::format("{}: {:.2f} Å", t, 1.0 / f)), std::string::npos) << legend;
}

// A dashed grey line across the plot at FSC = t: grey on at least 40% of its row.
void expect_threshold_line(const QImage& img, const Json& chart, double t) {
  const Mapping m(chart);
  const int row = static_cast<int>(std::lround(m.py(t)));
  int grey = 0, n = 0;
  for (int x = static_cast<int>(m.x) + 2; x < static_cast<int>(m.x + m.w) - 2; ++x, ++n)
    grey += color_near(img, x, row, QColor(110, 110, 110), 1, 40);
  EXPECT_GE(grey, n * 40 / 100) << "threshold " << t << " at row " << row;
}

class ViewFsc : public ::testing::Test {
 protected:
  // 500 particles of the phantom at SNR 0.3, reconstructed with the truth as
  // reference: a gold-standard and a vs-reference curve (about 3 s).
  void SetUp() override {
    RunResult r =
        run_program(tmp_, "simulate",
                    {"--out", (tmp_ / "sim").string(), "--count", "500", "--snr", "0.3", "--threads", "2", "--quiet"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_program(tmp_, "reconstruct",
                    {"--out", (tmp_ / "rec").string(), "--particles", (tmp_ / "sim" / "particles.star").string(),
                     "--reference", (tmp_ / "sim" / "truth.mrc").string(), "--threads", "2", "--quiet"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  TempDir tmp_;
};

TEST_F(ViewFsc, CurvesCrossingsAndThresholdsLieWhereTheDataPutThem) {
  const fs::path png = tmp_ / "fsc.png", geo = tmp_ / "fsc.json";
  const RunResult r = run_viewer(
      tmp_, "fsc",
      {(tmp_ / "rec").string(), "--export", png.string(), "--geometry-json", geo.string(), "--size", "900x600"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  keep_png(png, "fsc_gold_vs_reference.png");
  const QImage img = load_png(png);
  ASSERT_EQ(img.size(), QSize(900, 600));
  const Json g = load_json(geo);
  const Json& chart = chart_named(g, "fsc");
  const std::vector<Curve> curves = curves_of_json(tmp_ / "rec" / "fsc.json");
  ASSERT_EQ(curves.size(), 2u);
  for (const Curve& c : curves) {
    expect_curve_drawn(img, chart, c.name, c);
    expect_crossing(img, chart, c.name, c, c.name == "vs_reference" ? 0.5 : 0.143);
  }
  // x runs from 0 to Nyquist (1 / 6 A at 3 A/px), y from -0.1 to 1.05.
  EXPECT_NEAR(chart.at("x_range")[1].get<double>(), 1.0 / 6.0, 1e-12);
  EXPECT_NEAR(chart.at("y_range")[0].get<double>(), std::min(-0.1, -0.1), 1e-12);
  expect_threshold_line(img, chart, 0.143);
  expect_threshold_line(img, chart, 0.5);
}

// Curves that are not FSCs (tessera_subtract's left_by_shell.json): no threshold lines, and the y
// axis titled as asked.
TEST_F(ViewFsc, NoThresholdLinesAndAnotherAxisTitle) {
  const fs::path png = tmp_ / "plain.png", geo = tmp_ / "plain.json";
  const RunResult r = run_viewer(tmp_, "fsc",
                                 {(tmp_ / "rec").string(), "--thresholds", "none", "--crossings", "none", "--y-label",
                                  "share left", "--export", png.string(), "--geometry-json", geo.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json g = load_json(geo);
  const Json& chart = chart_named(g, "fsc");
  for (const auto& series : chart.at("series")) {
    EXPECT_NE(series.at("kind"), "threshold") << series.dump();
    EXPECT_NE(series.at("kind"), "crossing") << series.dump();
  }
  EXPECT_EQ(chart.at("y_label"), "share left");
  const QImage img = load_png(png);
  for (const Curve& c : curves_of_json(tmp_ / "rec" / "fsc.json")) expect_curve_drawn(img, chart, c.name, c);
}

// Two runs and RELION's postprocess.star in one plot: each curve at its own
// data, named after its run; RELION's corrected curve crosses 0.143 between
// the shell RELION reports (rlnFinalResolution) and the next.
TEST_F(ViewFsc, SeveralRunsAndRelionPostprocessInOnePlot) {
  fs::create_directories(tmp_ / "halfres");
  Json doc = load_json(tmp_ / "rec" / "fsc.json");
  for (auto& v : doc["curves"]["gold_standard"]) v = v.get<double>() * v.get<double>();  // a second, different run
  doc["curves"].erase("vs_reference");
  write_text(tmp_ / "halfres" / "fsc.json", doc.dump());
  std::vector<std::string> args{(tmp_ / "rec").string(), (tmp_ / "halfres" / "fsc.json").string()};
  const auto shared = shared_data();
  const fs::path post = shared ? *shared / "relion_7DDO" / "PostProcess" / "postprocess.star" : fs::path();
  const bool relion = shared && fs::exists(post);
  if (relion) args.push_back(post.string());
  const fs::path png = tmp_ / "runs.png", geo = tmp_ / "runs.json";
  args.insert(args.end(), {"--export", png.string(), "--geometry-json", geo.string(), "--thresholds", "0.143,0.5"});
  // RELION's masked and corrected curves coincide at high resolution, where one
  // would hide the other: show one of them (and the unmasked one).
  if (relion)
    args.insert(args.end(), {"--curves",
                             "rec: gold_standard,halfres: gold_standard,PostProcess: Corrected,"
                             "PostProcess: UnmaskedMaps"});
  const RunResult r = run_viewer(tmp_, "fsc", args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  keep_png(png, "fsc_several_runs.png");
  const QImage img = load_png(png);
  const Json g = load_json(geo);
  const Json& chart = chart_named(g, "fsc");
  const std::vector<Curve> rec = curves_of_json(tmp_ / "rec" / "fsc.json");
  const std::vector<Curve> half = curves_of_json(tmp_ / "halfres" / "fsc.json");
  expect_curve_drawn(img, chart, "rec: gold_standard", rec[0]);
  expect_curve_drawn(img, chart, "halfres: gold_standard", half[0]);
  expect_crossing(img, chart, "halfres: gold_standard", half[0], 0.143);
  EXPECT_NE(color_of(series(chart, "curve", "rec: gold_standard").at("color")),
            color_of(series(chart, "curve", "halfres: gold_standard").at("color")));
  if (!relion) GTEST_SKIP() << "shared data absent: RELION's postprocess.star not checked";
  const StarFile star = read_star(post);
  const StarTable& t = *star.find("fsc");
  Curve corrected{"PostProcess: Corrected", {}, {}};
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    corrected.f.push_back(i == 0 ? 0.0 : std::stod(t.rows[i][t.column("rlnResolution")]));
    corrected.v.push_back(std::stod(t.rows[i][t.column("rlnFourierShellCorrelationCorrected")]));
  }
  expect_curve_drawn(img, chart, corrected.name, corrected);
  expect_crossing(img, chart, corrected.name, corrected, 0.143);
  const double final_A = std::stod(*star.find("general")->value("rlnFinalResolution"));  // 6.19 A, shell 31 of 64
  const double mark_A = series(chart, "crossing", corrected.name).at("resolution_A");
  EXPECT_LE(mark_A, final_A + 1e-6);
  EXPECT_GE(mark_A, 64 * 3.0 / 32 - 1e-6);
}

// Per-iteration statistics from a run.log.jsonl: each point where its
// iteration and value put it; other events and log lines are ignored.
TEST_F(ViewFsc, IterationStatisticsFromTheLog) {
  fs::create_directories(tmp_ / "refine");
  const std::vector<double> res{24, 16.5, 12, 10.2, 9.1, 8.4, 8.1, 8.0};
  const std::vector<double> change{12, 6.5, 3.1, 1.9, 1.2, 0.9, 0.7, 0.65};
  std::string log = R"({"time":"t","elapsed_s":0,"event":"start","program":"x","parameters":{}})"
                    "\n";
  for (std::size_t i = 0; i < res.size(); ++i) {
    log += fmt::format(R"({{"time":"t","elapsed_s":{},"event":"log","level":"info","message":"m"}})"
                       "\n",
                       i);
    log += fmt::format(R"({{"time":"t","elapsed_s":{},"event":"iteration","iteration":{},"resolution_A":{},)"
                       R"("angular_change_deg":{},"note":"text"}})"
                       "\n",
                       i, i + 1, res[i], change[i]);
  }
  write_text(tmp_ / "refine" / "run.log.jsonl", log);
  const fs::path png = tmp_ / "stats.png", geo = tmp_ / "stats.json";
  const RunResult r = run_viewer(tmp_, "fsc",
                                 {(tmp_ / "refine" / "run.log.jsonl").string(), (tmp_ / "rec").string(), "--export",
                                  png.string(), "--geometry-json", geo.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  keep_png(png, "fsc_with_iteration_stats.png");
  const QImage img = load_png(png);
  const Json g = load_json(geo);
  for (const auto& [name, values] : {std::pair{"resolution_A", res}, std::pair{"angular_change_deg", change}}) {
    const Json& chart = chart_named(g, std::string("stat:") + name);
    const Mapping m(chart);
    const QColor color = color_of(chart.at("series")[0].at("color"));
    for (std::size_t i = 0; i < values.size(); ++i)
      EXPECT_TRUE(color_near(img, m.px(i + 1.0), m.py(values[i]), color, 2, kColorTolerance)) << name << " " << i + 1;
    // And not where the next value would be: the points are the data, not any line.
    EXPECT_GT(m.py(values[1]) - m.py(values[0]), 10) << "the " << name << " plot is too flat to check";
  }
}

TEST_F(ViewFsc, VectorExports) {
  for (const char* ext : {"svg", "pdf"}) {
    const fs::path out = tmp_ / (std::string("fsc.") + ext);
    const RunResult r = run_viewer(tmp_, "fsc", {(tmp_ / "rec").string(), "--export", out.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string text = read_text(out);
    EXPECT_NE(text.find(ext == std::string("svg") ? "<svg" : "%PDF"), std::string::npos) << ext;
    EXPECT_GT(text.size(), 2000u) << ext;
  }
}

TEST_F(ViewFsc, BadInputExits2WithOneErrorLineAndWritesNothing) {
  write_text(tmp_ / "broken.json", "{\"box\": 64}");
  const fs::path png = tmp_ / "never.png";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{(tmp_ / "missing.json").string()}, "missing.json"},
      {{(tmp_ / "broken.json").string()}, "broken.json"},
      {{(tmp_ / "rec").string(), "--crossings", "sometimes"}, "--crossings"},
      {{(tmp_ / "rec").string(), "--curves", "nonsense"}, "nonsense"},
      {{(tmp_ / "rec").string(), "--size", "12x3"}, "--size"},
  };
  for (const auto& [args, culprit] : cases) {
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--export", png.string()});
    const RunResult r = run_viewer(tmp_, "fsc", a);
    expect_one_error_line(r, culprit);
    EXPECT_FALSE(fs::exists(png)) << culprit;
  }
  // No display and no --export: it says so instead of failing in Qt.
  const RunResult r =
      run_viewer(tmp_, "fsc", {(tmp_ / "rec").string()}, "env -u DISPLAY -u WAYLAND_DISPLAY -u QT_QPA_PLATFORM");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--export"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tessera::test
