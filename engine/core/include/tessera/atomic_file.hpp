#pragma once
/// Writing a whole file atomically: readers see either the old file or the
/// complete new one, never a half-written one, and an interrupted run leaves
/// no file that looks finished.
#include <filesystem>
#include <functional>
#include <string_view>

namespace tessera {

/// Calls write(tmp) to create a temporary file in path's folder
/// (".tmp-<pid>-<random>-<file name>": the extension is kept, and the run
/// folder's clean-up finds it by ".tmp-"), flushes it to disk and renames it
/// over `path` (replacing a file already there). If `write` throws, or does
/// not create the file, the temporary file is removed, `path` is left as it
/// was, and the exception propagates (std::logic_error when nothing was
/// created; std::invalid_argument when `path` names no file).
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(const std::filesystem::path& tmp)>& write);

/// write_file_atomically of `content`, byte for byte (std::runtime_error naming
/// the temporary file when it cannot be written).
void write_file_atomically(const std::filesystem::path& path, std::string_view content);

}  // namespace tessera
