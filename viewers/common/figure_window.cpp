#include "common/figure_window.hpp"

#include <QScrollArea>

namespace tessera::viewer {

namespace {

class FigureWindow : public ViewerWindow {
 public:
  FigureWindow(Figure& figure, const std::string& title) {
    view_ = new FigureWidget(figure);
    auto* scroll = new QScrollArea;
    scroll->setWidget(view_);
    setCentralWidget(scroll);
    setWindowTitle(QString::fromStdString(title));
    add_file_menu(*this, figure, [&figure] { return figure.natural_size(); });
    resize(figure.natural_size() + QSize(30, 50));
  }
  Json figure_geometry() const override {
    const QPoint o = view_->mapTo(this, QPoint(0, 0));
    return offset_geometry(view_->figure_geometry(), o.x(), o.y());
  }

 private:
  FigureWidget* view_ = nullptr;
};

}  // namespace

std::unique_ptr<ViewerWindow> make_figure_window(Figure& figure, const std::string& title) {
  return std::make_unique<FigureWindow>(figure, title);
}

}  // namespace tessera::viewer
