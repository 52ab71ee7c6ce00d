#pragma once
/// The figure of tessera_view_particles: one page of a gallery.
///
/// The rows of the table (particle_table.hpp) are put in the order of the sort
/// column, then cut into pages of columns x rows tiles; page p shows ranks
/// p * per_page .. (p + 1) * per_page - 1, left to right, top to bottom. Only
/// that page's images are read.
///
/// A tile is the image at zoom = tile_px / max(image nx, ny) (nearest neighbour
/// at zoom >= 1, Qt's smooth scaling below 1), grey levels from the contrast
/// (contrast.hpp) applied to that image's own values (a "range" contrast is the
/// same for every image), row 0 on top; under it "#<index>" (1-based position
/// in the file) and, on a second line, the sort column's value.
#include <QImage>
#include <map>
#include <optional>

#include "common/contrast.hpp"
#include "common/figure.hpp"
#include "particles/particle_table.hpp"

namespace tessera::viewer {

struct GallerySettings {
  int sort_column = 0;  ///< column index in the table ("index" is 0)
  bool descending = false;
  int page = 0;  ///< 0-based
  int columns = 8, rows = 6;
  int tile_px = 0;  ///< 0: from the first image's size (clamped to 48..160)
  ContrastSpec contrast = ContrastSpec::parse("sigma:3");
};

class GalleryFigure : public Figure {
 public:
  GalleryFigure(ParticleTable table, GallerySettings settings);

  const ParticleTable& table() const { return table_; }
  const GallerySettings& settings() const { return settings_; }
  /// Changes the settings: re-sorts when the column or the order changed, and
  /// clamps the page.
  void set_settings(const GallerySettings& s);
  int per_page() const { return settings_.columns * settings_.rows; }
  int pages() const;
  int tile_px() const;
  /// Rows (0-based, in the file) of the current page, in rank order.
  std::vector<std::size_t> page_rows() const;
  long images_read() const { return images_.images_read(); }

  QSize natural_size() const override;
  Json paint(QPainter& painter, QSize size) override;

 private:
  QImage tile(std::size_t row, Json& info);
  std::string header() const;
  int caption_height() const;

  ParticleTable table_;
  GallerySettings settings_;
  std::vector<std::size_t> order_;
  ImageSource images_;
  int first_image_px_ = 64;
  std::map<std::size_t, std::pair<QImage, Json>> cache_;  ///< tiles of the current page
  std::string cache_key_;
};

}  // namespace tessera::viewer
