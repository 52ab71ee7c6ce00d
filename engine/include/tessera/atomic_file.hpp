#pragma once
/// Writing a whole file atomically: readers see either the old file or the
/// complete new one, never a half-written one, and an interrupted run leaves
/// no file that looks finished.
#include <filesystem>
#include <string_view>

namespace tessera {

/// Writes `content` to a temporary file in path's folder (".<name>.tmp-<pid>-<random>"),
/// then renames it over `path` (replacing a file already there). Throws
/// std::runtime_error naming the file when writing or renaming fails; the
/// temporary file is removed.
void write_file_atomically(const std::filesystem::path& path, std::string_view content);

}  // namespace tessera
