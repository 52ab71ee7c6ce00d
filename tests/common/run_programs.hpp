#pragma once
// Running built programs from a test: a temporary folder removed at the end,
// files read and written whole, and a command's exit code, stdout and stderr.
// Shared by the program, viewer, protocol-framework and STAR tests.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace tessera::test {

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  if (!(f << text)) throw std::runtime_error("cannot write " + p.string());
}

/// A fresh folder under the system temporary folder, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tessera-test-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  /// Writes `text` to the file `name` in this folder and returns its path.
  std::filesystem::path write(const std::string& name, const std::string& text) const {
    write_text(path_ / name, text);
    return path_ / name;
  }

 private:
  std::filesystem::path path_;
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

/// Runs `command` (a shell command line, already quoted) with stdout and
/// stderr captured in the files last.stdout and last.stderr in `dir`.
inline RunResult run_command(const std::filesystem::path& dir, const std::string& command) {
  const auto out = dir / "last.stdout", err = dir / "last.stderr";
  const int status =
      std::system((command + " >" + shell_quote(out.string()) + " 2>" + shell_quote(err.string())).c_str());
  RunResult r;
  r.exit_code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

/// Runs `exe` with `args` after `env` (e.g. "QT_QPA_PLATFORM=offscreen" or
/// "env -u DISPLAY"); stdout and stderr are captured in files in `tmp`.
inline RunResult run_exe(const TempDir& tmp, const std::filesystem::path& exe, const std::vector<std::string>& args,
                         const std::string& env = "") {
  std::string cmd = env.empty() ? "" : env + " ";
  cmd += shell_quote(exe.string());
  for (const auto& a : args) cmd += " " + shell_quote(a);
  return run_command(tmp.path(), cmd);
}

/// Runs the built protocols/tessera_<program> with `args`.
inline RunResult run_program(const TempDir& tmp, const std::string& program, const std::vector<std::string>& args) {
  return run_exe(tmp, std::filesystem::path(TESSERA_BINARY_DIR) / "protocols" / ("tessera_" + program), args);
}

/// Whether `program` is found on the PATH.
inline bool on_path(const std::string& program) {
  return std::system(("command -v " + shell_quote(program) + " >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace tessera::test
