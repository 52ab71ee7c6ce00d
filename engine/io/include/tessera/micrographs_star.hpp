#pragma once
/// RELION micrograph CTF tables (CtfFind's micrographs_ctf.star, or a Scipion
/// SetOfCTF converted to one): one row per micrograph with its CTF estimate.
///
/// Reading, RELION 3.1+: data_optics columns rlnOpticsGroup (rows numbered 1,
/// 2, ... without it), rlnVoltage (kV), rlnSphericalAberration (mm),
/// rlnAmplitudeContrast, rlnMicrographPixelSize (A/px); data_micrographs
/// columns rlnMicrographName (required), rlnOpticsGroup (default 1),
/// rlnDefocusU, rlnDefocusV (A, required), rlnDefocusAngle (deg, default 0),
/// rlnPhaseShift (deg, default 0). Voltage, Cs, amplitude contrast and pixel
/// size may also be columns of data_micrographs, which then win over the
/// optics group's; each must come from one or the other.
/// Reading, RELION 3.0 (no data_optics; the table is data_micrographs or the
/// first table with rlnMicrographName): those four per row, the pixel size as
/// rlnMicrographPixelSize or rlnDetectorPixelSize (um) * 1e4 / rlnMagnification.
/// Every column is kept (MicrographCtfTable::star), so a subset written back
/// loses nothing.
///
/// Errors: InputError, one line naming the file (and the line where one
/// applies): no micrograph table or no rows, a missing required column or
/// value, a value that is not a finite number, a non-positive pixel size or
/// voltage, an amplitude contrast outside [0, 1), an undefined optics group.
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "tessera/ctf.hpp"
#include "tessera/particle_matching.hpp"
#include "tessera/star.hpp"

namespace tessera {

struct MicrographCtf {
  std::string name;    ///< rlnMicrographName as written
  CtfParams ctf;       ///< defocus U/V/angle and phase shift; voltage, Cs and amplitude contrast
  double pixel_A = 0;  ///< the micrograph's pixel size, A/px
};

struct MicrographCtfTable {
  StarFile star;                           ///< the file as read
  std::size_t table = 0;                   ///< index in star.blocks of its micrograph table
  std::vector<MicrographCtf> micrographs;  ///< one per row of that table, in order
};

/// Whether a STAR file is a micrograph table rather than particles: its first
/// table that is data_micrographs or data_particles, or holds rlnImageName or
/// rlnMicrographName, is data_micrographs or holds rlnMicrographName without
/// rlnImageName. Reads only up to that table's labels. False for a file that
/// cannot be read (the particle reader then says why).
bool is_micrographs_star(const std::filesystem::path& star);

MicrographCtfTable read_micrographs_ctf_star(const std::filesystem::path& star);

/// The file with only the micrographs at `rows` (indices into
/// table.micrographs, in that order) in its micrograph table; every other
/// block and column as read.
StarFile micrographs_subset(const MicrographCtfTable& table, const std::vector<long>& rows);

/// Matches the micrographs of two tables (match_keys, particle_matching.hpp):
/// MatchBy::FileName by matching_file_name (no folders, no cryoSPARC import
/// prefix), MatchBy::Path by the name as written (lexically normalised).
/// InputError for MatchBy::Id and Original (micrograph tables carry neither),
/// a key twice in one file, or no micrograph in common.
ParticleMatch match_micrographs(const MicrographCtfTable& a, const std::filesystem::path& file_a,
                                const MicrographCtfTable& b, const std::filesystem::path& file_b, MatchBy by);

}  // namespace tessera
