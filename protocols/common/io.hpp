#pragma once
/// File handling shared by the programs: reading inputs with checks that name
/// the file, and writing outputs atomically and registering them in
/// outputs.json.
#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/run_context.hpp"
#include "tessera/grid.hpp"
#include "tessera/particles.hpp"
#include "tessera/symmetry.hpp"

namespace tessera::protocol {

/// The point group named by the string parameter `name` (SymmetryGroup::parse):
/// InputError naming the parameter ("--symmetry: ...") when it is unknown.
SymmetryGroup load_symmetry(const Values& v, const std::string& name);

/// A resolution parameter (`param`, e.g. "--max-res-A") that a box of `box`
/// px at `pixel_A` can hold: InputError naming it when it is coarser than
/// Fourier shell 2 (box x pixel / 2 A), where it would keep almost nothing.
void check_resolution_in_box(std::optional<double> resolution_A, const std::string& param, int box, double pixel_A);

/// The items of a comma-separated list parameter (file names, say), blanks
/// around each trimmed and empty items dropped: "a.mrc, b.mrc," -> {a.mrc, b.mrc}.
std::vector<std::string> split_list(const std::string& text);

/// A RELION STAR (.star) or a Scipion set (.sqlite), chosen by extension.
ParticleSet load_particles(const std::filesystem::path& path);

struct LoadedVolume {
  RealGrid data;
  double voxel_A = 0;
};
/// A cubic MRC volume with a positive voxel size (or `voxel_override_A`), no
/// NaN or infinite values. InputError naming the file otherwise.
LoadedVolume load_volume(const std::filesystem::path& path, std::optional<double> voxel_override_A = {});
/// Throws InputError unless `v` has the box and voxel size of `ref` (voxel
/// sizes equal to 0.1%): "<file>: box 64 at 3 A/px, expected 128 at 1.5 A/px (from <ref_name>)".
void check_same_grid(const LoadedVolume& v, const std::filesystem::path& file, const LoadedVolume& ref,
                     const std::string& ref_name);
/// Throws InputError naming the file when the map is constant (all zeros, say):
/// it holds no signal to align to, project, subtract or correlate.
void check_has_signal(const LoadedVolume& v, const std::filesystem::path& file);
/// Two half maps (load_volume, check_has_signal), the second on the grid of
/// the first (check_same_grid): {half map A, half map B}.
std::array<LoadedVolume, 2> load_half_maps(const std::filesystem::path& half_a, const std::filesystem::path& half_b,
                                           std::optional<double> voxel_override_A = {});
/// A mask (load_volume) on the grid of `ref` (check_same_grid) with values in
/// [0, 1] (check_mask from tessera/mask.hpp), not 0 everywhere.
LoadedVolume load_mask(const std::filesystem::path& path, const LoadedVolume& ref, const std::string& ref_name,
                       std::optional<double> voxel_override_A = {});

/// threshold_mask (tessera/mask.hpp) of `map`, for the parameter `param` (e.g.
/// "--mask-threshold"): InputError naming it when the threshold selects no
/// voxel or every voxel of the map (the message gives the map's range).
RealGrid mask_from_threshold(const RealGrid& map, double threshold, double extend_px, double soft_edge_px,
                             const std::string& param);

/// Checks made before any work on particles read from `file`; each throws
/// InputError with one line naming the file (or the stack) and the problem.
///
/// Every stack the particles refer to exists, is an MRC stack of box x box
/// images and holds the highest image index used (reads headers only).
void check_particle_stacks(const ParticleSet& set, int box);
/// Every particle has a CTF (has_ctf); otherwise "<file>: 20 of 20 particles
/// have no CTF (no rlnDefocusU/V); <remedy>".
void check_ctf(const ParticleSet& set, const std::filesystem::path& file, const std::string& remedy);
/// Both half sets (half_set_sizes) have particles: not one particle, not every
/// particle in the same rlnRandomSubset.
void check_half_sets(const ParticleSet& set, const std::filesystem::path& file);

/// Writes a volume as MRC mode 2 at out/<file_name> and registers it.
void save_volume(RunContext& ctx, const std::string& output_name, const std::string& file_name,
                 const RealGrid& volume, double voxel_A, const Json& extra = Json::object());

/// Writes the set as out/<stem>.star (paths relative to the output folder)
/// and out/<stem>.sqlite (project root: the output folder), registering them
/// as `star_output` and `sqlite_output` (either may be empty to skip it).
void save_particles(RunContext& ctx, const ParticleSet& set, const std::string& stem,
                    const std::string& star_output, const std::string& sqlite_output);

/// One or more FSC curves over the same shells, written as out/fsc.star, a
/// RELION-style STAR (data_fsc: rlnSpectralIndex, rlnResolution [1/A],
/// rlnAngstromResolution and one column per curve), and as out/fsc.json ({"box",
/// "voxel_A", "shells": [{"index", "resolution_A"}...], "curves": {name: [...]},
/// "resolution_A": {name@threshold: A}}); tessera/run_files.hpp (fsc, fsc_star)
/// declares the names, keys and columns.
struct FscCurve {
  std::string_view name;        ///< run_files::fsc::curve, e.g. gold_standard
  std::string_view star_label;  ///< run_files::fsc_star::curve_column, e.g. rlnFourierShellCorrelation
  std::vector<double> values;
  double threshold;  ///< 0.143 for half maps, 0.5 against a reference
};
/// Registers the files as the outputs `star_output` and `json_output`. Returns
/// the resolution of each curve at its threshold (nullopt: beyond Nyquist).
std::vector<std::optional<double>> save_fsc(RunContext& ctx, const std::string& star_output,
                                            const std::string& json_output, const std::vector<FscCurve>& curves,
                                            int box, double voxel_A);
/// The key of fsc.json's "resolution_A" for `curve` at `threshold`: "corrected@0.143".
std::string fsc_resolution_key(std::string_view curve, double threshold);
/// fsc.json's "shells": one {"index": k, "resolution_A": box * voxel_A / k}
/// per shell k from 0 to box / 2 (null resolution for shell 0).
Json fsc_shells_json(int box, double voxel_A);

/// "6.2 A" or "beyond Nyquist (6.0 A)".
std::string format_resolution(std::optional<double> resolution_A, double voxel_A);

}  // namespace tessera::protocol
