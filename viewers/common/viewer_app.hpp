#pragma once
/// The frame every viewer program shares: the command line, the interactive
/// window, rendering to a file without a display, screenshots, and errors.
///
/// Options every viewer has:
///   --export FILE          render the figure to FILE (.png, .svg or .pdf) and exit,
///                          without a display (QT_QPA_PLATFORM=offscreen is set when
///                          the platform is not chosen already)
///   --size WxH             figure size in pixels for --export (viewer-specific default)
///   --geometry-json FILE   with --export or --screenshot: write where the figure drew
///                          what (figure.hpp) as JSON
///   --screenshot FILE      open the window, grab it from the screen once shown
///                          (QScreen::grabWindow), save it as PNG and exit; the
///                          geometry is then relative to the window's top-left
///   --screenshot-delay-ms  how long the window is shown before the grab (default 500)
/// Without --export and without a display, the program says so and exits 2.
///
/// Exit codes as the protocol programs: 0 done, 2 bad input or options (one line
/// "ERROR: ..." naming the file or option, nothing written), 1 failure.
#include <QCommandLineParser>
#include <QMainWindow>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/figure.hpp"

namespace tessera::viewer {

/// A viewer's window: a main window that can say where its figure is.
class ViewerWindow : public QMainWindow {
 public:
  using QMainWindow::QMainWindow;
  /// The figure's geometry as shown now, relative to this window's top-left.
  virtual Json figure_geometry() const = 0;
};

struct ViewerSpec {
  std::string name;         ///< program name, e.g. "tessera_view_fsc"
  std::string description;  ///< for --help
  std::string positional;   ///< e.g. "files"
  std::string positional_help;
  /// Adds the viewer's own options.
  std::function<void(QCommandLineParser&)> add_options;
  /// Reads the inputs and options and builds the figure (InputError on bad input);
  /// nullptr when the options asked for something else that is done (exit 0).
  std::function<std::unique_ptr<Figure>(const QCommandLineParser&)> make_figure;
  /// The size --export uses without --size; empty: the figure's natural size.
  std::function<QSize(const Figure&)> export_size;
  /// The interactive window showing the figure (which outlives it).
  std::function<std::unique_ptr<ViewerWindow>(Figure&)> make_window;
};

int run_viewer(int argc, char** argv, const ViewerSpec& spec);

/// Renders a figure to a .png, .svg or .pdf file (written atomically) and
/// returns its geometry; InputError for another extension.
Json export_figure(Figure& figure, const QString& path, QSize size);

/// Adds a File menu to a window: "Export figure..." (a file dialog, then
/// export_figure at the size `size()` gives) and "Quit".
void add_file_menu(ViewerWindow& window, Figure& figure, std::function<QSize()> size);

/// Helpers for the viewers' option parsing; each throws InputError naming the option.
double option_double(const QCommandLineParser& p, const QString& name, std::optional<double> min = {});
int option_int(const QCommandLineParser& p, const QString& name, int min, int max);
/// "a,b,c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> option_list(const QCommandLineParser& p, const QString& name);

}  // namespace tessera::viewer
