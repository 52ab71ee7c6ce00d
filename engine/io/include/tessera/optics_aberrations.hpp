#pragma once
/// RELION 3.1's per-optics-group aberration columns, between the optics table's
/// text and OpticsGroup's typed fields (particles.hpp): rlnBeamTiltX/Y (mrad),
/// rlnOddZernike and rlnEvenZernike (lists written "[a,b,c]"), rlnMagMat00,
/// rlnMagMat01, rlnMagMat10, rlnMagMat11. The STAR and Scipion readers and
/// writers go through here, so a set read from either keeps them typed and
/// writes them back under the same labels.
#include <string>
#include <vector>

#include "tessera/particles.hpp"

namespace tessera {

/// Moves the aberration columns from set.optics_extra_labels and each group's
/// extra values into the groups' typed fields (absent columns leave the
/// defaults). Throws InputError naming `source` and the optics group for a
/// value that is not a finite number or a list of them.
void take_aberration_columns(ParticleSet& set, const std::string& source);

/// One optics column to write: its label and each group's value as text.
struct OpticsTextColumn {
  std::string label;
  std::vector<std::string> values;  ///< one per set.optics entry, in order
};

/// The aberration columns of the set's groups, only those some group needs:
/// beam tilt when a group has one, the Zernike lists when a group has
/// coefficients (groups with fewer are padded with zeros, as RELION expects one
/// length per column), the magnification matrix when a group's is not the
/// identity.
std::vector<OpticsTextColumn> aberration_columns(const ParticleSet& set);

/// Whether `label` is one of the columns above (writers skip such extras).
bool is_aberration_label(const std::string& label);

/// "[a,b,c]" for coefficients (shortest text that reads back the same double).
std::string format_coefficient_list(const std::vector<double>& values);

}  // namespace tessera
