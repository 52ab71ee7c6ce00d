// tessera_view_particles rendered offscreen (--export) and checked against the
// data: every tile shows the image that the sort order puts at its rank (the
// images carry their number in their values, so a range contrast tells them
// apart), its pixels are that image under the contrast, and only the page's
// images are read — also for a set of 100,000 particles. STAR, Scipion sqlite
// and bare stacks; bad input.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "tessera/mrc.hpp"
#include "tessera/particles.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/scipion_set.hpp"
#include "viewer_test_util.hpp"

namespace tessera::test {
namespace {

constexpr int kPx = 16;

// Image i (1-based): 10 i + (x + y) / 6, so values 10 i .. 10 i + 5.
float image_value(long i, int x, int y) {
  return static_cast<float>(10.0 * i + (x + y) / 6.0);
}

void write_stack(const fs::path& p, long count) {
  MrcStackWriter w(p, kPx, kPx, 2.5);
  RealGrid img(kPx, kPx);
  for (long i = 1; i <= count; ++i) {
    for (int y = 0; y < kPx; ++y)
      for (int x = 0; x < kPx; ++x) img(x, y) = image_value(i, x, y);
    w.append(img);
  }
  w.finish();
}

// A RELION 3.1 STAR: row r (0-based) shows image image_of(r) of stack.mrcs and has score score_of(r).
void write_star(const fs::path& p, std::size_t rows, const std::function<long(std::size_t)>& image_of,
                const std::function<double(std::size_t)>& score_of) {
  std::string s =
      "# version 30001\n\ndata_optics\n\nloop_\n_rlnOpticsGroup\n_rlnOpticsGroupName\n"
      "_rlnImagePixelSize\n_rlnImageSize\n_rlnVoltage\n_rlnSphericalAberration\n_rlnAmplitudeContrast\n"
      "1 opticsGroup1 2.5 16 300 2.7 0.1\n\n# version 30001\n\ndata_particles\n\nloop_\n"
      "_rlnImageName\n_rlnOpticsGroup\n_rlnCtfScalefactor\n_rlnMyScore\n";
  s.reserve(rows * 48);
  for (std::size_t r = 0; r < rows; ++r)
    s += fmt::format("{:06d}@stack.mrcs 1 {} {}\n", image_of(r), 1.0 + 0.001 * static_cast<double>(r % 7), score_of(r));
  write_text(p, s);
}

// The rows (0-based) in the order the viewer must show them: by score, ties in file order.
std::vector<std::size_t> order_by(std::size_t rows, const std::function<double(std::size_t)>& score, bool descending) {
  std::vector<std::size_t> order(rows);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return descending ? score(a) > score(b) : score(a) < score(b);
  });
  return order;
}

// Every tile of the page: the image at its rank, pixel for pixel, under range:lo,hi or per-image minmax.
void expect_page(const QImage& img, const Json& g, const std::vector<std::size_t>& order, int page, int per_page,
                 const std::function<long(std::size_t)>& image_of, std::optional<std::pair<double, double>> range) {
  const Json& tiles = g.at("figure").at("tiles");
  ASSERT_EQ(tiles.size(),
            static_cast<std::size_t>(std::min<long>(per_page, long(order.size()) - long(page) * per_page)));
  int bad = 0;
  for (std::size_t k = 0; k < tiles.size(); ++k) {
    const Json& t = tiles[k];
    const std::size_t rank = static_cast<std::size_t>(page) * per_page + k;
    ASSERT_EQ(t.at("rank"), rank);
    ASSERT_EQ(t.at("row"), order[rank]) << "rank " << rank;
    const long image = image_of(order[rank]);
    const int x0 = t.at("rect")[0], y0 = t.at("rect")[1], w = t.at("rect")[2];
    const int zoom = w / kPx;
    const double lo = range ? range->first : image_value(image, 0, 0);
    const double hi = range ? range->second : image_value(image, kPx - 1, kPx - 1);
    for (int j = 0; j < kPx * zoom; ++j)
      for (int i = 0; i < kPx * zoom; ++i) {
        const int want = expected_grey(image_value(image, i / zoom, j / zoom), lo, hi);
        const int got = qGreen(img.pixel(x0 + i, y0 + j));
        if (std::abs(want - got) > 1 && bad++ < 5)
          ADD_FAILURE() << "rank " << rank << " (image " << image << ") pixel " << i << "," << j << ": " << got
                        << " instead of " << want;
      }
  }
  EXPECT_EQ(bad, 0);
}

class ViewParticles : public ::testing::Test {
 protected:
  Json export_png(const std::vector<std::string>& args, const std::string& keep_as, QImage& img) {
    return test::export_png(tmp_, "particles", args, keep_as, img);
  }
  TempDir tmp_;
};

// 30 particles, scores a permutation with ties; page 2 of 4x3 tiles, ascending
// and descending, from the STAR and from the same set written as a Scipion sqlite.
TEST_F(ViewParticles, TilesShowTheRightImagesInSortOrder) {
  const std::size_t n = 30;
  write_stack(tmp_ / "stack.mrcs", n);
  const auto image_of = [](std::size_t r) { return static_cast<long>(r) + 1; };
  const auto score_of = [](std::size_t r) { return static_cast<double>((r * 7) % 13) - 0.5; };
  write_star(tmp_ / "particles.star", n, image_of, score_of);
  ParticleSet set = read_particles_star(tmp_ / "particles.star");
  write_scipion_particles(tmp_ / "particles.sqlite", set, tmp_.path());
  for (const char* source : {"particles.star", "particles.sqlite"})
    for (bool descending : {false, true}) {
      std::vector<std::string> args{(tmp_ / source).string(),
                                    "--sort",
                                    "rlnMyScore",
                                    "--grid",
                                    "4x3",
                                    "--page",
                                    "2",
                                    "--tile-px",
                                    "32",
                                    "--contrast",
                                    "range:0,310"};
      if (descending) args.push_back("--descending");
      QImage img;
      const Json g = export_png(args, fmt::format("particles_{}_{}.png", source, descending ? "desc" : "asc"), img);
      expect_page(img, g, order_by(n, score_of, descending), 1, 12, image_of, std::pair{0.0, 310.0});
      EXPECT_EQ(g.at("figure").at("images_read"), 12) << source;
      EXPECT_EQ(g.at("figure").at("pages"), 3);
    }
}

// A bare stack sorted by each image's mean, largest first (image i has mean
// 10 i + 2.5: the reverse order); per-image minmax contrast at zoom 3.
TEST_F(ViewParticles, StackSortedByImageStatistics) {
  write_stack(tmp_ / "stack.mrcs", 20);
  QImage img;
  const Json g = export_png({(tmp_ / "stack.mrcs").string(), "--sort", "mean", "--descending", "--grid", "5x2",
                             "--tile-px", "48", "--contrast", "minmax"},
                            "particles_stack_by_mean.png", img);
  std::vector<std::size_t> order(20);
  std::iota(order.rbegin(), order.rend(), std::size_t{0});
  expect_page(
      img, g, order, 0, 10, [](std::size_t r) { return static_cast<long>(r) + 1; }, std::nullopt);
  EXPECT_EQ(g.at("figure").at("images_scanned"), 20);
}

// 100,000 particles (a STAR over a stack of 100 images, each used 1,000
// times), sorted by a random score: page 1,234 shows the right 48 images and
// only those 48 are read.
TEST_F(ViewParticles, HundredThousandParticlesArePagedNotLoaded) {
  const std::size_t n = 100000;
  write_stack(tmp_ / "stack.mrcs", 100);
  std::mt19937_64 rng(7);
  std::vector<double> scores(n);
  for (double& s : scores) s = std::uniform_real_distribution<double>(0, 1000)(rng);
  const auto image_of = [](std::size_t r) { return static_cast<long>(r % 100) + 1; };
  const auto score_of = [&](std::size_t r) { return scores[r]; };
  write_star(tmp_ / "big.star", n, image_of, score_of);
  // The STAR holds the scores with the shortest text that reads back the same.
  QImage img;
  const Json g =
      export_png({(tmp_ / "big.star").string(), "--sort", "rlnMyScore", "--page", "1234", "--contrast", "range:0,1010"},
                 "particles_100k_page1234.png", img);
  EXPECT_EQ(g.at("figure").at("total"), n);
  EXPECT_EQ(g.at("figure").at("pages"), (n + 47) / 48);
  EXPECT_EQ(g.at("figure").at("images_read"), 48);
  expect_page(img, g, order_by(n, score_of, false), 1233, 48, image_of, std::pair{0.0, 1010.0});
}

TEST_F(ViewParticles, ColumnsCanBeListed) {
  write_stack(tmp_ / "stack.mrcs", 3);
  write_star(
      tmp_ / "p.star", 3, [](std::size_t r) { return long(r) + 1; }, [](std::size_t r) { return double(r); });
  const RunResult r = run_viewer(tmp_, "particles", {(tmp_ / "p.star").string(), "--list-columns"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("rlnMyScore\tnumber"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rlnImageName\ttext"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rlnCtfScalefactor\tnumber"), std::string::npos) << r.out;
}

TEST_F(ViewParticles, BadInputExits2WithOneErrorLineAndWritesNothing) {
  write_stack(tmp_ / "stack.mrcs", 5);
  write_star(
      tmp_ / "p.star", 5, [](std::size_t r) { return long(r) + 1; }, [](std::size_t r) { return double(r); });
  write_text(tmp_ / "bad.star", "data_particles\nloop_\n_rlnCtfScalefactor\n1\n");
  const fs::path png = tmp_ / "never.png";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{(tmp_ / "missing.star").string()}, "missing.star"},
      {{(tmp_ / "bad.star").string()}, "bad.star"},
      {{(tmp_ / "p.star").string(), "--sort", "rlnNothing"}, "rlnNothing"},
      {{(tmp_ / "p.star").string(), "--page", "2"}, "--page"},
      {{(tmp_ / "p.star").string(), "--grid", "0x3"}, "--grid"},
      {{(tmp_ / "p.star").string(), "--export", (tmp_ / "nofolder" / "x.png").string()}, "nofolder"},
  };
  for (const auto& [args, culprit] : cases) {
    std::vector<std::string> a = args;
    if (culprit != "nofolder") a.insert(a.end(), {"--export", png.string()});
    const RunResult r = run_viewer(tmp_, "particles", a);
    expect_one_error_line(r, culprit);
    EXPECT_FALSE(fs::exists(png)) << culprit;
  }
}

}  // namespace
}  // namespace tessera::test
