#include "common/cli.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "common/processes.hpp"
#include "common/run_context.hpp"
#include "common/run_folder.hpp"
#include "tessera/error.hpp"

namespace tessera::protocol {

namespace {

namespace fs = std::filesystem;

struct OptionRef {
  const Param* param = nullptr;  // own or common parameter
  const Input* input = nullptr;
  explicit operator bool() const { return param || input; }
};

OptionRef lookup_option(const Schema& s, const std::vector<Param>& common, std::string_view name) {
  if (const Input* in = s.find_input(name)) return {nullptr, in};
  if (const Param* p = s.find_param(name)) return {p, nullptr};
  for (const Param& p : common)
    if (p.name == name) return {&p, nullptr};
  return {};
}

OptionRef declared_option(const Schema& s, const std::vector<Param>& common, std::string_view name) {
  const OptionRef o = lookup_option(s, common, name);
  if (!o) throw std::logic_error(fmt::format("{}: no option '{}' in the schema", s.name, name));
  return o;
}

std::optional<std::int64_t> parse_int(std::string_view t) {
  if (!t.empty() && t.front() == '+') t.remove_prefix(1);
  std::int64_t i = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), i);
  if (t.empty() || ec != std::errc() || end != t.data() + t.size()) return std::nullopt;
  return i;
}

std::optional<double> parse_float(std::string_view t) {
  if (!t.empty() && t.front() == '+') t.remove_prefix(1);
  double d = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), d);
  if (t.empty() || ec != std::errc() || end != t.data() + t.size() || !std::isfinite(d))
    return std::nullopt;
  return d;
}

// User text quoted in a message, kept on one line: control characters escaped (\n, \r, \t, \xNN).
std::string printable(std::string_view t) {
  std::string out;
  for (const unsigned char c : t) {
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out;
}

std::optional<bool> parse_bool(std::string_view t) {
  std::string s(t);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "true" || s == "yes" || s == "on" || s == "1") return true;
  if (s == "false" || s == "no" || s == "off" || s == "0") return false;
  return std::nullopt;
}

}  // namespace

Value value_from_text(const Schema& s, std::string_view name, std::string_view text,
                      const std::string& where) {
  const std::vector<Param> common = common_params(s);
  const OptionRef o = declared_option(s, common, name);
  auto bad = [&](const char* expected) {
    return InputError(fmt::format("{}: expected {}, got '{}'", where, expected, printable(text)));
  };
  if (o.input) return std::string(text);
  switch (o.param->type) {
    case ParamType::Int:
      if (auto i = parse_int(text)) return *i;
      throw bad("an integer");
    case ParamType::Float:
      if (auto d = parse_float(text)) return *d;
      throw bad("a number");
    case ParamType::Bool:
      if (auto b = parse_bool(text)) return *b;
      throw bad("true or false");
    case ParamType::Choice:
    case ParamType::String: break;
  }
  return std::string(text);
}

Value value_from_json(const Schema& s, std::string_view name, const Json& j, const std::string& where) {
  const std::vector<Param> common = common_params(s);
  const OptionRef o = declared_option(s, common, name);
  auto bad = [&](const char* expected) {
    return InputError(fmt::format("{}: expected {}, got {}", where, expected, j.dump()));
  };
  if (o.input) {
    if (j.is_string()) return j.get<std::string>();
    throw bad("a file path (a JSON string)");
  }
  switch (o.param->type) {
    case ParamType::Int: {
      constexpr double limit = 9.2e18;  // inside the int64 range
      if (j.is_number_unsigned() && j.get<std::uint64_t>() > std::uint64_t{INT64_MAX})
        throw bad("an integer");
      if (j.is_number_integer()) return j.get<std::int64_t>();
      if (j.is_number_float() && std::trunc(j.get<double>()) == j.get<double>() &&
          std::abs(j.get<double>()) < limit)
        return static_cast<std::int64_t>(j.get<double>());
      throw bad("an integer");
    }
    case ParamType::Float:
      if (j.is_number()) return j.get<double>();
      throw bad("a number");
    case ParamType::Bool:
      if (j.is_boolean()) return j.get<bool>();
      throw bad("true or false");
    case ParamType::Choice:
    case ParamType::String:
      if (j.is_string()) return j.get<std::string>();
      throw bad("a JSON string");
  }
  throw std::logic_error("unknown ParamType");
}

GivenMap read_params_file(const Schema& s, const fs::path& file) {
  const std::string f = file.string();
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw InputError(fmt::format("--params: '{}' is not a file", f));
  std::ifstream in(file);
  if (!in) throw InputError(fmt::format("--params: '{}' cannot be read", f));
  Json j;
  try {
    j = Json::parse(in);
  } catch (const Json::exception& e) {  // a parse error, or a number too large for a double (out_of_range)
    throw InputError(fmt::format("{}: not valid JSON: {}", f, e.what()));
  }
  if (!j.is_object())
    throw InputError(
        fmt::format("{}: expected an object of names and values, e.g. {{\"out\": \"run1\"}}", f));
  const std::vector<Param> common = common_params(s);
  GivenMap given;
  for (const auto& [key, value] : j.items()) {
    if (!lookup_option(s, common, key)) {
      std::string underscored = key;
      std::replace(underscored.begin(), underscored.end(), '-', '_');
      const bool close = underscored != key && lookup_option(s, common, underscored);
      throw InputError(fmt::format("{}: unknown parameter '{}'{}", f, printable(key),
                                   close ? fmt::format(" (did you mean '{}'?)", underscored) : ""));
    }
    if (value.is_null()) continue;
    const std::string where = fmt::format("{}: {}", f, key);
    given.insert_or_assign(key, Given{value_from_json(s, key, value, where), where});
  }
  return given;
}

// ---- validation ----------------------------------------------------------

namespace {

std::string where_of(const GivenMap& given, const std::string& name) {
  auto it = given.find(name);
  return it != given.end() ? it->second.where : option_name(name);
}

void check_input_file(const std::string& where, const fs::path& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  const std::string shown = printable(path.string());
  if (!fs::exists(st)) throw InputError(fmt::format("{}: '{}' does not exist", where, shown));
  if (fs::is_directory(st)) throw InputError(fmt::format("{}: '{}' is a folder, not a file", where, shown));
  if (!std::ifstream(path)) throw InputError(fmt::format("{}: '{}' cannot be read", where, shown));
}

// The folder must be creatable: its nearest existing ancestor is a writable folder.
void check_out_dir(const std::string& where, const fs::path& out) {
  if (out.empty()) throw InputError(fmt::format("{}: the output folder must not be empty", where));
  std::error_code ec;
  fs::path existing = fs::absolute(out, ec);
  while (!fs::exists(existing, ec) && existing.has_parent_path() && existing != existing.parent_path())
    existing = existing.parent_path();
  if (!fs::is_directory(existing, ec))
    throw InputError(fmt::format("{}: '{}' exists and is not a folder", where, printable(existing.string())));
  if (::access(existing.c_str(), W_OK | X_OK) != 0)
    throw InputError(fmt::format("{}: cannot write in '{}'", where, printable(existing.string())));
}

std::vector<int> parse_gpus(const std::string& where, const std::string& text) {
  std::vector<int> gpus;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    const auto first = item.find_first_not_of(' ');
    const std::string trimmed =
        first == std::string::npos ? "" : item.substr(first, item.find_last_not_of(' ') - first + 1);
    const auto i = parse_int(trimmed);
    if (!i || *i < 0 || *i > 1023)
      throw InputError(fmt::format("{}: '{}' is not a list of device numbers such as 0,1", where, printable(text)));
    gpus.push_back(static_cast<int>(*i));
  }
  return gpus;
}

// The value a parameter takes: nullopt when unset or inactive. `ignored` collects given but inactive ones.
std::optional<Value> checked_param(const Schema& s, const Param& p, const GivenMap& given,
                                   const ValueLookup& lookup, std::vector<std::string>& ignored) {
  const std::string where = where_of(given, p.name);
  if (!p.condition.empty() && !evaluate_condition(s, p.condition, lookup)) {
    if (given.count(p.name))
      ignored.push_back(fmt::format("{} is ignored because its condition ({}) is false", where, p.condition));
    return std::nullopt;
  }
  std::optional<Value> value = lookup(p.name);
  if (!value) {
    if (p.required) throw InputError(fmt::format("{}: required parameter is missing ({})", where, p.label));
    return std::nullopt;
  }
  if (!value_fits(p.type, *value))
    throw InputError(fmt::format("{}: {} is not of type {}", where, format_value(*value), to_string(p.type)));
  if (auto problem = value_problem(p, *value)) throw InputError(fmt::format("{}: {}", where, printable(*problem)));
  return value;
}

std::optional<fs::path> checked_input(const Schema& s, const Input& in, const GivenMap& given,
                                      const ValueLookup& lookup, std::vector<std::string>& ignored) {
  const std::string where = where_of(given, in.name);
  const auto g = given.find(in.name);
  if (!in.condition.empty() && !evaluate_condition(s, in.condition, lookup)) {
    if (g != given.end())
      ignored.push_back(
          fmt::format("{} is ignored because its condition ({}) is false", where, in.condition));
    return std::nullopt;
  }
  if (g == given.end()) {
    if (in.required) throw InputError(fmt::format("{}: required input is missing ({})", where, in.label));
    return std::nullopt;
  }
  const auto* text = std::get_if<std::string>(&g->second.value);
  if (!text) throw InputError(fmt::format("{}: expected a file path", where));
  check_input_file(where, *text);
  return fs::path(*text);
}

RunOptions run_options(const Schema& s, const Values& v, const GivenMap& given) {
  RunOptions r;
  r.out = v.get<std::string>("out");
  check_out_dir(where_of(given, "out"), r.out);
  if (s.support.threads) r.threads = v.get<int>("threads");
  if (s.support.gpu)
    if (auto g = v.get_optional<std::string>("gpu")) r.gpus = parse_gpus(where_of(given, "gpu"), *g);
  r.seed = v.get<std::int64_t>("seed");
  r.resume = s.support.resume && v.get<bool>("continue");
  r.overwrite = v.get<bool>("overwrite");
  if (r.resume && r.overwrite) throw InputError("--continue and --overwrite contradict each other");
  const bool verbose = v.get<bool>("verbose"), quiet = v.get<bool>("quiet");
  if (verbose && quiet) throw InputError("--verbose and --quiet contradict each other");
  r.log_level = verbose ? LogLevel::Verbose : quiet ? LogLevel::Quiet : LogLevel::Normal;
  return r;
}

}  // namespace

Values resolve(const Schema& s, const GivenMap& given) {
  s.check();
  const std::vector<Param> common = common_params(s);
  for (const auto& [name, g] : given)
    if (!lookup_option(s, common, name)) throw InputError(fmt::format("{}: unknown parameter", g.where));
  // The values in effect (given, else default), on which every condition is evaluated.
  std::map<std::string, std::optional<Value>, std::less<>> current;
  auto initial = [&](const std::string& name, const std::optional<Value>& fallback) {
    auto it = given.find(name);
    current[name] = it != given.end() ? std::optional<Value>(it->second.value) : fallback;
  };
  for (const Input& in : s.inputs) initial(in.name, std::nullopt);
  for (const Param& p : s.params) initial(p.name, p.default_value);
  for (const Param& p : common) initial(p.name, p.default_value);
  const ValueLookup lookup = [&current](std::string_view n) -> std::optional<Value> {
    auto it = current.find(n);
    return it == current.end() ? std::nullopt : it->second;
  };

  Values v;
  v.program_ = s.name;
  for (const Input& in : s.inputs) {
    std::optional<fs::path> path = checked_input(s, in, given, lookup, v.ignored_);
    if (path) v.json_[in.name] = path->string();
    v.inputs_[in.name] = std::move(path);
  }
  auto add = [&](const Param& p) {
    std::optional<Value> value = checked_param(s, p, given, lookup, v.ignored_);
    if (value) v.json_[p.name] = value_json(*value);
    v.params_[p.name] = std::move(value);
  };
  for (const Param& p : s.params) add(p);
  for (const Param& p : common) add(p);
  v.run_ = run_options(s, v, given);
  return v;
}

const Value* Values::find(std::string_view name) const {
  auto it = params_.find(name);
  if (it == params_.end())
    throw std::logic_error(fmt::format("{}: no parameter '{}' in the schema", program_, name));
  return it->second ? &*it->second : nullptr;
}

void Values::wrong_type(std::string_view name, const char* requested) const {
  static constexpr const char* held[] = {"a bool", "an int64", "a double", "a string"};
  throw std::logic_error(fmt::format("{}: parameter '{}' holds {}, which cannot be read as {}", program_,
                                     name, held[find(name)->index()], requested));
}

void Values::not_set(std::string_view name) const {
  throw std::logic_error(fmt::format(
      "{}: parameter '{}' has no value (no default, not given, or its condition is false); "
      "read it with get_optional",
      program_, name));
}

bool Values::has(std::string_view name) const { return find(name) != nullptr; }

std::optional<fs::path> Values::input_optional(std::string_view name) const {
  auto it = inputs_.find(name);
  if (it == inputs_.end())
    throw std::logic_error(fmt::format("{}: no input '{}' in the schema", program_, name));
  return it->second;
}

std::vector<std::pair<std::string, fs::path>> Values::given_inputs() const {
  std::vector<std::pair<std::string, fs::path>> given;
  for (const auto& [name, value] : json_.items())
    if (auto it = inputs_.find(name); it != inputs_.end() && it->second) given.emplace_back(name, *it->second);
  return given;
}

fs::path Values::input(std::string_view name) const {
  std::optional<fs::path> p = input_optional(name);
  if (!p)
    throw std::logic_error(fmt::format(
        "{}: input '{}' was not given (optional, or its condition is false); read it with input_optional",
        program_, name));
  return *p;
}

// ---- command line --------------------------------------------------------

Invocation parse_arguments(const Schema& s, int argc, const char* const argv[]) {
  namespace po = boost::program_options;
  s.check();
  const std::vector<Param> common = common_params(s);
  po::options_description desc;
  std::map<std::string, std::string> name_of;  // "max-res-A" -> "max_res_A"
  auto declare = [&](const std::string& name, bool is_bool) {
    const std::string opt = option_name(name).substr(2);
    name_of[opt] = name;
    if (is_bool)
      desc.add_options()(opt.c_str(), po::value<std::string>()->implicit_value("true"));
    else
      desc.add_options()(opt.c_str(), po::value<std::string>());
  };
  for (const Input& in : s.inputs) declare(in.name, false);
  for (const Param& p : s.params) declare(p.name, p.type == ParamType::Bool);
  for (const Param& p : common) declare(p.name, p.type == ParamType::Bool);
  // Option names made from parameter names never contain '_', so "positional_args" cannot clash.
  desc.add_options()("params", po::value<std::string>())("help,h", "")("schema", "")(
      "positional_args", po::value<std::vector<std::string>>());
  po::positional_options_description positional;
  positional.add("positional_args", -1);
  po::variables_map vm;
  try {
    const auto style = po::command_line_style::unix_style & ~po::command_line_style::allow_guessing;
    po::store(
        po::command_line_parser(argc, argv).options(desc).positional(positional).style(style).run(),
        vm);
  } catch (const po::error& e) {
    throw InputError(fmt::format("command line: {}", e.what()));
  }
  if (vm.count("help")) return {Action::Help, std::nullopt};
  if (vm.count("schema")) return {Action::Schema, std::nullopt};
  if (vm.count("positional_args"))
    throw InputError(
        fmt::format("command line: unexpected argument '{}'; every option is named, e.g. --out DIR",
                    vm["positional_args"].as<std::vector<std::string>>().front()));
  GivenMap given;
  if (vm.count("params")) given = read_params_file(s, vm["params"].as<std::string>());
  for (const auto& [opt, name] : name_of) {
    if (!vm.count(opt)) continue;
    const std::string where = "--" + opt;
    given.insert_or_assign(name, Given{value_from_text(s, name, vm[opt].as<std::string>(), where), where});
  }
  return {Action::Run, resolve(s, given)};
}

// ---- --help --------------------------------------------------------------

namespace {

void wrap(std::string& out, std::string_view text, std::size_t indent, std::size_t width = 80) {
  std::istringstream words{std::string(text)};
  std::size_t column = indent;
  out += std::string(indent, ' ');
  bool first = true;
  for (std::string w; words >> w; first = false) {
    if (!first && column + 1 + w.size() > width) {
      out += "\n" + std::string(indent, ' ');
      column = indent;
    } else if (!first) {
      out += ' ';
      ++column;
    }
    out += w;
    column += w.size();
  }
  out += '\n';
}

std::string metavar(const Param& p) {
  if (p.name == "out") return "DIR";
  switch (p.type) {
    case ParamType::Int: return "N";
    case ParamType::Float: return "X";
    case ParamType::Bool: return "[=true|false]";
    case ParamType::Choice: return fmt::format("{{{}}}", fmt::join(p.choices, "|"));
    case ParamType::String: return "TEXT";
  }
  return "";
}

void describe_param(std::string& out, const Param& p) {
  std::vector<std::string> facts;
  if (p.required) facts.emplace_back("required");
  if (p.default_value) facts.push_back("default " + format_value(*p.default_value));
  const std::string range = describe_range(p);
  if (!range.empty()) facts.push_back(range);
  else if (!p.unit.empty()) facts.push_back("in " + p.unit);
  if (p.level == Level::Advanced) facts.emplace_back("advanced");
  out += fmt::format("  {} {}{}\n", option_name(p.name), metavar(p),
                     facts.empty() ? "" : fmt::format("  ({})", fmt::join(facts, "; ")));
  wrap(out, p.label + (p.help.empty() ? "" : ". " + p.help), 6);
  if (!p.condition.empty()) wrap(out, "Only used when: " + p.condition, 6);
}

void describe_input(std::string& out, const Input& in) {
  out += fmt::format("  {} FILE  ({}; {}{})\n", option_name(in.name), to_string(in.kind),
                     in.required ? "required" : "optional", in.level == Level::Advanced ? "; advanced" : "");
  wrap(out, in.label + (in.help.empty() ? "" : ". " + in.help), 6);
  if (!in.condition.empty()) wrap(out, "Only used when: " + in.condition, 6);
}

}  // namespace

std::string help_text(const Schema& s) {
  std::string out = fmt::format("{} {}: {}\n\n", s.name, s.version, s.label);
  if (!s.description.empty()) {
    wrap(out, s.description, 0);
    out += '\n';
  }
  out += fmt::format("Usage: {0} --out DIR [--params FILE.json] [--name value ...]\n"
                     "       {0} --help | --schema\n",
                     s.name);
  std::vector<std::string> sections;  // in order of first use
  auto add_section = [&](const std::string& sec) {
    if (std::find(sections.begin(), sections.end(), sec) == sections.end()) sections.push_back(sec);
  };
  for (const Input& in : s.inputs) add_section(in.section);
  for (const Param& p : s.params) add_section(p.section);
  for (const std::string& section : sections) {
    out += "\n" + section + ":\n";
    for (const Input& in : s.inputs)
      if (in.section == section) describe_input(out, in);
    for (const Param& p : s.params)
      if (p.section == section) describe_param(out, p);
  }
  out += "\nRun:\n";
  for (const Param& p : common_params(s)) describe_param(out, p);
  out += "  --params FILE.json\n";
  wrap(out,
       "Parameter values as a JSON object keyed by name ({\"max_res_A\": 4.5}); the command line wins.",
       6);
  out += "  --schema\n";
  wrap(out, "Print this program's schema as JSON and exit.", 6);
  out += "  --help, -h\n";
  wrap(out, "Print this help and exit.", 6);
  out += "\nExit codes: 0 done, 1 failure while running, 2 bad input or parameters.\n";
  return out;
}

// ---- entry point ---------------------------------------------------------

namespace {

std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

int report(std::optional<RunContext>& ctx, std::ostream& err, const std::string& message, int code) {
  err << "ERROR: " << one_line(message) << std::endl;
  if (ctx) ctx->fail(one_line(message), code);
  return code;
}

}  // namespace

namespace {

// The run itself; run_program sets up and takes down the processes around it.
int run_once(const Schema& s, int argc, const char* const argv[], const WorkFunction& work, std::ostream& out,
             std::ostream& err) {
  std::optional<RunContext> ctx;
  Invocation invocation;
  try {
    invocation = parse_arguments(s, argc, argv);
  } catch (const InputError& e) {
    return report(ctx, err, e.what(), 2);
  } catch (const std::exception& e) {
    return report(ctx, err, e.what(), 1);
  }
  try {
    if (invocation.action == Action::Help) {
      out << help_text(s) << std::flush;
      return 0;
    }
    if (invocation.action == Action::Schema) {
      out << schema_json(s).dump(2) << std::endl;
      return 0;
    }
    if (processes().size() > 1 && !s.support.mpi)  // every rank finds it: told once, by the leader
      throw RankFailure(fmt::format("{} does not run under MPI (started as {} MPI processes): run it without mpirun; "
                                   "use --threads instead",
                                   s.name, processes().size()),
                        2);
    check_run_folder(s, *invocation.values);
    // The work reads and checks its inputs, then calls ctx->start(): an error before that
    // leaves nothing on disk; after it the run folder keeps what was written and says it failed.
    ctx.emplace(s, *invocation.values, out);
    if (!processes().leader()) ctx->follow();
    work(*invocation.values, *ctx);
    ctx->finish();
    return 0;
  } catch (const RankFailure& e) {
    return report(ctx, err, e.what(), e.exit_code());  // agreed by every rank: told by the leader only
  } catch (const std::exception& e) {
    const int code = dynamic_cast<const InputError*>(&e) ? 2 : 1;
    if (processes().size() == 1) return report(ctx, err, e.what(), code);
    // One rank failed on its own: say so wherever it is, and stop the others rather than let them wait.
    std::cerr << "ERROR: (MPI rank " << processes().rank() << ") " << one_line(e.what()) << std::endl;
    if (ctx) ctx->fail(one_line(e.what()), code);
    stop_all_ranks(code);
    return code;
  } catch (...) {
    return report(ctx, err, "unknown exception", 1);
  }
}

}  // namespace

int run_program(const Schema& s, int argc, const char* const argv[], const WorkFunction& work,
                std::ostream& out, std::ostream& err) {
  handle_interrupts();  // first, so that every thread the run starts inherits it
  try {
    start_processes();
  } catch (const std::exception& e) {
    err << "ERROR: " << one_line(e.what()) << std::endl;
    return 1;
  }
  // Only the leader prints: the other ranks' messages would repeat its own.
  std::ostream null_stream(nullptr);
  const bool leader = processes().leader();
  const int code = run_once(s, argc, argv, work, leader ? out : null_stream, leader ? err : null_stream);
  stop_processes();
  return code;
}

}  // namespace tessera::protocol
