#include "tessera/atomic_file.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <system_error>

namespace tessera {

void write_file_atomically(const std::filesystem::path& path, std::string_view content) {
  std::random_device entropy;
  const std::filesystem::path temp =
      path.parent_path() / fmt::format(".{}.tmp-{}-{:08x}", path.filename().string(), ::getpid(), entropy());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(fmt::format("{}: cannot create: {}", temp.string(), std::strerror(errno)));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    if (out.fail()) {
      std::error_code ignored;
      std::filesystem::remove(temp, ignored);
      throw std::runtime_error(fmt::format("{}: write failed", temp.string()));
    }
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    throw std::runtime_error(fmt::format("{}: cannot rename {} to it: {}", path.string(), temp.string(), ec.message()));
  }
}

}  // namespace tessera
