#include "common/run_context.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <ctime>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

#include "tessera/atomic_file.hpp"
#include "tessera/error.hpp"
#include "tessera/run_files.hpp"

namespace tessera::protocol {

namespace fs = std::filesystem;
namespace manifest = run_files::manifest;
namespace run_log = run_files::run_log;

namespace {


// "2024-05-01T12:00:00.123Z"
std::string iso_time(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  if (!gmtime_r(&seconds, &tm)) throw std::runtime_error("gmtime_r failed");
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

// "00:01:23" (hours may pass 24).
std::string clock_text(double s) {
  const long t = std::lround(std::max(s, 0.0));
  return fmt::format("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
}

// "45s", "2m 10s", "3h 05m".
std::string duration_text(double s) {
  const long t = std::lround(std::max(s, 0.0));
  if (t < 60) return fmt::format("{}s", t);
  if (t < 3600) return fmt::format("{}m {:02}s", t / 60, t % 60);
  return fmt::format("{}h {:02}m", t / 3600, t / 60 % 60);
}

double round_ms(double s) { return std::round(s * 1000.0) / 1000.0; }

std::string dump(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);  // never throws on bad UTF-8
}

}  // namespace

void atomic_write(const fs::path& path, const std::function<void(const fs::path& tmp)>& write) {
  write_file_atomically(path, write);
}

void atomic_write_text(const fs::path& path, std::string_view text) { write_file_atomically(path, text); }

RunContext::RunContext(const Schema& schema, const Values& values, std::ostream& human)
    : program_(schema.name),
      version_(schema.version),
      declared_(schema.outputs),
      parameters_(values.to_json()),
      ignored_(values.ignored()),
      options_(values.run()),
      human_(human),
      start_(Clock::now()),
      started_at_(std::chrono::system_clock::now()),
      values_(&values) {}

RunContext::~RunContext() {
  if (started_) on_interrupt({});
}

void RunContext::start() {
  const std::lock_guard lock(mutex_);
  if (started_ || follower_) return;
  inputs_ = input_fingerprints(*values_);  // before the folder exists: reading may still fail cleanly
  std::error_code ec;
  fs::create_directories(options_.out, ec);
  if (ec)
    throw InputError(fmt::format("--out {}: cannot create the folder: {}", options_.out.string(), ec.message()));
  lock_ = std::make_unique<RunFolderLock>(options_.out);
  remove_temporaries(options_.out);
  if (options_.overwrite) clear_run_folder(options_.out);
  const fs::path log_path = options_.out / run_log::kName;
  log_.open(log_path, options_.resume ? std::ios::app : std::ios::trunc);
  if (!log_) throw std::runtime_error("cannot write '" + log_path.string() + "'");
  started_ = true;
  on_interrupt([this](int sig) {
    const std::lock_guard interrupted(mutex_);
    fail_locked(fmt::format("interrupted by {}", sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP"),
                128 + sig);
  });
  write_event(run_log::event::start, {{run_log::key::program, program_},
                                      {run_log::key::version, version_},
                                      {run_log::key::parameters, parameters_}});
  for (Json& e : pending_) log_ << dump(e) << '\n';
  log_ << std::flush;
  pending_.clear();
  say(LogLevel::Normal, fmt::format("{} {}: writing to {}", program_, version_, options_.out.string()));
  for (const std::string& line : ignored_) log(LogLevel::Quiet, run_log::level::warning, line);
  write_manifest(manifest::status::running, nullptr, nullptr, false);
}

double RunContext::elapsed_s() const {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

void RunContext::write_event(std::string_view type, const Json& fields) {
  if (!fields.is_object()) throw std::logic_error("RunContext::event: fields must be a JSON object");
  Json j{{run_log::key::time, iso_time(std::chrono::system_clock::now())},
         {run_log::key::elapsed_s, round_ms(elapsed_s())},
         {run_log::key::event, type}};
  for (const auto& [key, value] : fields.items())
    if (!j.contains(key)) j[key] = value;
  if (!started_) {
    pending_.push_back(std::move(j));
    return;
  }
  log_ << dump(j) << '\n' << std::flush;
  if (!log_)
    throw std::runtime_error(fmt::format("cannot write {} in '{}'", run_log::kName, options_.out.string()));
}

// Prints a human line if `level` is shown at the run's log level.
void RunContext::say(LogLevel level, std::string_view line) {
  if (static_cast<int>(level) > static_cast<int>(options_.log_level)) return;
  human_ << '[' << clock_text(elapsed_s()) << "] " << line << std::endl;
}

// Quiet: warnings; Normal: info; Verbose: debug.
void RunContext::log(LogLevel level, std::string_view level_name, std::string_view message) {
  if (level == LogLevel::Verbose && options_.log_level != LogLevel::Verbose) return;
  write_event(run_log::event::log, {{run_log::key::level, level_name}, {run_log::key::message, message}});
  say(level, level == LogLevel::Quiet ? "WARNING: " + std::string(message) : std::string(message));
}

void RunContext::debug(std::string_view m) {
  const std::lock_guard lock(mutex_);
  log(LogLevel::Verbose, run_log::level::debug, m);
}

void RunContext::info(std::string_view m) {
  const std::lock_guard lock(mutex_);
  log(LogLevel::Normal, run_log::level::info, m);
}

void RunContext::warn(std::string_view m) {
  const std::lock_guard lock(mutex_);
  log(LogLevel::Quiet, run_log::level::warning, m);
}

void RunContext::event(std::string_view type, const Json& fields, std::string_view human) {
  const std::lock_guard lock(mutex_);
  write_event(type, fields);
  if (!human.empty()) say(LogLevel::Normal, human);
}

void RunContext::progress(std::string_view task, long done, long total) {
  if (total <= 0) throw std::invalid_argument(fmt::format("progress({}): total must be > 0", task));
  const std::lock_guard lock(mutex_);
  const Clock::time_point now = Clock::now();
  auto [it, fresh] = tasks_.try_emplace(std::string(task), Task{now, now, done});
  Task& t = it->second;
  const bool last = done >= total;
  if (!fresh && !last && now - t.last_report < std::chrono::seconds(1)) return;
  t.last_report = now;
  std::optional<double> eta_s;
  if (last) eta_s = 0.0;
  else if (done > t.first_done)
    eta_s = std::chrono::duration<double>(now - t.start).count() * static_cast<double>(total - done) /
            static_cast<double>(done - t.first_done);
  write_event(run_log::event::progress, {{run_log::key::task, task},
                                         {run_log::key::done, done},
                                         {run_log::key::total, total},
                                         {run_log::key::eta_s, eta_s ? Json(round_ms(*eta_s)) : Json(nullptr)}});
  const double percent = 100.0 * static_cast<double>(done) / static_cast<double>(total);
  say(LogLevel::Normal, fmt::format("{} {}/{} ({:.0f}%){}", task, done, total, percent,
                                    eta_s && !last ? ", about " + duration_text(*eta_s) + " left" : ""));
  if (last) tasks_.erase(it);
}

void RunContext::add_output(std::string_view name, const fs::path& file, const Json& extra) {
  const auto decl =
      std::find_if(declared_.begin(), declared_.end(), [&](const Output& o) { return o.name == name; });
  if (decl == declared_.end())
    throw std::logic_error(fmt::format("{}: output '{}' is not declared in the schema", program_, name));
  if (!started_)
    throw std::logic_error(fmt::format("{}: output '{}' registered before RunContext::start()", program_, name));
  const fs::path full = file.is_absolute() ? file : options_.out / file;
  if (!fs::is_regular_file(full))
    throw std::logic_error(fmt::format("{}: output '{}': '{}' is not a file", program_, name, full.string()));
  const fs::path relative = fs::weakly_canonical(full).lexically_relative(fs::weakly_canonical(options_.out));
  if (relative.empty() || *relative.begin() == "..")
    throw std::logic_error(
        fmt::format("{}: output '{}': '{}' is outside the output folder", program_, name, full.string()));
  Json entry{{manifest::output_key::name, name},
             {manifest::output_key::type, to_string(decl->kind)},
             {manifest::output_key::path, relative.generic_string()}};
  if (!extra.is_object()) throw std::logic_error("RunContext::add_output: extra must be a JSON object");
  for (const auto& [key, value] : extra.items()) {
    if (entry.contains(key))
      throw std::logic_error(
          fmt::format("{}: output '{}': extra field '{}' is reserved", program_, name, key));
    entry[key] = value;
  }
  const std::lock_guard lock(mutex_);
  auto same = std::find_if(outputs_.begin(), outputs_.end(),
                           [&](const Json& o) { return o[manifest::output_key::name] == name; });
  if (same != outputs_.end()) *same = entry;
  else outputs_.push_back(entry);
  write_event(run_log::event::output, {{run_log::key::name, name},
                                       {run_log::key::type, entry[manifest::output_key::type]},
                                       {run_log::key::path, entry[manifest::output_key::path]}});
  say(LogLevel::Normal, fmt::format("wrote {} ({})", relative.generic_string(), name));
  write_manifest(manifest::status::running, nullptr, nullptr, false);
}

void RunContext::finish() {
  if (follower_) return;
  start();
  const std::lock_guard lock(mutex_);
  for (const Output& o : declared_) {
    const bool produced = std::any_of(outputs_.begin(), outputs_.end(),
                                      [&](const Json& e) { return e[manifest::output_key::name] == o.name; });
    if (!o.optional && !produced)
      throw std::logic_error(fmt::format("{}: declared output '{}' was not produced", program_, o.name));
  }
  const double wall = elapsed_s();
  write_event(run_log::event::done, {{run_log::key::wall_s, round_ms(wall)}});
  say(LogLevel::Normal, "done in " + duration_text(wall));
  write_manifest(manifest::status::done, nullptr, 0, true);
}

void RunContext::fail(std::string_view message, int exit_code) noexcept {
  try {
    const std::lock_guard lock(mutex_);
    fail_locked(message, exit_code);
  } catch (...) {
    // Nothing more can be recorded; the caller reports the error on stderr.
  }
}

void RunContext::fail_locked(std::string_view message, int exit_code) {
  if (!started_) return;  // nothing was written, nothing to record
  remove_temporaries(options_.out);
  try {
    write_event(run_log::event::error, {{run_log::key::message, message}, {run_log::key::exit_code, exit_code}});
  } catch (const std::exception&) {
    // The log cannot be written: still try the manifest, which the plugin reads.
  }
  write_manifest(manifest::status::failed, message, exit_code, true);
}

void RunContext::write_manifest(std::string_view status, const Json& error, const Json& exit_code,
                                bool ended) {
  // A failed run lists what it wrote as partial_outputs, never as outputs: its files stay for
  // the user to look at, but nothing that reads the manifest takes them for a usable set.
  const bool failed = status == manifest::status::failed;
  namespace key = manifest::key;
  Json doc{{key::manifest_version, manifest::kVersion},
           {key::program, program_},
           {key::version, version_},
           {key::status, status},
           {key::parameters, parameters_},
           {key::inputs, inputs_},
           {key::outputs, failed ? Json::array() : outputs_},
           {key::started, iso_time(started_at_)},
           {key::finished, ended ? Json(iso_time(std::chrono::system_clock::now())) : Json(nullptr)},
           {key::wall_s, ended ? Json(round_ms(elapsed_s())) : Json(nullptr)},
           {key::error, error},
           {key::exit_code, exit_code}};
  if (failed) doc[key::partial_outputs] = outputs_;
  atomic_write_text(options_.out / manifest::kName, dump(doc, 2) + "\n");
}

}  // namespace tessera::protocol
