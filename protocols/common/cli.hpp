#pragma once
/// What the user asked for, checked against the program's schema, and the
/// single entry point of every program:
///
///   int main(int argc, char** argv) {
///     return tessera::protocol::run_program(make_schema(), argc, argv, work);
///   }
///
/// Values come from three places, later ones winning: the schema's defaults,
/// `--params FILE.json` (an object keyed by JSON names: {"max_res_A": 4.5}),
/// and the command line (`--max-res-A 4.5` or `--max-res-A=4.5`; a bool alone,
/// `--use-scale`, means true). Relative input paths, in either place, are
/// relative to the current folder.
///
/// Exit codes: 0 done (also for --help and --schema); 2 bad input or
/// parameters: "ERROR: <one line naming the parameter or file>" on stderr and
/// nothing written, not even the output folder, as long as the work function
/// has not called RunContext::start() (it reads and checks every input first);
/// once started, a failure (bad input found late, exit 2; anything else, exit
/// 1; a signal, exit 128 + signal) keeps what the run wrote and records the
/// failure in outputs.json. --out must be new, empty, or this program's own
/// run with --continue or --overwrite (common/run_folder.hpp). See docs/schema.md.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/schema.hpp"

namespace tessera::protocol {

enum class LogLevel { Quiet, Normal, Verbose };

/// The common options, typed.
struct RunOptions {
  std::filesystem::path out{};
  int threads = 1;
  std::vector<int> gpus{};  ///< CUDA device numbers; empty: CPU only
  std::int64_t seed = 1;
  bool resume = false;  ///< --continue
  bool overwrite = false;  ///< --overwrite: replace this program's earlier run in --out
  LogLevel log_level = LogLevel::Normal;
};

/// A value the user gave, and where, for messages: "--box-px" or "p.json: box_px".
struct Given {
  Value value;
  std::string where;
};
using GivenMap = std::map<std::string, Given, std::less<>>;

/// Converts command-line text or a JSON value to the declared type of option
/// `name` (own or common parameter, or input). Throws InputError
/// "<where>: expected ..., got ..."; std::logic_error when `name` is undeclared.
Value value_from_text(const Schema& schema, std::string_view name, std::string_view text,
                      const std::string& where);
Value value_from_json(const Schema& schema, std::string_view name, const Json& json,
                      const std::string& where);

/// Reads a --params file. Throws InputError naming the file and, for a value
/// of the wrong type or an unknown key, the key. JSON null means "not given".
GivenMap read_params_file(const Schema& schema, const std::filesystem::path& file);

class Values;
/// Applies defaults and conditions, then checks ranges, choices, required
/// parameters and inputs, that inputs are readable files, and that --out can
/// be created. Throws InputError with one line naming the parameter. Writes
/// nothing.
Values resolve(const Schema& schema, const GivenMap& given);

/// The validated values of one run. get() on an unset parameter or an
/// inactive one (its condition false) throws std::logic_error, as does a T
/// that does not match the declared type: use get_optional() for those that
/// may be unset.
class Values {
 public:
  /// T: bool (Bool), int or std::int64_t (Int), double (Float), std::string (Choice, String).
  template <class T>
  T get(std::string_view name) const;
  template <class T>
  std::optional<T> get_optional(std::string_view name) const;
  bool has(std::string_view name) const;  ///< set and active

  std::filesystem::path input(std::string_view name) const;
  std::optional<std::filesystem::path> input_optional(std::string_view name) const;
  /// Every input that was given, by name, in declaration order.
  std::vector<std::pair<std::string, std::filesystem::path>> given_inputs() const;

  const RunOptions& run() const { return run_; }
  /// One line per given parameter or input that is ignored because its condition is false.
  const std::vector<std::string>& ignored() const { return ignored_; }
  /// Every active input and parameter that has a value, by JSON name, in
  /// declaration order: a --params file that reproduces the run.
  const Json& to_json() const { return json_; }

 private:
  friend Values resolve(const Schema& schema, const GivenMap& given);
  const Value* find(std::string_view name) const;  ///< nullptr when unset or inactive
  [[noreturn]] void wrong_type(std::string_view name, const char* requested) const;
  [[noreturn]] void not_set(std::string_view name) const;

  std::string program_;
  std::map<std::string, std::optional<Value>, std::less<>> params_;
  std::map<std::string, std::optional<std::filesystem::path>, std::less<>> inputs_;
  RunOptions run_;
  std::vector<std::string> ignored_;
  Json json_ = Json::object();
};

enum class Action { Run, Help, Schema };
struct Invocation {
  Action action = Action::Run;
  std::optional<Values> values{};  ///< set for Action::Run
};

/// Parses argv (argv[0] is the program path and is skipped). Throws
/// InputError for anything the user got wrong, std::logic_error for a bad
/// schema.
Invocation parse_arguments(const Schema& schema, int argc, const char* const argv[]);

/// The --help text: usage, description, then every option by section with
/// its type, unit, default, range or choices and condition.
std::string help_text(const Schema& schema);

class RunContext;
using WorkFunction = std::function<void(const Values&, RunContext&)>;

/// Parses, validates, creates the run context and calls `work` once; catches
/// every exception once, prints "ERROR: <message>" to `err`, records the
/// failure in outputs.json and run.log.jsonl when the run had started, and
/// returns the exit code (0, 1 or 2; see above).
int run_program(const Schema& schema, int argc, const char* const argv[], const WorkFunction& work,
                std::ostream& out = std::cout, std::ostream& err = std::cerr);

template <class T>
std::optional<T> Values::get_optional(std::string_view name) const {
  static_assert(std::is_same_v<T, bool> || std::is_same_v<T, int> ||
                    std::is_same_v<T, std::int64_t> || std::is_same_v<T, double> ||
                    std::is_same_v<T, std::string>,
                "Values::get: T must be bool, int, std::int64_t, double or std::string");
  const Value* v = find(name);
  if (!v) return std::nullopt;
  if constexpr (std::is_same_v<T, int>) {
    const auto* i = std::get_if<std::int64_t>(v);
    if (!i || *i < std::numeric_limits<int>::min() || *i > std::numeric_limits<int>::max())
      wrong_type(name, "int");
    return static_cast<int>(*i);
  } else {
    const T* p = std::get_if<T>(v);
    if (!p) {
      wrong_type(name, std::is_same_v<T, bool>          ? "bool"
                       : std::is_same_v<T, double>      ? "double"
                       : std::is_same_v<T, std::string> ? "std::string"
                                                        : "std::int64_t");
    }
    return *p;
  }
}

template <class T>
T Values::get(std::string_view name) const {
  std::optional<T> v = get_optional<T>(name);
  if (!v) not_set(name);
  return *std::move(v);
}

}  // namespace tessera::protocol
