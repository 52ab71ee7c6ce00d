// Particles matched across files by key, never by position (particle_matching.hpp).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tessera/error.hpp"
#include "tessera/particle_matching.hpp"

using namespace tessera;

namespace {

ParticleSet make_set(const std::vector<std::string>& names, const std::string& base = "/data") {
  ParticleSet s;
  s.optics.push_back({});
  s.base_dir = base;
  for (const auto& n : names) {
    Particle p;
    p.image = ImageRef::parse(n);
    s.particles.push_back(p);
  }
  return s;
}

TEST(ParticleMatching, FileNameKeysSurviveImportIntoOtherPackages) {
  const ParticleSet relion = make_set({"000001@Extract/job012/mic_1.mrcs", "000002@Extract/job012/mic_1.mrcs",
                                       "000001@Extract/job012/mic_2.mrcs"});
  // cryoSPARC's import renames files "<uid>_name" and lists them in another order; Scipion keeps .mrcs.
  const ParticleSet cs = make_set({"000001@J3/imported/012345678901234567890_mic_2.mrc",
                                   "000002@J3/imported/012345678901234567890_mic_1.mrc",
                                   "000003@J3/imported/012345678901234567890_mic_1.mrc"});
  const ParticleMatch m = match_particles({{&relion, "a.star"}, {&cs, "b.cs"}}, MatchBy::FileName);
  ASSERT_EQ(m.rows.size(), 2u);
  EXPECT_EQ(m.rows[0], (std::vector<long>{1, 1}));  // 2@mic_1 is cs's second
  EXPECT_EQ(m.rows[1], (std::vector<long>{2, 0}));  // 1@mic_2 is cs's first
  EXPECT_EQ(m.unmatched[0], std::vector<long>{0});
  EXPECT_EQ(m.unmatched[1], std::vector<long>{2});
  // A short run of digits is part of the name, not an import prefix.
  EXPECT_EQ(particle_key(relion, make_set({"1@x/000123_mic.mrcs"}).particles[0], MatchBy::FileName, "f"),
            "1@000123_mic.mrc");
}

TEST(ParticleMatching, PathKeysTellApartStacksOfTheSameName) {
  const ParticleSet a = make_set({"1@one/stack.mrcs", "1@two/stack.mrcs"});
  const ParticleSet b = make_set({"1@/data/two/stack.mrcs"}, "/elsewhere");
  EXPECT_THROW(match_particles({{&a, "a.star"}, {&b, "b.star"}}, MatchBy::FileName), InputError);
  const ParticleMatch m = match_particles({{&a, "a.star"}, {&b, "b.star"}}, MatchBy::Path);
  ASSERT_EQ(m.rows.size(), 1u);
  EXPECT_EQ(m.rows[0], (std::vector<long>{1, 0}));
}

TEST(ParticleMatching, SubtractedParticlesMatchTheirOriginals) {
  const ParticleSet original = make_set({"1@Extract/mic_1.mrcs", "2@Extract/mic_1.mrcs"});
  ParticleSet subtracted = make_set({"1@Subtract/job030/subtracted.mrcs", "2@Subtract/job030/subtracted.mrcs"});
  subtracted.particle_extra_labels = {"rlnImageOriginalName"};
  subtracted.particles[0].extra = {"000002@Extract/mic_1.mrcs"};
  subtracted.particles[1].extra = {"000001@Extract/mic_1.mrcs"};
  EXPECT_THROW(match_particles({{&subtracted, "s.star"}, {&original, "o.star"}}, MatchBy::FileName), InputError);
  const ParticleMatch m = match_particles({{&subtracted, "s.star"}, {&original, "o.star"}}, MatchBy::Original);
  ASSERT_EQ(m.rows.size(), 2u);
  EXPECT_EQ(m.rows[0], (std::vector<long>{0, 1}));
  EXPECT_EQ(m.rows[1], (std::vector<long>{1, 0}));
}

TEST(ParticleMatching, IdsAndErrorsNameTheFile) {
  ParticleSet a = make_set({"1@s.mrcs", "2@s.mrcs"}), b = make_set({"7@t.mrcs", "8@t.mrcs"});
  a.particle_extra_labels = {"rlnImageId"};
  b.particle_extra_labels = {"rlnImageId"};
  a.particles[0].extra = {"11"}, a.particles[1].extra = {"12"};
  b.particles[0].extra = {"12"}, b.particles[1].extra = {"13"};
  const ParticleMatch m = match_particles({{&a, "a.sqlite"}, {&b, "b.sqlite"}}, MatchBy::Id);
  ASSERT_EQ(m.rows.size(), 1u);
  EXPECT_EQ(m.rows[0], (std::vector<long>{1, 0}));
  try {
    match_particles({{&a, "a.sqlite"}, {&b, "b.sqlite"}}, MatchBy::FileName);
    FAIL() << "no particle in common";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("a.sqlite and b.sqlite: no particle in common when matched by filename"),
              std::string::npos)
        << e.what();
  }
  const ParticleSet no_ids = make_set({"1@s.mrcs"});
  EXPECT_THROW(match_particles({{&no_ids, "c.star"}, {&b, "b.sqlite"}}, MatchBy::Id), InputError);
  EXPECT_THROW(parse_match_by("order"), std::invalid_argument);
}

}  // namespace
