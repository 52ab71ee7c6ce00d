// The validation viewers rendered offscreen (--export) and checked against the
// data they show:
//   tessera_view_orientations: every cell of an equal-area grid of view counts
//     has, at its centre projected here with the Hammer formula, the colour of
//     its count (empty cells grey; the densest one the colour map's top colour);
//     SCF* and cFAR in the title; the worst cone's FSC crossing at the resolution
//     computed here from cfsc.json;
//   tessera_view_overfitting: the mean resolutions lie where x = log10 N and
//     y = 1 / d^2 put them under the reported axes, in their curve's colour; the
//     Rosenthal-Henderson B is the least-squares one computed here;
//   bad input: exit 2, one line naming the file.
#include <array>
#include <cmath>
#include <numbers>

#include "tessera/orientation_diagnostics.hpp"
#include "viewer_test_util.hpp"

namespace tessera::test {
namespace {

constexpr double kDeg = std::numbers::pi / 180;

// Hammer projection of a unit vector to a pixel of the ellipse's box [x, y, w, h].
QPointF hammer_pixel(const Vec3& n, const Json& rect) {
  const double lambda = std::atan2(n[1], n[0]), phi = std::asin(n[2]);
  const double d = std::sqrt(1 + std::cos(phi) * std::cos(lambda / 2));
  const double X = 2 * std::sqrt(2.0) * std::cos(phi) * std::sin(lambda / 2) / d,
               Y = std::sqrt(2.0) * std::sin(phi) / d;
  const double x = rect[0], y = rect[1], w = rect[2], h = rect[3];
  return {x + (X / (2 * std::sqrt(2.0)) + 1) * w / 2, y + (1 - Y / std::sqrt(2.0)) * h / 2};
}

Vec3 direction(double rot_deg, double tilt_deg) {
  return {std::cos(rot_deg * kDeg) * std::sin(tilt_deg * kDeg), std::sin(rot_deg * kDeg) * std::sin(tilt_deg * kDeg),
          std::cos(tilt_deg * kDeg)};
}

// An FSC falling from 1 through 0.143 near shell `edge`.
std::vector<double> fsc_curve(int shells, double edge) {
  std::vector<double> v;
  for (int k = 0; k < shells; ++k) v.push_back(1 / (1 + std::exp((k - edge) / 1.5)));
  return v;
}

// The crossing computed here: first shell k >= 1 below t, linear between k - 1 and k, as a resolution.
double crossing_A(const std::vector<double>& v, double t, int box, double voxel_A) {
  for (std::size_t k = 1; k < v.size(); ++k)
    if (v[k] < t) return box * voxel_A / (k - 1 + (v[k - 1] - t) / (v[k - 1] - v[k]));
  return NAN;
}

class ViewValidation : public ::testing::Test {
 protected:
  // A run folder of tessera_orientation_diagnostics: views clustered about (rot 35, tilt 65) on a
  // 10-degree grid, the densest cell there; three cones whose FSCs cross at shells 6, 9 and 11.
  fs::path write_orientation_run() {
    const fs::path dir = tmp_ / "orient";
    fs::create_directories(dir);
    const EqualAreaGrid grid(10);
    const Vec3 peak = direction(35, 65);
    Json cells = Json::array();
    long total = 0;
    counts_.clear();
    for (int c = 0; c < grid.size(); ++c) {
      const Vec3 u = grid.centre(c);
      const double angle = std::acos(std::clamp(u[0] * peak[0] + u[1] * peak[1] + u[2] * peak[2], -1.0, 1.0)) / kDeg;
      long n = std::lround(50 * std::exp(-angle * angle / (2 * 30.0 * 30.0)));
      if (c == grid.cell_of(peak)) n = 80;
      counts_.push_back(n);
      total += n;
      const Euler e = direction_to_euler(u);
      cells.push_back({{"xyz", {u[0], u[1], u[2]}}, {"rot_deg", e.rot}, {"tilt_deg", e.tilt}, {"count", n}});
    }
    peak_cell_ = grid.cell_of(peak);
    write_text(dir / "view_counts.json", Json{{"bin_deg", 10.0},
                                              {"cell_solid_angle_sr", grid.cell_solid_angle_sr()},
                                              {"particles", total},
                                              {"cells", cells}}
                                             .dump());
    write_text(dir / "orientation_diagnostics.json",
               Json{{"views", {{"scf_star", 0.6123}}}, {"conical_fsc", {{"cfar", 0.4321}}}}.dump());
    Json cones = Json::array();
    const std::array<double, 3> edges{9, 6, 11}, areas{0.3, 0.2, 0.4};
    for (int d = 0; d < 3; ++d)
      cones.push_back({{"xyz", {0.0, std::sin(d * 0.5), std::cos(d * 0.5)}},
                       {"area", areas[d]},
                       {"curve", fsc_curve(17, edges[d])}});
    worst_curve_ = fsc_curve(17, 6);
    write_text(
        dir / "cfsc.json",
        Json{{"box", 32}, {"voxel_A", 2.0}, {"cfar", 0.5}, {"global", fsc_curve(17, 9)}, {"cones", cones}}.dump());
    return dir;
  }
  TempDir tmp_;
  std::vector<long> counts_;
  int peak_cell_ = 0;
  std::vector<double> worst_curve_;
};

TEST_F(ViewValidation, ViewMapColoursEachCellByItsCount) {
  const fs::path dir = write_orientation_run();
  QImage img;
  const Json g = export_png(tmp_, "orientations", {dir.string()}, "orientations.png", img);
  const Json& f = g.at("figure");
  const Json& map = f.at("sky_map");
  const Json& rect = map.at("rect");
  EXPECT_EQ(rect[2].get<int>(), 2 * rect[3].get<int>());
  const long max = *std::max_element(counts_.begin(), counts_.end());
  EXPECT_EQ(map.at("max_count"), max);
  EXPECT_EQ(map.at("densest").at("cell"), peak_cell_);
  // The densest cell: at its projected centre, the top colour.
  const EqualAreaGrid grid(10);
  const QPointF top = hammer_pixel(grid.centre(peak_cell_), rect);
  EXPECT_LE(color_distance(img.pixel(static_cast<int>(top.x()), static_cast<int>(top.y())), QColor(0x7f, 0, 0)), 3);
  EXPECT_NEAR(map.at("densest").at("pixel")[0].get<double>(), top.x(), 0.5);
  EXPECT_NEAR(map.at("densest").at("pixel")[1].get<double>(), top.y(), 0.5);
  // Every cell: its count's colour within 2 px of its projected centre (graticule
  // lines pass through some centres; cells centred at rot 180 are cut by the
  // ellipse's outline, their centres on it; a label may cover a few).
  int matched = 0, empty = 0;
  for (int c = 0; c < grid.size(); ++c) {
    const QPointF p = hammer_pixel(grid.centre(c), rect);
    const long n = counts_[static_cast<std::size_t>(c)];
    empty += n == 0;
    const QColor want = n == 0 ? QColor(0xe0, 0xe0, 0xe0) : heat(static_cast<double>(n) / max);
    matched += color_near(img, p.x(), p.y(), want, 2, 3);
  }
  EXPECT_GT(empty, 50);  // the far side of the sphere has no views
  EXPECT_GE(matched, grid.size() * 98 / 100) << matched << " of " << grid.size();
  // Outside the ellipse: white.
  const int x0 = rect[0], y0 = rect[1];
  EXPECT_EQ(img.pixel(x0 + 2, y0 + 2) & 0xffffff, 0xffffffu);
  // The colour bar: 0 at the bottom, the largest count at the top, in the map's colours.
  const Json& bar = map.at("color_bar");
  EXPECT_EQ(bar.at("limits"), Json::array({0.0, static_cast<double>(max)}));
  const int bx = bar.at("rect")[0], by = bar.at("rect")[1], bw = bar.at("rect")[2], bh = bar.at("rect")[3];
  EXPECT_LE(color_distance(img.pixel(bx + bw / 2, by + 1), QColor(0x7f, 0, 0)), 8);
  EXPECT_LE(color_distance(img.pixel(bx + bw / 2, by + bh - 2), heat(0)), 8);
  // The title and the conical FSCs.
  EXPECT_NE(f.at("subtitle").get<std::string>().find("SCF* 0.612"), std::string::npos) << f.at("subtitle");
  EXPECT_NE(f.at("subtitle").get<std::string>().find("cFAR 0.432"), std::string::npos) << f.at("subtitle");
  const Json& chart = f.at("cfsc_chart");
  bool found = false;
  for (const auto& s : chart.at("series"))
    if (s.at("kind") == "crossing" && s.at("curve") == "worst") {
      found = true;
      EXPECT_NEAR(s.at("resolution_A").get<double>(), crossing_A(worst_curve_, 0.143, 32, 2.0), 1e-6);
      const double fx = 1 / s.at("resolution_A").get<double>();
      const auto& a = chart.at("plot_area");
      const double x0r = chart.at("x_range")[0], x1r = chart.at("x_range")[1];
      EXPECT_NEAR(s.at("center")[0].get<double>(), a[0].get<double>() + (fx - x0r) / (x1r - x0r) * a[2].get<double>(),
                  1.0);
    }
  EXPECT_TRUE(found);
}

// A log scale puts a cell of c views at t = ln c / ln max.
TEST_F(ViewValidation, ViewMapLogScale) {
  const fs::path dir = write_orientation_run();
  QImage img;
  const Json g = export_png(tmp_, "orientations", {(dir / "view_counts.json").string(), "--scale", "log"},
                            "orientations_log.png", img);
  const Json& map = g.at("figure").at("sky_map");
  EXPECT_EQ(map.at("scale"), "log");
  const EqualAreaGrid grid(10);
  const double max = static_cast<double>(*std::max_element(counts_.begin(), counts_.end()));
  int matched = 0, coloured = 0;
  for (int c = 0; c < grid.size(); ++c) {
    const long n = counts_[static_cast<std::size_t>(c)];
    if (n == 0) continue;
    ++coloured;
    const QPointF p = hammer_pixel(grid.centre(c), map.at("rect"));
    matched += color_near(img, p.x(), p.y(), heat(std::log(static_cast<double>(n)) / std::log(max)), 2, 3);
  }
  EXPECT_GE(matched, coloured * 98 / 100) << matched << " of " << coloured;
}

// validate_overfitting.json as tessera_validate_overfitting writes it.
Json overfitting_doc() {
  const std::vector<long> sizes{100, 200, 400, 800, 1600};
  Json particles{{"resolution_A", Json::array()}, {"mean_A", Json::array()}, {"sd_A", Json::array()}};
  Json noise = particles;
  const std::array<double, 5> pm{8.0, 6.5, 5.4, 4.6, 4.0}, nm{21, 20.5, 0, 20.2, 19.8};
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    particles["resolution_A"].push_back({pm[i] - 0.2, pm[i], pm[i] + 0.2});
    particles["mean_A"].push_back(pm[i]);
    particles["sd_A"].push_back(0.2);
    if (nm[i] == 0) {  // no crossing in any repeat
      noise["resolution_A"].push_back({nullptr, nullptr, nullptr});
      noise["mean_A"].push_back(nullptr);
      noise["sd_A"].push_back(nullptr);
    } else {
      noise["resolution_A"].push_back({nm[i] - 1, nm[i] + 1, nullptr});
      noise["mean_A"].push_back(nm[i]);
      noise["sd_A"].push_back(1.4);
    }
  }
  return {{"box", 64},
          {"voxel_A", 1.5},
          {"threshold", 0.143},
          {"sizes", sizes},
          {"curves", {{"particles", particles}, {"noise", noise}}}};
}

TEST_F(ViewValidation, OverfittingPointsLieAtTheirAxisPositions) {
  const Json doc = overfitting_doc();
  fs::create_directories(tmp_ / "ovf");
  write_text(tmp_ / "ovf" / "validate_overfitting.json", doc.dump());
  QImage img;
  const Json g = export_png(tmp_, "overfitting", {(tmp_ / "ovf").string()}, "overfitting.png", img);
  const Json& f = g.at("figure");
  const auto& a = f.at("plot_area");
  const double x0 = f.at("x_range")[0], x1 = f.at("x_range")[1], y0 = f.at("y_range")[0], y1 = f.at("y_range")[1];
  const auto px = [&](double n) { return a[0].get<double>() + (std::log10(n) - x0) / (x1 - x0) * a[2].get<double>(); };
  const auto py = [&](double d) { return a[1].get<double>() + (y1 - 1 / (d * d)) / (y1 - y0) * a[3].get<double>(); };
  const std::map<std::string, QColor> colors{{"particles", QColor(0x1f, 0x77, 0xb4)},
                                             {"noise", QColor(0xd6, 0x27, 0x28)}};
  for (const auto& [name, color] : colors) {
    const Json& curve = doc.at("curves").at(name);
    const Json& points = f.at("points").at(name);
    std::size_t k = 0;
    for (std::size_t i = 0; i < doc.at("sizes").size(); ++i) {
      if (curve.at("mean_A")[i].is_null()) continue;  // left out
      ASSERT_LT(k, points.size()) << name;
      const Json& p = points[k++];
      const double n = doc.at("sizes")[i], d = curve.at("mean_A")[i];
      EXPECT_EQ(p.at("size"), n);
      EXPECT_NEAR(p.at("pixel")[0].get<double>(), px(n), 1.0) << name << " " << n;
      EXPECT_NEAR(p.at("pixel")[1].get<double>(), py(d), 1.0) << name << " " << n;
      EXPECT_TRUE(color_near(img, px(n), py(d), color, 2, 30)) << name << " " << n;
      // The error bar's lower end, 1/(mean + sd)^2, in the curve's colour below the dot.
      const double sd = curve.at("sd_A")[i];
      EXPECT_TRUE(color_near(img, px(n), py(d + sd), color, 1, 60)) << name << " bar " << n;
    }
    EXPECT_EQ(k, points.size()) << name;
  }
  EXPECT_EQ(f.at("points").at("noise").size(), 4u);
  // The particles' curve lies above the noise's at every size both have.
  EXPECT_LT(py(4.6), py(20.2));
  // Rosenthal-Henderson: least squares of 1/d^2 on ln N, B = 2 / slope.
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const int m = 5;
  for (int i = 0; i < m; ++i) {
    const double x = std::log(doc.at("sizes")[i].get<double>()), d = doc.at("curves").at("particles").at("mean_A")[i];
    sx += x, sy += 1 / (d * d), sxx += x * x, sxy += x / (d * d);
  }
  const double b = (m * sxy - sx * sy) / (m * sxx - sx * sx);
  EXPECT_NEAR(f.at("fit").at("B_A2").get<double>(), 2 / b, 1e-6 * (2 / b));
  EXPECT_EQ(f.at("fit").at("source"), "viewer");
  // The program's own fit, when the file holds one, is the one drawn.
  Json with_fit = doc;
  with_fit["bfactor_fit"] = {
      {"slope_inv_A2_per_ln_n", 0.0125}, {"intercept_inv_A2", -0.04}, {"from_particles", 200}, {"to_particles", 1600}};
  write_text(tmp_ / "ovf" / "validate_overfitting.json", with_fit.dump());
  const Json g2 = export_png(tmp_, "overfitting", {(tmp_ / "ovf").string()}, "overfitting_file_fit.png", img);
  EXPECT_EQ(g2.at("figure").at("fit").at("source"), "file");
  EXPECT_NEAR(g2.at("figure").at("fit").at("B_A2").get<double>(), 2 / 0.0125, 1e-9);
}

TEST_F(ViewValidation, BadInputExits2WithOneErrorLine) {
  const fs::path dir = write_orientation_run();
  Json counts = Json::parse(read_text(dir / "view_counts.json"));
  counts["bin_deg"] = 12.0;  // the cells are a 10-degree grid's
  fs::create_directories(tmp_ / "wrong");
  write_text(tmp_ / "wrong" / "view_counts.json", counts.dump());
  Json doc = overfitting_doc();
  doc["sizes"] = {100, 200, 200, 800, 1600};
  fs::create_directories(tmp_ / "ovf");
  write_text(tmp_ / "ovf" / "validate_overfitting.json", doc.dump());
  fs::create_directories(tmp_ / "empty");
  const fs::path png = tmp_ / "never.png";
  const std::vector<std::tuple<std::string, std::vector<std::string>, std::string>> cases{
      {"orientations", {(tmp_ / "wrong").string()}, "view_counts.json"},
      {"orientations", {(tmp_ / "empty").string()}, "empty"},
      {"orientations", {dir.string(), "--scale", "cubic"}, "--scale"},
      {"overfitting", {(tmp_ / "ovf").string()}, "validate_overfitting.json"},
      {"overfitting", {(tmp_ / "empty").string()}, "validate_overfitting.json"},
  };
  for (const auto& [viewer, args, culprit] : cases) {
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--export", png.string()});
    expect_one_error_line(run_viewer(tmp_, viewer, a), culprit);
    EXPECT_FALSE(fs::exists(png)) << culprit;
  }
}

}  // namespace
}  // namespace tessera::test
