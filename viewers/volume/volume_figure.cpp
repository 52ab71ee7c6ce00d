#include "volume/volume_figure.hpp"

#include <fmt/format.h>

#include <QFontMetrics>
#include <QGuiApplication>
#include <QLinearGradient>
#include <QPainter>
#include <algorithm>
#include <cmath>
#include <limits>

#include "common/colormap.hpp"

namespace tessera::viewer {

namespace {

constexpr int kMargin = 12, kGap = 16, kTitleH = 20, kFooterH = 64, kBarW = 256, kBarH = 12;
constexpr int kColorBarH = 16, kColorFooterH = 64;  // the colour map's bar, its title and labels
constexpr int kMinColumn = 170;                     // room for a panel's title
constexpr int kModuleLineH = 16;                    // a module's line in the footer

int column_width(int picture_width) {
  return std::max(picture_width, kMinColumn);
}

// The contrast a projection or rendering gets: the volume's mode on its own values.
ContrastSpec own_values(ContrastSpec c) {
  if (c.mode == ContrastSpec::Mode::Range) c.mode = ContrastSpec::Mode::MinMax;
  return c;
}

Json limits_json(const Limits& l) {
  return {l.lo, l.hi};
}

}  // namespace

void apply_overlay(QImage& picture, const RealGrid& o, const OverlaySettings& s, double zoom) {
  const QRgb c = s.color.rgb();
  const auto edge = [&](int x, int y) {
    if (o(x, y) < s.level) return false;
    const auto below = [&](int xx, int yy) {
      return xx < 0 || yy < 0 || xx >= o.nx() || yy >= o.ny() || o(xx, yy) < s.level;
    };
    return below(x - 1, y) || below(x + 1, y) || below(x, y - 1) || below(x, y + 1);
  };
  for_each_zoomed_pixel(o.nx(), o.ny(), zoom, [&](int i, int j, int x, int y) {
    if (s.style == OverlaySettings::Style::Contour) {
      if (edge(x, y)) picture.setPixel(i, j, c);
      return;
    }
    const double t =
        s.range.hi > s.range.lo ? std::clamp((o(x, y) - s.range.lo) / (s.range.hi - s.range.lo), 0.0, 1.0) : 0.0;
    const double a = s.opacity * t;
    const QRgb g = picture.pixel(i, j);
    const auto mix = [a](int grey, int col) { return static_cast<int>(std::lround(grey * (1 - a) + col * a)); };
    picture.setPixel(i, j, qRgb(mix(qRed(g), qRed(c)), mix(qGreen(g), qGreen(c)), mix(qBlue(g), qBlue(c))));
  });
}

void apply_color_map(QImage& picture, const RealGrid& values, const Limits& range, double zoom) {
  const ColorMap& map = ColorMap::rainbow();
  for_each_zoomed_pixel(values.nx(), values.ny(), zoom, [&](int i, int j, int x, int y) {
    const float v = values(x, y);
    const QColor c = std::isnan(v) ? QColor(Qt::black) : map.at(v, range);
    const int g = qGreen(picture.pixel(i, j));  // grey: all channels equal
    const auto times = [g](int channel) { return static_cast<int>(std::lround(channel * g / 255.0)); };
    picture.setPixel(i, j, qRgb(times(c.red()), times(c.green()), times(c.blue())));
  });
}

QColor module_color(int k) {
  static const std::array<QColor, 7> kOkabeIto{QColor(230, 159, 0),  QColor(86, 180, 233), QColor(0, 158, 115),
                                              QColor(240, 228, 66), QColor(0, 114, 178),  QColor(213, 94, 0),
                                              QColor(204, 121, 167)};
  return kOkabeIto[static_cast<std::size_t>(k) % kOkabeIto.size()];
}

RealGrid module_labels(const std::vector<ModuleMask>& modules) {
  if (modules.empty()) return {};
  const RealGrid& first = modules.front().mask.data;
  RealGrid labels(first.nx(), first.ny(), first.nz());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    float best = 0.5f;
    labels[i] = std::numeric_limits<float>::quiet_NaN();
    for (std::size_t m = 0; m < modules.size(); ++m)
      if (modules[m].mask.data[i] >= best) {
        best = modules[m].mask.data[i];
        labels[i] = static_cast<float>(m);
      }
  }
  return labels;
}

void apply_module_colors(QImage& picture, const RealGrid& labels, const std::vector<QColor>& colors, double zoom) {
  for_each_zoomed_pixel(labels.nx(), labels.ny(), zoom, [&](int i, int j, int x, int y) {
    const float v = labels(x, y);
    if (std::isnan(v)) return;
    const QColor& c = colors[static_cast<std::size_t>(v)];
    const int g = qGreen(picture.pixel(i, j));  // grey: all channels equal
    const auto times = [g](int channel) { return static_cast<int>(std::lround(channel * g / 255.0)); };
    picture.setPixel(i, j, qRgb(times(c.red()), times(c.green()), times(c.blue())));
  });
}

VolumeFigure::VolumeFigure(NamedVolume volume, std::optional<NamedVolume> overlay, VolumeSettings settings,
                           std::optional<NamedVolume> color_by)
    : volume_(std::move(volume)), overlay_(std::move(overlay)), settings_(settings), color_by_(std::move(color_by)) {
  limits_ = contrast_limits(settings_.contrast, volume_.data.data(), volume_.data.size());
  set_settings(settings);
}

void VolumeFigure::set_modules(std::vector<ModuleMask> modules) {
  modules_ = std::move(modules);
  module_labels_ = module_labels(modules_);
  colored_surface_.reset();
}

void VolumeFigure::set_settings(const VolumeSettings& s) {
  const bool contrast_changed = s.contrast.to_string() != settings_.contrast.to_string();
  const bool view_changed = s.view.rot != settings_.view.rot || s.view.tilt != settings_.view.tilt ||
                            s.view.psi != settings_.view.psi || s.surface_level != settings_.surface_level;
  settings_ = s;
  for (int a = 0; a < 3; ++a)
    settings_.index[a] = std::clamp(settings_.index[a], 0, axis_size(volume_.data, static_cast<Axis>(a)) - 1);
  if (contrast_changed) limits_ = contrast_limits(settings_.contrast, volume_.data.data(), volume_.data.size());
  if (view_changed) {
    renderings_.clear();
    colored_surface_.reset();
  }
}

// Rays per voxel side of the surface rendering: the whole part of the zoom, so that
// the surface is drawn at the picture's resolution (at most 1024 rays per side).
int VolumeFigure::surface_oversample() const {
  const RealGrid& v = volume_.data;
  const int n = std::max({v.nx(), v.ny(), v.nz()});
  return std::clamp(static_cast<int>(std::floor(settings_.zoom)), 1, std::max(1, 1024 / n));
}

const SurfaceRendering& VolumeFigure::colored_surface() {
  const int oversample = surface_oversample();
  if (!colored_surface_ || colored_surface_->shade.nx() != std::max({volume_.data.nx(), volume_.data.ny(),
                                                                     volume_.data.nz()}) * oversample)
    colored_surface_ = render_surface(volume_.data, settings_.view, settings_.surface_level,
                                      color_by_ ? color_by_->data : module_labels_, oversample);
  return *colored_surface_;
}

int VolumeFigure::footer_height() const {
  return kFooterH + (color_by_ ? kColorFooterH : 0) + kModuleLineH * static_cast<int>(modules_.size());
}

const RealGrid& VolumeFigure::rendering(const std::string& kind) {
  const int oversample = kind == "mip" ? 1 : surface_oversample();
  const std::string key = kind + "@" + std::to_string(oversample);
  auto it = renderings_.find(key);
  if (it == renderings_.end()) {
    RealGrid r = kind == "mip" ? render_mip(volume_.data, settings_.view)
                               : render_surface(volume_.data, settings_.view, settings_.surface_level, oversample);
    it = renderings_.emplace(key, std::move(r)).first;
  }
  return it->second;
}

std::vector<std::vector<VolumeFigure::PanelSpec>> VolumeFigure::panel_rows() const {
  const RealGrid& v = volume_.data;
  const int n = std::max({v.nx(), v.ny(), v.nz()});
  std::vector<std::vector<PanelSpec>> rows;
  if (settings_.slices)
    rows.push_back(
        {{"slice", Axis::Z, v.nx(), v.ny()}, {"slice", Axis::Y, v.nx(), v.nz()}, {"slice", Axis::X, v.ny(), v.nz()}});
  std::vector<PanelSpec> second;
  if (settings_.projections)
    second = {{"projection", Axis::Z, v.nx(), v.ny()},
              {"projection", Axis::Y, v.nx(), v.nz()},
              {"projection", Axis::X, v.ny(), v.nz()}};
  if (settings_.mip) second.push_back({"mip", Axis::Z, n, n});
  if (settings_.surface) second.push_back({"surface", Axis::Z, n, n});
  if (!second.empty()) rows.push_back(std::move(second));
  return rows;
}

QSize VolumeFigure::natural_size() const {
  const QFontMetrics fm(QGuiApplication::font());
  const auto [line1, line2] = footer_lines();
  int w = std::max({kBarW + 2 * kMargin + 200, fm.horizontalAdvance(line1) + 2 * kMargin,
                    fm.horizontalAdvance(line2) + 2 * kMargin + 16});
  for (const ModuleMask& m : modules_)
    w = std::max(w, fm.horizontalAdvance(QString::fromStdString(m.label + ": " + m.mask.name)) + 2 * kMargin + 16);
  int h = kMargin + footer_height();
  for (const auto& row : panel_rows()) {
    int rw = kMargin, rh = 0;
    for (const auto& p : row) {
      rw += column_width(zoomed_size(p.width, settings_.zoom)) + kGap;
      rh = std::max(rh, zoomed_size(p.height, settings_.zoom));
    }
    w = std::max(w, rw - kGap + kMargin);
    h += kTitleH + rh + kGap;
  }
  return {w, h};
}

std::string VolumeFigure::panel_title(const PanelSpec& p) const {
  const RealGrid& v = volume_.data;
  const Euler& e = settings_.view;
  const std::string view = fmt::format("({:g}°, {:g}°, {:g}°)", e.rot, e.tilt, e.psi);
  if (p.kind == "slice") {
    const int a = static_cast<int>(p.axis);
    const char* plane = p.axis == Axis::Z ? "XY" : p.axis == Axis::Y ? "XZ" : "YZ";
    return fmt::format("{}, {} = {} of {}", plane, axis_name(p.axis), settings_.index[a], axis_size(v, p.axis));
  }
  if (p.kind == "projection") return fmt::format("sum along {}", axis_name(p.axis));
  if (p.kind == "mip") return "max. intensity " + view;
  return fmt::format("surface {:.3g} {}", settings_.surface_level, view);
}

QImage VolumeFigure::panel_image(const PanelSpec& p, Json& info) {
  const double zoom = settings_.zoom;
  info = {{"kind", p.kind}, {"axis", axis_name(p.axis)}, {"zoom", zoom}, {"picture_size", {p.width, p.height}}};
  if (p.kind == "slice") {
    const int index = settings_.index[static_cast<int>(p.axis)];
    const RealGrid s = volume_slice(volume_.data, p.axis, index);
    QImage img = grey_image(s.data(), s.nx(), s.ny(), limits_, zoom);
    if (color_by_) apply_color_map(img, volume_slice(color_by_->data, p.axis, index), settings_.color_range, zoom);
    if (overlay_) apply_overlay(img, volume_slice(overlay_->data, p.axis, index), settings_.overlay, zoom);
    for (const ModuleMask& m : modules_)
      apply_overlay(img, volume_slice(m.mask.data, p.axis, index), OverlaySettings{.color = m.color}, zoom);
    info["index"] = index;
    info["limits"] = limits_json(limits_);
    return img;
  }
  if (p.kind == "surface" && (color_by_ || !modules_.empty())) {
    const SurfaceRendering& r = colored_surface();
    const double drawn = zoom / surface_oversample();  // the rendering has oversample pixels per voxel
    QImage img = grey_image(r.shade.data(), r.shade.nx(), r.shade.ny(), Limits{0, 1}, drawn);
    if (color_by_) {
      apply_color_map(img, r.values, settings_.color_range, drawn);
      info["colored_by"] = color_by_->name;
    } else {
      std::vector<QColor> colors;
      for (const ModuleMask& m : modules_) colors.push_back(m.color);
      apply_module_colors(img, r.values, colors, drawn);
      info["colored_by"] = "modules";
    }
    info["oversample"] = surface_oversample();
    info["limits"] = limits_json(Limits{0, 1});
    info["view"] = {settings_.view.rot, settings_.view.tilt, settings_.view.psi};
    return img;
  }
  const RealGrid r = p.kind == "projection" ? volume_projection(volume_.data, p.axis) : rendering(p.kind);
  const ContrastSpec own = p.kind == "projection" ? own_values(settings_.contrast) : ContrastSpec{};  // mip: minmax
  const Limits l = p.kind == "surface" ? Limits{0, 1} : contrast_limits(own, r.data(), r.size());
  info["limits"] = limits_json(l);
  if (p.kind != "projection") info["view"] = {settings_.view.rot, settings_.view.tilt, settings_.view.psi};
  const int oversample = p.kind == "surface" ? surface_oversample() : 1;
  if (p.kind == "surface") info["oversample"] = oversample;
  return grey_image(r.data(), r.nx(), r.ny(), l, zoom / oversample);
}

std::pair<QString, QString> VolumeFigure::footer_lines() const {
  const RealGrid& v = volume_.data;
  const std::string line1 = fmt::format("{}   {} x {} x {} voxels, {:.4g} Å/voxel   slice contrast {}", volume_.name,
                                        v.nx(), v.ny(), v.nz(), volume_.voxel_A, settings_.contrast.to_string());
  if (!overlay_) return {QString::fromStdString(line1), {}};
  const auto& o = settings_.overlay;
  const std::string style =
      o.style == OverlaySettings::Style::Tint
          ? fmt::format("tint over {:.3g}..{:.3g}, opacity {:.2g}", o.range.lo, o.range.hi, o.opacity)
          : fmt::format("contour at {:.3g}", o.level);
  return {QString::fromStdString(line1), QString::fromStdString("overlay " + overlay_->name + ": " + style)};
}

void VolumeFigure::draw_footer(QPainter& painter, int top, Json& g) const {
  painter.setPen(Qt::black);
  const auto [line1, line2] = footer_lines();
  painter.drawText(QPoint(kMargin, top + 14), line1);
  if (overlay_) {
    painter.fillRect(QRect(kMargin, top + 22, 10, 10), settings_.overlay.color);
    painter.drawText(QPoint(kMargin + 16, top + 31), line2);
  }
  const QRect bar(kMargin + 70, top + 40, kBarW, kBarH);
  QLinearGradient grad(bar.topLeft(), bar.topRight());
  grad.setColorAt(0, Qt::black);
  grad.setColorAt(1, Qt::white);
  painter.fillRect(bar, grad);
  painter.drawRect(bar.adjusted(0, 0, -1, -1));
  const QString lo = QString::fromStdString(fmt::format("{:.4g}", limits_.lo));
  const QString hi = QString::fromStdString(fmt::format("{:.4g}", limits_.hi));
  painter.drawText(QRect(kMargin, bar.top() - 3, 64, kBarH + 6), Qt::AlignRight | Qt::AlignVCenter, lo);
  painter.drawText(QPoint(bar.right() + 6, bar.bottom()), hi);
  g["colorbar_rect"] = rect_json(bar);
  int module_top = top + kFooterH + (color_by_ ? kColorFooterH : 0);
  for (const ModuleMask& m : modules_) {
    painter.fillRect(QRect(kMargin, module_top + 2, 10, 10), m.color);
    painter.drawText(QPoint(kMargin + 16, module_top + 11), QString::fromStdString(m.label + ": " + m.mask.name));
    module_top += kModuleLineH;
  }
  if (!color_by_) return;
  // The colour map's bar: round Angstrom values, the limits written at the ends.
  const Limits& range = settings_.color_range;
  const QRect cbar(kMargin + 70, top + kFooterH + 22, kBarW, kColorBarH);
  ColorBarSpec spec{cbar, Qt::Horizontal, range, nice_ticks(range.lo, range.hi, 5),
                    fmt::format("colour: {} (Å), {:.3g} Å blue to {:.3g} Å red", color_by_->name, range.lo, range.hi)};
  g["color_bar"] = draw_color_bar(painter, ColorMap::rainbow(), spec, [](double v) { return fmt::format("{:g}", v); });
}

Json VolumeFigure::paint(QPainter& painter, QSize) {
  Json g{{"panels", Json::array()},
         {"volume", {{"name", volume_.name}, {"shape", {volume_.data.nx(), volume_.data.ny(), volume_.data.nz()}}}}};
  int y = kMargin;
  for (const auto& row : panel_rows()) {
    int x = kMargin, rh = 0;
    for (const auto& p : row) {
      Json info;
      const QImage img = panel_image(p, info);
      painter.setPen(Qt::black);
      painter.drawText(QRect(x, y, column_width(img.width()), kTitleH), Qt::AlignLeft | Qt::AlignVCenter,
                       QString::fromStdString(panel_title(p)));
      const QRect r(x, y + kTitleH, img.width(), img.height());
      painter.drawImage(r.topLeft(), img);
      info["rect"] = rect_json(r);
      info["title"] = panel_title(p);
      g["panels"].push_back(std::move(info));
      x += column_width(img.width()) + kGap;
      rh = std::max(rh, img.height());
    }
    y += kTitleH + rh + kGap;
  }
  draw_footer(painter, y, g);
  if (color_by_)
    g["color_by"] = {
        {"name", color_by_->name}, {"range", limits_json(settings_.color_range)}, {"map", ColorMap::rainbow().name()}};
  if (!modules_.empty()) {
    g["modules"] = Json::array();
    for (const ModuleMask& m : modules_)
      g["modules"].push_back({{"label", m.label}, {"mask", m.mask.name}, {"color", color_name(m.color)}});
  }
  if (overlay_)
    g["overlay"] = {{"name", overlay_->name},
                    {"color", color_name(settings_.overlay.color)},
                    {"opacity", settings_.overlay.opacity},
                    {"level", settings_.overlay.level},
                    {"range", limits_json(settings_.overlay.range)},
                    {"style", settings_.overlay.style == OverlaySettings::Style::Tint ? "tint" : "contour"}};
  return g;
}

}  // namespace tessera::viewer
