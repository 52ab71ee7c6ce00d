#pragma once
// What the fuzz harnesses share: a per-process scratch folder where the input
// bytes become a file (the readers take paths), and the rule for outcomes.
//
// Outcomes: a reader may succeed or throw tessera::InputError whose message is
// one line (and, for file readers, names the file). Anything else thrown is a
// bug: it is printed and the process aborts, which libFuzzer reports as a crash
// (and the plain replay driver as a failed test). With TESSERA_FUZZ_VERBOSE set,
// every InputError is printed too.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>

#include "run_programs.hpp"
#include "tessera/error.hpp"

namespace tessera::fuzz {

/// A folder under the system temporary folder ($TMPDIR), made once per process, removed at exit.
inline const std::filesystem::path& scratch_dir() {
  static const test::TempDir dir;
  return dir.path();
}

[[noreturn]] inline void bug(const std::string& what) {
  std::fprintf(stderr, "FUZZ BUG: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

/// Writes the input bytes to `name` (a relative path) in the scratch folder and returns its path.
inline std::filesystem::path write_input(const std::string& name, const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path path = scratch_dir() / name;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) bug("cannot write " + path.string());
  return path;
}

/// Runs f; returns false when it threw InputError (checked: one line, naming
/// `file` unless that is empty), true when it succeeded; aborts on anything else.
template <class F>
bool expect_clean(const std::string& file, F&& f) {
  try {
    f();
    return true;
  } catch (const InputError& e) {
    const std::string_view message = e.what();
    if (std::getenv("TESSERA_FUZZ_VERBOSE")) std::fprintf(stderr, "InputError: %s\n", e.what());
    if (message.find('\n') != std::string_view::npos)
      bug("InputError message is not one line: " + std::string(message));
    if (!file.empty() && message.find(file) == std::string_view::npos)
      bug("InputError message does not name " + file + ": " + std::string(message));
    return false;
  } catch (const std::exception& e) {
    bug(std::string(typeid(e).name()) + " thrown (not an InputError): " + e.what());
  }
}

}  // namespace tessera::fuzz
