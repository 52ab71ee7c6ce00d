#include "volume/volume_window.hpp"

#include <QCheckBox>
#include <QComboBox>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QScrollArea>
#include <QSlider>
#include <array>

namespace tessera::viewer {

namespace {

QDoubleSpinBox* spin(double lo, double hi, double value, double step, int decimals) {
  auto* s = new QDoubleSpinBox;
  s->setRange(lo, hi);
  s->setDecimals(decimals);
  s->setSingleStep(step);
  s->setValue(value);
  return s;
}

class VolumeWindow : public ViewerWindow {
 public:
  explicit VolumeWindow(VolumeFigure& figure) : figure_(figure) {
    view_ = new FigureWidget(figure_);
    auto* scroll = new QScrollArea;
    scroll->setWidget(view_);
    scroll->setAlignment(Qt::AlignCenter);
    setCentralWidget(scroll);
    auto* dock = new QDockWidget("Display", this);
    dock->setFeatures(QDockWidget::NoDockWidgetFeatures);
    auto* panel = new QWidget;
    form_ = new QFormLayout(panel);
    add_slice_controls();
    add_contrast_controls();
    add_view_controls();
    if (figure_.overlay()) add_overlay_controls();
    dock->setWidget(panel);
    addDockWidget(Qt::RightDockWidgetArea, dock);
    view_->on_click([this](QPoint p) { clicked(p); });
    setWindowTitle(QString::fromStdString("tessera_view_volume: " + figure_.volume().name));
    add_file_menu(*this, figure_, [this] { return figure_.natural_size(); });
    resize(std::min(1600, figure_.natural_size().width() + 380), std::min(1000, figure_.natural_size().height() + 80));
  }

  Json figure_geometry() const override {
    const QPoint o = view_->mapTo(this, QPoint(0, 0));
    return offset_geometry(view_->figure_geometry(), o.x(), o.y());
  }

 private:
  void add_slice_controls() {
    const RealGrid& v = figure_.volume().data;
    for (int a = 0; a < 3; ++a) {
      auto* s = new QSlider(Qt::Horizontal);
      s->setRange(0, axis_size(v, static_cast<Axis>(a)) - 1);
      s->setValue(figure_.settings().index[a]);
      auto* value = new QLabel(QString::number(s->value()));
      value->setMinimumWidth(32);
      auto* row = new QHBoxLayout;
      row->addWidget(s);
      row->addWidget(value);
      form_->addRow(QString("Slice %1").arg(axis_name(static_cast<Axis>(a))), row);
      QObject::connect(s, &QSlider::valueChanged, this, [this, value](int i) {
        value->setNum(i);
        apply();
      });
      slices_[a] = s;
    }
  }

  void add_contrast_controls() {
    const ContrastSpec& c = figure_.settings().contrast;
    contrast_ = new QComboBox;
    contrast_->addItems({"minmax", "sigma", "percentile", "range"});
    contrast_->setCurrentIndex(static_cast<int>(c.mode));
    const double extent = std::max(std::abs(figure_.limits().lo), std::abs(figure_.limits().hi)) * 10 + 1;
    param_a_ = spin(-extent, extent, c.mode == ContrastSpec::Mode::Range ? c.lo : c.k, 0.1, 4);
    param_b_ = spin(-extent, extent, c.mode == ContrastSpec::Mode::Range ? c.hi : figure_.limits().hi, 0.1, 4);
    form_->addRow("Contrast", contrast_);
    form_->addRow("  K, P or low", param_a_);
    form_->addRow("  high", param_b_);
    zoom_ = spin(0.25, 16, figure_.settings().zoom, 0.25, 2);
    form_->addRow("Zoom", zoom_);
    connect_all({contrast_}, {param_a_, param_b_, zoom_});
  }

  void add_view_controls() {
    const VolumeSettings& s = figure_.settings();
    const std::array<std::pair<const char*, bool>, 4> panels{
        {{"slices", s.slices}, {"projections", s.projections}, {"max. intensity", s.mip}, {"surface", s.surface}}};
    for (std::size_t i = 0; i < panels.size(); ++i) {
      panels_[i] = new QCheckBox(panels[i].first);
      panels_[i]->setChecked(panels[i].second);
      form_->addRow(i == 0 ? "Panels" : "", panels_[i]);
      QObject::connect(panels_[i], &QCheckBox::toggled, this, [this] { apply(); });
    }
    rot_ = spin(-360, 360, s.view.rot, 5, 1);
    tilt_ = spin(-360, 360, s.view.tilt, 5, 1);
    psi_ = spin(-360, 360, s.view.psi, 5, 1);
    level_ = spin(-1e9, 1e9, s.surface_level, 0.01, 4);
    form_->addRow("View rot (°)", rot_);
    form_->addRow("View tilt (°)", tilt_);
    form_->addRow("View psi (°)", psi_);
    form_->addRow("Surface level", level_);
    connect_all({}, {rot_, tilt_, psi_, level_});
  }

  void add_overlay_controls() {
    const OverlaySettings& o = figure_.settings().overlay;
    overlay_style_ = new QComboBox;
    overlay_style_->addItems({"tint", "contour"});
    overlay_style_->setCurrentIndex(o.style == OverlaySettings::Style::Tint ? 0 : 1);
    opacity_ = spin(0, 1, o.opacity, 0.05, 2);
    overlay_level_ = spin(-1e9, 1e9, o.level, 0.01, 4);
    form_->addRow("Overlay", overlay_style_);
    form_->addRow("  opacity", opacity_);
    form_->addRow("  contour level", overlay_level_);
    connect_all({overlay_style_}, {opacity_, overlay_level_});
  }

  void connect_all(std::initializer_list<QComboBox*> combos, std::initializer_list<QDoubleSpinBox*> spins) {
    for (auto* c : combos) QObject::connect(c, &QComboBox::currentIndexChanged, this, [this] { apply(); });
    for (auto* s : spins) QObject::connect(s, &QDoubleSpinBox::valueChanged, this, [this] { apply(); });
  }

  // Reads every control into the figure's settings and redraws.
  void apply() {
    VolumeSettings s = figure_.settings();
    for (int a = 0; a < 3; ++a) s.index[a] = slices_[a]->value();
    ContrastSpec c;
    c.mode = static_cast<ContrastSpec::Mode>(contrast_->currentIndex());
    c.k = std::max(param_a_->value(), 0.0);
    if (c.mode == ContrastSpec::Mode::Sigma && c.k <= 0) c.k = 3;
    if (c.mode == ContrastSpec::Mode::Percentile) c.k = std::min(c.k, 49.0);
    c.lo = param_a_->value();
    c.hi = std::max(param_b_->value(), c.lo + 1e-6);
    s.contrast = c;
    s.zoom = zoom_->value();
    s.slices = panels_[0]->isChecked();
    s.projections = panels_[1]->isChecked();
    s.mip = panels_[2]->isChecked();
    s.surface = panels_[3]->isChecked();
    s.view = {rot_->value(), tilt_->value(), psi_->value()};
    s.surface_level = level_->value();
    if (overlay_style_) {
      s.overlay.style =
          overlay_style_->currentIndex() == 0 ? OverlaySettings::Style::Tint : OverlaySettings::Style::Contour;
      s.overlay.opacity = opacity_->value();
      s.overlay.level = overlay_level_->value();
    }
    figure_.set_settings(s);
    view_->figure_changed();
  }

  // A click on a slice moves the other two slices through the clicked voxel.
  void clicked(QPoint p) {
    for (const auto& panel : view_->figure_geometry().value("panels", Json::array())) {
      if (panel.value("kind", "") != "slice") continue;
      const auto& r = panel["rect"];
      const int i = p.x() - r[0].get<int>(), j = p.y() - r[1].get<int>();
      if (i < 0 || j < 0 || i >= r[2].get<int>() || j >= r[3].get<int>()) continue;
      const double zoom = panel["zoom"];
      const int u = source_pixel(i, zoom, panel["picture_size"][0]),
                w = source_pixel(j, zoom, panel["picture_size"][1]);
      const std::string axis = panel["axis"];
      if (axis == "z") slices_[0]->setValue(u), slices_[1]->setValue(w);
      if (axis == "y") slices_[0]->setValue(u), slices_[2]->setValue(w);
      if (axis == "x") slices_[1]->setValue(u), slices_[2]->setValue(w);
    }
  }

  VolumeFigure& figure_;
  FigureWidget* view_ = nullptr;
  QFormLayout* form_ = nullptr;
  std::array<QSlider*, 3> slices_{};
  std::array<QCheckBox*, 4> panels_{};
  QComboBox* contrast_ = nullptr;
  QDoubleSpinBox *param_a_ = nullptr, *param_b_ = nullptr, *zoom_ = nullptr;
  QDoubleSpinBox *rot_ = nullptr, *tilt_ = nullptr, *psi_ = nullptr, *level_ = nullptr;
  QComboBox* overlay_style_ = nullptr;
  QDoubleSpinBox *opacity_ = nullptr, *overlay_level_ = nullptr;
};

}  // namespace

std::unique_ptr<ViewerWindow> make_volume_window(VolumeFigure& figure) {
  return std::make_unique<VolumeWindow>(figure);
}

}  // namespace tessera::viewer
