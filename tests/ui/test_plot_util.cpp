// The plots' pure helpers and plot export: decimation keeps every bucket's extremes, EMA, the
// seed band's mean ± t·sd/√n, the step -> task/samples map, and PNG/SVG/PDF files from a plot.
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <qcustomplot.h>

#include "ui/plot_export.h"
#include "ui/plot_util.h"

using namespace hl::ui;

class TestPlotUtil : public QObject {
  Q_OBJECT
 private slots:
  void decimationKeepsSpikesAndBounds() {
    XY in;
    for (int i = 0; i < 100000; ++i) {
      in.x.push_back(i);
      in.y.push_back(std::sin(i * 0.001));
    }
    in.y[54321] = 50;   // a divergence spike
    in.y[77777] = -40;  // and a dip
    XY d = decimate_minmax(in, 1000);
    QVERIFY(d.size() <= 2000);
    QVERIFY(d.size() >= 1000);
    QCOMPARE(*std::max_element(d.y.begin(), d.y.end()), 50.0);
    QCOMPARE(*std::min_element(d.y.begin(), d.y.end()), -40.0);
    QVERIFY(std::is_sorted(d.x.begin(), d.x.end()));
    QCOMPARE(d.x.front(), 0.0);
    XY small{{0, 1, 2}, {3, 4, 5}};
    QCOMPARE(decimate_minmax(small, 10).y, small.y);  // small series unchanged
  }

  // The legend goes where it hides the fewest points: a class-incremental run's forgetting curves
  // (a task near 0.9 in the top right, the others at 0, the average falling to 0.13) leave the
  // middle right free; curves everywhere on the right push it left; nothing drawn keeps top right.
  void legendSpotAvoidsTheCurves() {
    XY newest{{0.8, 0.9, 1.0}, {0.85, 0.9, 0.92}}, old{{0.0, 1.0}, {0.0, 0.0}}, avg{{0.0, 0.5, 1.0}, {0.9, 0.3, 0.13}};
    QCOMPARE(legend_spot({newest, old, avg}, 0.25, 0.3), LegendSpot::MiddleRight);
    XY right{{0.7, 0.8, 0.9, 1.0}, {0.1, 0.5, 0.9, 0.5}};  // the right third covered from top to bottom
    XY right2{{0.75, 1.0}, {0.95, 0.05}};
    QCOMPARE(legend_spot({right, right2, old}, 0.25, 0.3), LegendSpot::TopLeft);
    QCOMPARE(legend_spot({}, 0.25, 0.3), LegendSpot::TopRight);
    // Segments count, not only their end points: a line crossing the top right between two points
    // outside it.
    XY cross{{0.5, 1.0}, {1.0, 0.5}};
    QVERIFY(legend_spot({cross}, 0.3, 0.3) != LegendSpot::TopRight);
    // Non-finite points (a log axis at 0) break a curve and are not counted.
    XY gap{{0.9, 0.95, 1.0}, {0.9, NAN, 0.95}};
    QCOMPARE(legend_spot({gap, old}, 0.25, 0.3), LegendSpot::MiddleRight);
  }

  void emaSmoothsFromTheFirstValue() {
    auto s = ema({1, 3, 3}, 0.5);
    QCOMPARE(s[0], 1.0);
    QCOMPARE(s[1], 2.0);
    QCOMPARE(s[2], 2.5);
    QCOMPARE(ema({1, 3}, 0), (std::vector<double>{1, 3}));
  }

  void meanCiUsesStudentT() {
    // Two runs, values 1 and 3 at every x: mean 2, sd sqrt(2), half-width 12.706*sqrt(2)/sqrt(2).
    XY a{{0, 10}, {1, 1}}, b{{0, 10}, {3, 3}};
    Band band = mean_ci({a, b});
    QCOMPARE(band.x.size(), size_t(2));
    QCOMPARE(band.mean[0], 2.0);
    QVERIFY(std::abs(band.hi[0] - (2 + 12.706)) < 1e-9);
    QVERIFY(std::abs(band.lo[1] - (2 - 12.706)) < 1e-9);
    // A run that covers only part of x counts only there (interpolated inside its range).
    XY c{{0, 10, 20}, {0, 10, 20}}, d{{0, 10}, {2, 12}};
    Band e = mean_ci({c, d});
    QCOMPARE(e.n, (std::vector<int>{2, 2, 1}));
    QCOMPARE(e.mean[2], 20.0);
    QCOMPARE(t95(1), 12.706);
    // Strided: at most ~max_points x positions, ending on the last x, same values there.
    XY f, g;
    for (int i = 0; i <= 1000; ++i) {
      f.x.push_back(i), f.y.push_back(i);
      g.x.push_back(i), g.y.push_back(i + 2);
    }
    Band s = mean_ci({f, g}, 100);
    QVERIFY2(s.x.size() <= 101 && s.x.size() >= 90, qPrintable(QString::number(s.x.size())));
    QCOMPARE(s.x.back(), 1000.0);
    QCOMPARE(s.mean.back(), 1001.0);
    QCOMPARE(s.mean[1], s.x[1] + 1);
    QCOMPARE(t95(100), 1.96);
  }

  // Issue 12 item 8: with two seeds the 95 % band of an accuracy went below 0.
  void bandIsClippedToTheMetricsRange() {
    XY a{{0, 1}, {0.02, 0.9}}, b{{0, 1}, {0.10, 0.95}};
    Band band = mean_ci({a, b});
    QVERIFY(band.lo[0] < 0);  // t95(1) = 12.7: unclipped, far below 0
    clip_band(band, metric_range("acc.task"));
    QCOMPARE(band.lo[0], 0.0);
    QCOMPARE(band.hi[1], 1.0);
    QCOMPARE(band.mean[0], 0.06);  // inside the range: unchanged
    QCOMPARE(metric_range("avg_acc"), std::make_pair(0.0, 1.0));
    QCOMPARE(metric_range("loss").first, 0.0);
    QVERIFY(std::isinf(metric_range("loss").second));
    QVERIFY(std::isinf(metric_range("lr").first));
  }

  // Automatic ranges leave room around the data (a Live loss line at its maximum was drawn on the
  // lane's frame): 10 % of the span each side, a factor on a log axis, a flat series still visible.
  void paddedRangeLeavesRoomAroundTheData() {
    auto [lo, hi] = padded_range(2.0, 4.0, false);
    QCOMPARE(lo, 1.8);
    QCOMPARE(hi, 4.2);
    std::tie(lo, hi) = padded_range(0.1, 10.0, true);
    QVERIFY(std::abs(lo - 0.1 / 1.2) < 1e-12 && std::abs(hi - 12.0) < 1e-12);
    std::tie(lo, hi) = padded_range(3.0, 3.0, false);  // flat
    QVERIFY(lo < 3.0 && hi > 3.0);
    QVERIFY(std::abs(hi - 3.3) < 1e-12);
    std::tie(lo, hi) = padded_range(0.0, 0.0, false);
    QVERIFY(lo < 0 && hi > 0);
    std::tie(lo, hi) = padded_range(-1.0, 5.0, true);  // not a log range: unchanged
    QCOMPARE(lo, -1.0);
    QCOMPARE(hi, 5.0);
  }

  void axisMapInterpolates() {
    AxisMap m;
    QCOMPARE(m(7), 7.0);  // empty: identity
    m.add(0, 0);
    m.add(10, 320);
    m.add(20, 480);
    QCOMPARE(m(5), 160.0);
    QCOMPARE(m(15), 400.0);
    QCOMPARE(m(30), 640.0);  // the last slope continues
  }

  void plotSavesPngSvgPdf() {
    QTemporaryDir dir;
    QCustomPlot plot;
    plot.resize(500, 300);
    plot.addGraph()->setData({0, 1, 2}, {1, 0.5, 0.2});
    plot.rescaleAxes();
    for (const char* ext : {"png", "svg", "pdf"}) {
      QString f = dir.filePath(QString("p.%1").arg(ext));
      QCOMPARE(savePlot(&plot, f), QString());
      QVERIFY2(QFileInfo(f).size() > 500, ext);
    }
    QFile svg(dir.filePath("p.svg"));
    QVERIFY(svg.open(QIODevice::ReadOnly));
    QVERIFY(svg.readAll().contains("<svg"));
    QVERIFY(savePlot(&plot, dir.filePath("p.bmpx")).contains("unknown image type"));
    QVERIFY(savePlot(&plot, "/no/such/dir/p.png").contains("/no/such/dir/p.png"));
  }
};

QTEST_MAIN(TestPlotUtil)
#include "test_plot_util.moc"
