#pragma once
/// Which particles of two or more particle files are the same particle.
///
/// Consensus steps compare what different programs say about the same images:
/// a RELION STAR, a Scipion set and a cryoSPARC .cs file each list the images
/// in their own order, under their own paths. Particles are matched by a key,
/// never by position:
///   FileName  (default) the image's index and the file name of its stack,
///             without folders; a cryoSPARC import prefix (a run of 15 or more
///             digits and '_' that cryoSPARC puts before imported file names)
///             is removed and ".mrcs" read as ".mrc", so the same stack
///             imported into RELION, Scipion and cryoSPARC gives the same key.
///   Path      the index and the stack's absolute, lexically normal path
///             (ParticleSet::stack_path): for sets whose stacks share a name
///             in different folders.
///   Original  as FileName, but of the image a particle was made from
///             (rlnImageOriginalName, which RELION's and Tessera's subtraction
///             write) when it has one, else of its own image: subtracted or
///             re-extracted particles against the particles they came from.
///   Id        the particle's id: extra rlnImageId (a Scipion set's item id,
///             scipion_set.hpp) or, failing that, csUid (a cryoSPARC uid,
///             cryosparc_cs.hpp): for sets derived from one another inside
///             Scipion or inside cryoSPARC.
/// Keys must be unique within a file (a duplicate throws InputError naming the
/// file, both particles and a remedy). Particles not found in every file are
/// reported, never dropped silently.
#include <filesystem>
#include <string>
#include <vector>

#include "tessera/particles.hpp"

namespace tessera {

enum class MatchBy { FileName, Path, Original, Id };

/// "filename", "path", "original", "id" -> MatchBy; anything else throws std::invalid_argument.
MatchBy parse_match_by(const std::string& name);
const char* to_string(MatchBy by);

/// The key of one particle (see above). Id: InputError naming `file` when the
/// set has neither rlnImageId nor csUid, or the particle's value is empty.
std::string particle_key(const ParticleSet& set, const Particle& p, MatchBy by, const std::filesystem::path& file);

/// One particle set read from a file, under a name for messages.
struct NamedSet {
  const ParticleSet* set = nullptr;
  std::filesystem::path file;
};

struct ParticleMatch {
  /// rows[k][s]: index in sets[s] of the k-th particle found in every set, in
  /// the order of sets[0].
  std::vector<std::vector<long>> rows;
  /// unmatched[s]: indices of sets[s]'s particles missing from some other set.
  std::vector<std::vector<long>> unmatched;
};

/// Matches two or more sets (their particle_key, then match_keys). Throws
/// InputError when fewer than two sets are given, and as match_keys.
ParticleMatch match_particles(const std::vector<NamedSet>& sets, MatchBy by);

/// A file name as FileName matching compares it: without folders, without
/// cryoSPARC's import prefix, ".mrcs" read as ".mrc" (for stacks and micrographs).
std::string matching_file_name(const std::string& path);

/// The matching itself on keys already made: keys[s][i] is the key of item i
/// of files[s] (at least two files). InputError, naming the file, when a file
/// has no items or a key twice (both items, 1-based), and, naming the files,
/// the key kind and one key of each, when no item is in every file. `item`
/// names the items in messages ("particle", "micrograph").
ParticleMatch match_keys(const std::vector<std::vector<std::string>>& keys,
                         const std::vector<std::filesystem::path>& files, MatchBy by, const std::string& item);

}  // namespace tessera
