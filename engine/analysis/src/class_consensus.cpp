#include "tessera/class_consensus.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <stdexcept>
#include <unordered_set>

namespace tessera {

namespace {

// Class labels in numeric order when they are numbers ("2" before "10"), else by text.
bool label_less(const std::string& a, const std::string& b) {
  char* ea = nullptr;
  char* eb = nullptr;
  const double x = std::strtod(a.c_str(), &ea), y = std::strtod(b.c_str(), &eb);
  const bool na = !a.empty() && *ea == '\0', nb = !b.empty() && *eb == '\0';
  if (na && nb && x != y) return x < y;
  if (na != nb) return na;
  return a < b;
}

double log_binomial_term(long k, long n, double log_p, double log_q) {
  return std::lgamma(static_cast<double>(n) + 1) - std::lgamma(static_cast<double>(k) + 1) -
         std::lgamma(static_cast<double>(n - k) + 1) + static_cast<double>(k) * log_p +
         static_cast<double>(n - k) * log_q;
}

// log(exp(a) + exp(b)).
double log_add(double a, double b) {
  if (a < b) std::swap(a, b);
  if (b == -std::numeric_limits<double>::infinity()) return a;
  return a + std::log1p(std::exp(b - a));
}

}  // namespace

double binomial_upper_tail_log10(long n, long trials, double p) {
  if (n <= 0 || p >= 1) return 0;
  if (n > trials) return -std::numeric_limits<double>::infinity();
  if (p <= 0) return -std::numeric_limits<double>::infinity();
  const double log_p = std::log(p), log_q = std::log1p(-p);
  const double mean = static_cast<double>(trials) * p;
  double log_sum = -std::numeric_limits<double>::infinity();
  if (static_cast<double>(n) > mean) {
    // Above the mode the terms fall monotonically: sum upwards until they no longer count.
    for (long k = n; k <= trials; ++k) {
      const double t = log_binomial_term(k, trials, log_p, log_q);
      log_sum = log_add(log_sum, t);
      if (t < log_sum - 40) break;  // e^-40: below double precision of the sum
    }
    return log_sum / std::log(10.0);
  }
  // At or below the mean the tail is large: 1 - P(X <= n - 1), summing downwards.
  for (long k = n - 1; k >= 0; --k) {
    const double t = log_binomial_term(k, trials, log_p, log_q);
    log_sum = log_add(log_sum, t);
    if (t < log_sum - 40) break;
  }
  const double lower = std::exp(log_sum);
  return std::log10(std::max(1 - lower, std::numeric_limits<double>::min()));
}

ClassConsensus class_consensus(const std::vector<std::vector<std::string>>& labels) {
  if (labels.size() < 2) throw std::invalid_argument("class consensus needs at least two classifications");
  const std::size_t n = labels.front().size();
  if (n == 0) throw std::invalid_argument("class consensus needs at least one particle");
  for (const auto& l : labels)
    if (l.size() != n) throw std::invalid_argument("classifications of different lengths");
  ClassConsensus c;
  c.particles = static_cast<long>(n);
  const std::size_t m = labels.size();
  std::vector<std::map<std::string, int>> class_index(m);
  for (std::size_t s = 0; s < m; ++s) {
    const std::unordered_set<std::string> distinct(labels[s].begin(), labels[s].end());
    std::vector<std::string> names(distinct.begin(), distinct.end());
    std::sort(names.begin(), names.end(), label_less);
    for (std::size_t k = 0; k < names.size(); ++k) class_index[s][names[k]] = static_cast<int>(k);
    c.class_sizes.emplace_back(names.size(), 0);
    for (const auto& l : labels[s]) ++c.class_sizes[s][static_cast<std::size_t>(class_index[s][l])];
    c.classes.push_back(std::move(names));
  }
  std::map<std::vector<int>, std::vector<long>> members;
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<int> key(m);
    for (std::size_t s = 0; s < m; ++s) key[s] = class_index[s][labels[s][i]];
    members[key].push_back(static_cast<long>(i));
  }
  std::vector<std::pair<std::vector<int>, const std::vector<long>*>> order;
  for (const auto& [key, who] : members) order.emplace_back(key, &who);
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.second->size() > b.second->size(); });
  c.intersection_of.assign(n, -1);
  const double total = static_cast<double>(n);
  for (const auto& [key, who] : order) {
    ClassIntersection x;
    double p0 = 1;
    for (std::size_t s = 0; s < m; ++s) {
      const auto k = static_cast<std::size_t>(key[s]);
      x.classes.push_back(c.classes[s][k]);
      p0 *= static_cast<double>(c.class_sizes[s][k]) / total;
    }
    x.size = static_cast<long>(who->size());
    x.expected = total * p0;
    x.log10_p_value = binomial_upper_tail_log10(x.size, c.particles, p0);
    x.p_value = std::pow(10.0, x.log10_p_value);
    for (long i : *who) c.intersection_of[static_cast<std::size_t>(i)] = static_cast<int>(c.intersections.size());
    c.intersections.push_back(std::move(x));
  }
  return c;
}

std::vector<std::vector<double>> jaccard_matrix(const ClassConsensus& c,
                                                const std::vector<std::vector<std::string>>& labels, int s, int t) {
  const auto& cs = c.classes.at(static_cast<std::size_t>(s));
  const auto& ct = c.classes.at(static_cast<std::size_t>(t));
  std::map<std::string, std::size_t> is, it;
  for (std::size_t k = 0; k < cs.size(); ++k) is[cs[k]] = k;
  for (std::size_t k = 0; k < ct.size(); ++k) it[ct[k]] = k;
  std::vector<std::vector<long>> both(cs.size(), std::vector<long>(ct.size(), 0));
  const auto& ls = labels[static_cast<std::size_t>(s)];
  const auto& lt = labels[static_cast<std::size_t>(t)];
  for (std::size_t i = 0; i < ls.size(); ++i) ++both[is[ls[i]]][it[lt[i]]];
  std::vector<std::vector<double>> j(cs.size(), std::vector<double>(ct.size(), 0.0));
  for (std::size_t a = 0; a < cs.size(); ++a)
    for (std::size_t b = 0; b < ct.size(); ++b) {
      const long inter = both[a][b];
      const long uni =
          c.class_sizes[static_cast<std::size_t>(s)][a] + c.class_sizes[static_cast<std::size_t>(t)][b] - inter;
      j[a][b] = uni > 0 ? static_cast<double>(inter) / static_cast<double>(uni) : 0.0;
    }
  return j;
}

}  // namespace tessera
