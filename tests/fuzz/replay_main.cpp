// A plain main() for the fuzz harnesses: runs LLVMFuzzerTestOneInput once on
// every file of the folders (or files) given, so the seed corpus and the kept
// crash inputs run as an ordinary test in any build, without libFuzzer.
// A harness aborts on a bug; the file being run is printed first.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;  // absolute, as printed when run
  for (int i = 1; i < argc; ++i) {
    const fs::path arg = fs::absolute(argv[i]).lexically_normal();
    if (!fs::exists(arg)) {
      std::fprintf(stderr, "%s: no such file or folder\n", arg.c_str());
      return 1;
    }
    if (fs::is_directory(arg)) {
      for (const auto& e : fs::recursive_directory_iterator(arg))
        if (e.is_regular_file() && e.path().filename().string().front() != '.') files.push_back(e.path());
    } else {
      files.push_back(arg);
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::printf("%s\n", f.c_str());
    std::fflush(stdout);
    std::ifstream in(f, std::ios::binary);
    const std::vector<char> bytes{std::istreambuf_iterator<char>(in), {}};
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  }
  std::printf("%zu inputs passed\n", files.size());
  return files.empty() ? 1 : 0;
}
