#include "particles/gallery.hpp"

#include <fmt/format.h>

#include <QPainter>
#include <algorithm>
#include <cmath>

namespace tessera::viewer {

namespace {

constexpr int kMargin = 10, kHeaderH = 40, kLineH = 14, kGap = 6, kMinWidth = 520;

}  // namespace

GalleryFigure::GalleryFigure(ParticleTable table, GallerySettings settings)
    : table_(std::move(table)), settings_(settings) {
  const ImageLocation first = table_.image(0);
  const MrcInfo info = read_mrc_info(first.stack);
  first_image_px_ = std::max(info.nx, info.ny);
  order_ = table_.sorted(settings_.sort_column, settings_.descending);
  set_settings(settings);
}

void GalleryFigure::set_settings(const GallerySettings& s) {
  const bool resort = s.sort_column != settings_.sort_column || s.descending != settings_.descending;
  settings_ = s;
  settings_.columns = std::max(1, settings_.columns);
  settings_.rows = std::max(1, settings_.rows);
  if (resort) order_ = table_.sorted(settings_.sort_column, settings_.descending);
  settings_.page = std::clamp(settings_.page, 0, pages() - 1);
}

int GalleryFigure::pages() const {
  return static_cast<int>((table_.size() + static_cast<std::size_t>(per_page()) - 1) /
                          static_cast<std::size_t>(per_page()));
}

int GalleryFigure::tile_px() const {
  return settings_.tile_px > 0 ? settings_.tile_px : std::clamp(first_image_px_, 48, 160);
}

std::vector<std::size_t> GalleryFigure::page_rows() const {
  const std::size_t begin = static_cast<std::size_t>(settings_.page) * per_page();
  const std::size_t end = std::min(order_.size(), begin + per_page());
  return {order_.begin() + static_cast<long>(begin), order_.begin() + static_cast<long>(end)};
}

QSize GalleryFigure::natural_size() const {
  const int t = tile_px();
  const int w = 2 * kMargin + settings_.columns * t + (settings_.columns - 1) * kGap;
  const int h = kMargin + kHeaderH + settings_.rows * (t + caption_height() + kGap) + kMargin;
  return {std::max(w, kMinWidth), h};
}

// "#index" and, sorted by another column, its value on a second line.
int GalleryFigure::caption_height() const {
  return table_.columns()[settings_.sort_column] == "index" ? kLineH + 2 : 2 * kLineH + 2;
}

std::string GalleryFigure::header() const {
  const std::size_t first = static_cast<std::size_t>(settings_.page) * per_page();
  const std::size_t last = std::min(table_.size(), first + per_page());
  return fmt::format("{}   {} images   page {} of {} (ranks {}-{})\nsorted by {} ({}), contrast {}",
                     table_.path().filename().string(), table_.size(), settings_.page + 1, pages(), first + 1, last,
                     table_.columns()[settings_.sort_column], settings_.descending ? "descending" : "ascending",
                     settings_.contrast.to_string());
}

QImage GalleryFigure::tile(std::size_t row, Json& info) {
  const RealGrid img = images_.read(table_.image(row));
  const Limits l = contrast_limits(settings_.contrast, img.data(), img.size());
  const double zoom = static_cast<double>(tile_px()) / std::max(img.nx(), img.ny());
  info = {{"limits", {l.lo, l.hi}}, {"zoom", zoom}, {"image_size", {img.nx(), img.ny()}}};
  if (zoom >= 1) return grey_image(img.data(), img.nx(), img.ny(), l, zoom);
  info["smooth"] = true;
  return grey_image(img.data(), img.nx(), img.ny(), l, 1)
      .scaled(zoomed_size(img.nx(), zoom), zoomed_size(img.ny(), zoom), Qt::IgnoreAspectRatio,
              Qt::SmoothTransformation);
}

Json GalleryFigure::paint(QPainter& painter, QSize) {
  const std::string key = fmt::format("{} {} {} {} {} {}", settings_.page, settings_.sort_column, settings_.descending,
                                      per_page(), tile_px(), settings_.contrast.to_string());
  if (key != cache_key_) cache_.clear(), cache_key_ = key;
  painter.setPen(Qt::black);
  painter.drawText(QRect(kMargin, kMargin, 4000, kHeaderH - 6), Qt::AlignLeft | Qt::AlignTop,
                   QString::fromStdString(header()));
  const int t = tile_px(), col = settings_.sort_column, caption_h = caption_height();
  const bool show_value = table_.columns()[col] != "index";
  QFont small = painter.font();
  small.setPointSizeF(small.pointSizeF() * 0.85);
  painter.setFont(small);
  Json tiles = Json::array();
  const std::vector<std::size_t> rows = page_rows();
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const std::size_t row = rows[k];
    auto it = cache_.find(row);
    if (it == cache_.end()) {
      Json info;
      QImage img = tile(row, info);
      it = cache_.emplace(row, std::make_pair(std::move(img), std::move(info))).first;
    }
    const auto& [img, info] = it->second;
    const int cx = kMargin + static_cast<int>(k % settings_.columns) * (t + kGap);
    const int cy = kMargin + kHeaderH + static_cast<int>(k / settings_.columns) * (t + caption_h + kGap);
    const QRect r(cx + (t - img.width()) / 2, cy + (t - img.height()) / 2, img.width(), img.height());
    painter.drawImage(r.topLeft(), img);
    const double v = table_.number(row, col);
    std::vector<std::string> lines{fmt::format("#{}", row + 1)};
    if (show_value) lines.push_back(std::isnan(v) ? table_.text(row, col) : fmt::format("{:.5g}", v));
    for (std::size_t l = 0; l < lines.size(); ++l)
      painter.drawText(QRect(cx, cy + t + 1 + static_cast<int>(l) * kLineH, t, kLineH),
                       Qt::AlignLeft | Qt::AlignVCenter,
                       painter.fontMetrics().elidedText(QString::fromStdString(lines[l]), Qt::ElideRight, t));
    Json j = info;
    j["rank"] = static_cast<std::size_t>(settings_.page) * per_page() + k;
    j["row"] = row;
    j["rect"] = rect_json(r);
    j["cell_rect"] = rect_json(QRect(cx, cy, t, t + caption_h));
    j["value"] = std::isnan(v) ? Json(table_.text(row, col)) : Json(v);
    tiles.push_back(std::move(j));
  }
  return {{"tiles", tiles},    {"total", table_.size()},        {"page", settings_.page},
          {"pages", pages()},  {"sort", table_.columns()[col]}, {"descending", settings_.descending},
          {"tile_px", t},      {"images_read", images_read()},  {"images_scanned", table_.images_scanned()},
          {"header", header()}};
}

}  // namespace tessera::viewer
