#include "common/schema.hpp"

#include "common/condition.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

namespace tessera::protocol {

namespace {

// Indexed by the enumerators' values, in declaration order.
constexpr const char* kInputKinds[] = {"particles", "volume", "mask", "file", "classes", "ctfs"};
constexpr const char* kPointerClasses[] = {"SetOfParticles", "Volume",   "VolumeMask", "",
                                           "SetOfClasses2D,SetOfClasses3D", "SetOfCTF,SetOfParticles"};
constexpr const char* kParamTypes[] = {"int", "float", "bool", "choice", "string"};
constexpr const char* kOutputKinds[] = {"volume",         "half_map",         "mask",
                                        "particles_star", "particles_sqlite", "fsc_star",
                                        "fsc_json",       "table"};

template <std::size_t N, class E>
std::string name_of(const char* const (&names)[N], E e) {
  const auto i = static_cast<std::size_t>(e);
  if (i >= N) throw std::logic_error("enumerator out of range");
  return names[i];
}

}  // namespace

std::string to_string(InputKind kind) { return name_of(kInputKinds, kind); }
std::string to_string(ParamType type) { return name_of(kParamTypes, type); }
std::string to_string(OutputKind kind) { return name_of(kOutputKinds, kind); }
std::string scipion_pointer_class(InputKind kind) { return name_of(kPointerClasses, kind); }

// ---- builder ------------------------------------------------------------

namespace {

template <class T>
Param number_param(std::string name, ParamType type, std::string label, NumberOpts<T> o) {
  auto as_double = [](const std::optional<T>& b) -> std::optional<double> {
    return b ? std::optional<double>(static_cast<double>(*b)) : std::nullopt;
  };
  return {.name = std::move(name), .type = type, .label = std::move(label),
          .default_value = o.default_value ? std::optional<Value>(*o.default_value) : std::nullopt,
          .min = as_double(o.min), .max = as_double(o.max), .min_exclusive = o.min_exclusive,
          .max_exclusive = o.max_exclusive, .choices = {}, .unit = std::move(o.unit),
          .help = std::move(o.help), .section = std::move(o.section), .level = o.level,
          .condition = std::move(o.condition), .required = o.required};
}

Param text_param(std::string name, ParamType type, std::string label, std::vector<std::string> choices,
                 TextOpts o) {
  return {.name = std::move(name), .type = type, .label = std::move(label),
          .default_value = o.default_value ? std::optional<Value>(*o.default_value) : std::nullopt,
          .choices = std::move(choices), .help = std::move(o.help), .section = std::move(o.section),
          .level = o.level, .condition = std::move(o.condition), .required = o.required};
}

template <class T>
const T* find_named(const std::vector<T>& items, std::string_view name) {
  auto it = std::find_if(items.begin(), items.end(), [&](const T& x) { return x.name == name; });
  return it == items.end() ? nullptr : &*it;
}

}  // namespace

Input& Schema::add_input(std::string name, InputKind kind, std::string label, InputOpts o) {
  return inputs.emplace_back(Input{
      .name = std::move(name), .kind = kind, .label = std::move(label), .help = std::move(o.help),
      .required = o.required, .section = std::move(o.section), .level = o.level,
      .condition = std::move(o.condition), .pointer_condition = std::move(o.pointer_condition)});
}

Param& Schema::add_int(std::string name, std::string label, NumberOpts<std::int64_t> opts) {
  return params.emplace_back(
      number_param(std::move(name), ParamType::Int, std::move(label), std::move(opts)));
}

Param& Schema::add_float(std::string name, std::string label, NumberOpts<double> opts) {
  return params.emplace_back(
      number_param(std::move(name), ParamType::Float, std::move(label), std::move(opts)));
}

Param& Schema::add_bool(std::string name, std::string label, BoolOpts o) {
  return params.emplace_back(Param{
      .name = std::move(name), .type = ParamType::Bool, .label = std::move(label),
      .default_value = Value(o.default_value), .help = std::move(o.help),
      .section = std::move(o.section), .level = o.level, .condition = std::move(o.condition)});
}

Param& Schema::add_choice(std::string name, std::string label, std::vector<std::string> choices,
                          TextOpts opts) {
  return params.emplace_back(text_param(std::move(name), ParamType::Choice, std::move(label),
                                        std::move(choices), std::move(opts)));
}

Param& Schema::add_string(std::string name, std::string label, TextOpts opts) {
  return params.emplace_back(
      text_param(std::move(name), ParamType::String, std::move(label), {}, std::move(opts)));
}

Output& Schema::add_output(std::string name, OutputKind kind, std::string label, OutputOpts o) {
  return outputs.emplace_back(Output{.name = std::move(name), .kind = kind, .label = std::move(label),
                                     .help = std::move(o.help), .optional = o.optional});
}

const Input* Schema::find_input(std::string_view n) const { return find_named(inputs, n); }
const Param* Schema::find_param(std::string_view n) const { return find_named(params, n); }
const Output* Schema::find_output(std::string_view n) const { return find_named(outputs, n); }

// ---- values -------------------------------------------------------------

std::string option_name(std::string_view name) {
  std::string o = "--" + std::string(name);
  std::replace(o.begin(), o.end(), '_', '-');
  return o;
}

bool value_fits(ParamType type, const Value& v) {
  switch (type) {
    case ParamType::Int: return std::holds_alternative<std::int64_t>(v);
    case ParamType::Float: return std::holds_alternative<double>(v);
    case ParamType::Bool: return std::holds_alternative<bool>(v);
    case ParamType::Choice:
    case ParamType::String: return std::holds_alternative<std::string>(v);
  }
  return false;
}

std::string format_value(const Value& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) return "'" + x + "'";
        else if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
        else return fmt::format("{}", x);
      },
      v);
}

Json value_json(const Value& v) {
  return std::visit([](const auto& x) { return Json(x); }, v);
}

std::string describe_range(const Param& p) {
  auto bound = [&](double b) {
    return p.type == ParamType::Int ? fmt::format("{}", static_cast<std::int64_t>(b))
                                    : fmt::format("{}", b);
  };
  std::string r;
  if (p.min) r = fmt::format("{} {}", p.min_exclusive ? ">" : ">=", bound(*p.min));
  if (p.max)
    r += fmt::format("{}{} {}", r.empty() ? "" : " and ", p.max_exclusive ? "<" : "<=", bound(*p.max));
  if (!r.empty() && !p.unit.empty()) r += " " + p.unit;
  return r;
}

std::optional<std::string> value_problem(const Param& p, const Value& v) {
  if (p.type == ParamType::Choice) {
    const auto& text = std::get<std::string>(v);
    if (std::find(p.choices.begin(), p.choices.end(), text) == p.choices.end())
      return fmt::format("'{}' is not one of: {}", text, fmt::join(p.choices, ", "));
    return std::nullopt;
  }
  if (p.type != ParamType::Int && p.type != ParamType::Float) return std::nullopt;
  const double x = p.type == ParamType::Int ? static_cast<double>(std::get<std::int64_t>(v))
                                            : std::get<double>(v);
  const bool low = p.min && (x < *p.min || (p.min_exclusive && x == *p.min));
  const bool high = p.max && (x > *p.max || (p.max_exclusive && x == *p.max));
  if (low || high)
    return fmt::format("{} is out of range (must be {})", format_value(v), describe_range(p));
  return std::nullopt;
}

// ---- declaration checks -------------------------------------------------

namespace {

// Letters, digits and single underscores, not a Python keyword: Scipion evaluates
// conditions, which use these names, as Python.
bool valid_name(std::string_view n) {
  static constexpr std::string_view keywords[] = {
      "False", "None",   "True",    "and",      "as",     "assert", "async", "await", "break",
      "class", "continue", "def",   "del",      "elif",   "else",   "except", "finally", "for",
      "from",  "global", "if",      "import",   "in",     "is",     "lambda", "nonlocal", "not",
      "or",    "pass",   "raise",   "return",   "try",    "while",  "with",  "yield",  "true",
      "false"};
  if (n.empty() || !std::isalpha(static_cast<unsigned char>(n.front())) || n.back() == '_')
    return false;
  if (n.find("__") != std::string_view::npos) return false;
  if (std::find(std::begin(keywords), std::end(keywords), n) != std::end(keywords)) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

void check_param(const Param& p) {
  auto fail = [&](const std::string& what) {
    throw std::logic_error(fmt::format("parameter {}: {}", p.name, what));
  };
  const bool numeric = p.type == ParamType::Int || p.type == ParamType::Float;
  if ((p.min || p.max) && !numeric) fail("min/max only apply to int and float parameters");
  if (p.min && p.max && *p.min > *p.max) fail("min is above max");
  if (p.type == ParamType::Choice) {
    if (p.choices.empty()) fail("a choice parameter needs choices");
    std::set<std::string> seen;
    for (const auto& c : p.choices)
      if (c.empty() || !seen.insert(c).second) fail(fmt::format("empty or repeated choice '{}'", c));
  } else if (!p.choices.empty()) {
    fail("only choice parameters have choices");
  }
  if (p.type == ParamType::Bool && !p.default_value) fail("a bool parameter needs a default");
  if (p.default_value) {
    if (!value_fits(p.type, *p.default_value)) fail("the default does not have the parameter's type");
    if (auto problem = value_problem(p, *p.default_value)) fail("default " + *problem);
  }
}

}  // namespace

void Schema::check() const {
  auto fail = [&](const std::string& what) {
    throw std::logic_error(fmt::format("schema {}: {}", name.empty() ? "(unnamed)" : name, what));
  };
  if (name.empty() || version.empty()) fail("a schema needs a name and a version");
  std::set<std::string, std::less<>> names{"help", "schema", "params"};
  auto claim = [&](const std::string& n, std::string_view label, bool own = true) {
    if (own && !valid_name(n))
      fail(fmt::format("'{}' is not a valid name (letters, digits, single _, not a Python keyword)", n));
    if (!names.insert(n).second) fail(fmt::format("the name '{}' is used twice or reserved", n));
    if (label.empty()) fail(fmt::format("{} needs a label", n));
  };
  for (const Input& in : inputs) claim(in.name, in.label);
  for (const Param& p : params) claim(p.name, p.label);
  for (const Param& p : common_params(*this)) claim(p.name, p.label, false);
  try {
    for (const Param& p : params) check_param(p);
  } catch (const std::logic_error& e) {
    fail(e.what());
  }
  auto check_condition = [&](const std::string& owner, const std::string& condition) {
    if (condition.empty()) return;
    try {
      if (condition_names(*this, condition).count(owner)) fail(owner + ": condition refers to itself");
    } catch (const std::invalid_argument& e) {
      fail(fmt::format("{}: {}", owner, e.what()));
    }
  };
  for (const Input& in : inputs) check_condition(in.name, in.condition);
  for (const Param& p : params) check_condition(p.name, p.condition);
  std::set<std::string> output_names;
  for (const Output& o : outputs)
    if (!valid_name(o.name) || !output_names.insert(o.name).second)
      fail(fmt::format("output name '{}' is invalid or used twice", o.name));
}

std::vector<Param> common_params(const Schema& s) {
  std::vector<Param> c;
  auto add = [&](Param p) {
    p.section = "Run";
    c.push_back(std::move(p));
  };
  add({.name = "out", .type = ParamType::String, .label = "Output folder",
       .help = "Folder for everything this run writes; created if missing.", .required = true});
  if (s.support.threads)
    add({.name = "threads", .type = ParamType::Int, .label = "Threads",
         .default_value = Value(std::int64_t{1}), .min = 1, .max = 4096, .help = "CPU threads to use."});
  if (s.support.gpu)
    add({.name = "gpu", .type = ParamType::String, .label = "GPU devices",
         .help = "CUDA device numbers separated by commas, e.g. 0,1; not given: CPU only.",
         .level = Level::Advanced});
  add({.name = "seed", .type = ParamType::Int, .label = "Random seed",
       .default_value = Value(std::int64_t{1}), .min = 0,
       .help = "Seed of every random choice (half sets, initial noise): same seed, same result.",
       .level = Level::Advanced});
  if (s.support.resume)
    add({.name = "continue", .type = ParamType::Bool, .label = "Continue",
         .default_value = Value(false),
         .help = "Resume from the last finished iteration found in the output folder."});
  add({.name = "overwrite", .type = ParamType::Bool, .label = "Overwrite",
       .default_value = Value(false),
       .help = "Replace the run of this program that the output folder holds (its files are deleted "
               "first). Without it a run refuses a folder that is not new or empty.",
       .level = Level::Advanced});
  add({.name = "verbose", .type = ParamType::Bool, .label = "Verbose",
       .default_value = Value(false), .help = "Also print debugging messages.",
       .level = Level::Advanced});
  add({.name = "quiet", .type = ParamType::Bool, .label = "Quiet", .default_value = Value(false),
       .help = "Print only warnings and errors.", .level = Level::Advanced});
  return c;
}

// ---- --schema -----------------------------------------------------------

namespace {

Json condition_json(const Schema& s, const std::string& condition) {
  if (condition.empty()) return {{"condition", nullptr}, {"scipion_condition", nullptr}};
  return {{"condition", normalized_condition(s, condition)},
          {"scipion_condition", scipion_condition(s, condition)}};
}

Json param_json(const Schema& s, const Param& p) {
  auto bound = [&](const std::optional<double>& b) -> Json {
    if (!b) return nullptr;
    if (p.type == ParamType::Int) return static_cast<std::int64_t>(*b);
    return *b;
  };
  Json j{{"name", p.name}, {"option", option_name(p.name)}, {"type", to_string(p.type)},
         {"label", p.label}, {"help", p.help}, {"section", p.section},
         {"level", static_cast<int>(p.level)}, {"unit", p.unit},
         {"default", p.default_value ? value_json(*p.default_value) : Json(nullptr)},
         {"required", p.required}, {"min", bound(p.min)}, {"max", bound(p.max)},
         {"min_exclusive", p.min_exclusive}, {"max_exclusive", p.max_exclusive},
         {"choices", p.choices}};
  j.update(condition_json(s, p.condition));
  return j;
}

Json input_json(const Schema& s, const Input& in) {
  auto or_null = [](const std::string& t) { return t.empty() ? Json(nullptr) : Json(t); };
  Json j{{"name", in.name}, {"option", option_name(in.name)}, {"kind", to_string(in.kind)},
         {"label", in.label}, {"help", in.help}, {"section", in.section},
         {"level", static_cast<int>(in.level)}, {"required", in.required},
         {"pointer_class", or_null(scipion_pointer_class(in.kind))},
         {"pointer_condition", or_null(in.pointer_condition)}};
  j.update(condition_json(s, in.condition));
  return j;
}

}  // namespace

Json schema_json(const Schema& s) {
  s.check();
  std::vector<std::string> sections;
  auto add_section = [&](const std::string& sec) {
    if (std::find(sections.begin(), sections.end(), sec) == sections.end()) sections.push_back(sec);
  };
  Json inputs = Json::array(), params = Json::array(), common = Json::array(), outputs = Json::array();
  for (const Input& in : s.inputs) {
    add_section(in.section);
    inputs.push_back(input_json(s, in));
  }
  for (const Param& p : s.params) {
    add_section(p.section);
    params.push_back(param_json(s, p));
  }
  for (const Param& p : common_params(s)) common.push_back(param_json(s, p));
  for (const Output& o : s.outputs)
    outputs.push_back({{"name", o.name}, {"kind", to_string(o.kind)}, {"label", o.label},
                       {"help", o.help}, {"optional", o.optional}});
  const Support& u = s.support;
  return {{"schema_version", kSchemaFormatVersion}, {"program", s.name}, {"version", s.version},
          {"label", s.label}, {"description", s.description},
          {"scipion_base_class", s.scipion_base_class}, {"citations", s.citations},
          {"supports", {{"threads", u.threads}, {"mpi", u.mpi}, {"gpu", u.gpu}, {"continue", u.resume}}},
          {"sections", sections}, {"inputs", inputs}, {"parameters", params},
          {"common_parameters", common}, {"outputs", outputs}};
}

}  // namespace tessera::protocol
