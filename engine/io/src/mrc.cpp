#include "tessera/mrc.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <limits>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <unistd.h>

#include "tessera/error.hpp"

namespace tessera {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kHeaderBytes = 1024;
constexpr bool kHostBigEndian = std::endian::native == std::endian::big;

// Byte offsets of the MRC2014 header words used here.
enum Offset : std::size_t {
  kNx = 0, kMode = 12, kNxStart = 16, kMx = 28, kCella = 40, kCellb = 52, kMapc = 64,
  kDmin = 76, kDmax = 80, kDmean = 84, kIspg = 88, kNsymbt = 92, kExttyp = 104,
  kNversion = 108, kOrigin = 196, kMap = 208, kStamp = 212, kRms = 216, kNlabl = 220,
  kLabels = 224
};
constexpr std::size_t kLabelBytes = 80;
constexpr int kMaxLabels = 10;

std::uint16_t swap16(std::uint16_t v) { return static_cast<std::uint16_t>((v >> 8) | (v << 8)); }
std::uint32_t swap32(std::uint32_t v) {
  return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}

std::uint32_t get_u32(const unsigned char* h, std::size_t off, bool big) {
  const unsigned char* b = h + off;
  if (big) return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
  return (std::uint32_t{b[3]} << 24) | (std::uint32_t{b[2]} << 16) | (std::uint32_t{b[1]} << 8) | b[0];
}
int get_i32(const unsigned char* h, std::size_t off, bool big) {
  return std::bit_cast<std::int32_t>(get_u32(h, off, big));
}
double get_f32(const unsigned char* h, std::size_t off, bool big) {
  return std::bit_cast<float>(get_u32(h, off, big));
}

void put_u32(unsigned char* h, std::size_t off, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) h[off + i] = static_cast<unsigned char>(v >> (8 * i));
}
void put_i32(unsigned char* h, std::size_t off, int v) { put_u32(h, off, std::bit_cast<std::uint32_t>(v)); }
void put_f32(unsigned char* h, std::size_t off, double v) {
  put_u32(h, off, std::bit_cast<std::uint32_t>(static_cast<float>(v)));
}

std::optional<std::size_t> bytes_per_voxel(int mode) {
  switch (mode) {
    case 0: return 1;
    case 1: case 6: case 12: return 2;
    case 2: return 4;
    default: return std::nullopt;
  }
}

// Printable rendering of raw header bytes for error messages.
std::string quoted(const unsigned char* b, std::size_t n) {
  std::string s = "\"";
  for (std::size_t i = 0; i < n; ++i) {
    if (b[i] >= 0x20 && b[i] < 0x7f) s += static_cast<char>(b[i]);
    else s += fmt::format("\\x{:02x}", b[i]);
  }
  return s + "\"";
}

// Byte order of a header: the machine stamp when it says (0x44 little, 0x11
// big); otherwise the order in which the mode word is one Tessera knows
// (a byte-swapped small mode is >= 2^24), little-endian when neither decides.
bool header_is_big_endian(const unsigned char* h) {
  if (h[kStamp] == 0x44) return false;
  if (h[kStamp] == 0x11) return true;
  const bool little_ok = bytes_per_voxel(get_i32(h, kMode, false)).has_value();
  const bool big_ok = bytes_per_voxel(get_i32(h, kMode, true)).has_value();
  return big_ok && !little_ok;
}

std::optional<std::uintmax_t> checked_mul(std::uintmax_t a, std::uintmax_t b) {
  if (a != 0 && b > std::numeric_limits<std::uintmax_t>::max() / a) return std::nullopt;
  return a * b;
}

// IEEE 754 binary16 -> binary32, exact for every input (NaN payloads kept quiet).
float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t{h & 0x8000u} << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  const std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31)
    return std::bit_cast<float>(sign | 0x7f800000u | (mantissa ? (0x400000u | (mantissa << 13)) : 0u));
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

template <class T>
T load(const char* p, bool swap) {
  T v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (sizeof(T) == 2) {
    if (swap) v = std::bit_cast<T>(swap16(std::bit_cast<std::uint16_t>(v)));
  } else if constexpr (sizeof(T) == 4) {
    if (swap) v = std::bit_cast<T>(swap32(std::bit_cast<std::uint32_t>(v)));
  }
  return v;
}

// Converts n voxels of the file's mode, in the file's byte order, to float.
void decode(const char* raw, std::size_t n, int mode, bool swap, float* dst) {
  switch (mode) {
    case 0:
      for (std::size_t i = 0; i < n; ++i) dst[i] = load<std::int8_t>(raw + i, false);
      break;
    case 1:
      for (std::size_t i = 0; i < n; ++i) dst[i] = load<std::int16_t>(raw + 2 * i, swap);
      break;
    case 6:
      for (std::size_t i = 0; i < n; ++i) dst[i] = load<std::uint16_t>(raw + 2 * i, swap);
      break;
    case 12:
      for (std::size_t i = 0; i < n; ++i) dst[i] = half_to_float(load<std::uint16_t>(raw + 2 * i, swap));
      break;
    case 2:
      for (std::size_t i = 0; i < n; ++i) dst[i] = load<float>(raw + 4 * i, swap);
      break;
    default:
      throw std::logic_error(fmt::format("decode: mode {} was not rejected by the header check", mode));
  }
}

std::string shape_text(const MrcInfo& in) {
  if (in.is_stack()) return fmt::format("{} images of {}x{}", in.nz, in.nx, in.ny);
  if (in.nz == 1) return fmt::format("a {}x{} image", in.nx, in.ny);
  return fmt::format("a {}x{}x{} volume", in.nx, in.ny, in.nz);
}

std::array<unsigned char, kHeaderBytes> read_header_bytes(const fs::path& path, std::uintmax_t& size) {
  const std::string name = path.string();
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) throw InputError(fmt::format("{}: no such file", name));
  if (!fs::is_regular_file(st)) throw InputError(fmt::format("{}: not a regular file", name));
  size = fs::file_size(path, ec);
  if (ec) throw InputError(fmt::format("{}: cannot read its size: {}", name, ec.message()));
  if (size < kHeaderBytes)
    throw InputError(fmt::format("{}: not an MRC file: {} bytes, shorter than the {}-byte header", name, size,
                                 kHeaderBytes));
  std::array<unsigned char, kHeaderBytes> h{};
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(h.data()), kHeaderBytes))
    throw InputError(fmt::format("{}: cannot read the header", name));
  return h;
}

// Fills the header fields of `in` (no checks).
void parse_header(const unsigned char* h, MrcInfo& in) {
  const bool big = in.big_endian;
  in.nx = get_i32(h, kNx, big);
  in.ny = get_i32(h, kNx + 4, big);
  in.nz = get_i32(h, kNx + 8, big);
  in.mode = get_i32(h, kMode, big);
  in.nxstart = get_i32(h, kNxStart, big);
  in.nystart = get_i32(h, kNxStart + 4, big);
  in.nzstart = get_i32(h, kNxStart + 8, big);
  in.mx = get_i32(h, kMx, big);
  in.my = get_i32(h, kMx + 4, big);
  in.mz = get_i32(h, kMx + 8, big);
  for (std::size_t a = 0; a < 3; ++a) {
    in.cell_A[a] = get_f32(h, kCella + 4 * a, big);
    in.cell_deg[a] = get_f32(h, kCellb + 4 * a, big);
    in.map_crs[a] = get_i32(h, kMapc + 4 * a, big);
    in.origin_A[a] = get_f32(h, kOrigin + 4 * a, big);
  }
  in.dmin = get_f32(h, kDmin, big);
  in.dmax = get_f32(h, kDmax, big);
  in.dmean = get_f32(h, kDmean, big);
  in.rms = get_f32(h, kRms, big);
  in.ispg = get_i32(h, kIspg, big);
  in.nsymbt = get_i32(h, kNsymbt, big);
  in.exttyp.assign(reinterpret_cast<const char*>(h + kExttyp), 4);
  in.nversion = get_i32(h, kNversion, big);
  const int nlabl = std::clamp(get_i32(h, kNlabl, big), 0, kMaxLabels);
  for (int i = 0; i < nlabl; ++i) {
    std::string label(reinterpret_cast<const char*>(h + kLabels + i * kLabelBytes), kLabelBytes);
    const auto end = label.find_last_not_of(std::string(" \0", 2));
    label.erase(end == std::string::npos ? 0 : end + 1);
    in.labels.push_back(label);
  }
}

// Checks the map field, dimensions, mode and extended header; sets the sizes.
void check_header(const unsigned char* h, MrcInfo& in) {
  const std::string name = in.path.string();
  static constexpr unsigned char kMapWord[4] = {'M', 'A', 'P', ' '};
  static constexpr unsigned char kZeros[4] = {0, 0, 0, 0};
  if (std::memcmp(h + kMap, kMapWord, 4) != 0 && std::memcmp(h + kMap, kZeros, 4) != 0)
    throw InputError(fmt::format("{}: not an MRC file: map field (bytes 209-212) is {}, expected \"MAP \"", name,
                                 quoted(h + kMap, 4)));
  if (in.nx <= 0 || in.ny <= 0 || in.nz <= 0)
    throw InputError(fmt::format("{}: bad dimensions {} x {} x {} in the MRC header (each must be > 0)", name, in.nx,
                                 in.ny, in.nz));
  const auto bpv = bytes_per_voxel(in.mode);
  if (!bpv)
    throw InputError(fmt::format("{}: unsupported MRC mode {} (Tessera reads modes 0, 1, 2, 6 and 12)", name,
                                 in.mode));
  if (in.nsymbt < 0)
    throw InputError(fmt::format("{}: bad extended header size {} (nsymbt) in the MRC header", name, in.nsymbt));
  in.bytes_per_voxel = *bpv;
  in.data_offset = kHeaderBytes + static_cast<std::size_t>(in.nsymbt);
}

void check_size(const MrcInfo& in) {
  const std::string name = in.path.string();
  std::optional<std::uintmax_t> data = checked_mul(static_cast<std::uintmax_t>(in.nx), in.ny);
  if (data) data = checked_mul(*data, static_cast<std::uintmax_t>(in.nz));
  if (data) data = checked_mul(*data, in.bytes_per_voxel);
  if (!data || *data > std::numeric_limits<std::uintmax_t>::max() - in.data_offset)
    throw InputError(fmt::format("{}: truncated: header says {} mode {}, more bytes than any file holds, but the "
                                 "file has {} bytes", name, shape_text(in), in.mode, in.file_size));
  const std::uintmax_t needed = *data + in.data_offset;
  if (in.file_size < needed)
    throw InputError(fmt::format("{}: truncated: header says {} mode {} ({} bytes) but the file has {} bytes", name,
                                 shape_text(in), in.mode, needed, in.file_size));
}

double voxel_size(double cell, int m, int n) { return cell / (m != 0 ? m : n); }

fs::path temp_path_for(const fs::path& path) {
  fs::path t = path;
  t += fmt::format(".tmp-{}", static_cast<long>(::getpid()));
  return t;
}

// The 1024-byte header Tessera writes (mode 2, little-endian).
std::array<unsigned char, kHeaderBytes> build_header(int nx, int ny, int nz, bool volume, double voxel_A,
                                                     const MrcStats& stats) {
  std::array<unsigned char, kHeaderBytes> h{};
  unsigned char* p = h.data();
  const int mz = volume ? nz : 1;
  const int n[3] = {nx, ny, nz};
  const int m[3] = {nx, ny, mz};
  for (std::size_t a = 0; a < 3; ++a) {
    put_i32(p, kNx + 4 * a, n[a]);
    put_i32(p, kNxStart + 4 * a, 0);
    put_i32(p, kMx + 4 * a, m[a]);
    put_f32(p, kCella + 4 * a, m[a] * voxel_A);
    put_f32(p, kCellb + 4 * a, 90.0);
    put_i32(p, kMapc + 4 * a, static_cast<int>(a) + 1);
    put_f32(p, kOrigin + 4 * a, 0.0);
  }
  put_i32(p, kMode, 2);
  put_f32(p, kDmin, stats.min());
  put_f32(p, kDmax, stats.max());
  put_f32(p, kDmean, stats.mean());
  put_f32(p, kRms, stats.rms());
  put_i32(p, kIspg, volume ? 1 : 0);
  put_i32(p, kNsymbt, 0);
  put_i32(p, kNversion, 20140);
  std::memcpy(p + kMap, "MAP ", 4);
  p[kStamp] = 0x44;
  p[kStamp + 1] = 0x44;
  put_i32(p, kNlabl, 1);
  const char label[] = "Tessera MRC2014 writer";
  std::memcpy(p + kLabels, label, sizeof label - 1);
  return h;
}

// Writes n floats little-endian (swapping in chunks on a big-endian machine).
void write_floats_le(std::ostream& out, const float* v, std::size_t n) {
  if constexpr (!kHostBigEndian) {
    out.write(reinterpret_cast<const char*>(v), static_cast<std::streamsize>(n * sizeof(float)));
  } else {
    std::vector<std::uint32_t> buf;
    constexpr std::size_t kChunk = 1 << 16;
    for (std::size_t i = 0; i < n; i += kChunk) {
      const std::size_t k = std::min(kChunk, n - i);
      buf.resize(k);
      for (std::size_t j = 0; j < k; ++j) buf[j] = swap32(std::bit_cast<std::uint32_t>(v[i + j]));
      out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(k * 4));
    }
  }
}

// Flushes and closes the temporary file, then renames it to its final path.
void commit(std::ofstream& out, const fs::path& temp, const fs::path& final_path) {
  out.flush();
  if (!out) throw std::runtime_error(fmt::format("{}: writing failed (disk full?)", temp.string()));
  out.close();
  if (out.fail()) throw std::runtime_error(fmt::format("{}: closing failed", temp.string()));
  std::error_code ec;
  fs::rename(temp, final_path, ec);
  if (ec)
    throw std::runtime_error(fmt::format("cannot rename {} to {}: {}", temp.string(), final_path.string(),
                                         ec.message()));
}

void check_voxel(double voxel_A, const fs::path& path) {
  if (!(voxel_A > 0) || !std::isfinite(voxel_A))
    throw std::invalid_argument(fmt::format("{}: voxel size must be a positive number of Angstrom, got {}",
                                            path.string(), voxel_A));
}

}  // namespace

// ---------------------------------------------------------------- MrcInfo

std::size_t MrcInfo::section_bytes() const {
  return static_cast<std::size_t>(nx) * static_cast<std::size_t>(ny) * bytes_per_voxel;
}

std::uintmax_t MrcInfo::data_bytes() const { return std::uintmax_t{section_bytes()} * static_cast<std::uintmax_t>(nz); }

bool MrcInfo::is_stack() const { return ispg == 0 && nz > 1 && mz != nz; }

MrcInfo read_mrc_info(const fs::path& path) {
  MrcInfo in;
  in.path = path;
  const auto h = read_header_bytes(path, in.file_size);
  in.big_endian = header_is_big_endian(h.data());
  in.byte_swapped = in.big_endian != kHostBigEndian;
  parse_header(h.data(), in);
  check_header(h.data(), in);
  check_size(in);
  in.voxel_A = {voxel_size(in.cell_A[0], in.mx, in.nx), voxel_size(in.cell_A[1], in.my, in.ny),
                voxel_size(in.cell_A[2], in.mz, in.nz)};
  return in;
}

// ---------------------------------------------------------------- reading

MrcStackReader::MrcStackReader(const fs::path& path) : info_(read_mrc_info(path)) {
  in_.open(path, std::ios::binary);
  if (!in_) throw InputError(fmt::format("{}: cannot open for reading", path.string()));
}

RealGrid MrcStackReader::read(long index1) const {
  RealGrid image(info_.nx, info_.ny, 1);
  read_into(index1, image.data());
  return image;
}

void MrcStackReader::read_into(long index1, float* dst) const {
  const std::string name = info_.path.string();
  if (index1 < 1 || index1 > size())
    throw InputError(fmt::format("{}: image {} requested but the file has {} images (1-based)", name, index1, size()));
  const std::size_t bytes = info_.section_bytes();
  const std::uintmax_t offset = info_.data_offset + static_cast<std::uintmax_t>(index1 - 1) * bytes;
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(offset));
  const bool direct = info_.mode == 2 && !info_.byte_swapped;
  if (!direct) raw_.resize(bytes);
  char* target = direct ? reinterpret_cast<char*>(dst) : raw_.data();
  if (!in_.read(target, static_cast<std::streamsize>(bytes)))
    throw InputError(fmt::format("{}: cannot read image {} ({} bytes at offset {}): file changed or unreadable", name,
                                 index1, bytes, offset));
  if (!direct)
    decode(raw_.data(), static_cast<std::size_t>(info_.nx) * static_cast<std::size_t>(info_.ny), info_.mode,
           info_.byte_swapped, dst);
}

MrcMap read_mrc(const fs::path& path) {
  const MrcStackReader reader(path);
  const MrcInfo& in = reader.info();
  MrcMap map{RealGrid(in.nx, in.ny, in.nz), in.voxel_A[0], in};
  for (int z = 0; z < in.nz; ++z) reader.read_into(z + 1, map.data.section(z));
  return map;
}

// ---------------------------------------------------------------- statistics

void MrcStats::add(const float* values, std::size_t n) {
  if (n == 0) return;
  double sum = 0;
  float lo = values[0], hi = values[0];
  for (std::size_t i = 0; i < n; ++i) {
    sum += values[i];
    lo = std::min(lo, values[i]);
    hi = std::max(hi, values[i]);
  }
  const double mean_b = sum / static_cast<double>(n);
  double m2_b = 0;
  for (std::size_t i = 0; i < n; ++i) m2_b += (values[i] - mean_b) * (values[i] - mean_b);
  if (n_ == 0) {
    min_ = lo;
    max_ = hi;
  } else {
    min_ = std::min(min_, lo);
    max_ = std::max(max_, hi);
  }
  const double na = static_cast<double>(n_), nb = static_cast<double>(n), total = na + nb;
  const double delta = mean_b - mean_;
  mean_ += delta * nb / total;
  m2_ += m2_b + delta * delta * na * nb / total;
  n_ += static_cast<long long>(n);
}

double MrcStats::rms() const { return n_ > 0 ? std::sqrt(m2_ / static_cast<double>(n_)) : 0.0; }

// ---------------------------------------------------------------- writing

void write_mrc(const fs::path& path, const RealGrid& grid, double voxel_A, bool is_stack) {
  if (grid.empty())
    throw std::invalid_argument(fmt::format("{}: cannot write an empty grid", path.string()));
  check_voxel(voxel_A, path);
  MrcStats stats;
  stats.add(grid.data(), grid.size());
  const bool volume = grid.nz() > 1 && !is_stack;
  const auto header = build_header(grid.nx(), grid.ny(), grid.nz(), volume, voxel_A, stats);
  const fs::path temp = temp_path_for(path);
  std::ofstream out(temp, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(fmt::format("{}: cannot create file", temp.string()));
  try {
    out.write(reinterpret_cast<const char*>(header.data()), kHeaderBytes);
    write_floats_le(out, grid.data(), grid.size());
    commit(out, temp, path);
  } catch (...) {
    out.close();
    std::error_code ec;
    fs::remove(temp, ec);
    throw;
  }
}

MrcStackWriter::MrcStackWriter(const fs::path& path, int nx, int ny, double voxel_A)
    : path_(path), temp_path_(temp_path_for(path)), nx_(nx), ny_(ny), voxel_A_(voxel_A) {
  if (nx <= 0 || ny <= 0)
    throw std::invalid_argument(fmt::format("{}: image size must be positive, got {}x{}", path.string(), nx, ny));
  check_voxel(voxel_A, path);
  out_.open(temp_path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw std::runtime_error(fmt::format("{}: cannot create file", temp_path_.string()));
  const std::array<char, kHeaderBytes> placeholder{};  // replaced by finish(); a zero header reads as invalid
  if (!out_.write(placeholder.data(), kHeaderBytes)) {
    abandon();
    throw std::runtime_error(fmt::format("{}: writing failed", temp_path_.string()));
  }
}

MrcStackWriter::~MrcStackWriter() {
  if (!finished_) abandon();
}

void MrcStackWriter::abandon() noexcept {
  out_.close();
  std::error_code ec;
  fs::remove(temp_path_, ec);
}

void MrcStackWriter::append(const RealGrid& image) {
  if (image.nx() != nx_ || image.ny() != ny_ || image.nz() != 1)
    throw std::invalid_argument(fmt::format("{}: image of {}x{}x{} appended to a stack of {}x{} images",
                                            path_.string(), image.nx(), image.ny(), image.nz(), nx_, ny_));
  append(image.data());
}

void MrcStackWriter::append(const float* data) {
  if (finished_) throw std::logic_error(fmt::format("{}: append after finish()", path_.string()));
  const std::size_t n = static_cast<std::size_t>(nx_) * static_cast<std::size_t>(ny_);
  write_floats_le(out_, data, n);
  if (!out_) throw std::runtime_error(fmt::format("{}: writing image {} failed (disk full?)", temp_path_.string(),
                                                  count_ + 1));
  stats_.add(data, n);
  ++count_;
}

void MrcStackWriter::finish() {
  if (finished_) throw std::logic_error(fmt::format("{}: finish() called twice", path_.string()));
  if (count_ == 0) throw std::logic_error(fmt::format("{}: finish() on a stack with no images", path_.string()));
  if (count_ > std::numeric_limits<int>::max())
    throw std::runtime_error(fmt::format("{}: {} images do not fit an MRC header", path_.string(), count_));
  const auto header = build_header(nx_, ny_, static_cast<int>(count_), false, voxel_A_, stats_);
  out_.seekp(0);
  out_.write(reinterpret_cast<const char*>(header.data()), kHeaderBytes);
  commit(out_, temp_path_, path_);
  finished_ = true;
}

}  // namespace tessera
