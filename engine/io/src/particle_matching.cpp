#include "tessera/particle_matching.hpp"

#include <fmt/format.h>

#include <cctype>
#include <stdexcept>
#include <unordered_map>

#include "tessera/error.hpp"

namespace tessera {

namespace {

// cryoSPARC renames imported files "<uid>_<name>"; the uid is a long run of digits.
std::string without_import_prefix(const std::string& name) {
  std::size_t digits = 0;
  while (digits < name.size() && std::isdigit(static_cast<unsigned char>(name[digits]))) ++digits;
  if (digits >= 15 && digits + 1 < name.size() && name[digits] == '_') return name.substr(digits + 1);
  return name;
}

std::string id_of(const ParticleSet& set, const Particle& p, const std::filesystem::path& file) {
  int column = set.particle_extra_index("rlnImageId");
  if (column < 0) column = set.particle_extra_index("csUid");
  if (column < 0)
    throw InputError(
        fmt::format("{}: no particle ids (no Scipion item id rlnImageId, no cryoSPARC uid) to match "
                    "by; match by file name instead",
                    file.string()));
  const std::string& id = p.extra[static_cast<std::size_t>(column)];
  if (id.empty())
    throw InputError(fmt::format("{}: particle {} has no id to match by", file.string(), p.image.to_string()));
  return id;
}

}  // namespace

std::string matching_file_name(const std::string& path) {
  std::string name = without_import_prefix(std::filesystem::path(path).filename().string());
  if (name.size() > 5 && name.ends_with(".mrcs")) name.pop_back();
  return name;
}

MatchBy parse_match_by(const std::string& name) {
  if (name == "filename") return MatchBy::FileName;
  if (name == "path") return MatchBy::Path;
  if (name == "original") return MatchBy::Original;
  if (name == "id") return MatchBy::Id;
  throw std::invalid_argument(fmt::format("unknown particle matching '{}' (filename, path, original or id)", name));
}

const char* to_string(MatchBy by) {
  switch (by) {
    case MatchBy::FileName:
      return "filename";
    case MatchBy::Path:
      return "path";
    case MatchBy::Original:
      return "original";
    case MatchBy::Id:
      return "id";
  }
  return "?";
}

std::string particle_key(const ParticleSet& set, const Particle& p, MatchBy by, const std::filesystem::path& file) {
  switch (by) {
    case MatchBy::FileName:
      return fmt::format("{}@{}", p.image.index, matching_file_name(p.image.path));
    case MatchBy::Path:
      return fmt::format("{}@{}", p.image.index,
                         std::filesystem::absolute(set.stack_path(p)).lexically_normal().string());
    case MatchBy::Original: {
      const int column = set.particle_extra_index("rlnImageOriginalName");
      const std::string& original = column >= 0 ? p.extra[static_cast<std::size_t>(column)] : std::string();
      if (original.empty()) return particle_key(set, p, MatchBy::FileName, file);
      ImageRef ref;
      try {
        ref = ImageRef::parse(original);
      } catch (const std::invalid_argument& e) {
        throw InputError(
            fmt::format("{}: particle {}: rlnImageOriginalName: {}", file.string(), p.image.to_string(), e.what()));
      }
      return fmt::format("{}@{}", ref.index, matching_file_name(ref.path));
    }
    case MatchBy::Id:
      return id_of(set, p, file);
  }
  return {};
}

ParticleMatch match_keys(const std::vector<std::vector<std::string>>& keys,
                         const std::vector<std::filesystem::path>& files, MatchBy by, const std::string& item) {
  if (keys.size() < 2 || keys.size() != files.size())
    throw std::invalid_argument("match_keys: at least two files, one list of keys each");
  const std::string remedy = by == MatchBy::FileName ? "; match by path instead" : "";
  std::vector<std::unordered_map<std::string, long>> index(keys.size());
  for (std::size_t s = 0; s < keys.size(); ++s) {
    if (keys[s].empty()) throw InputError(fmt::format("{}: no {}s", files[s].string(), item));
    for (std::size_t i = 0; i < keys[s].size(); ++i) {
      const auto [it, added] = index[s].emplace(keys[s][i], static_cast<long>(i));
      if (!added)
        throw InputError(fmt::format("{}: {}s {} and {} have the same {} key '{}'{}", files[s].string(), item,
                                     it->second + 1, i + 1, to_string(by), keys[s][i], remedy));
    }
  }
  ParticleMatch m;
  m.unmatched.resize(keys.size());
  std::vector<std::vector<char>> used(keys.size());
  for (std::size_t s = 0; s < keys.size(); ++s) used[s].assign(keys[s].size(), 0);
  for (std::size_t i = 0; i < keys[0].size(); ++i) {
    std::vector<long> row{static_cast<long>(i)};
    for (std::size_t s = 1; s < keys.size(); ++s) {
      const auto it = index[s].find(keys[0][i]);
      if (it == index[s].end()) break;
      row.push_back(it->second);
    }
    if (row.size() != keys.size()) continue;
    for (std::size_t s = 0; s < keys.size(); ++s) used[s][static_cast<std::size_t>(row[s])] = 1;
    m.rows.push_back(std::move(row));
  }
  for (std::size_t s = 0; s < keys.size(); ++s)
    for (std::size_t i = 0; i < used[s].size(); ++i)
      if (!used[s][i]) m.unmatched[s].push_back(static_cast<long>(i));
  if (m.rows.empty()) {
    std::string names, examples;
    for (std::size_t s = 0; s < keys.size(); ++s) {
      names += (s ? " and " : "") + files[s].string();
      examples += fmt::format("{}'{}'", s ? ", " : "", keys[s].front());
    }
    throw InputError(fmt::format("{}: no {} in common when matched by {} (first keys {}){}", names, item, to_string(by),
                                 examples, remedy));
  }
  return m;
}

ParticleMatch match_particles(const std::vector<NamedSet>& sets, MatchBy by) {
  if (sets.size() < 2) throw InputError("particle matching needs at least two particle files");
  std::vector<std::vector<std::string>> keys(sets.size());
  std::vector<std::filesystem::path> files;
  for (std::size_t s = 0; s < sets.size(); ++s) {
    files.push_back(sets[s].file);
    for (const Particle& p : sets[s].set->particles) keys[s].push_back(particle_key(*sets[s].set, p, by, sets[s].file));
  }
  return match_keys(keys, files, by, "particle");
}

}  // namespace tessera
