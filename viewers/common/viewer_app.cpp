#include "common/viewer_app.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <QApplication>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QPageSize>
#include <QPainter>
#include <QPdfWriter>
#include <QSaveFile>
#include <QScreen>
#include <QSvgGenerator>
#include <QTimer>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "tessera/error.hpp"

namespace tessera::viewer {

namespace {

bool has_option(int argc, char** argv, const char* name) {
  const std::size_t n = std::strlen(name);
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], name, n) == 0 && (argv[i][n] == '\0' || argv[i][n] == '=')) return true;
  return false;
}

bool display_available() {
  const char* x = std::getenv("DISPLAY");
  const char* w = std::getenv("WAYLAND_DISPLAY");
  return (x && *x) || (w && *w);
}

void add_common_options(QCommandLineParser& p) {
  p.addOption({"export", "Render the figure to FILE (.png, .svg or .pdf) without a display, and exit.", "FILE"});
  p.addOption({"size", "Figure size in pixels for --export, WxH.", "WxH"});
  p.addOption({"geometry-json", "With --export or --screenshot: write where the figure drew what, as JSON.", "FILE"});
  p.addOption({"screenshot", "Open the window, grab it from the screen once shown, save it as PNG, exit.", "FILE"});
  p.addOption(
      {"screenshot-delay-ms", "Time the window is shown before --screenshot grabs it (default 500).", "MS", "500"});
}

// The folder of an output file must exist; InputError naming the option otherwise.
QString output_path(const QCommandLineParser& p, const QString& option) {
  const QString path = p.value(option);
  const QFileInfo info(path);
  if (path.isEmpty() || info.fileName().isEmpty())
    throw InputError(fmt::format("--{}: '{}' is not a file name", option.toStdString(), path.toStdString()));
  if (!info.absoluteDir().exists())
    throw InputError(fmt::format("--{} {}: folder '{}' does not exist", option.toStdString(), path.toStdString(),
                                 info.absolutePath().toStdString()));
  return path;
}

QSize parse_size(const QCommandLineParser& p, QSize fallback) {
  if (!p.isSet("size")) return fallback;
  const QStringList parts = p.value("size").toLower().split('x');
  bool ok_w = false, ok_h = false;
  const int w = parts.size() == 2 ? parts[0].toInt(&ok_w) : 0, h = parts.size() == 2 ? parts[1].toInt(&ok_h) : 0;
  if (!ok_w || !ok_h || w < 16 || h < 16 || w > 20000 || h > 20000)
    throw InputError(fmt::format("--size: '{}' is not WxH with 16 <= W, H <= 20000", p.value("size").toStdString()));
  return {w, h};
}

// Writes `bytes` through QSaveFile (a temporary file renamed when complete).
void save_atomically(const QString& path, const std::function<bool(QIODevice&)>& write) {
  QSaveFile file(path);
  if (!file.open(QIODevice::WriteOnly) || !write(file) || !file.commit())
    throw std::runtime_error(
        fmt::format("cannot write '{}': {}", path.toStdString(), file.errorString().toStdString()));
}

void write_json(const QString& path, const Json& doc) {
  const std::string text = doc.dump(2) + "\n";
  save_atomically(path, [&](QIODevice& d) { return d.write(text.data(), static_cast<qint64>(text.size())) >= 0; });
}

}  // namespace

Json export_figure(Figure& figure, const QString& path, QSize size) {
  const QString ext = QFileInfo(path).suffix().toLower();
  Json geometry;
  if (ext == "png") {
    QImage img(size, QImage::Format_RGB32);
    img.fill(Qt::white);
    QPainter painter(&img);
    geometry = figure.paint(painter, size);
    painter.end();
    save_atomically(path, [&](QIODevice& d) { return img.save(&d, "PNG"); });
  } else if (ext == "svg") {
    save_atomically(path, [&](QIODevice& d) {
      QSvgGenerator svg;
      svg.setOutputDevice(&d);
      svg.setSize(size);
      svg.setViewBox(QRect(QPoint(0, 0), size));
      QPainter painter(&svg);
      painter.fillRect(QRect(QPoint(0, 0), size), Qt::white);
      geometry = figure.paint(painter, size);
      return painter.end();
    });
  } else if (ext == "pdf") {
    save_atomically(path, [&](QIODevice& d) {
      QPdfWriter pdf(&d);
      pdf.setResolution(72);  // one figure pixel = one point
      pdf.setPageSize(QPageSize(QSizeF(size), QPageSize::Point));
      pdf.setPageMargins(QMarginsF(0, 0, 0, 0));
      QPainter painter(&pdf);
      geometry = figure.paint(painter, size);
      return painter.end();
    });
  } else {
    throw InputError(fmt::format("--export {}: use a .png, .svg or .pdf file name", path.toStdString()));
  }
  return geometry;
}

void add_file_menu(ViewerWindow& window, Figure& figure, std::function<QSize()> size) {
  QMenu* menu = window.menuBar()->addMenu("&File");
  menu->addAction("&Export figure...", &window, [&window, &figure, size] {
    const QString path =
        QFileDialog::getSaveFileName(&window, "Export figure", "figure.png", "Pictures (*.png *.svg *.pdf)");
    if (path.isEmpty()) return;
    try {
      export_figure(figure, path, size());
    } catch (const std::exception& e) {
      QMessageBox::warning(&window, "Export figure", QString::fromStdString(e.what()));
    }
  });
  menu->addAction("&Quit", QKeySequence::Quit, &window, &QWidget::close);
}

namespace {

// Shows the window, grabs it from its screen after `delay_ms`, saves it; returns the exit code.
int screenshot(QApplication& app, ViewerWindow& window, const QString& path, int delay_ms,
               const std::optional<QString>& geometry_path) {
  window.show();
  int code = 0;
  QTimer::singleShot(delay_ms, &window, [&] {
    try {
      QScreen* screen = window.screen();
      if (!screen) throw std::runtime_error("the window is on no screen");
      const QPixmap shot = screen->grabWindow(window.winId());
      if (shot.isNull()) throw std::runtime_error("the screen grab is empty");
      save_atomically(path, [&](QIODevice& d) { return shot.save(&d, "PNG"); });
      if (geometry_path)
        write_json(*geometry_path, {{"window_size", {shot.width(), shot.height()}},
                                    {"device_pixel_ratio", shot.devicePixelRatio()},
                                    {"platform", QGuiApplication::platformName().toStdString()},
                                    {"figure", window.figure_geometry()}});
    } catch (const std::exception& e) {
      std::cerr << "ERROR: " << e.what() << std::endl;
      code = 1;
    }
    app.quit();
  });
  app.exec();
  return code;
}

int run(QApplication& app, const ViewerSpec& spec, QCommandLineParser& parser) {
  std::unique_ptr<Figure> figure = spec.make_figure(parser);
  if (!figure) return 0;  // the viewer did all it was asked (e.g. listed something)
  std::optional<QString> geometry_path;
  if (parser.isSet("geometry-json")) geometry_path = output_path(parser, "geometry-json");
  if (parser.isSet("export")) {
    const QString path = output_path(parser, "export");
    const QSize fallback = spec.export_size ? spec.export_size(*figure) : figure->natural_size();
    const QSize size = parse_size(parser, fallback);
    const Json geometry = export_figure(*figure, path, size);
    if (geometry_path)
      write_json(*geometry_path,
                 {{"program", spec.name}, {"size", {size.width(), size.height()}}, {"figure", geometry}});
    return 0;
  }
  if (QGuiApplication::platformName() == "offscreen" && !parser.isSet("screenshot") && !display_available())
    throw InputError("no display (DISPLAY is not set): use --export FILE.png to render the figure without one");
  std::unique_ptr<ViewerWindow> window = spec.make_window(*figure);
  if (parser.isSet("screenshot")) {
    const QString path = output_path(parser, "screenshot");
    return screenshot(app, *window, path, option_int(parser, "screenshot-delay-ms", 0, 60000), geometry_path);
  }
  window->show();
  return app.exec();
}

}  // namespace

int run_viewer(int argc, char** argv, const ViewerSpec& spec) {
  const bool offscreen = has_option(argc, argv, "--export") || has_option(argc, argv, "--help") ||
                         has_option(argc, argv, "-h") || !display_available();
  if (offscreen && !qEnvironmentVariableIsSet("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  if (!qEnvironmentVariableIsSet("XDG_RUNTIME_DIR")) {
    // What Qt falls back to anyway, made here so that it does not warn about it.
    const QString dir = QDir::tempPath() + "/runtime-" + QString::number(::getuid());
    if (QDir().mkpath(dir) && QFile::setPermissions(dir, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner))
      qputenv("XDG_RUNTIME_DIR", dir.toLocal8Bit());
  }
  QApplication app(argc, argv);
  QApplication::setApplicationName(QString::fromStdString(spec.name));
  QCommandLineParser parser;
  parser.setApplicationDescription(QString::fromStdString(spec.description));
  parser.addHelpOption();
  add_common_options(parser);
  if (spec.add_options) spec.add_options(parser);
  parser.addPositionalArgument(QString::fromStdString(spec.positional), QString::fromStdString(spec.positional_help));
  if (!parser.parse(QApplication::arguments())) {
    std::cerr << "ERROR: " << parser.errorText().toStdString() << std::endl;
    return 2;
  }
  if (parser.isSet("help")) {
    std::cout << parser.helpText().toStdString();
    return 0;
  }
  try {
    return run(app, spec, parser);
  } catch (const InputError& e) {
    std::cerr << "ERROR: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ERROR: " << e.what() << std::endl;
    return 1;
  }
}

double option_double(const QCommandLineParser& p, const QString& name, std::optional<double> min) {
  bool ok = false;
  const double v = p.value(name).toDouble(&ok);
  if (!ok || !std::isfinite(v) || (min && v < *min))
    throw InputError(fmt::format("--{}: '{}' is not a number{}", name.toStdString(), p.value(name).toStdString(),
                                 min ? fmt::format(" >= {}", *min) : ""));
  return v;
}

int option_int(const QCommandLineParser& p, const QString& name, int min, int max) {
  bool ok = false;
  const int v = p.value(name).toInt(&ok);
  if (!ok || v < min || v > max)
    throw InputError(fmt::format("--{}: '{}' is not a whole number in [{}, {}]", name.toStdString(),
                                 p.value(name).toStdString(), min, max));
  return v;
}

std::vector<std::string> option_list(const QCommandLineParser& p, const QString& name) {
  std::vector<std::string> out;
  for (const QString& s : p.value(name).split(',', Qt::SkipEmptyParts)) out.push_back(s.trimmed().toStdString());
  return out;
}

}  // namespace tessera::viewer
