#pragma once
/// The rows a particle gallery shows and the columns it sorts by.
///
/// Sources (by extension):
///   .star    a RELION particle STAR (engine particles_star.hpp)
///   .sqlite  a Scipion SetOfParticles (engine scipion_set.hpp; enabled items)
///   .mrcs, .mrc, .st   a stack: one row per image
/// Only the metadata is read when the table opens; images are read one at a time
/// when a page shows them (ImageSource), so a set of 100,000 particles opens
/// without reading 100,000 images.
///
/// Columns of a particle set, named as RELION names them: "index" (1-based
/// position in the file), rlnImageName, rlnOpticsGroup, rlnMicrographName (when
/// any is set), rlnDefocusU, rlnDefocusV, rlnDefocusAngle, rlnPhaseShift,
/// rlnCtfBfactor, rlnCtfScalefactor, rlnAngleRot, rlnAngleTilt, rlnAnglePsi,
/// rlnOriginXAngst, rlnOriginYAngst (when any particle has a pose),
/// rlnRandomSubset, then every extra column of the file (e.g. rlnLogLikeliContribution,
/// rlnNormCorrection, xmipp_zScore) under its label.
/// Columns of a stack: "index", and "mean", "stddev", "min", "max" of each image,
/// computed by reading the whole stack once, image by image, the first time
/// one of them is asked for.
///
/// Sorting: a column is numeric when every non-empty value parses as a number;
/// numeric columns sort by value, others by text; empty or non-numeric values
/// go last; ties keep file order (stable).
#include <array>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tessera/grid.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles.hpp"

namespace tessera::viewer {

struct ImageLocation {
  std::filesystem::path stack;
  long index = 1;  ///< 1-based
};

class ParticleTable {
 public:
  /// InputError naming the file for a missing or unreadable source.
  static ParticleTable open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  std::size_t size() const { return size_; }
  const std::vector<std::string>& columns() const { return names_; }
  /// Index of a column, or -1.
  int column(const std::string& name) const;
  std::string text(std::size_t row, int col) const;
  /// The value as a number (NaN when empty or not a number).
  double number(std::size_t row, int col) const;
  bool is_numeric(int col) const;
  ImageLocation image(std::size_t row) const;
  /// Row numbers (0-based) in the column's order.
  std::vector<std::size_t> sorted(int col, bool descending) const;
  /// Images read to compute stack statistics (0 until one is asked for).
  long images_scanned() const;

 private:
  struct Column {
    std::string name;
    std::function<std::string(std::size_t)> text;
    std::function<double(std::size_t)> number;  ///< NaN if not a number
  };
  void add(std::string name, std::function<std::string(std::size_t)> text,
           std::function<double(std::size_t)> number = {});
  void add_particle_columns();
  void add_stack_columns();

  /// Per-image statistics of a bare stack, computed once when first needed.
  struct StackScan {
    std::filesystem::path path;
    std::vector<std::array<double, 4>> stats;  ///< mean, stddev, min, max per image
    bool done = false;
    const std::array<double, 4>& at(std::size_t row);
  };

  std::filesystem::path path_;
  std::size_t size_ = 0;
  std::shared_ptr<ParticleSet> set_;  ///< null for a bare stack
  std::vector<Column> columns_;
  std::vector<std::string> names_;
  std::shared_ptr<StackScan> scan_;      ///< null for a particle set
  mutable std::map<int, bool> numeric_;  ///< cache per column
};

/// Reads images on demand, keeping a few stacks open; counts what it read.
class ImageSource {
 public:
  RealGrid read(const ImageLocation& where);
  long images_read() const { return reads_; }

 private:
  std::map<std::filesystem::path, std::unique_ptr<MrcStackReader>> readers_;
  long reads_ = 0;
};

}  // namespace tessera::viewer
