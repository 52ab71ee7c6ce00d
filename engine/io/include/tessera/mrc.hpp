#pragma once
/// MRC2014 images, stacks (.mrcs) and volumes.
///
/// Reading: modes 0 (int8, signed as MRC2014 says), 1 (int16), 2 (float32),
/// 6 (uint16) and 12 (float16) are converted to float. Little- and big-endian
/// files are read; the byte order comes from the machine stamp (first byte
/// 0x44 little, 0x11 big) and, when the stamp is neither, from which byte order
/// gives a plausible header. The extended header (nsymbt bytes) is skipped.
///
/// Writing: mode 2 only, little-endian, map field "MAP ", machine stamp
/// 44 44 00 00, nversion 20140, min/max/mean/rms filled in, origin 0 and
/// nxstart = nystart = nzstart = 0. Images and stacks get ispg 0 and mz = 1
/// (RELION and Scipion then see a stack); volumes get ispg 1 and mz = nz.
/// cella = m * voxel on every axis, so cella / m gives the voxel size back.
/// Files are written under "<name>.tmp-<pid>" in the same folder and renamed
/// when complete, so an interrupted run never leaves a file that looks finished.
///
/// Layout in memory (grid.hpp): x fastest, then y, then z; image k of a stack
/// (1-based, as in RELION's 000012@stack.mrcs) is section z = k - 1.
///
/// Errors: a file that is missing, too short, truncated or not MRC throws
/// InputError with one line naming the file; a failure while writing throws
/// std::runtime_error naming the file.
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tessera/grid.hpp"

namespace tessera {

/// Everything Tessera uses from an MRC header, after byte-order correction.
struct MrcInfo {
  std::filesystem::path path;        ///< the file this was read from
  int nx = 0, ny = 0, nz = 0;        ///< columns, rows, sections (images in a stack)
  int mode = 2;                      ///< 0, 1, 2, 6 or 12
  int nxstart = 0, nystart = 0, nzstart = 0;  ///< index of the first voxel, voxels
  int mx = 0, my = 0, mz = 0;        ///< sampling along the cell (mz = 1 in a stack)
  std::array<double, 3> cell_A{};    ///< cella x, y, z, Angstrom
  std::array<double, 3> cell_deg{};  ///< cellb alpha, beta, gamma, degrees
  /// Voxel size along x, y, z in Angstrom: cella / mx (my, mz), or cella / nx
  /// (ny, nz) where m is 0. 0 when the header's cell is 0: the caller decides.
  std::array<double, 3> voxel_A{};
  std::array<int, 3> map_crs{1, 2, 3};  ///< mapc, mapr, maps (axis of columns, rows, sections)
  double dmin = 0, dmax = 0, dmean = 0; ///< header statistics, as stored (not checked)
  double rms = 0;                    ///< header rms deviation from the mean, as stored
  int ispg = 0;                      ///< space group: 0 image/stack, 1 volume, 401 volume stack
  long nsymbt = 0;                   ///< extended header bytes, skipped
  std::string exttyp;                ///< extended header type, 4 characters (may be NULs)
  int nversion = 0;                  ///< 20140 for MRC2014 files, 0 for older ones
  std::array<double, 3> origin_A{};  ///< origin x, y, z, Angstrom (words 50-52)
  std::vector<std::string> labels;   ///< the nlabl text labels, trailing blanks/NULs removed
  bool big_endian = false;           ///< the file is big-endian
  bool byte_swapped = false;         ///< the file's byte order differs from this machine's
  std::size_t data_offset = 1024;    ///< first data byte: 1024 + nsymbt
  std::size_t bytes_per_voxel = 4;   ///< of the file's mode
  std::uintmax_t file_size = 0;      ///< bytes on disk when the header was read

  /// Bytes of one section (one image of a stack): nx * ny * bytes_per_voxel.
  std::size_t section_bytes() const;
  /// The file's data size: nx * ny * nz * bytes_per_voxel.
  std::uintmax_t data_bytes() const;
  /// Whether the header says "stack of 2D images" (ispg 0, nz > 1, mz != nz),
  /// rather than a volume. Per-image reading works on both.
  bool is_stack() const;
};

/// Reads and checks the header (dimensions, mode, map field, file size) without
/// reading the data. Throws InputError on a missing, short, truncated or non-MRC file.
MrcInfo read_mrc_info(const std::filesystem::path& path);

/// A whole file as float, with its x voxel size.
struct MrcMap {
  RealGrid data;     ///< nx * ny * nz
  double voxel_A = 0;///< info.voxel_A[0]: x voxel size in Angstrom (0 if the header has none)
  MrcInfo info;
};

/// Reads a whole image, stack or volume, converting every mode to float.
MrcMap read_mrc(const std::filesystem::path& path);

/// Reads single images (sections) of a stack without reading the rest: it keeps
/// the file open and seeks to the image asked for.
///
/// Thread safety: read() is const but moves the reader's file position, so one
/// reader must be used by one thread at a time. The rule: one reader per thread
/// (open several readers on the same file to read it in parallel).
class MrcStackReader {
 public:
  explicit MrcStackReader(const std::filesystem::path& path);

  const MrcInfo& info() const { return info_; }
  /// Number of images (sections): nz.
  long size() const { return info_.nz; }
  /// Image index1 (1-based) as an nx * ny grid. Throws InputError if index1 is
  /// not in 1..size() or the file cannot be read there.
  RealGrid read(long index1) const;
  /// Same, into dst, which must hold nx * ny floats.
  void read_into(long index1, float* dst) const;

 private:
  MrcInfo info_;
  mutable std::ifstream in_;
  mutable std::vector<char> raw_;  ///< one section of raw bytes (modes other than native float)
};

/// Running statistics of float samples, as MRC headers store them: min, max,
/// mean, and rms = the population standard deviation about the mean. Chunks are
/// merged with Chan et al.'s pairwise update, in double, so a long stack does
/// not lose precision.
class MrcStats {
 public:
  void add(const float* values, std::size_t n);
  long long count() const { return n_; }
  float min() const { return min_; }
  float max() const { return max_; }
  double mean() const { return mean_; }
  double rms() const;

 private:
  long long n_ = 0;
  double mean_ = 0, m2_ = 0;  ///< mean and sum of squared deviations from it
  float min_ = 0, max_ = 0;
};

/// Writes a grid as mode 2: a volume when nz > 1 and is_stack is false (ispg 1,
/// mz = nz), else an image or a stack of nz images (ispg 0, mz = 1).
/// voxel_A is the voxel size in Angstrom (> 0). Throws std::invalid_argument
/// for an empty grid or a bad voxel size, std::runtime_error if writing fails.
void write_mrc(const std::filesystem::path& path, const RealGrid& grid, double voxel_A,
               bool is_stack = false);

/// Writes a stack of nx * ny images one at a time, holding none of them in
/// memory: images go straight to "<path>.tmp-<pid>"; finish() writes the header
/// (nz = count, mz = 1, ispg 0, statistics over all images) and renames the file
/// to path. If the writer is destroyed without finish(), the temporary file is
/// removed and nothing appears at path.
class MrcStackWriter {
 public:
  /// voxel_A: pixel size in Angstrom (> 0). Creates the temporary file.
  MrcStackWriter(const std::filesystem::path& path, int nx, int ny, double voxel_A);
  MrcStackWriter(const MrcStackWriter&) = delete;
  MrcStackWriter& operator=(const MrcStackWriter&) = delete;
  ~MrcStackWriter();

  /// Appends one image; its shape must be nx * ny * 1.
  void append(const RealGrid& image);
  /// Appends nx * ny floats (x fastest).
  void append(const float* data);
  /// Images appended so far.
  long count() const { return count_; }
  /// Writes the header and renames the file to its final path. Requires at
  /// least one image (std::logic_error otherwise, and after a second call).
  void finish();

  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& temp_path() const { return temp_path_; }

 private:
  void abandon() noexcept;

  std::filesystem::path path_, temp_path_;
  int nx_, ny_;
  double voxel_A_;
  std::ofstream out_;
  long count_ = 0;
  MrcStats stats_;
  bool finished_ = false;
};

}  // namespace tessera
