// The condition grammar of schema.hpp: parsing, checking names, evaluating,
// and printing in Python syntax for Scipion.
#include "common/condition.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

namespace tessera::protocol {

// ---- conditions ---------------------------------------------------------

namespace {

struct Expr {
  enum class Op { Ref, Eq, Ne, Not, And, Or };
  Op op = Op::Ref;
  std::string name{};        // Ref, Eq, Ne
  Value literal{};           // Eq, Ne
  std::vector<Expr> args{};  // Not: 1, And/Or: 2
};

struct Token {
  enum class Kind { Name, Text, Number, Eq, Ne, LParen, RParen, End };
  Kind kind = Kind::End;
  std::string text{};
  std::size_t pos = 0;
};

bool is_word(const Token& t, std::string_view w) { return t.kind == Token::Kind::Name && t.text == w; }

class ConditionParser {
 public:
  explicit ConditionParser(std::string_view text) : text_(text) { tokenize(); }

  Expr parse() {
    Expr e = parse_or();
    if (peek().kind != Token::Kind::End) fail("unexpected '" + peek().text + "'");
    return e;
  }

 private:
  [[noreturn]] void fail_at(std::size_t pos, const std::string& what) const {
    throw std::invalid_argument(fmt::format("condition \"{}\": {} at column {}", text_, what, pos + 1));
  }
  [[noreturn]] void fail(const std::string& what) const { fail_at(peek().pos, what); }
  const Token& peek() const { return tokens_[next_]; }
  const Token& take() { return tokens_[next_ < tokens_.size() - 1 ? next_++ : next_]; }

  void tokenize() {
    using K = Token::Kind;
    const std::size_t n = text_.size();
    auto alnum = [&](std::size_t j) {
      return std::isalnum(static_cast<unsigned char>(text_[j])) || text_[j] == '_';
    };
    for (std::size_t i = 0; i < n;) {
      const char c = text_[i];
      const std::string_view two = text_.substr(i, 2);
      std::size_t j = i + 1;
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++i;
        continue;
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        while (j < n && alnum(j)) ++j;
        tokens_.push_back({K::Name, std::string(text_.substr(i, j - i)), i});
      } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.') {
        auto exponent_sign = [&](std::size_t k) {
          const bool sign = text_[k] == '-' || text_[k] == '+';
          return sign && std::tolower(static_cast<unsigned char>(text_[k - 1])) == 'e';
        };
        while (j < n && (alnum(j) || text_[j] == '.' || exponent_sign(j))) ++j;
        tokens_.push_back({K::Number, std::string(text_.substr(i, j - i)), i});
      } else if (c == '\'' || c == '"') {
        j = text_.find(c, i + 1);
        if (j == std::string_view::npos) fail_at(i, "unterminated string");
        tokens_.push_back({K::Text, std::string(text_.substr(i + 1, j - i - 1)), i});
        ++j;
      } else if (two == "==" || two == "!=") {
        tokens_.push_back({two == "==" ? K::Eq : K::Ne, std::string(two), i});
        ++j;
      } else if (c == '(' || c == ')') {
        tokens_.push_back({c == '(' ? K::LParen : K::RParen, std::string(1, c), i});
      } else {
        fail_at(i, fmt::format("unexpected '{}'", c));
      }
      i = j;
    }
    tokens_.push_back({K::End, "end", n});
  }

  Expr binary(Expr::Op op, Expr lhs, Expr rhs) {
    Expr e{.op = op};
    e.args.push_back(std::move(lhs));
    e.args.push_back(std::move(rhs));
    return e;
  }
  Expr parse_or() {
    Expr e = parse_and();
    while (is_word(peek(), "or")) {
      take();
      e = binary(Expr::Op::Or, std::move(e), parse_and());
    }
    return e;
  }
  Expr parse_and() {
    Expr e = parse_unary();
    while (is_word(peek(), "and")) {
      take();
      e = binary(Expr::Op::And, std::move(e), parse_unary());
    }
    return e;
  }
  Expr parse_unary() {
    if (is_word(peek(), "not")) {
      take();
      Expr e{.op = Expr::Op::Not};
      e.args.push_back(parse_unary());
      return e;
    }
    if (peek().kind == Token::Kind::LParen) {
      take();
      Expr e = parse_or();
      if (peek().kind != Token::Kind::RParen) fail("expected ')'");
      take();
      return e;
    }
    static constexpr std::string_view reserved[] = {"and", "or", "not", "True", "False", "true", "false"};
    if (peek().kind != Token::Kind::Name ||
        std::find(std::begin(reserved), std::end(reserved), peek().text) != std::end(reserved))
      fail("expected a parameter name");
    Expr e{.op = Expr::Op::Ref, .name = take().text};
    if (peek().kind == Token::Kind::Eq || peek().kind == Token::Kind::Ne) {
      e.op = take().kind == Token::Kind::Eq ? Expr::Op::Eq : Expr::Op::Ne;
      e.literal = parse_literal();
    }
    return e;
  }
  Value parse_literal() {
    const Token& t = peek();
    if (t.kind == Token::Kind::Text) return take().text;
    if (is_word(t, "True") || is_word(t, "true")) return (take(), true);
    if (is_word(t, "False") || is_word(t, "false")) return (take(), false);
    if (t.kind != Token::Kind::Number) fail("expected a value ('text', number, True or False)");
    const std::string& s = t.text;
    const char* end = s.data() + s.size();
    if (s.find_first_of(".eE") == std::string::npos) {
      std::int64_t i = 0;
      if (std::from_chars(s.data(), end, i).ptr == end) return (take(), i);
    } else {
      double d = 0;
      if (std::from_chars(s.data(), end, d).ptr == end) return (take(), d);
    }
    fail("bad number '" + s + "'");
  }

  std::string_view text_;
  std::vector<Token> tokens_;
  std::size_t next_ = 0;
};

// Checks names and literals against the schema; adds every referenced name to `names`.
void check_names(const Schema& s, const Expr& e, std::string_view text, std::set<std::string>& names) {
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument(fmt::format("condition \"{}\": {}", text, what));
  };
  if (e.op == Expr::Op::Not || e.op == Expr::Op::And || e.op == Expr::Op::Or) {
    for (const Expr& a : e.args) check_names(s, a, text, names);
    return;
  }
  names.insert(e.name);
  const Param* p = s.find_param(e.name);
  const Input* in = s.find_input(e.name);
  if (!p && !in) fail(fmt::format("'{}' is not a parameter or input of {}", e.name, s.name));
  if (e.op == Expr::Op::Ref) {
    if (p && p->type != ParamType::Bool)
      fail(fmt::format("'{}' is not a bool: compare it with == or !=", e.name));
    return;
  }
  if (in) fail(fmt::format("input '{}' can only be tested for presence", e.name));
  const bool number_ok = p->type == ParamType::Float && std::holds_alternative<std::int64_t>(e.literal);
  if (!value_fits(p->type, e.literal) && !number_ok)
    fail(fmt::format("{} does not fit {} parameter '{}'", format_value(e.literal), to_string(p->type),
                     e.name));
  if (p->type == ParamType::Choice) {
    if (auto problem = value_problem(*p, e.literal)) fail(fmt::format("{}: {}", e.name, *problem));
  }
}

Expr parse_condition(const Schema& s, std::string_view text, std::set<std::string>& names) {
  Expr e = ConditionParser(text).parse();
  check_names(s, e, text, names);
  return e;
}

Expr parse_condition(const Schema& s, std::string_view text) {
  std::set<std::string> names;
  return parse_condition(s, text, names);
}


bool values_equal(const Value& a, const Value& b) {
  auto number = [](const Value& v) -> std::optional<double> {
    if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
    if (const auto* d = std::get_if<double>(&v)) return *d;
    return std::nullopt;
  };
  if (number(a) && number(b)) return *number(a) == *number(b);
  return a == b;
}

bool eval(const Expr& e, const ValueLookup& lookup) {
  switch (e.op) {
    case Expr::Op::Not: return !eval(e.args[0], lookup);
    case Expr::Op::And: return eval(e.args[0], lookup) && eval(e.args[1], lookup);
    case Expr::Op::Or: return eval(e.args[0], lookup) || eval(e.args[1], lookup);
    case Expr::Op::Ref: {
      const std::optional<Value> v = lookup(e.name);
      if (!v) return false;
      if (const bool* b = std::get_if<bool>(&*v)) return *b;
      return true;  // an input that was given
    }
    case Expr::Op::Eq:
    case Expr::Op::Ne: {
      const std::optional<Value> v = lookup(e.name);
      const bool equal = v && values_equal(*v, e.literal);
      return e.op == Expr::Op::Eq ? equal : !equal;
    }
  }
  return false;
}

std::string python_literal(const Value& v) {
  if (const bool* b = std::get_if<bool>(&v)) return *b ? "True" : "False";
  if (const auto* t = std::get_if<std::string>(&v))
    return t->find('\'') == std::string::npos ? "'" + *t + "'" : "\"" + *t + "\"";
  return format_value(v);
}

// Precedence: or 1, and 2, not 3, comparison 4; `enum_index` prints Choice literals as indexes.
std::string print(const Schema& s, const Expr& e, bool enum_index, int parent) {
  auto wrap = [&](int prec, std::string t) { return prec < parent ? "(" + t + ")" : t; };
  switch (e.op) {
    case Expr::Op::Or:
      return wrap(1, print(s, e.args[0], enum_index, 1) + " or " + print(s, e.args[1], enum_index, 1));
    case Expr::Op::And:
      return wrap(2, print(s, e.args[0], enum_index, 2) + " and " + print(s, e.args[1], enum_index, 2));
    case Expr::Op::Not: return wrap(3, "not " + print(s, e.args[0], enum_index, 3));
    case Expr::Op::Ref: return e.name;
    case Expr::Op::Eq:
    case Expr::Op::Ne: break;
  }
  std::string literal = python_literal(e.literal);
  const Param* p = s.find_param(e.name);
  if (enum_index && p->type == ParamType::Choice) {
    const auto& c = p->choices;
    literal = std::to_string(std::find(c.begin(), c.end(), std::get<std::string>(e.literal)) - c.begin());
  }
  return e.name + (e.op == Expr::Op::Eq ? " == " : " != ") + literal;
}

}  // namespace

std::set<std::string> condition_names(const Schema& s, std::string_view text) {
  std::set<std::string> names;
  parse_condition(s, text, names);
  return names;
}

bool evaluate_condition(const Schema& s, std::string_view condition, const ValueLookup& lookup) {
  return eval(parse_condition(s, condition), lookup);
}

std::string scipion_condition(const Schema& s, std::string_view condition) {
  return print(s, parse_condition(s, condition), true, 0);
}

std::string normalized_condition(const Schema& s, std::string_view condition) {
  return print(s, parse_condition(s, condition), false, 0);
}

}  // namespace tessera::protocol
