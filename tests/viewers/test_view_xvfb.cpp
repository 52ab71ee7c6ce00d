// The real windows on a real X server: Xvfb is started on a free display, the
// viewers open their windows there (QT_QPA_PLATFORM=xcb) and grab themselves
// from the screen (--screenshot: QScreen::grabWindow); the screenshot is then
// checked against the data as the offscreen renders are: the volume's slice
// pixels are its voxels under the contrast, the FSC curve is where its values
// put it, the consensus heat map's cells have their values' colours. Skips when
// Xvfb is not installed.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "tessera/mrc.hpp"
#include "viewer_test_util.hpp"

extern char** environ;

namespace tessera::test {
namespace {

std::optional<fs::path> find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (std::size_t start = 0; start <= dirs.size();) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    const fs::path candidate = fs::path(dirs.substr(start, end - start)) / name;
    if (!candidate.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

// An Xvfb server on the first free display from :91, stopped when this is destroyed.
class Xvfb {
 public:
  Xvfb() {
    const auto exe = find_in_path("Xvfb");
    if (!exe) return;
    for (int n = 91; n < 140 && display_ < 0; ++n) {
      if (fs::exists(fmt_path("/tmp/.X{}-lock", n)) || fs::exists(fmt_path("/tmp/.X11-unix/X{}", n))) continue;
      const std::string display = ":" + std::to_string(n);
      const char* argv[] = {exe->c_str(), display.c_str(), "-screen", "0", "1600x1200x24", "-nolisten", "tcp", nullptr};
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
      posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
      const int rc = posix_spawn(&pid_, exe->c_str(), &actions, nullptr, const_cast<char**>(argv), environ);
      posix_spawn_file_actions_destroy(&actions);
      if (rc != 0) return;
      for (int wait = 0; wait < 100; ++wait) {  // up to 10 s for its socket
        if (fs::exists(fmt_path("/tmp/.X11-unix/X{}", n))) {
          display_ = n;
          break;
        }
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) break;  // it died: try the next display
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (display_ < 0) stop();
    }
  }
  Xvfb(const Xvfb&) = delete;
  Xvfb& operator=(const Xvfb&) = delete;
  ~Xvfb() { stop(); }
  bool running() const { return display_ >= 0; }
  std::string env() const { return "env DISPLAY=:" + std::to_string(display_) + " QT_QPA_PLATFORM=xcb"; }

 private:
  static fs::path fmt_path(const char* pattern, int n) {
    std::string s = pattern;
    s.replace(s.find("{}"), 2, std::to_string(n));
    return s;
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  pid_t pid_ = -1;
  int display_ = -1;
};

class ViewOnXvfb : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!xvfb_.running()) GTEST_SKIP() << "Xvfb is not installed or did not start";
  }
  // Runs a viewer's window on the server and returns its screenshot and geometry.
  Json screenshot(const std::string& viewer, std::vector<std::string> args, const std::string& keep_as, QImage& img) {
    const fs::path png = tmp_ / (viewer + "_shot.png"), geo = tmp_ / (viewer + "_shot.json");
    args.insert(args.end(),
                {"--screenshot", png.string(), "--geometry-json", geo.string(), "--screenshot-delay-ms", "1500"});
    const RunResult r = run_viewer(tmp_, viewer, args, xvfb_.env());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (r.exit_code != 0) throw std::runtime_error("the viewer failed on Xvfb");
    keep_png(png, keep_as);
    img = load_png(png);
    const Json g = load_json(geo);
    EXPECT_EQ(g.at("platform"), "xcb");  // a real X window, not the offscreen platform
    EXPECT_EQ(img.width(), g.at("window_size")[0].get<int>());
    EXPECT_EQ(img.height(), g.at("window_size")[1].get<int>());
    return g;
  }
  TempDir tmp_;
  Xvfb xvfb_;
};

// The volume window: its three slices on screen are the volume's voxels under
// the minmax contrast, pixel for pixel.
TEST_F(ViewOnXvfb, VolumeWindowShowsTheSlices) {
  RealGrid v(24, 20, 16);
  for (int z = 0; z < 16; ++z)
    for (int y = 0; y < 20; ++y)
      for (int x = 0; x < 24; ++x) v(x, y, z) = static_cast<float>(std::sin(0.7 * x + 0.2 * y * y) + 0.3 * z);
  write_mrc(tmp_ / "v.mrc", v, 2.0);
  QImage img;
  const Json g = screenshot("volume", {(tmp_ / "v.mrc").string(), "--zoom", "3", "--contrast", "minmax"},
                            "xvfb_volume_window.png", img);
  const auto [mn, mx] = std::minmax_element(v.values().begin(), v.values().end());
  int checked = 0, bad = 0;
  for (const auto& p : g.at("figure").at("panels")) {
    const std::string axis = p.at("axis");
    const int k = p.at("index"), x0 = p.at("rect")[0], y0 = p.at("rect")[1], w = p.at("rect")[2], h = p.at("rect")[3];
    ASSERT_LE(x0 + w, img.width()) << axis;
    ASSERT_LE(y0 + h, img.height()) << axis;
    for (int j = 0; j < h; ++j)
      for (int i = 0; i < w; ++i) {
        const int a = i / 3, b = j / 3;
        const float value = axis == "z" ? v(a, b, k) : axis == "y" ? v(a, k, b) : v(k, a, b);
        const int want = expected_grey(value, *mn, *mx), got = qGreen(img.pixel(x0 + i, y0 + j));
        ++checked;
        if (std::abs(want - got) > 1 && bad++ < 5)
          ADD_FAILURE() << axis << " pixel " << i << "," << j << ": " << got << " vs " << want;
      }
  }
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(checked, 9 * (24 * 20 + 24 * 16 + 20 * 16));  // zoom 3: 9 pixels per voxel
}

// The FSC window: the curve is drawn on screen where its values put it.
TEST_F(ViewOnXvfb, FscWindowShowsTheCurve) {
  std::vector<double> curve;
  for (int k = 0; k <= 32; ++k) curve.push_back(1.0 / (1.0 + std::exp((k - 18.0) / 2.5)));
  fs::create_directories(tmp_ / "run");
  write_text(tmp_ / "run" / "fsc.json", Json{{"box", 64},
                                             {"voxel_A", 3.0},
                                             {"curves", {{"gold_standard", curve}}},
                                             {"resolution_A", {{"gold_standard@0.143", nullptr}}}}
                                            .dump());
  QImage img;
  const Json g = screenshot("fsc", {(tmp_ / "run").string()}, "xvfb_fsc_window.png", img);
  const Json& chart = g.at("figure").at("charts")[0];
  const auto& a = chart.at("plot_area");
  const double x = a[0], y = a[1], w = a[2], h = a[3];
  const double x1 = chart.at("x_range")[1], y0 = chart.at("y_range")[0], y1 = chart.at("y_range")[1];
  QColor color;
  for (const auto& s : chart.at("series"))
    if (s.at("kind") == "curve") color = color_of(s.at("color"));
  int found = 0;
  for (int k = 0; k <= 32; ++k)
    found += color_near(img, x + (k / 192.0) / x1 * w, y + (y1 - curve[k]) / (y1 - y0) * h, color, 2, 30);
  EXPECT_GE(found, 31) << "of 33 shells";
}

// The consensus window: a heat map's cells of 1 and 0 on screen in the colour map's end colours.
TEST_F(ViewOnXvfb, ConsensusWindowShowsTheHeatMap) {
  fs::create_directories(tmp_ / "classes");
  const Json map{{"name", "jaccard_AB"},
                 {"label", "Jaccard similarity, A vs B"},
                 {"rows", {"A1", "A2"}},
                 {"columns", {"B1", "B2"}},
                 {"values", {{1.0, 0.0}, {0.0, 1.0}}},
                 {"row_title", "classification A"},
                 {"column_title", "classification B"}};
  write_text(tmp_ / "classes" / "consensus_classes.json", Json{{"figures", {{"heatmaps", {map}}}}}.dump());
  QImage img;
  const Json g = screenshot("consensus", {(tmp_ / "classes").string()}, "xvfb_consensus_window.png", img);
  const Json& m = g.at("figure").at("heatmaps")[0];
  const int x0 = m.at("grid_rect")[0], y0 = m.at("grid_rect")[1], cell = m.at("cell_size");
  ASSERT_LE(x0 + 2 * cell, img.width());
  ASSERT_LE(y0 + 2 * cell, img.height());
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 2; ++c) {
      const QColor want = r == c ? QColor(0x7f, 0x00, 0x00) : QColor(0xff, 0xf7, 0xbc);
      EXPECT_LE(color_distance(img.pixel(x0 + c * cell + cell / 5, y0 + r * cell + cell / 5), want), 3) << r << c;
    }
}

}  // namespace
}  // namespace tessera::test
