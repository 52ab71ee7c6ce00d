#pragma once
/// The rules that keep a user's data safe around a run's output folder (--out):
///
/// - A run writes only into a folder that does not exist, is empty, or holds a run of the same
///   program that the user asked to resume (--continue) or to replace (--overwrite). Anything
///   else (a user's stack, another program's results) is refused before any work starts.
/// - No input may lie inside the output folder, whatever the flags: a run never writes over
///   what it reads.
/// - --continue refuses a folder with nothing to continue, and changed parameters or inputs
///   (compared with what the folder's outputs.json recorded), naming each change; how the run
///   runs (threads, gpu, verbosity) and parameters marked Param::may_change_on_continue (how
///   long it goes on, e.g. the maximum number of iterations) may change.
/// - While a run writes, it holds an exclusive lock on <out>/.tessera.lock: a second run into the
///   same folder is refused at once.
/// - Temporary files (names containing ".tmp-") left in the folder by a killed run are removed
///   when the next run takes the lock, and a run's own ones when it fails or is interrupted.
#include <filesystem>
#include <string>

#include "common/cli.hpp"
#include "common/schema.hpp"

namespace tessera::protocol {

/// Checks --out against the rules above before any work starts. Throws InputError with one line
/// naming the folder, the file or the parameter. Writes nothing.
void check_run_folder(const Schema& schema, const Values& values);

/// What outputs.json records of each input, so that --continue can tell whether it changed:
/// {name: {"path", "size", "fnv1a64"}} (a hash of the file's bytes, so a copy at another path,
/// as the Scipion plugin makes when it continues a run, is the same input).
Json input_fingerprints(const Values& values);

/// An exclusive lock on <dir>/.tessera.lock, held until destruction (or process exit).
class RunFolderLock {
 public:
  /// Creates the lock file if needed; throws InputError when another process holds the lock.
  explicit RunFolderLock(const std::filesystem::path& dir);
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;
  ~RunFolderLock();

 private:
  int fd_ = -1;
};

/// The lock file's name (not counted as content of the folder).
inline constexpr const char* kLockFileName = ".tessera.lock";

/// Removes every file under `dir` whose name contains ".tmp-" (the temporaries of the engine's
/// and the run context's atomic writes). Call only while holding the folder's lock. Never throws.
void remove_temporaries(const std::filesystem::path& dir) noexcept;

/// --overwrite: removes everything in `dir` but the lock file (check_run_folder has made sure it
/// is a run of this program and holds no input).
void clear_run_folder(const std::filesystem::path& dir);

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and so in every thread it starts
/// later) and starts, once per process, a thread that waits for them. On a signal that thread
/// calls the function registered with on_interrupt (if any), then ends the process with exit
/// code 128 + signal. Called by run_program before anything else.
void handle_interrupts();
/// Registers what to do on a signal (e.g. record the run as failed); an empty function
/// unregisters. Process-wide by nature: signals are.
void on_interrupt(std::function<void(int signal)> handler);

}  // namespace tessera::protocol
