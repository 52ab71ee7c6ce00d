// libFuzzer harness for the MRC reader (engine/io/src/mrc.cpp).
//
// Feeds: the input bytes as an MRC file (1024-byte header, extended header,
// data; any mode, either byte order, image, stack or volume) to read_mrc_info,
// MrcStackReader (first and last image, and one past the last) and read_mrc.
// Failure: any exception other than tessera::InputError, an InputError that is
// not one line naming the file, a map whose shape differs from its header, an
// out-of-range image that reads, a crash or sanitizer report, a hang, or an
// allocation beyond the file's size (a header claiming 10^12 voxels must be
// refused before allocating; fuzz.sh runs with -malloc_limit_mb).
#include <cstddef>
#include <cstdint>

#include "fuzz_util.hpp"
#include "tessera/mrc.hpp"

namespace {

void read_everything(const std::filesystem::path& path) {
  using namespace tessera;
  const MrcStackReader reader(path);
  const MrcInfo& info = reader.info();
  if (info.data_bytes() + info.data_offset > info.file_size) fuzz::bug("header accepted beyond the file's end");
  reader.read(1);
  reader.read(reader.size());
  if (fuzz::expect_clean(path.string(), [&] { reader.read(reader.size() + 1); }))
    fuzz::bug("image size() + 1 was read");
  const MrcMap map = read_mrc(path);
  if (map.data.nx() != info.nx || map.data.ny() != info.ny || map.data.nz() != info.nz)
    fuzz::bug("read_mrc's grid differs from the header");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path path = tessera::fuzz::write_input("input.mrc", data, size);
  tessera::fuzz::expect_clean(path.string(), [&] { read_everything(path); });
  return 0;
}
