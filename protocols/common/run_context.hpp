#pragma once
/// One run of a program: its output folder, its log, progress with time
/// left, the outputs.json manifest, and atomic file writes.
///
/// Log: every message is a human line on stdout, "[00:01:23] message"
/// (elapsed time), and the same event as one JSON object per line in
/// <out>/run.log.jsonl, flushed at once so viewers can follow it:
///   {"time": "2024-05-01T12:00:00.123Z", "elapsed_s": 83.2, "event": "log",
///    "level": "info", "message": "..."}
/// Events written here: start (program, version, parameters), log (level,
/// message), progress (task, done, total, eta_s), output (name, type, path),
/// done (wall_s), error (message, exit_code); programs add their own with
/// event(). --quiet hides info lines on stdout, --verbose adds debug lines to
/// both; run.log.jsonl always has info, warnings and events.
///
/// outputs.json (manifest_version 1) is rewritten atomically at the start
/// (status "running"), after each add_output(), and at the end ("done" or
/// "failed"); docs/schema.md gives its fields. Output paths in it are
/// relative to the output folder.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/cli.hpp"
#include "common/run_folder.hpp"
#include "common/schema.hpp"

namespace tessera::protocol {

/// Writes `path` so that it never exists half-written: the engine's
/// write_file_atomically (tessera/atomic_file.hpp), under the programs' name.
void atomic_write(const std::filesystem::path& path,
                  const std::function<void(const std::filesystem::path& tmp)>& write);
/// atomic_write of a text (written byte for byte).
void atomic_write_text(const std::filesystem::path& path, std::string_view text);

/// Thread-safe: log, event, progress and add_output may be called from worker threads.
class RunContext {
 public:
  /// Writes nothing: messages logged before start() are printed and kept
  /// for run.log.jsonl.
  RunContext(const Schema& schema, const Values& values, std::ostream& human = std::cout);
  RunContext(const RunContext&) = delete;
  RunContext& operator=(const RunContext&) = delete;
  ~RunContext();

  /// Called by the work function once every input is read and checked:
  /// creates the output folder, locks it (InputError when another run holds
  /// it), removes temporaries a killed run left there (and, with
  /// --overwrite, the earlier run's files), starts run.log.jsonl (appending
  /// with --continue) with the start event, every parameter and the
  /// messages logged so far, and writes outputs.json with status "running".
  /// From here on a failure keeps the folder and records itself; a signal
  /// records "failed" with "interrupted by SIGTERM" and removes the run's
  /// temporaries. Throws on I/O failure. Calling it again does nothing.
  void start();
  bool started() const { return started_; }
  /// Makes this the context of an MPI rank other than the leader: start()
  /// and finish() do nothing, so it never writes (its messages go to the
  /// stream it was given, which run_program makes a null one).
  void follow() { follower_ = true; }

  const std::filesystem::path& out_dir() const { return options_.out; }
  /// out_dir() / relative.
  std::filesystem::path path(const std::filesystem::path& relative) const { return options_.out / relative; }
  const RunOptions& options() const { return options_; }

  void debug(std::string_view message);  ///< only with --verbose
  void info(std::string_view message);   ///< stdout unless --quiet
  void warn(std::string_view message);   ///< always shown, prefixed "WARNING: "
  /// A program's own event, e.g. event("iteration", {{"iteration", 3},
  /// {"resolution_A", 4.2}}, "iteration 3: 4.2 A"); `fields` must be a JSON
  /// object; `human`, if not empty, is printed like info().
  void event(std::string_view type, const Json& fields, std::string_view human = {});
  /// `done` of `total` (> 0) steps of `task` are finished. Prints and logs at
  /// most one line per second per task, always the first and the last
  /// (done == total, which also ends the task so it can start again). Time
  /// left is extrapolated linearly from the rate since the task's first report.
  void progress(std::string_view task, long done, long total);

  /// Registers the finished file `file` (relative to the output folder, or
  /// absolute inside it) as the output `name` declared in the schema; `extra`
  /// (a JSON object) adds fields to its manifest entry, e.g. {"resolution_A": 3.1}.
  /// Registering a name again replaces its entry. Rewrites outputs.json.
  /// Throws std::logic_error for an undeclared name, a missing file, a file
  /// outside the output folder, or an extra field named name, type or path.
  /// Throws std::logic_error before start().
  void add_output(std::string_view name, const std::filesystem::path& file,
                  const Json& extra = Json::object());

  /// Ends a successful run: throws std::logic_error if a non-optional
  /// declared output was not registered; else logs "done" and writes
  /// outputs.json with status "done" (start()ing first if the work never
  /// did). Called by run_program.
  void finish();
  /// Ends a failed run: logs an error event, removes the run's temporary
  /// files and writes outputs.json with status "failed", the message and the
  /// exit code. Writes nothing before start(). Never throws. Called by run_program.
  void fail(std::string_view message, int exit_code) noexcept;

 private:
  using Clock = std::chrono::steady_clock;
  struct Task {
    Clock::time_point start, last_report;
    long first_done = 0;
  };

  void write_event(std::string_view type, const Json& fields);
  void say(LogLevel level, std::string_view line);
  void log(LogLevel level, std::string_view level_name, std::string_view message);
  void write_manifest(std::string_view status, const Json& error, const Json& exit_code, bool ended);
  void fail_locked(std::string_view message, int exit_code);
  double elapsed_s() const;

  std::string program_, version_;
  std::vector<Output> declared_;
  Json parameters_;
  Json inputs_ = Json::object();  ///< input_fingerprints(), recorded for --continue
  std::vector<std::string> ignored_;
  RunOptions options_;
  std::ostream& human_;
  std::ofstream log_;
  std::vector<Json> pending_;  ///< events logged before start()
  std::unique_ptr<RunFolderLock> lock_;
  bool started_ = false;
  bool follower_ = false;
  Clock::time_point start_;
  std::chrono::system_clock::time_point started_at_;
  const Values* values_;  ///< outlives the context (run_program owns both)
  Json outputs_ = Json::array();
  std::map<std::string, Task, std::less<>> tasks_;
  std::mutex mutex_;
};

}  // namespace tessera::protocol
