// hl_render_icon SVG OUT_DIR SIZE...: renders the app icon into OUT_DIR/<SIZE>x<SIZE>/hopelab.png for
// each SIZE, for the installed hicolor icon theme (build time only; not installed).
#include <QDir>
#include <QGuiApplication>
#include <QImage>
#include <QPainter>
#include <QSvgRenderer>
#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: hl_render_icon SVG OUT_DIR SIZE...\n");
    return 2;
  }
  qputenv("QT_QPA_PLATFORM", "offscreen");
  QGuiApplication app(argc, argv);
  QSvgRenderer svg(QString::fromLocal8Bit(argv[1]));
  if (!svg.isValid()) {
    std::fprintf(stderr, "hl_render_icon: cannot read %s\n", argv[1]);
    return 1;
  }
  for (int i = 3; i < argc; ++i) {
    const int n = QByteArray(argv[i]).toInt();
    if (n < 16 || n > 1024) {
      std::fprintf(stderr, "hl_render_icon: bad size %s\n", argv[i]);
      return 2;
    }
    QImage img(n, n, QImage::Format_ARGB32_Premultiplied);
    img.fill(Qt::transparent);
    QPainter p(&img);
    p.setRenderHint(QPainter::Antialiasing);
    svg.render(&p);
    p.end();
    const QString dir = QString("%1/%2x%2").arg(QString::fromLocal8Bit(argv[2])).arg(n);
    if (!QDir().mkpath(dir) || !img.save(dir + "/hopelab.png", "PNG")) {
      std::fprintf(stderr, "hl_render_icon: cannot write %s/hopelab.png\n", qPrintable(dir));
      return 1;
    }
  }
  return 0;
}
