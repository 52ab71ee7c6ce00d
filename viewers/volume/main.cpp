// tessera_view_volume: orthogonal slices through an MRC volume with a second
// volume or a mask overlaid, projections along the axes, and a maximum-intensity
// or surface rendering at a chosen view; contrast, zoom, slice positions.
#include <fmt/format.h>

#include <QColor>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/number.hpp"
#include "common/viewer_app.hpp"
#include "tessera/error.hpp"
#include "tessera/mrc.hpp"
#include "volume/volume_figure.hpp"
#include "volume/volume_window.hpp"

using namespace tessera;
using namespace tessera::viewer;
namespace fs = std::filesystem;

namespace {

NamedVolume load(const fs::path& path) {
  MrcMap m = read_mrc(path);
  for (std::size_t i = 0; i < m.data.size(); ++i)
    if (!std::isfinite(m.data[i]))
      throw InputError(fmt::format("{}: voxel {} is {} (NaN or infinite values)", path.string(), i, m.data[i]));
  return {std::move(m.data), m.voxel_A, path.filename().string()};
}

constexpr double kReadableSidePx = 256;

double mean_plus_sigmas(const RealGrid& v, double k) {
  double mean = 0, var = 0;
  for (float x : v.values()) mean += x;
  mean /= static_cast<double>(v.size());
  for (float x : v.values()) var += (x - mean) * (x - mean);
  return mean + k * std::sqrt(var / static_cast<double>(v.size()));
}

Euler parse_view(const QCommandLineParser& p) {
  const auto parts = option_list(p, "view");
  if (parts.size() != 3)
    throw InputError(fmt::format("--view: '{}' is not ROT,TILT,PSI", p.value("view").toStdString()));
  std::array<double, 3> a{};
  for (int i = 0; i < 3; ++i) {
    const std::optional<double> v = parse_finite(parts[i]);
    if (!v) throw InputError(fmt::format("--view: '{}' is not a number", parts[i]));
    a[i] = *v;
  }
  return {a[0], a[1], a[2]};
}

void parse_panels(const QCommandLineParser& p, VolumeSettings& s) {
  s.slices = s.projections = s.mip = s.surface = false;
  for (const auto& name : option_list(p, "panels")) {
    if (name == "slices")
      s.slices = true;
    else if (name == "projections")
      s.projections = true;
    else if (name == "mip")
      s.mip = true;
    else if (name == "surface")
      s.surface = true;
    else
      throw InputError(fmt::format("--panels: '{}' is not slices, projections, mip or surface", name));
  }
  if (!s.slices && !s.projections && !s.mip && !s.surface) throw InputError("--panels: choose at least one panel");
}

int slice_index(const QCommandLineParser& p, const char* option, int size) {
  if (!p.isSet(option)) return size / 2;
  return option_int(p, option, 0, size - 1);
}

OverlaySettings parse_overlay(const QCommandLineParser& p, const RealGrid& overlay) {
  OverlaySettings o;
  const auto [mn, mx] = std::minmax_element(overlay.values().begin(), overlay.values().end());
  const bool is_mask = *mn >= 0 && *mx <= 1;
  o.style = is_mask ? OverlaySettings::Style::Tint : OverlaySettings::Style::Contour;
  if (p.isSet("overlay-style")) {
    const QString style = p.value("overlay-style");
    if (style != "tint" && style != "contour")
      throw InputError(fmt::format("--overlay-style: '{}' is not tint or contour", style.toStdString()));
    o.style = style == "tint" ? OverlaySettings::Style::Tint : OverlaySettings::Style::Contour;
  }
  o.range = is_mask ? Limits{0, 1} : Limits{*mn, *mx};
  if (p.isSet("overlay-range")) {
    const ContrastSpec r = ContrastSpec::parse("range:" + p.value("overlay-range").toStdString(), "--overlay-range");
    o.range = {r.lo, r.hi};
  }
  o.level = p.isSet("overlay-level") ? option_double(p, "overlay-level") : is_mask ? 0.5 : mean_plus_sigmas(overlay, 3);
  o.opacity = option_double(p, "overlay-opacity", 0);
  if (o.opacity > 1) throw InputError("--overlay-opacity: must lie in [0, 1]");
  o.color = QColor(p.value("overlay-color"));
  if (!o.color.isValid())
    throw InputError(fmt::format("--overlay-color: '{}' is not a colour", p.value("overlay-color").toStdString()));
  return o;
}

// The colour map's 5th and 95th percentiles over the voxels the surface encloses
// (volume >= level: the molecule); over the whole box when none does or when
// those percentiles are equal (e.g. a core at Nyquist); +-1 about a single value.
Limits default_color_range(const RealGrid& volume, const RealGrid& colors, double level) {
  std::vector<float> inside;
  for (std::size_t i = 0; i < volume.size(); ++i)
    if (volume.data()[i] >= level) inside.push_back(colors.data()[i]);
  const ContrastSpec p5{ContrastSpec::Mode::Percentile, 5};
  Limits l = inside.empty() ? Limits{0, 0} : contrast_limits(p5, inside.data(), inside.size());
  if (!(l.hi > l.lo)) l = contrast_limits(p5, colors.data(), colors.size());
  if (!(l.hi > l.lo)) l = {l.lo - 1, l.hi + 1};
  return l;
}

NamedVolume load_same_shape(const QCommandLineParser& p, const char* option, const RealGrid& v) {
  NamedVolume other = load(p.value(option).toStdString());
  if (!other.data.same_shape(v))
    throw InputError(fmt::format("--{} {}: {} x {} x {} voxels, the volume has {} x {} x {}", option,
                                 p.value(option).toStdString(), other.data.nx(), other.data.ny(), other.data.nz(),
                                 v.nx(), v.ny(), v.nz()));
  return other;
}

// The modules of a modules.json (tessera_refine_local's or tessera_simulate's): an array whose
// entries name each module's "mask" (absolute, relative to the file's folder, or relative to the
// working folder) and may number it ("module"). Every mask must have the volume's shape.
std::vector<ModuleMask> load_modules(const std::string& file, const NamedVolume& volume) {
  std::ifstream in(file);
  if (!in) throw InputError(fmt::format("--modules {}: cannot read it", file));
  Json doc;
  try {
    doc = Json::parse(in);
  } catch (const Json::exception& e) {
    throw InputError(fmt::format("--modules {}: not JSON ({})", file, e.what()));
  }
  if (!doc.is_array() || doc.empty())
    throw InputError(fmt::format("--modules {}: not a modules.json (an array of modules with a mask each)", file));
  std::vector<ModuleMask> out;
  const fs::path folder = fs::path(file).parent_path();
  for (std::size_t k = 0; k < doc.size(); ++k) {
    const Json& m = doc[k];
    if (!m.is_object() || !m.contains("mask") || !m.at("mask").is_string())
      throw InputError(fmt::format("--modules {}: module {} has no \"mask\"", file, k + 1));
    // tessera_simulate writes the masks beside modules.json; tessera_refine_local writes the mask
    // as it was given, relative to where it ran: the file's folder first, then as written.
    fs::path mask = m.at("mask").get<std::string>();
    if (mask.is_relative() && fs::exists(folder / mask)) mask = folder / mask;
    NamedVolume v = load(mask.string());
    if (!v.data.same_shape(volume.data))
      throw InputError(fmt::format("--modules {}: mask {} is {} x {} x {} voxels, the volume has {} x {} x {}", file,
                                   mask.string(), v.data.nx(), v.data.ny(), v.data.nz(), volume.data.nx(),
                                   volume.data.ny(), volume.data.nz()));
    const int number = m.contains("module") && m.at("module").is_number_integer() ? m.at("module").get<int>()
                                                                                 : static_cast<int>(k) + 1;
    out.push_back({std::move(v), module_color(static_cast<int>(k)), fmt::format("module {}", number)});
  }
  return out;
}

std::unique_ptr<Figure> make_figure(const QCommandLineParser& p) {
  const QStringList args = p.positionalArguments();
  if (args.size() != 1) throw InputError("give one MRC volume (the overlay goes with --overlay)");
  NamedVolume volume = load(args[0].toStdString());
  const RealGrid& v = volume.data;
  std::optional<NamedVolume> overlay;
  VolumeSettings s;
  if (p.isSet("overlay")) {
    overlay = load_same_shape(p, "overlay", v);
    s.overlay = parse_overlay(p, overlay->data);
  }
  s.index = {slice_index(p, "slice-x", v.nx()), slice_index(p, "slice-y", v.ny()), slice_index(p, "slice-z", v.nz())};
  s.contrast = ContrastSpec::parse(p.value("contrast").toStdString());
  // Unless given: whole pixels per voxel so that the largest side is drawn at 256 pixels or more,
  // a size a person reads (a 64^3 map at one pixel per voxel is a thumbnail).
  s.zoom = p.isSet("zoom") ? option_double(p, "zoom", 0.05)
                           : std::max(1.0, std::floor(kReadableSidePx / std::max({v.nx(), v.ny(), v.nz()})));
  if (s.zoom > 64) throw InputError("--zoom: at most 64");
  parse_panels(p, s);
  s.view = parse_view(p);
  s.surface_level = p.isSet("surface-level") ? option_double(p, "surface-level") : mean_plus_sigmas(v, 3);
  std::optional<NamedVolume> color_by;
  if (p.isSet("color-by")) {
    color_by = load_same_shape(p, "color-by", v);
    if (color_by->voxel_A > 0 && volume.voxel_A > 0 &&
        std::abs(color_by->voxel_A - volume.voxel_A) > 1e-3 * volume.voxel_A)
      throw InputError(fmt::format("--color-by {}: {:.4g} A/voxel, the volume has {:.4g}",
                                   p.value("color-by").toStdString(), color_by->voxel_A, volume.voxel_A));
    if (p.isSet("color-range")) {
      const ContrastSpec r = ContrastSpec::parse("range:" + p.value("color-range").toStdString(), "--color-range");
      s.color_range = {r.lo, r.hi};
    } else {
      s.color_range = default_color_range(v, color_by->data, s.surface_level);
    }
  } else if (p.isSet("color-range")) {
    throw InputError("--color-range: goes with --color-by");
  }
  std::vector<ModuleMask> modules;
  if (p.isSet("modules")) modules = load_modules(p.value("modules").toStdString(), volume);
  auto figure = std::make_unique<VolumeFigure>(std::move(volume), std::move(overlay), s, std::move(color_by));
  figure->set_modules(std::move(modules));
  return figure;
}

void add_options(QCommandLineParser& p) {
  p.addOption({"slice-x", "Slice through x (YZ panel), voxels from 0 (default: the centre, n/2).", "I"});
  p.addOption({"slice-y", "Slice through y (XZ panel).", "I"});
  p.addOption({"slice-z", "Slice through z (XY panel).", "I"});
  p.addOption({"contrast",
               "minmax, sigma:K, percentile:P or range:LO,HI (over the whole volume). Default percentile:0.05: the "
               "0.05th to 99.95th percentiles, so that a map's density is not saturated white (sigma:3 is, for a "
               "particle filling a tenth of the box).",
               "SPEC", "percentile:0.05"});
  p.addOption({"zoom", "Picture pixels per voxel (nearest neighbour). Default: whole pixels per voxel so the largest "
               "side is at least 256 pixels (1 from 256 voxels on).", "Z"});
  p.addOption({"panels", "Panels to draw: slices, projections, mip, surface.", "LIST", "slices"});
  p.addOption(
      {"view", "Viewing direction of mip and surface: RELION Euler angles in degrees.", "ROT,TILT,PSI", "0,0,0"});
  p.addOption({"surface-level", "Surface threshold (default: mean + 3 standard deviations).", "L"});
  p.addOption({"overlay", "A second volume or a mask of the same shape, drawn on the slices.", "FILE"});
  p.addOption({"modules",
               "A modules.json (tessera_refine_local's or tessera_simulate's): each module's mask tints the slices "
               "in its own colour, and the surface is coloured by module (unless --color-by).",
               "FILE"});
  p.addOption({"overlay-style", "tint (default for a mask: values in [0, 1]) or contour (otherwise).", "STYLE"});
  p.addOption({"overlay-range", "Tint: overlay values mapped to opacity 0..1 (default 0,1 for a mask, else min,max).",
               "LO,HI"});
  p.addOption({"overlay-level", "Contour level (default 0.5 for a mask, else mean + 3 standard deviations).", "L"});
  p.addOption({"overlay-opacity", "Tint opacity at the top of the range.", "A", "0.45"});
  p.addOption({"overlay-color", "Overlay colour (#rrggbb or a name).", "COLOR", "#ff2828"});
  p.addOption({"color-by",
               "Colour the slices and the surface by this map of the same grid (e.g. local_resolution.mrc, A): "
               "blue (best) to red.",
               "FILE"});
  p.addOption({"color-range",
               "The --color-by values at blue and red (default: its 5th and 95th percentiles inside the surface "
               "level, or over the box when nothing is above it or they are equal).",
               "LO,HI"});
}

}  // namespace

int main(int argc, char** argv) {
  ViewerSpec spec;
  spec.name = "tessera_view_volume";
  spec.description =
      "Orthogonal slices through an MRC volume, with a mask or second volume overlaid; projections along the axes; "
      "maximum-intensity and surface renderings at a view. Row 0 of every picture is drawn on top.";
  spec.positional = "volume";
  spec.positional_help = "MRC volume (.mrc, .map).";
  spec.add_options = add_options;
  spec.make_figure = make_figure;
  spec.make_window = [](Figure& f) { return make_volume_window(static_cast<VolumeFigure&>(f)); };
  return run_viewer(argc, argv, spec);
}
