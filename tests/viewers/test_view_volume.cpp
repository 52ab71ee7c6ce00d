// tessera_view_volume rendered offscreen (--export) and checked pixel by pixel
// against the volume: slice grey levels are the voxels under the chosen
// contrast (contrast.hpp's formula, computed here), in the documented layout
// (XY: x right, y down from row 0; XZ: x right, z down; YZ: y right, z down),
// at the zoom; projections are sums; an overlaid mask tints by its value, a
// second volume draws its contour; the maximum-intensity rendering at two views
// and the surface of a sphere match what they must be; a local-resolution map
// colours the slices and the surface (rainbow colour map, computed here).
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <numeric>

#include "tessera/grid.hpp"
#include "tessera/mrc.hpp"
#include "viewer_test_util.hpp"

namespace tessera::test {
namespace {

// A value per voxel that differs from its neighbours on every axis.
RealGrid test_volume(int nx, int ny, int nz) {
  RealGrid v(nx, ny, nz);
  for (int z = 0; z < nz; ++z)
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x)
        v(x, y, z) = static_cast<float>(std::sin(0.9 * x + 0.31 * y * y) + std::cos(1.7 * z - 0.4 * x * y) + 0.05 * z);
  return v;
}

// The picture of a slice or projection along `axis` ('x', 'y', 'z'), computed
// here from the layout the viewer documents.
RealGrid expected_picture(const RealGrid& v, char axis, std::optional<int> index) {
  const int w = axis == 'x' ? v.ny() : v.nx(), h = axis == 'z' ? v.ny() : v.nz();
  const int depth = axis == 'x' ? v.nx() : axis == 'y' ? v.ny() : v.nz();
  RealGrid out(w, h);
  for (int j = 0; j < h; ++j)
    for (int i = 0; i < w; ++i) {
      double sum = 0;
      for (int k = index.value_or(0); k < (index ? *index + 1 : depth); ++k)
        sum += axis == 'z' ? v(i, j, k) : axis == 'y' ? v(i, k, j) : v(k, i, j);
      out(i, j) = static_cast<float>(sum);
    }
  return out;
}

std::pair<double, double> mean_sd(const RealGrid& v) {
  double mean = 0, var = 0;
  for (float x : v.values()) mean += x;
  mean /= static_cast<double>(v.size());
  for (float x : v.values()) var += (x - mean) * (x - mean);
  return {mean, std::sqrt(var / static_cast<double>(v.size()))};
}

const Json& panel(const Json& g, const std::string& kind, const std::string& axis) {
  for (const auto& p : g.at("figure").at("panels"))
    if (p.at("kind") == kind && p.at("axis") == axis) return p;
  throw std::runtime_error("no panel " + kind + " " + axis);
}

// Every picture pixel of `p` (at integer zoom) against expected colour f(x, y) of grid pixel (x, y).
void expect_pixels(const QImage& img, const Json& p, int zoom, const std::function<QRgb(int, int)>& f,
                   const std::string& what) {
  const int x0 = p.at("rect")[0], y0 = p.at("rect")[1], w = p.at("rect")[2], h = p.at("rect")[3];
  int bad = 0;
  for (int j = 0; j < h; ++j)
    for (int i = 0; i < w; ++i) {
      const QRgb want = f(i / zoom, j / zoom), got = img.pixel(x0 + i, y0 + j);
      const int d = std::max(
          {std::abs(qRed(want) - qRed(got)), std::abs(qGreen(want) - qGreen(got)), std::abs(qBlue(want) - qBlue(got))});
      if (d > 1 && bad++ < 5) ADD_FAILURE() << what << " pixel (" << i << ", " << j << "): " << d << " levels off";
    }
  EXPECT_EQ(bad, 0) << what;
}

QRgb grey(int g) {
  return qRgb(g, g, g);
}

class ViewVolume : public ::testing::Test {
 protected:
  fs::path write_volume(const std::string& name, const RealGrid& v) {
    const fs::path p = tmp_ / name;
    write_mrc(p, v, 2.0);
    return p;
  }
  Json export_png(const std::vector<std::string>& args, const std::string& keep_as, QImage& img) {
    return test::export_png(tmp_, "volume", args, keep_as, img);
  }
  TempDir tmp_;
};

// What a person gets without options: a 24-voxel box drawn at 10 pixels per
// voxel (whole pixels per voxel up to a 256-pixel side; 1 from 256 voxels on),
// and slices under the 0.05th to 99.95th percentiles of the volume, which keep
// a particle's inside readable (sigma:3 saturates it).
TEST_F(ViewVolume, DefaultsAreReadable) {
  RealGrid v = test_volume(24, 20, 16);
  const fs::path file = write_volume("v.mrc", v);
  QImage img;
  const Json g = export_png({file.string(), "--panels", "slices,surface"}, "volume_defaults.png", img);
  const Json& slice = panel(g, "slice", "z");
  EXPECT_EQ(slice.at("zoom"), 10.0);
  EXPECT_EQ(slice.at("rect")[2], 240);
  EXPECT_EQ(panel(g, "surface", "z").at("oversample"), 10);
  std::vector<float> sorted(v.values().begin(), v.values().end());
  std::sort(sorted.begin(), sorted.end());
  const double lo = slice.at("limits")[0], hi = slice.at("limits")[1];
  EXPECT_GT(lo, sorted.front());  // clipped, not the minimum and maximum
  EXPECT_LT(hi, sorted.back());
  EXPECT_GE(hi, sorted[sorted.size() * 999 / 1000 - 1]);
}

// Slices at chosen positions, zoom 2, sigma contrast over the volume, and the
// projections under the same mode over their own values. The box is 24 x 20 x 16
// so that a swapped axis changes the panels' shapes.
TEST_F(ViewVolume, SlicesAndProjectionsAreTheVolumeUnderTheContrast) {
  const RealGrid v = test_volume(24, 20, 16);
  const fs::path file = write_volume("v.mrc", v);
  QImage img;
  const Json g = export_png({file.string(), "--zoom", "2", "--slice-x", "5", "--slice-y", "7", "--slice-z", "9",
                             "--contrast", "sigma:2", "--panels", "slices,projections"},
                            "volume_slices_projections.png", img);
  const auto [mean, sd] = mean_sd(v);
  const double lo = mean - 2 * sd, hi = mean + 2 * sd;
  const std::map<char, int> index{{'x', 5}, {'y', 7}, {'z', 9}};
  for (const auto& [axis, k] : index) {
    const Json& p = panel(g, "slice", std::string(1, axis));
    const RealGrid s = expected_picture(v, axis, k);
    EXPECT_EQ(p.at("rect")[2], 2 * s.nx()) << axis;
    EXPECT_EQ(p.at("rect")[3], 2 * s.ny()) << axis;
    EXPECT_EQ(p.at("index"), k);
    expect_pixels(
        img, p, 2, [&](int x, int y) { return grey(expected_grey(s(x, y), lo, hi)); }, std::string("slice ") + axis);
    const RealGrid proj = expected_picture(v, axis, std::nullopt);
    const auto [pm, ps] = mean_sd(proj);
    expect_pixels(
        img, panel(g, "projection", std::string(1, axis)), 2,
        [&](int x, int y) { return grey(expected_grey(proj(x, y), pm - 2 * ps, pm + 2 * ps)); },
        std::string("projection ") + axis);
  }
}

// A mask overlaid as a tint: channel = round(g (1 - a) + c a), a = opacity * mask.
TEST_F(ViewVolume, MaskOverlayTintsByItsValue) {
  const RealGrid v = test_volume(24, 20, 16);
  RealGrid mask(24, 20, 16, 0.0f);
  for (int z = 0; z < 16; ++z)
    for (int y = 0; y < 20; ++y)
      for (int x = 0; x < 24; ++x) mask(x, y, z) = x >= 3 && x <= 10 && y >= 2 && y <= 8 ? 1.0f : x >= 14 ? 0.5f : 0.0f;
  const fs::path file = write_volume("v.mrc", v), mfile = write_volume("mask.mrc", mask);
  QImage img;
  const Json g = export_png({file.string(), "--overlay", mfile.string(), "--overlay-opacity", "0.6", "--overlay-color",
                             "#00ff00", "--contrast", "minmax", "--zoom", "3"},
                            "volume_mask_tint.png", img);
  const auto [mn, mx] = std::minmax_element(v.values().begin(), v.values().end());
  for (char axis : {'x', 'y', 'z'}) {
    const int k = (axis == 'x' ? 24 : axis == 'y' ? 20 : 16) / 2;
    const RealGrid s = expected_picture(v, axis, k), m = expected_picture(mask, axis, k);
    expect_pixels(
        img, panel(g, "slice", std::string(1, axis)), 3,
        [&](int x, int y) {
          const int grey_level = expected_grey(s(x, y), *mn, *mx);
          const double a = 0.6 * m(x, y);
          const int green = static_cast<int>(std::lround(grey_level * (1 - a) + 255 * a));
          const int other = static_cast<int>(std::lround(grey_level * (1 - a)));
          return qRgb(other, green, other);
        },
        std::string("tinted slice ") + axis);
  }
}

// A second volume's contour: exactly the voxels at or above the level with a
// 4-neighbour in the slice below it (or at the slice's edge).
TEST_F(ViewVolume, SecondVolumeOverlayDrawsItsContour) {
  const RealGrid v = test_volume(24, 20, 16);
  RealGrid blob(24, 20, 16);
  for (int z = 0; z < 16; ++z)
    for (int y = 0; y < 20; ++y)
      for (int x = 0; x < 24; ++x)
        blob(x, y, z) =
            static_cast<float>(5 - std::sqrt((x - 11.0) * (x - 11.0) + (y - 9.0) * (y - 9.0) + (z - 8.0) * (z - 8.0)));
  const fs::path file = write_volume("v.mrc", v), bfile = write_volume("blob.mrc", blob);
  QImage img;
  const Json g = export_png({file.string(), "--overlay", bfile.string(), "--overlay-level", "0", "--overlay-color",
                             "#ff00ff", "--contrast", "minmax", "--zoom", "1"},
                            "volume_contour.png", img);
  const auto [mn, mx] = std::minmax_element(v.values().begin(), v.values().end());
  for (char axis : {'x', 'y', 'z'}) {
    const int k = (axis == 'x' ? 24 : axis == 'y' ? 20 : 16) / 2;
    const RealGrid s = expected_picture(v, axis, k), b = expected_picture(blob, axis, k);
    int edges = 0;
    expect_pixels(
        img, panel(g, "slice", std::string(1, axis)), 1,
        [&](int x, int y) {
          const auto below = [&](int xx, int yy) {
            return xx < 0 || yy < 0 || xx >= b.nx() || yy >= b.ny() || b(xx, yy) < 0;
          };
          const bool edge = b(x, y) >= 0 && (below(x - 1, y) || below(x + 1, y) || below(x, y - 1) || below(x, y + 1));
          edges += edge;
          return edge ? qRgb(255, 0, 255) : grey(expected_grey(s(x, y), *mn, *mx));
        },
        std::string("contoured slice ") + axis);
    EXPECT_GT(edges, 20) << axis;  // the circle of radius 5 is there to be drawn
  }
}

// Maximum intensity: at (0, 0, 0) the maximum along z; at tilt 90 (RELION's
// A = [[0,0,-1],[0,1,0],[1,0,0]], so pixel (i, j) sees the volume points
// (10 + t, j, 20 - i) of a 20^3 box) the maximum along x, z reversed, and the
// box's minimum in column 0, whose ray runs outside the box.
TEST_F(ViewVolume, MaximumIntensityAtTwoViews) {
  const RealGrid v = test_volume(20, 20, 20);
  const fs::path file = write_volume("cube.mrc", v);
  const float vmin = *std::min_element(v.values().begin(), v.values().end());
  for (const auto& [view, name] : {std::pair{"0,0,0", "top"}, std::pair{"0,90,0", "side"}}) {
    RealGrid want(20, 20);
    for (int j = 0; j < 20; ++j)
      for (int i = 0; i < 20; ++i) {
        float m = -1e30f;
        for (int t = 0; t < 20; ++t)
          m = std::max(m, std::string(name) == "top" ? v(i, j, t) : (i == 0 ? vmin : v(t, j, 20 - i)));
        want(i, j) = m;
      }
    QImage img;
    const Json g = export_png({file.string(), "--panels", "mip", "--view", view, "--zoom", "2"},
                              std::string("volume_mip_") + name + ".png", img);
    const auto [lo, hi] = std::minmax_element(want.values().begin(), want.values().end());
    expect_pixels(
        img, panel(g, "mip", "z"), 2, [&](int x, int y) { return grey(expected_grey(want(x, y), *lo, *hi)); },
        std::string("mip ") + name);
  }
}

// The shading volume_render.hpp states, written out here: a surface point with
// outward unit normal N (view frame) is 0.1 + 0.75 max(0, N.L) + 0.3 max(0, N.H)^24,
// at most 1, L = (-1, -1, 2) / sqrt(6), H = (L + (0, 0, 1)) normalised.
double expected_shade(double nx, double ny, double nz) {
  const double l[3] = {-1 / std::sqrt(6.0), -1 / std::sqrt(6.0), 2 / std::sqrt(6.0)};
  double h[3] = {l[0], l[1], l[2] + 1};
  const double hn = std::sqrt(h[0] * h[0] + h[1] * h[1] + h[2] * h[2]);
  for (double& c : h) c /= hn;
  const double diffuse = std::max(0.0, nx * l[0] + ny * l[1] + nz * l[2]);
  const double specular = std::pow(std::max(0.0, nx * h[0] + ny * h[1] + nz * h[2]), 24);
  return std::min(1.0, 0.1 + 0.75 * diffuse + 0.3 * specular);
}

// The front of the sphere of radius 10 about voxel (16, 16, 16), seen head-on, at
// volume point (x, y): its outward normal is ((x - 16) / 10, (y - 16) / 10,
// sqrt(1 - d^2 / 100)), d the distance from the centre's line of sight.
double sphere_shade(double x, double y) {
  const double dx = (x - 16) / 10, dy = (y - 16) / 10;
  return expected_shade(dx, dy, std::sqrt(1 - dx * dx - dy * dy));
}

// The surface of a sphere (distance field 10 - r, level 0) seen head-on, rendered
// with 4 rays per voxel side at zoom 4: picture pixel 4 i + 1 is the ray through
// x = (4 i + 1 + 1/2) / 4 - 1/2 = i - 1/8. Trilinear interpolation of the distance
// field and +-1 voxel gradients bend the normal by well under a degree inside
// d < 8 (4 grey levels allow for that and rounding, while a normal 10 degrees
// off costs 10 or more near the rim); the rim, where the brightness changes
// fastest, is left out.
TEST_F(ViewVolume, SurfaceOfASphereIsShadedByItsNormal) {
  RealGrid ball(32, 32, 32);
  for (int z = 0; z < 32; ++z)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        ball(x, y, z) = static_cast<float>(
            10 - std::sqrt((x - 16.0) * (x - 16.0) + (y - 16.0) * (y - 16.0) + (z - 16.0) * (z - 16.0)));
  const fs::path file = write_volume("ball.mrc", ball);
  QImage img;
  const Json g = export_png({file.string(), "--panels", "surface", "--surface-level", "0", "--zoom", "4"},
                            "volume_surface_sphere.png", img);
  const Json& p = panel(g, "surface", "z");
  const int x0 = p.at("rect")[0], y0 = p.at("rect")[1];
  int checked = 0, worst = 0;
  for (int j = 0; j < 32; ++j)
    for (int i = 0; i < 32; ++i) {
      const double x = i - 0.125, y = j - 0.125, d = std::hypot(x - 16.0, y - 16.0);
      const int got = qGreen(img.pixel(x0 + 4 * i + 1, y0 + 4 * j + 1));
      if (d > 10.5) {
        EXPECT_EQ(got, 0) << i << ", " << j;
      } else if (d < 8) {
        worst = std::max(worst, std::abs(got - expected_grey(sphere_shade(x, y), 0, 1)));
        ++checked;
      }
    }
  std::cout << "[ measured ] surface shading, worst of " << checked << " pixels: " << worst << " grey levels\n";
  EXPECT_LE(worst, 4);
  EXPECT_GT(checked, 190);  // pi * 8^2 = 201 pixels
}

// The rainbow colour map of viewers/common/colormap.hpp, written out here
// independently: blue, cyan, green, yellow, red at t = 0, 1/4, 1/2, 3/4, 1.
std::array<double, 3> rainbow(double v, double lo, double hi) {
  static constexpr std::array<std::array<double, 3>, 5> kStops{
      {{0, 0, 255}, {0, 255, 255}, {0, 255, 0}, {255, 255, 0}, {255, 0, 0}}};
  const double t = std::clamp((v - lo) / (hi - lo), 0.0, 1.0) * 4;
  const int k = std::min(3, static_cast<int>(t));
  std::array<double, 3> c{};
  for (int ch = 0; ch < 3; ++ch) c[ch] = kStops[k][ch] + (kStops[k + 1][ch] - kStops[k][ch]) * (t - k);
  return c;
}

// The pixel a colour-map coloured grey level g gives: each channel round(c * g / 255).
QRgb modulated(const std::array<double, 3>& c, int g) {
  const auto ch = [&](int i) { return static_cast<int>(std::lround(std::lround(c[i]) * g / 255.0)); };
  return qRgb(ch(0), ch(1), ch(2));
}

// A ball (distance field 10 - r) with a local resolution that grows along x,
// 3 + 0.25 x Angstrom: the slices are the grey levels times the colour of each
// voxel's resolution; the surface seen head-on has at pixel (i, j) the colour of
// 3 + 0.25 i (the ray runs along z at x = i) times its shading (as the sphere
// test above: within 4 grey levels); the colour bar runs blue to red over the range.
TEST_F(ViewVolume, LocalResolutionColoursTheSlicesAndTheSurface) {
  RealGrid ball(32, 32, 32), res(32, 32, 32);
  for (int z = 0; z < 32; ++z)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        ball(x, y, z) = static_cast<float>(
            10 - std::sqrt((x - 16.0) * (x - 16.0) + (y - 16.0) * (y - 16.0) + (z - 16.0) * (z - 16.0)));
        res(x, y, z) = static_cast<float>(3 + 0.25 * x);
      }
  const fs::path file = write_volume("ball.mrc", ball), rfile = write_volume("local_resolution.mrc", res);
  QImage img;
  const Json g = export_png({file.string(), "--color-by", rfile.string(), "--color-range", "4,9", "--panels",
                             "slices,surface", "--surface-level", "0", "--contrast", "minmax", "--zoom", "2"},
                            "volume_local_resolution.png", img);
  EXPECT_EQ(g.at("figure").at("color_by").at("range"), Json::array({4.0, 9.0}));
  const auto [mn, mx] = std::minmax_element(ball.values().begin(), ball.values().end());
  for (char axis : {'x', 'y', 'z'}) {
    const RealGrid s = expected_picture(ball, axis, 16), r = expected_picture(res, axis, 16);
    expect_pixels(
        img, panel(g, "slice", std::string(1, axis)), 2,
        [&](int x, int y) { return modulated(rainbow(r(x, y), 4, 9), expected_grey(s(x, y), *mn, *mx)); },
        std::string("coloured slice ") + axis);
  }
  const Json& p = panel(g, "surface", "z");
  EXPECT_EQ(p.at("colored_by"), "local_resolution.mrc");
  const int x0 = p.at("rect")[0], y0 = p.at("rect")[1];
  int checked = 0, worst = 0;
  for (int j = 0; j < 32; ++j)
    for (int i = 0; i < 32; ++i) {
      // Zoom 2, 2 rays per voxel side: pixel 2 i is the ray through x = i - 1/4, whose nearest voxel is i.
      const double x = i - 0.25, y = j - 0.25, d = std::hypot(x - 16.0, y - 16.0);
      const QRgb got = img.pixel(x0 + 2 * i, y0 + 2 * j);
      if (d > 10.5) {
        EXPECT_EQ(got & 0xffffff, 0u) << i << ", " << j;
      } else if (d < 8) {
        const QRgb want = modulated(rainbow(3 + 0.25 * i, 4, 9), expected_grey(sphere_shade(x, y), 0, 1));
        worst = std::max({worst, std::abs(qRed(got) - qRed(want)), std::abs(qGreen(got) - qGreen(want)),
                          std::abs(qBlue(got) - qBlue(want))});
        ++checked;
      }
    }
  EXPECT_LE(worst, 4);
  EXPECT_GT(checked, 190);
  // The colour bar: blue at its left end, red at its right, each tick's colour under it.
  const Json& bar = g.at("figure").at("color_bar");
  EXPECT_EQ(bar.at("limits"), Json::array({4.0, 9.0}));
  const int bx = bar.at("rect")[0], by = bar.at("rect")[1], bw = bar.at("rect")[2], bh = bar.at("rect")[3];
  EXPECT_LE(color_distance(img.pixel(bx + 1, by + bh / 2), QColor(0, 0, 255)), 8);
  EXPECT_LE(color_distance(img.pixel(bx + bw - 2, by + bh / 2), QColor(255, 0, 0)), 8);
  ASSERT_GE(bar.at("ticks").size(), 3u);
  for (const auto& tick : bar.at("ticks")) {
    const double v = tick.at("value"), x = tick.at("x");
    const auto c = rainbow(v, 4, 9);
    const int inside = std::clamp(static_cast<int>(x), bx + 1, bx + bw - 2);  // the ends are the bar's frame
    EXPECT_LE(color_distance(img.pixel(inside, by + bh / 2),
                             QColor(static_cast<int>(std::lround(c[0])), static_cast<int>(std::lround(c[1])),
                                    static_cast<int>(std::lround(c[2])))),
              16)
        << v;
    EXPECT_NEAR(x, bx + (v - 4) / 5 * bw, 0.5) << v;
  }
}

// --modules: each module's mask tints the slices in its colour (Okabe-Ito orange, then sky
// blue, at opacity 0.45, as a mask overlay), and the surface takes the colour of the module whose
// mask holds the surface voxel (x < 16: module 1, x >= 16: module 2), times its grey shade.
TEST_F(ViewVolume, ModulesTintTheSlicesAndColourTheSurface) {
  RealGrid ball(32, 32, 32), left(32, 32, 32), right(32, 32, 32);
  for (int z = 0; z < 32; ++z)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        ball(x, y, z) = static_cast<float>(
            10 - std::sqrt((x - 16.0) * (x - 16.0) + (y - 16.0) * (y - 16.0) + (z - 16.0) * (z - 16.0)));
        left(x, y, z) = x < 16 ? 1.0f : 0.0f;
        right(x, y, z) = x >= 16 ? (y < 8 ? 0.5f : 1.0f) : 0.0f;
      }
  const fs::path file = write_volume("ball.mrc", ball);
  write_volume("left_mask.mrc", left);
  write_volume("right_mask.mrc", right);
  write_text(tmp_ / "modules.json",
             R"([{"module": 1, "mask": "left_mask.mrc"}, {"module": 2, "mask": ")" +
                 (tmp_ / "right_mask.mrc").string() + R"("}])");
  QImage img;
  const Json g = export_png({file.string(), "--modules", (tmp_ / "modules.json").string(), "--panels",
                             "slices,surface", "--surface-level", "0", "--contrast", "minmax", "--zoom", "2"},
                            "volume_modules.png", img);
  const Json& modules = g.at("figure").at("modules");
  ASSERT_EQ(modules.size(), 2u);
  EXPECT_EQ(modules[0].at("label"), "module 1");
  EXPECT_EQ(modules[0].at("color"), "#e69f00");
  EXPECT_EQ(modules[1].at("color"), "#56b4e9");
  const std::array<QColor, 2> colors{QColor(230, 159, 0), QColor(86, 180, 233)};
  const auto [mn, mx] = std::minmax_element(ball.values().begin(), ball.values().end());
  const auto tint = [](int grey_level, int channel, double a) {
    return static_cast<int>(std::lround(grey_level * (1 - a) + channel * a));
  };
  for (char axis : {'x', 'y', 'z'}) {
    const RealGrid s = expected_picture(ball, axis, 16), l = expected_picture(left, axis, 16),
                   r = expected_picture(right, axis, 16);
    expect_pixels(
        img, panel(g, "slice", std::string(1, axis)), 2,
        [&](int x, int y) {
          int c[3] = {expected_grey(s(x, y), *mn, *mx), 0, 0};
          c[1] = c[2] = c[0];
          for (int m = 0; m < 2; ++m) {  // module 1's tint first, then module 2's over it
            const double a = 0.45 * (m == 0 ? l(x, y) : r(x, y));
            c[0] = tint(c[0], colors[m].red(), a);
            c[1] = tint(c[1], colors[m].green(), a);
            c[2] = tint(c[2], colors[m].blue(), a);
          }
          return qRgb(c[0], c[1], c[2]);
        },
        std::string("module-tinted slice ") + axis);
  }
  const Json& p = panel(g, "surface", "z");
  EXPECT_EQ(p.at("colored_by"), "modules");
  const int x0 = p.at("rect")[0], y0 = p.at("rect")[1];
  int checked = 0, worst = 0;
  for (int j = 0; j < 32; ++j)
    for (int i = 0; i < 32; ++i) {
      // Zoom 2, 2 rays per voxel side: pixel 2 i is the ray through x = i - 1/4, whose nearest voxel is i.
      const double x = i - 0.25, y = j - 0.25, d = std::hypot(x - 16.0, y - 16.0);
      if (d >= 8 || (i >= 15 && i <= 16) || j < 9) continue;  // off the module boundary and the 0.5 strip
      const QColor& c = colors[i < 16 ? 0 : 1];
      const QRgb want = modulated({static_cast<double>(c.red()), static_cast<double>(c.green()),
                                   static_cast<double>(c.blue())},
                                  expected_grey(sphere_shade(x, y), 0, 1));
      const QRgb got = img.pixel(x0 + 2 * i, y0 + 2 * j);
      worst = std::max({worst, std::abs(qRed(got) - qRed(want)), std::abs(qGreen(got) - qGreen(want)),
                        std::abs(qBlue(got) - qBlue(want))});
      ++checked;
    }
  EXPECT_LE(worst, 4);
  EXPECT_GT(checked, 100);
}

// Without --color-range the colours span the 5th to 95th percentile (nearest
// rank) of the colour map over the voxels at or above the surface level.
TEST_F(ViewVolume, ColourRangeDefaultsToPercentilesInsideTheSurface) {
  RealGrid ball(24, 24, 24), res(24, 24, 24);
  std::vector<float> inside;
  for (int z = 0; z < 24; ++z)
    for (int y = 0; y < 24; ++y)
      for (int x = 0; x < 24; ++x) {
        ball(x, y, z) = static_cast<float>(
            7 - std::sqrt((x - 12.0) * (x - 12.0) + (y - 12.0) * (y - 12.0) + (z - 12.0) * (z - 12.0)));
        res(x, y, z) = static_cast<float>(2.5 + 0.1 * x + 0.05 * y * z);
        if (ball(x, y, z) >= 0) inside.push_back(res(x, y, z));
      }
  std::sort(inside.begin(), inside.end());
  const auto rank = [&](double pct) { return inside[std::llround(pct / 100 * (inside.size() - 1.0))]; };
  const fs::path file = write_volume("ball.mrc", ball), rfile = write_volume("lr.mrc", res);
  QImage img;
  const Json g = export_png({file.string(), "--color-by", rfile.string(), "--surface-level", "0"},
                            "volume_local_resolution_default_range.png", img);
  const Json& range = g.at("figure").at("color_by").at("range");
  EXPECT_NEAR(range[0].get<double>(), rank(5), 1e-5);
  EXPECT_NEAR(range[1].get<double>(), rank(95), 1e-5);
  EXPECT_GT(rank(95) - rank(5), 1.0);
}

TEST_F(ViewVolume, BadInputExits2WithOneErrorLineAndWritesNothing) {
  const fs::path file = write_volume("v.mrc", test_volume(24, 20, 16));
  const fs::path other = write_volume("other.mrc", test_volume(20, 20, 16));
  write_text(tmp_ / "text.mrc", "not a map");
  write_mrc(tmp_ / "coarse.mrc", test_volume(24, 20, 16), 3.0);  // the volume's grid at another voxel size
  const fs::path png = tmp_ / "never.png";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{(tmp_ / "missing.mrc").string()}, "missing.mrc"},
      {{(tmp_ / "text.mrc").string()}, "text.mrc"},
      {{file.string(), "--overlay", other.string()}, "other.mrc"},
      {{file.string(), "--color-by", other.string()}, "other.mrc"},
      {{file.string(), "--color-by", (tmp_ / "coarse.mrc").string()}, "coarse.mrc"},
      {{file.string(), "--color-by", file.string(), "--color-range", "9,4"}, "--color-range"},
      {{file.string(), "--color-range", "4,9"}, "--color-range"},
      {{file.string(), "--slice-z", "16"}, "--slice-z"},
      {{file.string(), "--contrast", "sigma:-1"}, "--contrast"},
      {{file.string(), "--panels", "slices,holograms"}, "holograms"},
      {{file.string(), "--view", "1,2"}, "--view"},
      {{file.string(), "--modules", (tmp_ / "no_modules.json").string()}, "no_modules.json"},
      {{file.string(), "--modules", (tmp_ / "text.mrc").string()}, "text.mrc"},
      {{file.string(), "--modules", (tmp_ / "wrong_shape.json").string()}, "other.mrc"},
  };
  write_text(tmp_ / "wrong_shape.json", R"([{"mask": "other.mrc"}])");
  for (const auto& [args, culprit] : cases) {
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--export", png.string()});
    const RunResult r = run_viewer(tmp_, "volume", a);
    expect_one_error_line(r, culprit);
    EXPECT_FALSE(fs::exists(png)) << culprit;
  }
}

}  // namespace
}  // namespace tessera::test
