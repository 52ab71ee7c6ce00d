#pragma once
/// The figure of tessera_view_volume: rows of panels, each a picture with its
/// title above, and a footer with the file, the contrast and a grey bar.
///   row 1, "slices":       XY at z, XZ at y, YZ at x (volume_render.hpp layouts)
///   row 2, "projections":  sums along z, y, x; "mip" and "surface": renderings
///                          at the view angles (same row)
/// Slices share one contrast, computed over the whole volume (contrast.hpp);
/// each projection gets the contrast mode applied to its own values (a "range"
/// contrast becomes minmax there, as volume values do not apply); the MIP is
/// shown from its smallest to its largest value, the surface over [0, 1].
///
/// Overlay (a second volume or a mask of the same shape), drawn on the slices:
///   tint:    each channel becomes round(g (1 - a) + c a), g the grey level, c the
///            overlay colour's channel, a = opacity * clamp((o - lo) / (hi - lo), 0, 1)
///            with o the overlay's voxel under the pixel and [lo, hi] its range
///   contour: pixels whose voxel has o >= level and a 4-neighbour in the slice
///            with o < level (or none: the slice's edge) get the overlay colour
///
/// Colour map (--color-by: a map of the volume's shape, e.g. a local-resolution
/// map in Angstrom), on the slices and the surface; projections and the MIP stay
/// grey. With c the colour of ColorMap::rainbow (colormap.hpp) at the colour
/// map's value under [lo, hi] = settings.color_range (lo, the best resolution,
/// blue; hi red):
///   slices:  each channel becomes round(c * g / 255), g the pixel's grey level
///            (the colour map's voxel under the pixel; before the overlay)
///   surface: the same with g the surface's grey level and the colour map's value
///            at the surface voxel (volume_render.hpp surface values); black off it
/// The footer then holds a colour bar from lo to hi labelled in Angstrom.
///
/// Modules (--modules: a local refinement's or a simulation's modules.json):
/// each module's mask tints the slices in the module's colour (module_color:
/// Okabe & Ito's colour-blind-safe palette), as a mask overlay does (tint over
/// [0, 1], opacity 0.45), in module order after the overlay; without --color-by
/// the surface is coloured by module: at a surface voxel whose largest module
/// mask is at least 0.5, each channel becomes round(c * g / 255) with c that
/// module's colour and g the surface's grey level; elsewhere it stays grey. The
/// footer lists the modules with their colours.
#include <QColor>
#include <QString>
#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/contrast.hpp"
#include "common/figure.hpp"
#include "volume/volume_render.hpp"

namespace tessera::viewer {

struct OverlaySettings {
  enum class Style { Tint, Contour };
  Style style = Style::Tint;
  Limits range{0, 1};  ///< tint
  double level = 0.5;  ///< contour
  double opacity = 0.45;
  QColor color{255, 40, 40};
};

struct VolumeSettings {
  std::array<int, 3> index{0, 0, 0};  ///< slice through x, y, z
  ContrastSpec contrast;
  double zoom = 1;
  bool slices = true, projections = false, mip = false, surface = false;
  Euler view;  ///< rot, tilt, psi for mip and surface
  double surface_level = 0;
  OverlaySettings overlay;
  Limits color_range{0, 1};  ///< the colour map's values at the blue and red ends
};

struct NamedVolume {
  RealGrid data;
  double voxel_A = 0;
  std::string name;  ///< file name shown in the footer
};

/// One module of --modules: its mask (the volume's shape), colour and label.
struct ModuleMask {
  NamedVolume mask;
  QColor color;
  std::string label;  ///< "module 1" (modules.json's numbering)
};

/// The colour of the k-th module (from 0): Okabe & Ito's palette without black,
/// orange first, then sky blue, green, yellow, blue, vermillion, purple, repeating.
QColor module_color(int k);

/// Per voxel, the index of the module whose mask is largest there when that
/// mask is at least 0.5; NaN elsewhere.
RealGrid module_labels(const std::vector<ModuleMask>& modules);

class VolumeFigure : public Figure {
 public:
  /// The overlay and the colour map, when given, have the volume's shape (the caller checks).
  VolumeFigure(NamedVolume volume, std::optional<NamedVolume> overlay, VolumeSettings settings,
               std::optional<NamedVolume> color_by = std::nullopt);

  const NamedVolume& volume() const { return volume_; }
  const std::optional<NamedVolume>& overlay() const { return overlay_; }
  const std::optional<NamedVolume>& color_by() const { return color_by_; }
  const VolumeSettings& settings() const { return settings_; }
  /// Shows these modules (each mask of the volume's shape; the caller checks).
  void set_modules(std::vector<ModuleMask> modules);
  const std::vector<ModuleMask>& modules() const { return modules_; }
  /// Changes the settings (the contrast limits and renderings are recomputed when needed).
  void set_settings(const VolumeSettings& s);
  /// The slice contrast's limits.
  Limits limits() const { return limits_; }

  QSize natural_size() const override;
  Json paint(QPainter& painter, QSize size) override;

 private:
  struct PanelSpec {
    std::string kind;  ///< "slice", "projection", "mip", "surface"
    Axis axis = Axis::Z;
    int width = 0, height = 0;  ///< picture pixels before zoom
  };
  std::vector<std::vector<PanelSpec>> panel_rows() const;
  QImage panel_image(const PanelSpec& p, Json& info);
  std::string panel_title(const PanelSpec& p) const;
  const RealGrid& rendering(const std::string& kind);
  const SurfaceRendering& colored_surface();
  int surface_oversample() const;
  void draw_footer(QPainter& painter, int top, Json& g) const;
  int footer_height() const;
  std::pair<QString, QString> footer_lines() const;  ///< the volume; the overlay (empty without one)

  NamedVolume volume_;
  std::optional<NamedVolume> overlay_;
  VolumeSettings settings_;
  Limits limits_;
  std::optional<NamedVolume> color_by_;
  std::vector<ModuleMask> modules_;
  RealGrid module_labels_;  ///< module_labels(modules_); empty without modules
  std::map<std::string, RealGrid> renderings_;       ///< cached "mip" / "surface" at the current view
  std::optional<SurfaceRendering> colored_surface_;  ///< cached surface with the colour map's values
};

/// Blends the overlay slice into a zoomed picture as described above.
void apply_overlay(QImage& picture, const RealGrid& overlay_slice, const OverlaySettings& o, double zoom);

/// Multiplies a zoomed grey picture by the colours of `values` (same grid) under
/// `range` as described above; NaN values make the pixel black.
void apply_color_map(QImage& picture, const RealGrid& values, const Limits& range, double zoom);

/// Multiplies a zoomed grey picture by colors[label] where `labels` (same grid)
/// holds a module index; NaN labels leave the pixel grey.
void apply_module_colors(QImage& picture, const RealGrid& labels, const std::vector<QColor>& colors, double zoom);

}  // namespace tessera::viewer
