#include "tessera/optics_aberrations.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstddef>

#include "scipion_labels.hpp"
#include "tessera/error.hpp"

namespace tessera {

namespace {

using detail::parse_double;
using detail::trim;

constexpr std::array<const char*, 4> kMagLabels{"rlnMagMat00", "rlnMagMat01", "rlnMagMat10", "rlnMagMat11"};

std::string number_text(double v) { return fmt::format("{}", v); }

/// "[a,b,c]" (RELION's vector text; blanks allowed, "[]" is empty) as numbers.
std::vector<double> parse_list(const std::string& text, const std::string& what) {
  const std::string t = trim(text);
  if (t.size() < 2 || t.front() != '[' || t.back() != ']')
    throw InputError(fmt::format("{} '{}' is not a list written [a,b,...]", what, text));
  std::vector<double> out;
  const std::string inner = trim(t.substr(1, t.size() - 2));
  if (inner.empty()) return out;
  std::size_t start = 0;
  while (start <= inner.size()) {
    const std::size_t comma = inner.find(',', start);
    const std::string item = inner.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const auto v = parse_double(item);
    if (!v) throw InputError(fmt::format("{} '{}': '{}' is not a finite number", what, text, trim(item)));
    out.push_back(*v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

bool is_aberration_label(const std::string& label) {
  if (label == "rlnBeamTiltX" || label == "rlnBeamTiltY" || label == "rlnOddZernike" || label == "rlnEvenZernike")
    return true;
  return std::find(kMagLabels.begin(), kMagLabels.end(), label) != kMagLabels.end();
}

std::string format_coefficient_list(const std::vector<double>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + number_text(values[i]);
  return out + "]";
}

void take_aberration_columns(ParticleSet& set, const std::string& source) {
  std::vector<std::string> labels;
  std::vector<std::size_t> kept;
  for (std::size_t c = 0; c < set.optics_extra_labels.size(); ++c)
    if (!is_aberration_label(set.optics_extra_labels[c])) kept.push_back(c);
  if (kept.size() == set.optics_extra_labels.size()) return;
  for (auto& g : set.optics) {
    if (g.extra.size() != set.optics_extra_labels.size())
      throw std::invalid_argument(fmt::format("optics group {} has {} extra values for {} extra labels", g.number,
                                              g.extra.size(), set.optics_extra_labels.size()));
    std::vector<std::string> rest;
    for (std::size_t c = 0; c < set.optics_extra_labels.size(); ++c) {
      const std::string& label = set.optics_extra_labels[c];
      const std::string& text = g.extra[c];
      if (!is_aberration_label(label)) {
        rest.push_back(text);
        continue;
      }
      const std::string what = fmt::format("{}: optics group {}: {}", source, g.number, label);
      if (label == "rlnOddZernike" || label == "rlnEvenZernike") {
        (label == "rlnOddZernike" ? g.odd_zernike : g.even_zernike) = parse_list(text, what);
        continue;
      }
      const auto v = parse_double(text);
      if (!v) throw InputError(fmt::format("{} '{}' is not a finite number", what, text));
      if (label == "rlnBeamTiltX") g.beam_tilt_x_mrad = *v;
      else if (label == "rlnBeamTiltY") g.beam_tilt_y_mrad = *v;
      else
        g.mag_matrix[static_cast<std::size_t>(std::find(kMagLabels.begin(), kMagLabels.end(), label) -
                                              kMagLabels.begin())] = *v;
    }
    g.extra = std::move(rest);
  }
  for (const std::size_t c : kept) labels.push_back(set.optics_extra_labels[c]);
  set.optics_extra_labels = std::move(labels);
}

std::vector<OpticsTextColumn> aberration_columns(const ParticleSet& set) {
  std::vector<OpticsTextColumn> out;
  const auto any = [&](auto pred) { return std::any_of(set.optics.begin(), set.optics.end(), pred); };
  const auto column = [&](const char* label, auto value) {
    OpticsTextColumn c{label, {}};
    for (const auto& g : set.optics) c.values.push_back(value(g));
    out.push_back(std::move(c));
  };
  if (any([](const OpticsGroup& g) { return g.beam_tilt_x_mrad != 0 || g.beam_tilt_y_mrad != 0; })) {
    column("rlnBeamTiltX", [](const OpticsGroup& g) { return number_text(g.beam_tilt_x_mrad); });
    column("rlnBeamTiltY", [](const OpticsGroup& g) { return number_text(g.beam_tilt_y_mrad); });
  }
  for (const auto field : {&OpticsGroup::odd_zernike, &OpticsGroup::even_zernike}) {
    std::size_t n = 0;
    for (const auto& g : set.optics) n = std::max(n, (g.*field).size());
    if (n == 0) continue;
    column(field == &OpticsGroup::odd_zernike ? "rlnOddZernike" : "rlnEvenZernike", [&](const OpticsGroup& g) {
      std::vector<double> v = g.*field;
      v.resize(n, 0.0);
      return format_coefficient_list(v);
    });
  }
  if (any([](const OpticsGroup& g) { return g.mag_matrix != std::array<double, 4>{1, 0, 0, 1}; }))
    for (std::size_t i = 0; i < kMagLabels.size(); ++i)
      column(kMagLabels[i], [i](const OpticsGroup& g) { return number_text(g.mag_matrix[i]); });
  return out;
}

}  // namespace tessera
