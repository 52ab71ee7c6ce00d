#pragma once
/// The declarative schema every Tessera program is built on.
///
/// A program declares once what it reads (typed inputs), what it can be told
/// (typed parameters with default, range or choices, unit, help, section,
/// expert level, condition) and what it writes (typed outputs). From that one
/// declaration come the --schema JSON (schema_json below), --help,
/// --params FILE.json and the validation of what the user gave (cli.hpp), and
/// the outputs.json manifest (run_context.hpp). docs/schema.md describes the
/// --schema JSON and its mapping onto Scipion's protocol form.
///
/// Names: a parameter `max_res_A` is `--max-res-A` on the command line
/// (underscores become dashes) and `max_res_A` in JSON. Every name that has a
/// unit ends in it (`_A`, `_deg`, `_px`).
///
/// Conditions (on parameters and inputs) use a small Python-compatible
/// grammar, so Scipion can evaluate them as they are:
///   expr    := or ;  or := and ("or" and)* ;  and := unary ("and" unary)*
///   unary   := "not" unary | "(" expr ")" | name [("==" | "!=") literal]
///   literal := 'text' | "text" | number | True | False
/// A bare name must be a Bool parameter (its value) or an input (true when
/// given). A comparison's literal must fit the parameter's type, and for a
/// Choice parameter be one of its choices. Conditions are evaluated on the
/// values in effect (given or default), as Scipion does; an unset parameter
/// makes `==` false and `!=` true.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace tessera::protocol {

/// JSON with keys kept in insertion order (declaration order in --schema).
using Json = nlohmann::ordered_json;

/// Version of the --schema JSON format (docs/schema.md); raised only when a
/// change would break a reader (new keys do not raise it).
inline constexpr int kSchemaFormatVersion = 1;

/// pyworkflow's expertLevel: LEVEL_NORMAL = 0, LEVEL_ADVANCED = 1.
enum class Level { Normal = 0, Advanced = 1 };

/// What an input file holds. Particles: RELION .star, Scipion .sqlite set or
/// cryoSPARC .cs; Volume and Mask: MRC; File: any other file the program
/// reads; Classes: a particle file with each particle's class (in Scipion a
/// SetOfClasses2D/3D, which the plugin writes as a particle set with class
/// ids); Ctfs: per-micrograph or per-particle CTFs (in Scipion a SetOfCTF,
/// which the plugin writes as a RELION micrograph STAR, or a SetOfParticles).
enum class InputKind { Particles, Volume, Mask, File, Classes, Ctfs };

enum class ParamType { Int, Float, Bool, Choice, String };

/// What an output file holds (the "type" of an outputs.json entry).
enum class OutputKind {
  Volume,           ///< MRC map
  HalfMap,          ///< MRC half map (one per half set)
  Mask,             ///< MRC mask, values in [0, 1]
  ParticlesStar,    ///< RELION 3.1 STAR particle set
  ParticlesSqlite,  ///< Scipion particle set
  FscStar,          ///< FSC curve as a RELION-style STAR table
  FscJson,          ///< FSC curve as JSON
  Table,            ///< any other table (STAR or JSON), e.g. per-iteration statistics
};

std::string to_string(InputKind kind);   ///< "particles", "volume", "mask", "file", "classes", "ctfs"
std::string to_string(ParamType type);   ///< "int", "float", "bool", "choice", "string"
std::string to_string(OutputKind kind);  ///< "volume", "half_map", ..., "table"
/// Scipion pointerClass for an input kind ("SetOfParticles", "Volume",
/// "VolumeMask", "SetOfClasses2D,SetOfClasses3D", "SetOfCTF,SetOfParticles"); empty for File,
/// which maps to a FileParam.
std::string scipion_pointer_class(InputKind kind);

/// A parameter value: Int as int64, Float as double, Choice and String as text.
using Value = std::variant<bool, std::int64_t, double, std::string>;

struct Input {
  std::string name{};  ///< identifier, e.g. "particles" (--particles)
  InputKind kind = InputKind::Particles;
  std::string label{};  ///< short label for forms
  std::string help{};
  bool required = true;        ///< must be given whenever its condition holds
  std::string section = "Input";
  Level level = Level::Normal;
  std::string condition{};          ///< only used when this holds (grammar above); empty: always
  std::string pointer_condition{};  ///< Scipion pointerCondition, e.g. "hasAlignmentProj"
};

struct Param {
  std::string name{};  ///< identifier, e.g. "max_res_A" (--max-res-A)
  ParamType type = ParamType::Float;
  std::string label{};
  std::optional<Value> default_value{};  ///< none: unset unless given
  std::optional<double> min{}, max{};      ///< Int and Float only; inclusive unless *_exclusive
  bool min_exclusive = false, max_exclusive = false;
  std::vector<std::string> choices{};  ///< Choice only
  std::string unit{};                  ///< "A", "deg", "px", "A^2", ...; empty when unitless
  std::string help{};
  std::string section = "Parameters";
  Level level = Level::Normal;
  std::string condition{};  ///< only used when this holds; empty: always
  bool required = false;  ///< must have a value (given or default) whenever active
  /// --continue may give another value: it says how long to go on, not what the iterations
  /// done so far computed (e.g. more iterations). Others must equal the run's (run_folder.hpp).
  bool may_change_on_continue = false;
};

struct Output {
  std::string name{};  ///< key in outputs.json, e.g. "volume"
  OutputKind kind = OutputKind::Volume;
  std::string label{};
  std::string help{};
  bool optional = false;  ///< may legitimately be absent after a successful run
};

/// Builder options (designated initializers, in this order).
template <class T>
struct NumberOpts {
  std::optional<T> default_value{};
  std::optional<T> min{}, max{};
  bool min_exclusive = false, max_exclusive = false;
  std::string unit{}, help{}, section = "Parameters";
  Level level = Level::Normal;
  std::string condition{};
  bool required = false;
};
struct BoolOpts {
  bool default_value = false;
  std::string help{}, section = "Parameters";
  Level level = Level::Normal;
  std::string condition{};
};
struct TextOpts {  ///< Choice and String
  std::optional<std::string> default_value{};
  std::string help{}, section = "Parameters";
  Level level = Level::Normal;
  std::string condition{};
  bool required = false;
};
struct InputOpts {
  std::string help{};
  bool required = true;
  std::string section = "Input";
  Level level = Level::Normal;
  std::string condition{}, pointer_condition{};
};
struct OutputOpts {
  std::string help{};
  bool optional = false;
};

/// What the program can use; decides which common options exist.
struct Support {
  bool threads = true;  ///< --threads
  bool mpi = false;     ///< may run under mpirun (Scipion: numberOfMpi)
  bool gpu = false;     ///< --gpu
  bool resume = false;  ///< --continue
};

struct Schema {
  std::string name{};     ///< program name, e.g. "tessera_reconstruct"
  std::string version{};  ///< program version, e.g. "0.1.0"
  std::string label{};    ///< one-line title (Scipion _label)
  std::string description{};
  std::string scipion_base_class = "EMProtocol";  ///< e.g. "ProtRefine3D", "ProtReconstruct3D"
  std::vector<std::string> citations{};              ///< DOIs
  Support support{};
  std::vector<Input> inputs{};
  std::vector<Param> params{};
  std::vector<Output> outputs{};

  Input& add_input(std::string name, InputKind kind, std::string label, InputOpts opts = {});
  Param& add_int(std::string name, std::string label, NumberOpts<std::int64_t> opts = {});
  Param& add_float(std::string name, std::string label, NumberOpts<double> opts = {});
  Param& add_bool(std::string name, std::string label, BoolOpts opts = {});
  Param& add_choice(std::string name, std::string label, std::vector<std::string> choices,
                    TextOpts opts = {});
  Param& add_string(std::string name, std::string label, TextOpts opts = {});
  Output& add_output(std::string name, OutputKind kind, std::string label, OutputOpts opts = {});

  const Input* find_input(std::string_view name) const;  ///< nullptr when undeclared
  const Param* find_param(std::string_view name) const;  ///< own parameters only
  const Output* find_output(std::string_view name) const;

  /// Throws std::logic_error naming the first mistake in the declaration:
  /// bad or duplicate names, defaults out of range, bad conditions, ...
  void check() const;
};

/// The options every program gets, as parameters in section "Run": out
/// (required), threads (if supported), gpu (if supported), seed, continue (if
/// supported), verbose, quiet.
std::vector<Param> common_params(const Schema& schema);

/// The --schema document (docs/schema.md, "schema_version": 1).
Json schema_json(const Schema& schema);

/// "max_res_A" -> "--max-res-A".
std::string option_name(std::string_view name);
/// Whether `v` holds the alternative that `type` uses.
bool value_fits(ParamType type, const Value& v);
/// For messages: 'text', true, 12, 0.5.
std::string format_value(const Value& v);
Json value_json(const Value& v);
/// ">= 0.5 and <= 100 A"; empty when unbounded.
std::string describe_range(const Param& p);
/// Why `v` (of the right type) is not allowed for `p`: out of range or not
/// one of the choices, e.g. "0.1 is out of range (must be >= 0.5 A)".
std::optional<std::string> value_problem(const Param& p, const Value& v);

/// Looks up the value in effect of a parameter (nullopt when unset) or the
/// path of an input (as text; nullopt when not given).
using ValueLookup = std::function<std::optional<Value>(std::string_view name)>;
/// Evaluates a condition of `schema`. Throws std::invalid_argument on a
/// syntax error or a name or literal that does not fit the schema.
bool evaluate_condition(const Schema& schema, std::string_view condition, const ValueLookup& lookup);
/// The condition in Python syntax with every Choice literal replaced by its
/// index, as Scipion's EnumParam stores it: "mask_mode == 'file'" -> "mask_mode == 2".
std::string scipion_condition(const Schema& schema, std::string_view condition);
/// The condition re-printed in canonical form ("a and (b or not c)", strings in
/// single quotes, True/False): what --schema exports as "condition".
std::string normalized_condition(const Schema& schema, std::string_view condition);

}  // namespace tessera::protocol
