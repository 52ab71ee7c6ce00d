#pragma once
// Where the real-world test data (../shared/data) lives, if it is present.
// Tests that need it call GTEST_SKIP() when this returns nothing.
#include <cstdlib>
#include <filesystem>
#include <optional>

namespace tessera::test {

inline std::optional<std::filesystem::path> shared_data() {
  if (const char* env = std::getenv("TESSERA_SHARED_DATA")) {
    if (std::filesystem::is_directory(env)) return std::filesystem::path(env);
    return std::nullopt;
  }
#ifdef TESSERA_SHARED_DATA_DIR
  const std::filesystem::path p(TESSERA_SHARED_DATA_DIR);
  if (std::filesystem::is_directory(p)) return p;
#endif
  return std::nullopt;
}

}  // namespace tessera::test
