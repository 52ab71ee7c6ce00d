#pragma once
// Shared by the viewer tests: running the built viewers (run_programs.hpp runs
// the programs), reading the pictures and the geometry they write, colour checks.
//
// Pictures the tests look at are copied into the folder named by the
// environment variable TESSERA_VIEWER_PNG_DIR when it is set (for people to
// look at them); otherwise they are removed with the test's folder.
#include <gtest/gtest.h>

#include <QColor>
#include <QImage>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "run_programs.hpp"

namespace tessera::test {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// viewers/tessera_view_<name>
inline RunResult run_viewer(const TempDir& tmp, const std::string& name, const std::vector<std::string>& args,
                            const std::string& env = "") {
  return run_exe(tmp, fs::path(TESSERA_BINARY_DIR) / "viewers" / ("tessera_view_" + name), args, env);
}

inline QImage load_png(const fs::path& p) {
  QImage img(QString::fromStdString(p.string()));
  if (img.isNull()) throw std::runtime_error("cannot read the picture " + p.string());
  return img.convertToFormat(QImage::Format_RGB32);
}

inline Json load_json(const fs::path& p) {
  return Json::parse(read_text(p));
}

// Copies a picture to $TESSERA_VIEWER_PNG_DIR/<name> when that is set.
inline void keep_png(const fs::path& png, const std::string& name) {
  const char* dir = std::getenv("TESSERA_VIEWER_PNG_DIR");
  if (!dir || !*dir) return;
  fs::create_directories(dir);
  fs::copy_file(png, fs::path(dir) / name, fs::copy_options::overwrite_existing);
}

// Runs tessera_view_<viewer> with `args` and --export <tmp>/out.png
// --geometry-json <tmp>/out.json: the picture goes into `img` (and to
// keep_png as `keep_as`), the geometry is returned. A failed run fails the
// test and throws.
inline Json export_png(const TempDir& tmp, const std::string& viewer, std::vector<std::string> args,
                       const std::string& keep_as, QImage& img) {
  const fs::path png = tmp / "out.png", geo = tmp / "out.json";
  args.insert(args.end(), {"--export", png.string(), "--geometry-json", geo.string()});
  const RunResult r = run_viewer(tmp, viewer, args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) throw std::runtime_error("viewer failed");
  keep_png(png, keep_as);
  img = load_png(png);
  return load_json(geo);
}

// What a viewer gives for bad input: exit code 2 and one line "ERROR: ..." on
// stderr that names `culprit`.
inline void expect_one_error_line(const RunResult& r, const std::string& culprit) {
  SCOPED_TRACE(culprit);
  EXPECT_EQ(r.exit_code, 2) << culprit << ": " << r.err;
  EXPECT_EQ(r.err.rfind("ERROR: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(culprit), std::string::npos) << r.err;
}

// The heat colour map of viewers/common/colormap.hpp, written out here, independently of it.
inline QColor heat(double t) {
  static constexpr std::array<std::array<int, 3>, 5> kStops{
      {{0xff, 0xf7, 0xbc}, {0xfe, 0xc4, 0x4f}, {0xfe, 0x99, 0x29}, {0xd7, 0x30, 0x1f}, {0x7f, 0x00, 0x00}}};
  t = std::clamp(t, 0.0, 1.0) * 4;
  const int k = std::min(3, static_cast<int>(t));
  const auto ch = [&](int c) {
    return static_cast<int>(std::lround(kStops[k][c] + (kStops[k + 1][c] - kStops[k][c]) * (t - k)));
  };
  return QColor(ch(0), ch(1), ch(2));
}

inline QColor color_of(const Json& name) {
  return QColor(QString::fromStdString(name.get<std::string>()));
}

inline int color_distance(QRgb a, const QColor& b) {
  const int dr = qRed(a) - b.red(), dg = qGreen(a) - b.green(), db = qBlue(a) - b.blue();
  return static_cast<int>(std::lround(std::sqrt(dr * dr + dg * dg + db * db)));
}

// Whether a pixel within `radius` of (x, y) has colour `c` (to `tolerance`).
inline bool color_near(const QImage& img, double x, double y, const QColor& c, int radius, int tolerance) {
  const int cx = static_cast<int>(std::lround(x)), cy = static_cast<int>(std::lround(y));
  for (int dy = -radius; dy <= radius; ++dy)
    for (int dx = -radius; dx <= radius; ++dx) {
      const int px = cx + dx, py = cy + dy;
      if (px >= 0 && py >= 0 && px < img.width() && py < img.height() &&
          color_distance(img.pixel(px, py), c) <= tolerance)
        return true;
    }
  return false;
}

// Grey level of v in [lo, hi] as viewers/common/contrast.hpp defines it, computed here independently.
inline int expected_grey(double v, double lo, double hi) {
  if (!(hi > lo)) return 128;
  double t = (v - lo) / (hi - lo);
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  return static_cast<int>(std::lround(255.0 * t));
}

}  // namespace tessera::test
