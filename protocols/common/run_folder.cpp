#include "common/run_folder.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/run_files.hpp"

namespace tessera::protocol {

namespace fs = std::filesystem;
namespace manifest = run_files::manifest;
namespace input_key = run_files::manifest::input_key;

namespace {

// Parameters that may differ between a run and its continuation: how it runs, not what it computes.
const std::set<std::string, std::less<>> kRunControl = {"out",     "threads", "gpu",  "continue",
                                                        "verbose", "quiet",   "overwrite"};

bool inside(const fs::path& file, const fs::path& dir) {
  std::error_code ec;
  const fs::path f = fs::weakly_canonical(fs::absolute(file, ec), ec);
  const fs::path d = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  const fs::path rel = f.lexically_relative(d);
  return !rel.empty() && *rel.begin() != "..";
}

std::string fnv1a64(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot be read", file.string()));
  std::uint64_t h = 14695981039346656037ull;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      h ^= static_cast<unsigned char>(buffer[static_cast<std::size_t>(i)]);
      h *= 1099511628211ull;
    }
  }
  return fmt::format("{:016x}", h);
}

// The folder's entries other than the lock file, at most `limit` of them.
std::vector<std::string> contents(const fs::path& dir, std::size_t limit) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename() == kLockFileName) continue;
    names.push_back(e.path().filename().string());
    if (names.size() >= limit) break;
  }
  return names;
}

Json read_manifest(const fs::path& dir) {
  std::ifstream in(dir / manifest::kName);
  if (!in) return nullptr;
  try {
    Json j;
    in >> j;
    return j.is_object() ? j : Json(nullptr);
  } catch (const std::exception&) {
    return nullptr;
  }
}

std::string value_text(const Json& j) { return j.is_null() ? "not set" : j.dump(); }

void check_continuation(const Schema& schema, const Values& values, const fs::path& out, const Json& recorded_run) {
  const Json& before = recorded_run.contains(manifest::key::parameters) ? recorded_run[manifest::key::parameters]
                                                                        : Json(nullptr);
  const Json& now = values.to_json();
  std::set<std::string> names;
  for (const Param& p : schema.params)
    if (!p.may_change_on_continue) names.insert(p.name);
  for (const Param& p : common_params(schema)) names.insert(p.name);
  std::vector<std::string> changed;
  for (const std::string& name : names) {
    if (kRunControl.count(name)) continue;
    const Json a = before.is_object() && before.contains(name) ? before[name] : Json(nullptr);
    const Json b = now.contains(name) ? now[name] : Json(nullptr);
    if (a != b) changed.push_back(fmt::format("{} was {}, now {}", name, value_text(a), value_text(b)));
  }
  const Json recorded =
      recorded_run.contains(manifest::key::inputs) ? recorded_run[manifest::key::inputs] : Json::object();
  const Json current = input_fingerprints(values);
  for (const Input& in : schema.inputs) {
    const bool had = recorded.contains(in.name), has = current.contains(in.name);
    if (!had && !has) continue;
    if (had != has) {
      changed.push_back(fmt::format("input {} was {}, now {}", in.name,
                                    had ? recorded[in.name].value(input_key::path, "?") : "not given",
                                    has ? current[in.name].value(input_key::path, "?") : "not given"));
    } else if (recorded[in.name].value(input_key::fnv1a64, "") != current[in.name].value(input_key::fnv1a64, "")) {
      changed.push_back(fmt::format("input {} ({}) is not the file the run started with", in.name,
                                    current[in.name].value(input_key::path, "?")));
    }
  }
  if (!changed.empty())
    throw InputError(fmt::format("--continue: the run in {} was started with other values: {}; continue it with "
                                 "the same ones, or start a new run",
                                 out.string(), fmt::join(changed, "; ")));
}

}  // namespace

Json input_fingerprints(const Values& values) {
  Json j = Json::object();
  for (const auto& [name, path] : values.given_inputs()) {
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    j[name] = {{input_key::path, fs::absolute(path).lexically_normal().string()},
               {input_key::size, ec ? Json(nullptr) : Json(size)},
               {input_key::fnv1a64, fnv1a64(path)}};
  }
  return j;
}

void check_run_folder(const Schema& schema, const Values& values) {
  const RunOptions& run = values.run();
  const fs::path& out = run.out;
  for (const auto& [name, path] : values.given_inputs())
    if (inside(path, out))
      throw InputError(fmt::format("--out {}: the input {} ({}) lies inside it, and a run never writes where it "
                                   "reads; choose another output folder",
                                   out.string(), name, path.string()));
  std::error_code ec;
  const bool exists = fs::exists(out, ec);
  if (exists && !fs::is_directory(out, ec))
    throw InputError(fmt::format("--out {}: exists and is not a folder", out.string()));
  const std::vector<std::string> names = exists ? contents(out, 3) : std::vector<std::string>{};
  if (names.empty()) {
    if (run.resume)
      throw InputError(fmt::format("--continue: {} holds no run to continue ({})", out.string(),
                                   exists ? "the folder is empty" : "the folder does not exist"));
    return;
  }
  const Json recorded_run = read_manifest(out);
  const bool own_run = recorded_run.is_object() && recorded_run.value(manifest::key::program, "") == schema.name;
  if (!own_run)
    throw InputError(fmt::format("--out {}: the folder holds other files ({}{}) and no run of {}; Tessera writes "
                                 "only into a new or empty folder, or into its own run's with --continue or "
                                 "--overwrite",
                                 out.string(), fmt::join(names, ", "), names.size() >= 3 ? ", ..." : "",
                                 schema.name));
  if (run.resume) {
    check_continuation(schema, values, out, recorded_run);
    return;
  }
  if (!run.overwrite)
    throw InputError(fmt::format("--out {}: holds a run of {} already; give --continue to resume it, --overwrite "
                                 "to replace it, or another folder",
                                 out.string(), schema.name));
}

RunFolderLock::RunFolderLock(const fs::path& dir) {
  const fs::path file = dir / kLockFileName;
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw InputError(fmt::format("--out {}: cannot create the lock file {}: {}", dir.string(), kLockFileName,
                                 std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    fd_ = -1;
    throw InputError(fmt::format("--out {}: another run is writing into this folder now; wait for it to end "
                                 "or choose another folder",
                                 dir.string()));
  }
  const std::string pid = fmt::format("{}\n", static_cast<long>(::getpid()));
  if (::ftruncate(fd_, 0) == 0 && ::write(fd_, pid.data(), pid.size()) < 0) {
    // The pid in the lock file is informative only.
  }
}

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays (removing it would race)
}

void remove_temporaries(const fs::path& dir) noexcept {
  std::error_code ec;
  std::vector<fs::path> doomed;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->path().filename().string().find(".tmp-") != std::string::npos) doomed.push_back(it->path());
  for (const fs::path& p : doomed) fs::remove_all(p, ec);
}

void clear_run_folder(const fs::path& dir) {
  std::vector<fs::path> doomed;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename() != kLockFileName) doomed.push_back(e.path());
  for (const fs::path& p : doomed) fs::remove_all(p);
}

namespace {

std::mutex g_interrupt_mutex;
std::function<void(int)> g_interrupt_handler;  // process-wide, like the signals it answers

sigset_t interrupt_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void handle_interrupts() {
  static std::once_flag once;
  const sigset_t set = interrupt_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::call_once(once, [set] {
    std::thread([set] {
      for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        {
          const std::lock_guard lock(g_interrupt_mutex);
          if (g_interrupt_handler) g_interrupt_handler(sig);
        }
        std::_Exit(128 + sig);
      }
    }).detach();
  });
}

void on_interrupt(std::function<void(int)> handler) {
  const std::lock_guard lock(g_interrupt_mutex);
  g_interrupt_handler = std::move(handler);
}

}  // namespace tessera::protocol
