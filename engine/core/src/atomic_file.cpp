#include "tessera/atomic_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <system_error>

namespace tessera {

namespace {

void sync_file(const std::filesystem::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot open '" + p.string() + "' to sync it");
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) throw std::system_error(error, std::generic_category(), "cannot sync '" + p.string() + "'");
}

}  // namespace

void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(const std::filesystem::path& tmp)>& write) {
  if (path.filename().empty())
    throw std::invalid_argument("write_file_atomically: '" + path.string() + "' is not a file name");
  std::random_device entropy;
  const std::filesystem::path tmp =
      path.parent_path() / fmt::format(".tmp-{}-{:08x}-{}", ::getpid(), entropy(), path.filename().string());
  try {
    write(tmp);
    if (!std::filesystem::is_regular_file(tmp))
      throw std::logic_error("write_file_atomically: the writer did not create '" + tmp.string() + "'");
    sync_file(tmp);
    std::filesystem::rename(tmp, path);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
}

void write_file_atomically(const std::filesystem::path& path, std::string_view content) {
  write_file_atomically(path, [&](const std::filesystem::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(fmt::format("{}: cannot create: {}", tmp.string(), std::strerror(errno)));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    if (out.fail()) throw std::runtime_error(fmt::format("{}: write failed", tmp.string()));
  });
}

}  // namespace tessera
