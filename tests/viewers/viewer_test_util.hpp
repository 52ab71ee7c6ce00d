#pragma once
// Shared by the viewer tests: temporary folders, running the built viewers and
// programs, reading the pictures and the geometry they write, colour checks.
//
// Pictures the tests look at are copied into the folder named by the
// environment variable TESSERA_VIEWER_PNG_DIR when it is set (for people to
// look at them); otherwise they are removed with the test's folder.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <QColor>
#include <QImage>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace tessera::test {

namespace fs = std::filesystem;
using Json = nlohmann::json;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "tessera-viewers-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  if (!(f << text)) throw std::runtime_error("cannot write " + p.string());
}

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs `exe` with `args` after `env` (e.g. "QT_QPA_PLATFORM=offscreen" or
// "env -u DISPLAY"); stdout and stderr go to files in `tmp`.
inline RunResult run_exe(const TempDir& tmp, const fs::path& exe, const std::vector<std::string>& args,
                         const std::string& env = "") {
  const fs::path out = tmp / "last.stdout", err = tmp / "last.stderr";
  std::string cmd = env.empty() ? "" : env + " ";
  cmd += shell_quote(exe.string());
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " >" + shell_quote(out.string()) + " 2>" + shell_quote(err.string());
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

// viewers/tessera_view_<name>
inline RunResult run_viewer(const TempDir& tmp, const std::string& name, const std::vector<std::string>& args,
                            const std::string& env = "") {
  return run_exe(tmp, fs::path(TESSERA_BINARY_DIR) / "viewers" / ("tessera_view_" + name), args, env);
}

// protocols/tessera_<name>
inline RunResult run_program(const TempDir& tmp, const std::string& name, const std::vector<std::string>& args) {
  return run_exe(tmp, fs::path(TESSERA_BINARY_DIR) / "protocols" / ("tessera_" + name), args);
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
