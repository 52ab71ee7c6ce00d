// tessera_consensus_classes on classifications with a known answer: a
// two-state set whose true states two "classifications" recover with known
// errors, numbered differently, listed in another order, in another format
// (RELION STAR vs Scipion sqlite) and missing some particles. The test counts
// the intersections itself and computes the binomial p-values by direct
// summation in long double, independently of the engine's log-space sums.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "run_programs.hpp"
#include "tessera/class_consensus.hpp"
#include "tessera/cryosparc_cs.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/scipion_set.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using test::TempDir;

namespace {

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(test::read_text(p)); }

// P(X >= n), X ~ Binomial(N, p), by summing every term in long double.
long double binomial_tail(long n, long N, long double p) {
  long double term = std::pow(1 - p, static_cast<long double>(N));  // k = 0
  long double tail = 0;
  for (long k = 0; k <= N; ++k) {
    if (k >= n) tail += term;
    term *= static_cast<long double>(N - k) / static_cast<long double>(k + 1) * p / (1 - p);
  }
  return tail;
}

ParticleSet base_set(int count, const std::string& folder) {
  ParticleSet s;
  OpticsGroup g;
  g.name = "opticsGroup1";
  g.pixel_A = 1.5;
  g.image_size = 64;
  s.optics.push_back(g);
  s.particle_extra_labels = {"rlnClassNumber"};
  s.base_dir = fs::temp_directory_path();
  for (int i = 0; i < count; ++i) {
    Particle p;
    p.image.index = i % 400 + 1;
    p.image.path = fmt::format("{}/stack_{}.mrcs", folder, i / 400);
    p.defocus_u_A = p.defocus_v_A = 15000 + i;
    p.extra = {""};
    s.particles.push_back(p);
  }
  return s;
}

TEST(BinomialTail, EqualsDirectSums) {
  EXPECT_NEAR(std::pow(10.0, binomial_upper_tail_log10(8, 10, 0.5)), 56.0 / 1024.0, 1e-15);
  EXPECT_DOUBLE_EQ(binomial_upper_tail_log10(0, 10, 0.3), 0.0);
  for (long n : {1L, 30L, 50L, 70L, 120L}) {
    const long double exact = binomial_tail(n, 200, 0.25L);
    EXPECT_NEAR(binomial_upper_tail_log10(n, 200, 0.25), std::log10(static_cast<double>(exact)), 1e-9) << n;
  }
  // Far in the tail, below what a double holds: log10 P(X = N) = N log10 p.
  EXPECT_NEAR(binomial_upper_tail_log10(2000, 2000, 0.25), 2000 * std::log10(0.25), 1e-9);
}

TEST(ConsensusClasses, IntersectionsSizesAndPValuesOfATwoStateSet) {
  TempDir tmp;
  const int n = 1200;
  std::mt19937 rng(7);
  std::bernoulli_distribution state(0.4), flip_a(0.1), flip_b(0.15), third(0.1);
  ParticleSet a = base_set(n, "Extract/job012"), b = base_set(n, "/data/elsewhere");
  std::vector<std::string> class_a(n), class_b(n);
  for (int i = 0; i < n; ++i) {
    const int truth = state(rng) ? 1 : 2;
    class_a[static_cast<std::size_t>(i)] = std::to_string(flip_a(rng) ? 3 - truth : truth);
    // B numbers the states the other way round and has a junk class 3.
    const int b_state = flip_b(rng) ? 3 - truth : truth;
    class_b[static_cast<std::size_t>(i)] = third(rng) ? "3" : std::to_string(3 - b_state);
    a.particles[static_cast<std::size_t>(i)].extra = {class_a[static_cast<std::size_t>(i)]};
    b.particles[static_cast<std::size_t>(i)].extra = {class_b[static_cast<std::size_t>(i)]};
  }
  // B: another order, and without its first 50 particles (they must be reported, not matched by position).
  std::shuffle(b.particles.begin(), b.particles.end(), rng);
  auto name = [](const Particle& p) { return fmt::format("{}@{}", p.image.index, fs::path(p.image.path).filename().string()); };
  std::map<std::string, int> number_of;  // image index and file name -> particle number
  for (int i = 0; i < n; ++i) number_of[name(a.particles[static_cast<std::size_t>(i)])] = i;
  std::vector<Particle> b_kept;
  for (const Particle& p : b.particles)
    if (number_of.at(name(p)) >= 50) b_kept.push_back(p);
  b.particles = b_kept;
  write_particles_star(tmp / "a.star", a, tmp.path());
  fs::create_directories(tmp / "project");
  write_scipion_particles(tmp / "project/b.sqlite", b, tmp / "project");

  const auto r = test::run_program(tmp, "consensus_classes",
                                   {"--classes-A", (tmp / "a.star").string(), "--classes-B",
                                    (tmp / "project/b.sqlite").string(), "--min-size", "60", "--out",
                                    (tmp / "out").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE((r.out + r.err).find("50 of 1200 particles are not in every other file"), std::string::npos) << r.out << r.err;
  const auto doc = read_json(tmp / "out/consensus_classes.json");
  const long matched = n - 50;
  EXPECT_EQ(doc["particles"].get<long>(), matched);
  EXPECT_EQ(doc["matching"]["files"][0]["unmatched"].get<long>(), 50);

  // The independent count, over the particles present in both.
  std::map<std::pair<std::string, std::string>, long> count;
  std::map<std::string, long> size_a, size_b;
  for (int i = 50; i < n; ++i) {
    ++count[{class_a[static_cast<std::size_t>(i)], class_b[static_cast<std::size_t>(i)]}];
    ++size_a[class_a[static_cast<std::size_t>(i)]];
    ++size_b[class_b[static_cast<std::size_t>(i)]];
  }
  const auto& xs = doc["intersections"];
  ASSERT_EQ(xs.size(), count.size());
  long previous = matched, kept_total = 0;
  for (const auto& x : xs) {
    const std::string ca = x["classes"][0], cb = x["classes"][1];
    const long size = x["size"];
    EXPECT_EQ(size, count.at({ca, cb})) << ca << "," << cb;
    EXPECT_LE(size, previous);  // largest first
    previous = size;
    const long double p0 = static_cast<long double>(size_a.at(ca)) / matched * size_b.at(cb) / matched;
    EXPECT_NEAR(x["expected"].get<double>(), static_cast<double>(p0 * matched), 1e-9);
    const long double tail = binomial_tail(size, matched, p0);
    EXPECT_NEAR(x["log10_p_value"].get<double>(), static_cast<double>(std::log10(tail)), 1e-6) << ca << "," << cb;
    EXPECT_EQ(x["kept"].get<bool>(), size >= 60);
    if (size >= 60) kept_total += size;
  }
  // The agreeing cells (A1 & B2, A2 & B1) are the two largest and far beyond chance.
  EXPECT_EQ(xs[0]["classes"][0].get<std::string>() == "1" ? xs[0]["classes"][1] : xs[1]["classes"][1], "2");
  EXPECT_LT(xs[0]["log10_p_value"].get<double>(), -10);

  // Jaccard A1 vs B2 from the counts.
  const long both = count[{"1", "2"}];
  const double jaccard = static_cast<double>(both) / static_cast<double>(size_a["1"] + size_b["2"] - both);
  const auto& ja = doc["jaccard"][0]["values"];
  EXPECT_NEAR(ja[0][1].get<double>(), jaccard, 1e-12);

  // The kept particles: A's, numbered by intersection, with both input classes.
  const ParticleSet kept = read_particles_star(tmp / "out/particles.star");
  EXPECT_EQ(static_cast<long>(kept.particles.size()), kept_total);
  const int number = kept.particle_extra_index("rlnClassNumber"), ka = kept.particle_extra_index("rlnClassNumberA"),
            kb = kept.particle_extra_index("rlnClassNumberB");
  ASSERT_GE(number, 0);
  ASSERT_GE(ka, 0);
  ASSERT_GE(kb, 0);
  for (const Particle& p : kept.particles) {
    const auto& x = xs[static_cast<std::size_t>(std::stoi(p.extra[static_cast<std::size_t>(number)]) - 1)];
    EXPECT_EQ(p.extra[static_cast<std::size_t>(ka)], x["classes"][0].get<std::string>());
    EXPECT_EQ(p.extra[static_cast<std::size_t>(kb)], x["classes"][1].get<std::string>());
    EXPECT_NE(p.image.path.find("/Extract/job012/stack_"), std::string::npos) << p.image.path;  // A's images
  }
  EXPECT_TRUE(fs::exists(tmp / "out/particles.sqlite"));
  EXPECT_TRUE(fs::exists(tmp / "out/intersections/intersection_001.star"));
}

TEST(ConsensusClasses, SubsetsOfACryosparcFileGoBackAsCryosparcFiles) {
  TempDir tmp;
  ParticleSet a = base_set(40, "s"), b = base_set(40, "t");
  for (std::size_t i = 0; i < a.particles.size(); ++i) {
    a.particles[i].extra = {std::to_string(1 + i % 2)};
    b.particles[i].extra = {std::to_string(1 + i % 4)};
  }
  write_cryosparc_particles(tmp / "a.cs", a, tmp.path());
  write_particles_star(tmp / "b.star", b, tmp.path());
  const ParticleSet a_cs = read_cryosparc_particles(tmp / "a.cs");
  const auto r = test::run_program(tmp, "consensus_classes",
                                   {"--classes-A", (tmp / "a.cs").string(), "--classes-B", (tmp / "b.star").string(),
                                    "--min-size", "10", "--out", (tmp / "out").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Classes 1 and 2 of A split exactly into B's 1, 3 and 2, 4: four intersections of 10.
  const ParticleSet kept = read_cryosparc_particles(tmp / "out/particles.cs");
  ASSERT_EQ(kept.particles.size(), 40u);
  const int uid = kept.particle_extra_index("csUid"), uid_a = a_cs.particle_extra_index("csUid");
  ASSERT_GE(uid, 0);
  auto key = [](const Particle& p) { return fmt::format("{}@{}", p.image.index, fs::path(p.image.path).filename().string()); };
  std::map<std::string, std::string> uid_of;  // image -> A's uid
  for (const Particle& p : a_cs.particles) uid_of[key(p)] = p.extra[static_cast<std::size_t>(uid_a)];
  for (const Particle& p : kept.particles) EXPECT_EQ(p.extra[static_cast<std::size_t>(uid)], uid_of.at(key(p)));
}

TEST(ConsensusClasses, BadInputsStopBeforeWriting) {
  TempDir tmp;
  ParticleSet a = base_set(10, "s");
  for (auto& p : a.particles) p.extra = {"1"};
  write_particles_star(tmp / "a.star", a, tmp.path());
  ParticleSet none = a;
  none.particle_extra_labels.clear();
  for (auto& p : none.particles) p.extra.clear();
  write_particles_star(tmp / "none.star", none, tmp.path());
  ParticleSet other = base_set(10, "t");
  for (auto& p : other.particles) p.extra = {"1"}, p.image.index += 100;
  write_particles_star(tmp / "other.star", other, tmp.path());
  struct Case {
    std::string b, expect;
  } cases[] = {{"none.star", "no class column rlnClassNumber"}, {"other.star", "no particle in common"}};
  for (const auto& c : cases) {
    const auto r = test::run_program(tmp, "consensus_classes",
                                     {"--classes-A", (tmp / "a.star").string(), "--classes-B", (tmp / c.b).string(),
                                      "--out", (tmp / "out").string()});
    EXPECT_EQ(r.exit_code, 2) << c.b;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(tmp / "out")) << c.b;
  }
}

}  // namespace
