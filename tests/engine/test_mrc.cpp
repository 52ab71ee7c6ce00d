// MRC2014 reading and writing.
//
// Oracles: (1) files built byte by byte in this test from the MRC2014 layout,
// with known values (independent of the library's writer); (2) the real maps in
// shared_data()/maps and the RELION particle stack, whose values were read with
// python3 + numpy from the raw bytes (np.fromfile(..., '<f4', offset=1024)) and
// agree with the table in shared_data()/scipion/README.md (read through Scipion).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "input_error.hpp"
#include "tessera/error.hpp"
#include "tessera/mrc.hpp"
#include "test_data.hpp"

namespace tessera {
namespace {
namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;
using test::input_error;

// ------------------------------------------------------------ helpers

class MrcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("tessera_test_mrc_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Names of the files in the test folder (to catch leftover temporaries).
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    return names;
  }
  fs::path dir_;
};

void put32(Bytes& b, std::size_t off, std::uint32_t v, bool big) {
  for (int i = 0; i < 4; ++i) b[off + (big ? 3 - i : i)] = static_cast<std::uint8_t>(v >> (8 * i));
}
void put_int(Bytes& b, std::size_t off, int v, bool big) { put32(b, off, std::bit_cast<std::uint32_t>(v), big); }
void put_float(Bytes& b, std::size_t off, float v, bool big) { put32(b, off, std::bit_cast<std::uint32_t>(v), big); }
std::uint32_t get32_le(const Bytes& b, std::size_t off) {
  return b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (std::uint32_t{b[off + 3]} << 24);
}

// A header written by hand from the MRC2014 word table.
struct RawSpec {
  int nx = 1, ny = 1, nz = 1, mode = 2;
  std::array<int, 3> m{-1, -1, -1};  // -1: same as n
  std::array<float, 3> cella{0, 0, 0};
  int ispg = 0, nsymbt = 0, nxstart = 0;
  bool big = false;
  std::array<std::uint8_t, 4> map{'M', 'A', 'P', ' '};
  std::optional<std::array<std::uint8_t, 4>> stamp;  // default: 44 44 00 00 or 11 11 00 00
};

Bytes raw_header(const RawSpec& s) {
  Bytes h(1024, 0);
  const int n[3] = {s.nx, s.ny, s.nz};
  for (std::size_t a = 0; a < 3; ++a) {
    put_int(h, 4 * a, n[a], s.big);
    put_int(h, 28 + 4 * a, s.m[a] < 0 ? n[a] : s.m[a], s.big);
    put_float(h, 40 + 4 * a, s.cella[a], s.big);
    put_float(h, 52 + 4 * a, 90.f, s.big);
    put_int(h, 64 + 4 * a, static_cast<int>(a) + 1, s.big);
  }
  put_int(h, 12, s.mode, s.big);
  put_int(h, 16, s.nxstart, s.big);
  put_int(h, 88, s.ispg, s.big);
  put_int(h, 92, s.nsymbt, s.big);
  std::memcpy(&h[208], s.map.data(), 4);
  const std::array<std::uint8_t, 4> stamp =
      s.stamp ? *s.stamp : (s.big ? std::array<std::uint8_t, 4>{0x11, 0x11, 0, 0}
                                  : std::array<std::uint8_t, 4>{0x44, 0x44, 0, 0});
  std::memcpy(&h[212], stamp.data(), 4);
  return h;
}

void write_bytes(const fs::path& p, const Bytes& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  ASSERT_TRUE(out.good());
}
Bytes read_bytes(const fs::path& p, std::size_t max_bytes = std::numeric_limits<std::size_t>::max()) {
  std::ifstream in(p, std::ios::binary);
  Bytes b(std::min<std::uintmax_t>(fs::file_size(p), max_bytes));
  in.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(b.size()));
  return b;
}

// Writes header + nsymbt bytes of 0xAB + payload.
void write_raw_mrc(const fs::path& p, const RawSpec& s, const Bytes& payload) {
  Bytes b = raw_header(s);
  b.insert(b.end(), static_cast<std::size_t>(s.nsymbt), 0xAB);
  b.insert(b.end(), payload.begin(), payload.end());
  write_bytes(p, b);
}

template <class T>
Bytes encode(const std::vector<T>& values, bool big) {
  Bytes out;
  for (T v : values) {
    std::uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // this machine's order; the tests run on little-endian hosts
    if (big) std::reverse(b, b + sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
  return out;
}

RealGrid pattern(int nx, int ny, int nz, float phase) {
  RealGrid g(nx, ny, nz);
  for (int z = 0; z < nz; ++z)
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x)
        g(x, y, z) = std::sin(0.3f * x + 0.7f * y + 1.1f * z + phase) * (1.0f + 0.01f * x) + 0.25f;
  return g;
}

struct Moments {
  double min, max, mean, rms;
};
Moments moments(const float* v, std::size_t n) {
  double sum = 0, lo = v[0], hi = v[0];
  for (std::size_t i = 0; i < n; ++i) {
    sum += v[i];
    lo = std::min<double>(lo, v[i]);
    hi = std::max<double>(hi, v[i]);
  }
  const double mean = sum / n;
  double ss = 0;
  for (std::size_t i = 0; i < n; ++i) ss += (v[i] - mean) * (v[i] - mean);
  return {lo, hi, mean, std::sqrt(ss / n)};
}

// Header statistics are stored as float32: relative rounding 6e-8, so 1e-6.
void expect_header_stats(const MrcInfo& in, const Moments& m) {
  EXPECT_EQ(in.dmin, m.min);
  EXPECT_EQ(in.dmax, m.max);
  EXPECT_NEAR(in.dmean, m.mean, 1e-6 * std::max(1.0, std::abs(m.mean)));
  EXPECT_NEAR(in.rms, m.rms, 1e-6 * std::max(1.0, m.rms));
}

// ------------------------------------------------------------ writing + reading back

TEST_F(MrcTest, VolumeRoundTripKeepsValuesAndHeader) {
  const RealGrid g = pattern(10, 12, 14, 0.5f);  // non-cubic: catches axis mix-ups
  const fs::path p = dir_ / "vol.mrc";
  write_mrc(p, g, 1.37);
  EXPECT_EQ(listing(), std::vector<std::string>{"vol.mrc"});  // no temporary left

  const MrcMap map = read_mrc(p);
  ASSERT_TRUE(map.data.same_shape(g));
  EXPECT_EQ(map.data.values(), g.values());  // mode 2 is lossless
  EXPECT_NEAR(map.voxel_A, 1.37, 1e-6);      // cella stored as float32: 13.7 +- 1e-6
  const MrcInfo& in = map.info;
  EXPECT_EQ(in.mode, 2);
  EXPECT_EQ((std::array{in.mx, in.my, in.mz}), (std::array{10, 12, 14}));
  for (double v : in.voxel_A) EXPECT_NEAR(v, 1.37, 1e-6);
  EXPECT_EQ(in.ispg, 1);
  EXPECT_FALSE(in.is_stack());
  EXPECT_EQ(in.nversion, 20140);
  EXPECT_EQ(in.nsymbt, 0);
  EXPECT_EQ(in.data_offset, 1024u);
  EXPECT_EQ((std::array{in.nxstart, in.nystart, in.nzstart}), (std::array{0, 0, 0}));
  EXPECT_FALSE(in.big_endian);
  expect_header_stats(in, moments(g.data(), g.size()));

  // The bytes themselves, decoded here without the library: little-endian, MAP, stamp.
  const Bytes b = read_bytes(p);
  ASSERT_EQ(b.size(), 1024u + 4u * g.size());
  EXPECT_EQ(get32_le(b, 0), 10u);
  EXPECT_EQ(get32_le(b, 12), 2u);
  EXPECT_EQ(std::string(b.begin() + 208, b.begin() + 212), "MAP ");
  EXPECT_EQ((Bytes(b.begin() + 212, b.begin() + 216)), (Bytes{0x44, 0x44, 0, 0}));
  EXPECT_EQ(std::bit_cast<float>(get32_le(b, 1024 + 4 * g.index(3, 2, 1))), g(3, 2, 1));
}

TEST_F(MrcTest, StackAndImageRoundTrip) {
  const RealGrid stack = pattern(8, 6, 5, -1.0f);
  const fs::path p = dir_ / "stack.mrcs";
  write_mrc(p, stack, 2.5, /*is_stack=*/true);
  const MrcStackReader reader(p);
  const MrcInfo& in = reader.info();
  EXPECT_EQ(reader.size(), 5);
  EXPECT_EQ(in.mz, 1);  // what RELION and Scipion take as "stack"
  EXPECT_EQ(in.ispg, 0);
  EXPECT_TRUE(in.is_stack());
  for (double v : in.voxel_A) EXPECT_NEAR(v, 2.5, 1e-6);  // cella z = mz * voxel
  for (long k = 1; k <= 5; ++k) {
    const RealGrid img = reader.read(k);
    ASSERT_EQ(img.nz(), 1);
    EXPECT_TRUE(std::equal(img.values().begin(), img.values().end(), stack.section(static_cast<int>(k) - 1)))
        << "image " << k;
  }
  EXPECT_THROW(reader.read(0), InputError);
  EXPECT_THROW(reader.read(6), InputError);

  const RealGrid image = pattern(7, 9, 1, 0.f);
  write_mrc(dir_ / "image.mrc", image, 1.0);
  const MrcMap m = read_mrc(dir_ / "image.mrc");
  EXPECT_EQ(m.data.values(), image.values());
  EXPECT_EQ(m.info.ispg, 0);
  EXPECT_EQ(m.info.mz, 1);
}

TEST_F(MrcTest, StackWriterStreamsAndRenamesAtFinish) {
  constexpr int kN = 64, kImages = 1000;
  const std::uintmax_t image_bytes = kN * kN * 4;
  const fs::path p = dir_ / "out.mrcs";
  MrcStats expected;
  {
    MrcStackWriter w(p, kN, kN, 3.0);
    EXPECT_EQ(w.temp_path(), fs::path(p.string() + ".tmp-" + std::to_string(::getpid())));
    for (int k = 1; k <= kImages; ++k) {
      const RealGrid img = pattern(kN, kN, 1, 0.01f * k);
      expected.add(img.data(), img.size());
      if (k % 2) w.append(img); else w.append(img.data());
      if (k == 600) {
        // Streaming: the images are on disk already (at most a small stream
        // buffer, here allowed 8 images = 128 KiB, is still in memory).
        EXPECT_GE(fs::file_size(w.temp_path()), 1024 + (600 - 8) * image_bytes);
        EXPECT_FALSE(fs::exists(p));  // nothing at the final path before finish()
      }
    }
    EXPECT_EQ(w.count(), kImages);
    w.finish();
    EXPECT_THROW(w.finish(), std::logic_error);
  }
  EXPECT_EQ(listing(), std::vector<std::string>{"out.mrcs"});
  const MrcStackReader r(p);
  EXPECT_EQ(r.size(), kImages);
  EXPECT_EQ(r.info().mz, 1);
  EXPECT_EQ(fs::file_size(p), 1024 + kImages * image_bytes);
  for (long k : {1L, 600L, 1000L}) EXPECT_EQ(r.read(k).values(), pattern(kN, kN, 1, 0.01f * k).values());
  // Header statistics over all images, against a plain two-pass computation.
  RealGrid all(kN, kN, kImages);
  for (int k = 1; k <= kImages; ++k) r.read_into(k, all.section(k - 1));
  expect_header_stats(r.info(), moments(all.data(), all.size()));
  EXPECT_NEAR(expected.rms(), r.info().rms, 1e-6);
}

TEST_F(MrcTest, AbandonedStackWriterLeavesNothing) {
  const fs::path p = dir_ / "abandoned.mrcs";
  {
    MrcStackWriter w(p, 16, 16, 1.0);
    for (int k = 0; k < 3; ++k) w.append(pattern(16, 16, 1, static_cast<float>(k)));
    EXPECT_TRUE(fs::exists(w.temp_path()));
  }  // destroyed without finish(), as when an exception unwinds a run
  EXPECT_TRUE(listing().empty());

  try {
    MrcStackWriter w(p, 16, 16, 1.0);
    w.append(pattern(16, 16, 1, 0));
    EXPECT_THROW(w.append(pattern(15, 16, 1, 0)), std::invalid_argument);
    throw std::runtime_error("interrupted");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(listing().empty());

  {
    MrcStackWriter w(p, 16, 16, 1.0);
    EXPECT_THROW(w.finish(), std::logic_error);  // no images: no file
  }
  EXPECT_TRUE(listing().empty());
}

// ------------------------------------------------------------ every mode, by hand

TEST_F(MrcTest, ReadsEveryModeInBothByteOrders) {
  for (const bool big : {false, true}) {
    SCOPED_TRACE(big ? "big-endian" : "little-endian");
    RawSpec s;
    s.nx = 3;
    s.ny = 2;
    s.big = big;
    s.cella = {6.f, 4.f, 1.f};  // 2 A/px in x and y

    s.mode = 0;  // int8 is signed in MRC2014
    write_raw_mrc(dir_ / "m0.mrc", s, Bytes{0x80, 0xff, 0x00, 0x01, 0x7f, 0x9c});
    EXPECT_EQ(read_mrc(dir_ / "m0.mrc").data.values(), (std::vector<float>{-128, -1, 0, 1, 127, -100}));

    s.mode = 1;
    write_raw_mrc(dir_ / "m1.mrc", s, encode<std::int16_t>({-32768, -2, 0, 3, 32767, 1234}, big));
    EXPECT_EQ(read_mrc(dir_ / "m1.mrc").data.values(), (std::vector<float>{-32768, -2, 0, 3, 32767, 1234}));

    s.mode = 6;
    write_raw_mrc(dir_ / "m6.mrc", s, encode<std::uint16_t>({0, 1, 40000, 65535, 32768, 7}, big));
    EXPECT_EQ(read_mrc(dir_ / "m6.mrc").data.values(), (std::vector<float>{0, 1, 40000, 65535, 32768, 7}));

    s.mode = 2;
    const std::vector<float> f{1.5f, -2.25f, 3.0e-5f, 1e30f, -0.f, 7.f};
    write_raw_mrc(dir_ / "m2.mrc", s, encode<float>(f, big));
    const MrcMap m2 = read_mrc(dir_ / "m2.mrc");
    EXPECT_EQ(m2.data.values(), f);
    EXPECT_EQ(m2.info.big_endian, big);
    EXPECT_DOUBLE_EQ(m2.voxel_A, 2.0);
    EXPECT_DOUBLE_EQ(m2.info.voxel_A[1], 2.0);

    // float16: the expected floats are numpy's np.array(bits, '<u2').view('<f2').
    s.nx = 4;
    s.ny = 3;
    s.mode = 12;
    write_raw_mrc(dir_ / "m12.mrc", s,
                  encode<std::uint16_t>({0x3C00, 0xC000, 0x3555, 0x7BFF, 0x0001, 0x8400, 0x03FF, 0x8000, 0x7C00,
                                         0xFC00, 0x7E00, 0x4A3D},
                                        big));
    const std::vector<float> h = read_mrc(dir_ / "m12.mrc").data.values();
    const std::vector<float> want{1.0f, -2.0f, 0.333251953125f, 65504.0f, 5.960464477539063e-08f,
                                  -6.103515625e-05f, 6.097555160522461e-05f, -0.0f};
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(h[i], want[i]) << "value " << i;
    EXPECT_TRUE(std::signbit(h[7]));  // -0 keeps its sign
    EXPECT_EQ(h[8], std::numeric_limits<float>::infinity());
    EXPECT_EQ(h[9], -std::numeric_limits<float>::infinity());
    EXPECT_TRUE(std::isnan(h[10]));
    EXPECT_EQ(h[11], 12.4765625f);
  }
}

TEST_F(MrcTest, ExtendedHeaderOldStyleHeaderAndVoxelFallbacks) {
  // Extended header of 96 bytes skipped; stack of 3 images read one at a time.
  RawSpec s;
  s.nx = 2;
  s.ny = 2;
  s.nz = 3;
  s.m = {2, 2, 1};
  s.mode = 1;
  s.nsymbt = 96;
  s.cella = {3.f, 3.f, 1.5f};
  write_raw_mrc(dir_ / "ext.mrcs", s, encode<std::int16_t>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, false));
  const MrcStackReader r(dir_ / "ext.mrcs");
  EXPECT_EQ(r.info().data_offset, 1120u);
  EXPECT_EQ(r.read(2).values(), (std::vector<float>{5, 6, 7, 8}));
  EXPECT_DOUBLE_EQ(r.info().voxel_A[2], 1.5);

  // Old style: map field and machine stamp zero, big-endian: the byte order
  // comes from the mode word. mx = 0 falls back to cella / nx; cella 0 gives 0.
  RawSpec old;
  old.nx = 4;
  old.big = true;
  old.mode = 2;
  old.map = {0, 0, 0, 0};
  old.stamp = std::array<std::uint8_t, 4>{0, 0, 0, 0};
  old.m = {0, 1, 1};
  old.cella = {10.f, 0.f, 0.f};
  write_raw_mrc(dir_ / "old.mrc", old, encode<float>({1.f, 2.f, -3.f, 4.5f}, true));
  const MrcMap m = read_mrc(dir_ / "old.mrc");
  EXPECT_TRUE(m.info.big_endian);
  EXPECT_EQ(m.data.values(), (std::vector<float>{1.f, 2.f, -3.f, 4.5f}));
  EXPECT_DOUBLE_EQ(m.voxel_A, 2.5);
  EXPECT_EQ(m.info.voxel_A[1], 0.0);
}

// ------------------------------------------------------------ bad input

TEST_F(MrcTest, BadFilesGiveOneLineInputErrors) {
  const fs::path missing = dir_ / "missing.mrc";
  EXPECT_EQ(input_error([&] { read_mrc_info(missing); }), missing.string() + ": no such file");

  const fs::path shortf = dir_ / "short.mrc";
  write_bytes(shortf, Bytes(500, 0));
  EXPECT_NE(input_error([&] { read_mrc(shortf); }).find(shortf.string() + ": not an MRC file: 500 bytes"),
            std::string::npos);

  const fs::path garbage = dir_ / "garbage.mrc";
  Bytes text;
  for (const std::string line = "This is not a map, just some text.\n"; text.size() < 4096;)
    text.insert(text.end(), line.begin(), line.end());
  write_bytes(garbage, text);
  const std::string g = input_error([&] { MrcStackReader r(garbage); });
  EXPECT_EQ(g.find(garbage.string() + ": not an MRC file: map field"), 0u) << g;

  RawSpec s;
  s.nx = 0;
  write_raw_mrc(dir_ / "dims.mrc", s, {});
  EXPECT_NE(input_error([&] { read_mrc(dir_ / "dims.mrc"); }).find("bad dimensions 0 x 1 x 1"), std::string::npos);

  s.nx = 1;
  s.mode = 4;  // complex float: not read
  write_raw_mrc(dir_ / "mode.mrc", s, Bytes(8, 0));
  EXPECT_NE(input_error([&] { read_mrc(dir_ / "mode.mrc"); }).find("unsupported MRC mode 4"), std::string::npos);

  for (const std::string& msg : {g, input_error([&] { read_mrc(missing); })})
    EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST_F(MrcTest, TruncatedStackNamesFileAndBothSizes) {
  const fs::path p = dir_ / "cut.mrcs";
  write_mrc(p, pattern(16, 16, 10, 0.f), 1.0, /*is_stack=*/true);
  fs::resize_file(p, 1024 + 5 * 1024 + 100);
  EXPECT_EQ(input_error([&] { MrcStackReader r(p); }),
            p.string() + ": truncated: header says 10 images of 16x16 mode 2 (11264 bytes) but the file has 6244 bytes");
}

// ------------------------------------------------------------ real files

struct MapCase {
  const char* file;
  int n;
  double voxel_A, voxel_tol;  // cella is float32: 174.2f / 100 differs from 1.742 by 3e-8
  int nxstart;
  std::array<double, 3> origin_A;
  std::array<std::array<int, 3>, 2> at;  // (x, y, z) of two voxels
  std::array<double, 2> value;           // numpy: d[z, y, x] of the '<f4' data
  double mean, max;                      // numpy: float64 mean, max of all voxels
};

// Values from python3 + numpy on the raw bytes. The means are sums of up to 1e6
// floats in double: the worst-case rounding difference between numpy's pairwise
// sum and a plain loop is N * 2^-53 * max|v| < 5e-9 (EMD-5168), so 1e-8.
const MapCase kMaps[] = {
    {"EMD-3197_20px_nxstart-2.map", 20, 11.4, 1e-9, -2, {0, 0, 0}, {{{3, 5, 7}, {18, 1, 11}}},
     {3.507937431335449, -1.1660393476486206}, 0.7836120336436434, 5.576736927032471},
    {"EMD-5168_100px.map", 100, 1.742, 1e-6, -50, {0, 0, 0}, {{{3, 5, 7}, {50, 50, 50}}},
     {-4.356888771057129, -7.083773136138916}, 0.46130137602783877, 41.873443603515625},
    {"1AKE_A_10A_22px.mrc", 22, 3.0, 1e-9, 0, {-6.494, 13.381, -5.41}, {{{11, 11, 11}, {3, 5, 7}}},
     {0.39599937200546265, 0.00017371952708344907}, 0.0379135235316707, 0.48366108536720276},
    {"relion_tests_ref_model_100px.mrc", 100, 3.54, 1e-6, 0, {-3.54, -3.54, -3.54}, {{{50, 50, 50}, {98, 1, 51}}},
     {0.0003881906741298735, -6.87136036958691e-07}, 1.3283128236030572e-05, 0.0010828839149326086},
    {"hand_64px_chiral.mrc", 64, 1.0, 1e-9, 0, {0, 0, 0}, {{{32, 32, 32}, {62, 1, 33}}},
     {0.2685950994491577, -0.004096537828445435}, 0.0010292882669887468, 6.130610466003418},
};

TEST(MrcRealData, SharedMapsMatchNumpy) {
  const auto root = test::shared_data();
  if (!root) GTEST_SKIP() << "shared test data not present";
  for (const MapCase& c : kMaps) {
    SCOPED_TRACE(c.file);
    const MrcMap m = read_mrc(*root / "maps" / c.file);
    EXPECT_EQ((std::array{m.data.nx(), m.data.ny(), m.data.nz()}), (std::array{c.n, c.n, c.n}));
    EXPECT_NEAR(m.voxel_A, c.voxel_A, c.voxel_tol);
    EXPECT_NEAR(m.info.voxel_A[2], c.voxel_A, c.voxel_tol);
    EXPECT_EQ(m.info.nxstart, c.nxstart);
    for (std::size_t a = 0; a < 3; ++a) EXPECT_NEAR(m.info.origin_A[a], c.origin_A[a], 1e-5);  // float32 text
    EXPECT_FALSE(m.info.big_endian);  // 1AKE's stamp is 00 00 44 44: decided by the mode word
    for (std::size_t i = 0; i < 2; ++i)
      EXPECT_EQ(m.data(c.at[i][0], c.at[i][1], c.at[i][2]), static_cast<float>(c.value[i]));
    double sum = 0;
    for (float v : m.data.values()) sum += v;
    EXPECT_NEAR(sum / static_cast<double>(m.data.size()), c.mean, 1e-8);
    EXPECT_EQ(*std::max_element(m.data.values().begin(), m.data.values().end()), static_cast<float>(c.max));
  }
}

TEST(MrcRealData, RelionParticleStackImages) {
  const auto root = test::shared_data();
  if (!root) GTEST_SKIP() << "shared test data not present";
  const MrcStackReader r(*root / "relion_7DDO" / "Particles" / "particles.mrcs");
  EXPECT_EQ(r.size(), 1000);
  EXPECT_EQ(r.info().nx, 64);
  EXPECT_TRUE(r.info().is_stack());
  EXPECT_DOUBLE_EQ(r.info().voxel_A[0], 3.0);
  // scipion/README.md table: px[y=0,x=0], px[y=0,x=1], px[y=32,x=32], mean
  // (image 1000 from numpy). The pixels are float32 printed exactly: equality.
  // Means: 4096 floats summed in double, rounding < 4096 * 2^-53 * 5 < 3e-12.
  struct Row {
    long k;
    double p00, p01, p3232, mean;
  };
  const Row rows[] = {
      {1, 0.9227538108825684, 2.031911611557007, 1.7298014163970947, 0.040392809407851615},
      {2, 1.6453384160995483, 1.5763218402862549, -1.6246048212051392, 0.026947789966406788},
      {3, -0.08243372291326523, 0.34425967931747437, 1.3659005165100098, 0.015245928220505078},
      {100, 0.27694377303123474, -1.264591097831726, 1.3287664651870728, 0.023213502701224797},
      {1000, -1.0996227264404297, -1.3178426027297974, -2.22967791557312, 0.00368401598566237},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.k);
    const RealGrid img = r.read(row.k);
    EXPECT_EQ(img(0, 0), static_cast<float>(row.p00));
    EXPECT_EQ(img(1, 0), static_cast<float>(row.p01));
    EXPECT_EQ(img(32, 32), static_cast<float>(row.p3232));
    double sum = 0;
    for (float v : img.values()) sum += v;
    EXPECT_NEAR(sum / 4096.0, row.mean, 1e-11);
  }
}

TEST_F(MrcTest, TruncatedRealStack) {
  const auto root = test::shared_data();
  if (!root) GTEST_SKIP() << "shared test data not present";
  const Bytes head = read_bytes(*root / "relion_7DDO" / "Particles" / "particles.mrcs", 20000);
  ASSERT_EQ(head.size(), 20000u);
  const fs::path p = dir_ / "particles.mrcs";
  write_bytes(p, head);
  EXPECT_EQ(input_error([&] { read_mrc(p); }),
            p.string() + ": truncated: header says 1000 images of 64x64 mode 2 (16385024 bytes) but the file has "
                         "20000 bytes");
}

}  // namespace
}  // namespace tessera
