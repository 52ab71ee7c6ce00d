#include "particles/gallery_window.hpp"

#include <fmt/format.h>

#include <QCheckBox>
#include <QComboBox>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QScrollArea>
#include <QSpinBox>
#include <QStatusBar>
#include <QToolBar>

namespace tessera::viewer {

namespace {

QSpinBox* int_spin(int lo, int hi, int value) {
  auto* s = new QSpinBox;
  s->setRange(lo, hi);
  s->setValue(value);
  return s;
}

class GalleryWindow : public ViewerWindow {
 public:
  explicit GalleryWindow(GalleryFigure& figure) : figure_(figure) {
    view_ = new FigureWidget(figure_);
    auto* scroll = new QScrollArea;
    scroll->setWidget(view_);
    setCentralWidget(scroll);
    add_toolbar();
    view_->on_click([this](QPoint p) { clicked(p); });
    setWindowTitle(QString::fromStdString("tessera_view_particles: " + figure_.table().path().filename().string()));
    add_file_menu(*this, figure_, [this] { return figure_.natural_size(); });
    resize(std::clamp(figure_.natural_size().width() + 40, 1000, 1600),
           std::min(1000, figure_.natural_size().height() + 120));
    statusBar()->showMessage("Click a tile to see its row.");
  }

  Json figure_geometry() const override {
    const QPoint o = view_->mapTo(this, QPoint(0, 0));
    return offset_geometry(view_->figure_geometry(), o.x(), o.y());
  }

 private:
  void add_toolbar() {
    const GallerySettings& s = figure_.settings();
    QToolBar* bar = addToolBar("Gallery");
    sort_ = new QComboBox;
    for (const auto& c : figure_.table().columns()) sort_->addItem(QString::fromStdString(c));
    sort_->setCurrentIndex(s.sort_column);
    descending_ = new QCheckBox("descending");
    descending_->setChecked(s.descending);
    auto* prev = new QPushButton("<");
    auto* next = new QPushButton(">");
    page_ = int_spin(1, figure_.pages(), s.page + 1);
    pages_ = new QLabel;
    columns_ = int_spin(1, 40, s.columns);
    rows_ = int_spin(1, 40, s.rows);
    tile_ = int_spin(16, 512, figure_.tile_px());
    contrast_ = new QLineEdit(QString::fromStdString(s.contrast.to_string()));
    bar->addWidget(new QLabel(" Sort by "));
    bar->addWidget(sort_);
    bar->addWidget(descending_);
    bar->addSeparator();
    bar->addWidget(prev);
    bar->addWidget(new QLabel(" page "));
    bar->addWidget(page_);
    bar->addWidget(pages_);
    bar->addWidget(next);
    bar->addSeparator();
    bar->addWidget(new QLabel(" grid "));
    bar->addWidget(columns_);
    bar->addWidget(new QLabel("x"));
    bar->addWidget(rows_);
    bar->addWidget(new QLabel(" tile px "));
    bar->addWidget(tile_);
    bar->addWidget(new QLabel(" contrast "));
    bar->addWidget(contrast_);
    QObject::connect(sort_, &QComboBox::currentIndexChanged, this, [this] { apply(true); });
    QObject::connect(descending_, &QCheckBox::toggled, this, [this] { apply(true); });
    QObject::connect(page_, &QSpinBox::valueChanged, this, [this] { apply(false); });
    for (QSpinBox* b : {columns_, rows_, tile_})
      QObject::connect(b, &QSpinBox::valueChanged, this, [this] { apply(false); });
    QObject::connect(contrast_, &QLineEdit::editingFinished, this, [this] { apply(false); });
    QObject::connect(prev, &QPushButton::clicked, this, [this] { page_->setValue(page_->value() - 1); });
    QObject::connect(next, &QPushButton::clicked, this, [this] { page_->setValue(page_->value() + 1); });
    update_pages();
  }

  void update_pages() {
    page_->blockSignals(true);
    page_->setRange(1, figure_.pages());
    page_->setValue(figure_.settings().page + 1);
    page_->blockSignals(false);
    pages_->setText(QString(" of %1 ").arg(figure_.pages()));
  }

  // Reads the controls into the figure; a new order starts again at page 1.
  void apply(bool new_order) {
    GallerySettings s = figure_.settings();
    s.sort_column = sort_->currentIndex();
    s.descending = descending_->isChecked();
    s.page = new_order ? 0 : page_->value() - 1;
    s.columns = columns_->value();
    s.rows = rows_->value();
    s.tile_px = tile_->value();
    try {
      s.contrast = ContrastSpec::parse(contrast_->text().toStdString(), "contrast");
    } catch (const std::exception& e) {
      statusBar()->showMessage(QString::fromStdString(e.what()));
      contrast_->setText(QString::fromStdString(figure_.settings().contrast.to_string()));
    }
    try {
      figure_.set_settings(s);
      update_pages();
      view_->figure_changed();
    } catch (const std::exception& e) {
      statusBar()->showMessage(QString::fromStdString(e.what()));
    }
  }

  // Shows every column of the clicked tile's row in the status bar.
  void clicked(QPoint p) {
    for (const auto& t : view_->figure_geometry().value("tiles", Json::array())) {
      const auto& r = t["cell_rect"];
      if (p.x() < r[0].get<int>() || p.y() < r[1].get<int>() || p.x() >= r[0].get<int>() + r[2].get<int>() ||
          p.y() >= r[1].get<int>() + r[3].get<int>())
        continue;
      const std::size_t row = t["row"];
      std::string text;
      const ParticleTable& table = figure_.table();
      for (std::size_t c = 0; c < table.columns().size(); ++c)
        text += fmt::format("{}{} {}", c ? ",  " : "", table.columns()[c], table.text(row, static_cast<int>(c)));
      statusBar()->showMessage(QString::fromStdString(text));
    }
  }

  GalleryFigure& figure_;
  FigureWidget* view_ = nullptr;
  QComboBox* sort_ = nullptr;
  QCheckBox* descending_ = nullptr;
  QSpinBox *page_ = nullptr, *columns_ = nullptr, *rows_ = nullptr, *tile_ = nullptr;
  QLabel* pages_ = nullptr;
  QLineEdit* contrast_ = nullptr;
};

}  // namespace

std::unique_ptr<ViewerWindow> make_gallery_window(GalleryFigure& figure) {
  return std::make_unique<GalleryWindow>(figure);
}

}  // namespace tessera::viewer
