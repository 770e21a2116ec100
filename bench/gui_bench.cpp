// hopelab-gui-bench: GUI-thread responsiveness and Compare render time.
//  1. Event-loop latency: a 1 ms QTimer measures how late each timeout fires. First idle (the
//     baseline, same process, same window), then while a run trains at full speed in the worker
//     with the Live view open and drawing. Prints p50/p99/max of both. Goal: p99 ≤ 16 ms.
//  2. Compare view with R runs × N points (synthetic, 4 seeds per configuration): ms per render
//     (rebuild curves, bands, decimation, replot). Goal ≤ 100 ms for 20 × 100k.
//  --plot-steptime FILE --out PNG: draws `hopelab-bench steptime`'s output (seconds per step vs
//     sequence length, log-log) with the app's plotting library (scripts/benchmarks.sh).
#include <QApplication>
#include <QCommandLineParser>
#include <QElapsedTimer>
#include <QFile>
#include <QRegularExpression>
#include <qcustomplot.h>
#include <QTimer>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "engine/data/dataset.h"
#include "engine/spec/spec.h"
#include "ui/compare_view.h"
#include "ui/live_view.h"
#include "ui/plot_export.h"
#include "ui/run_worker.h"

namespace {

struct Lat {
  double p50, p99, max;
  int n;
};

Lat measure(QApplication& app, double seconds, const std::function<bool()>& keep_going = {}) {
  std::vector<double> late;
  QElapsedTimer clock;
  clock.start();
  QTimer t;
  t.setTimerType(Qt::PreciseTimer);
  t.setInterval(1);
  qint64 last = clock.nsecsElapsed();
  QObject::connect(&t, &QTimer::timeout, [&] {
    qint64 now = clock.nsecsElapsed();
    late.push_back(std::max(0.0, (now - last) / 1e6 - 1.0));
    last = now;
    if (clock.elapsed() > seconds * 1000 || (keep_going && !keep_going())) app.quit();
  });
  t.start();
  app.exec();
  std::sort(late.begin(), late.end());
  auto q = [&](double p) { return late.empty() ? 0 : late[std::min(late.size() - 1, size_t(p * late.size()))]; };
  return {q(0.5), q(0.99), late.empty() ? 0 : late.back(), int(late.size())};
}

}  // namespace

// The rows of `hopelab-bench steptime` (L, hope, hope ref, transformer seconds) as a log-log plot.
int plotSteptime(const QString& in, const QString& out) {
  QFile f(in);
  if (!f.open(QIODevice::ReadOnly)) {
    std::fprintf(stderr, "--plot-steptime %s: cannot read this file\n", qPrintable(in));
    return 2;
  }
  QVector<double> L, hope, ref, tr;
  const QRegularExpression row(R"(^\s*(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s)");
  for (const auto& line : QString::fromUtf8(f.readAll()).split('\n')) {
    const auto m = row.match(line);
    if (!m.hasMatch()) continue;
    L << m.captured(1).toDouble();
    hope << m.captured(2).toDouble();
    ref << m.captured(3).toDouble();
    tr << m.captured(4).toDouble();
  }
  if (L.size() < 2) {
    std::fprintf(stderr, "--plot-steptime %s: fewer than two rows of `hopelab-bench steptime` output\n",
                 qPrintable(in));
    return 2;
  }
  QCustomPlot plot;
  plot.plotLayout()->insertRow(0);
  plot.plotLayout()->addElement(0, 0, new QCPTextElement(&plot, "Forward + backward of one block (d 128, batch 2)"));
  for (auto* axis : {plot.xAxis, plot.yAxis}) {
    axis->setScaleType(QCPAxis::stLogarithmic);
    axis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
  }
  QSharedPointer<QCPAxisTickerText> lengths(new QCPAxisTickerText);  // the measured lengths
  for (double l : L) lengths->addTick(l, QString::number(l));
  plot.xAxis->setTicker(lengths);
  plot.xAxis->setLabel("sequence length (tokens)");
  plot.yAxis->setLabel("seconds per step");
  const struct {
    const QVector<double>& y;
    const char* name;
    QColor color;
  } series[] = {{hope, "Hope (fused kernels)", QColor(0, 114, 178)},
                {ref, "Hope (LibTorch path)", QColor(86, 180, 233)},
                {tr, "Transformer", QColor(213, 94, 0)}};
  for (const auto& s : series) {
    auto* g = plot.addGraph();
    g->setData(L, s.y, true);
    g->setName(s.name);
    g->setPen(QPen(s.color, 2));
    g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, 6));
  }
  plot.legend->setVisible(true);
  plot.axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignLeft);
  plot.rescaleAxes();
  plot.xAxis->scaleRange(1.15, plot.xAxis->range().center());
  plot.yAxis->scaleRange(1.3, plot.yAxis->range().center());
  const QString err = hl::ui::savePlot(&plot, out, 720, 480);
  if (!err.isEmpty()) {
    std::fprintf(stderr, "%s\n", qPrintable(err));
    return 1;
  }
  std::fprintf(stderr, "wrote %s\n", qPrintable(out));
  return 0;
}

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QCommandLineParser p;
  p.setApplicationDescription("Hope Lab GUI benchmarks (event-loop latency while training; Compare render time)");
  p.addHelpOption();
  QCommandLineOption seconds("seconds", "Seconds of latency measurement per phase (default 20).", "S", "20");
  QCommandLineOption preset("preset", "Preset trained during the stall benchmark (default titans).", "NAME", "titans");
  QCommandLineOption dataset("dataset", "Dataset (default banking77).", "NAME", "banking77");
  QCommandLineOption runs("runs", "Compare: number of runs (default 20).", "N", "20");
  QCommandLineOption points("points", "Compare: points per run (default 100000).", "N", "100000");
  QCommandLineOption skip("skip-train", "Skip the training stall benchmark.");
  QCommandLineOption plotStep("plot-steptime", "Only draw this `hopelab-bench steptime` output into --out.", "FILE");
  QCommandLineOption out("out", "The PNG --plot-steptime writes.", "PNG");
  for (const auto& o : {seconds, preset, dataset, runs, points, skip, plotStep, out}) p.addOption(o);
  p.process(app);
  if (p.isSet(plotStep)) {
    if (!p.isSet(out)) {
      std::fprintf(stderr, "--plot-steptime needs --out PNG\n");
      return 2;
    }
    return plotSteptime(p.value(plotStep), p.value(out));
  }
  const double secs = p.value(seconds).toDouble();

  hl::ui::LiveView live;
  live.resize(1400, 900);
  live.show();
  if (!p.isSet(skip)) {
    Lat idle = measure(app, secs);
    hl::ui::RunWorker worker;
    live.setFeed(worker.feed());
    hl::ui::RunRequest r;
    r.spec = hl::spec::preset(p.value(preset).toStdString());
    r.spec["experiment"]["dataset"] = p.value(dataset).toStdString();
    r.spec["training"]["epochs"] = 50;  // longer than the measurement: it is cancelled after
    r.spec["training"]["limit_per_class"] = 20;
    r.spec["training"]["eval_limit_per_class"] = 5;
    r.options.data_dir = hl::data::resolve_data_dir("");
    worker.enqueue(r);
    // Wait for training to start (tokenizer, data), then measure while it runs.
    QElapsedTimer w;
    w.start();
    while (live.shown().step() < 5 && w.elapsed() < 300000) {
      QApplication::processEvents(QEventLoop::AllEvents, 50);
      live.flush();
    }
    int64_t step0 = live.shown().step();
    QElapsedTimer tr;
    tr.start();
    Lat busy = measure(app, secs);
    int64_t steps = live.shown().step() - step0;
    double train_s = tr.elapsed() / 1000.0;
    worker.stopAll();
    worker.wait();
    std::printf("event-loop lateness of a 1 ms timer (ms), %.0f s each:\n", secs);
    std::printf("  idle (baseline)        p50 %.2f  p99 %.2f  max %.2f  (%d ticks)\n", idle.p50, idle.p99, idle.max,
                idle.n);
    std::printf(
        "  training + Live view   p50 %.2f  p99 %.2f  max %.2f  (%d ticks; %lld steps, %.1f steps/s, %d points "
        "drawn)\n",
        busy.p50, busy.p99, busy.max, busy.n, (long long)steps, steps / train_s, live.plottedPoints());
    std::printf("  goal p99 <= 16 ms: %s\n", busy.p99 <= 16 ? "met" : "NOT met");
  }

  // Compare: synthetic loss-like curves, 4 seeds per configuration.
  const int R = p.value(runs).toInt(), N = p.value(points).toInt();
  std::vector<hl::ui::CompareRun> data;
  std::mt19937 rng(1);
  std::normal_distribution<double> noise(0, 0.05);
  for (int i = 0; i < R; ++i) {
    hl::ui::CompareRun c;
    c.id = i + 1;
    c.label = QString("run %1 · synthetic · seed %2").arg(i + 1).arg(i % 4);
    c.config_hash = "cfg" + std::to_string(i / 4);
    c.spec = {{"experiment", {{"seed", i % 4}}}, {"model", {{"d_model", 64 * (1 + i / 4)}}}};
    hl::store::Series s;
    s.name = "loss";
    s.level = "outer";
    s.points.reserve(N);
    for (int k = 0; k < N; ++k) s.points.emplace_back(k, 2.0 * std::exp(-k / (N / 5.0)) + 0.1 * (i / 4) + noise(rng));
    c.series.push_back(std::move(s));
    data.push_back(std::move(c));
  }
  hl::ui::CompareView view;
  view.resize(1400, 900);
  view.show();
  QElapsedTimer setup;
  setup.start();
  view.setData(std::move(data));
  double first = setup.elapsed();
  std::vector<double> full, draw;
  for (int i = 0; i < 10; ++i) full.push_back(view.rebuild());
  for (int i = 0; i < 10; ++i) draw.push_back(view.render());
  std::sort(full.begin(), full.end());
  std::sort(draw.begin(), draw.end());
  std::printf("compare view, %d runs x %d points (%d configurations, %d graphs):\n", R, N, view.groupCount(),
              view.graphCount());
  std::printf("  setData + first render %.0f ms\n", first);
  std::printf("  rebuild (curves, mean ± CI bands, decimation) + replot: median %.1f ms, max %.1f ms (10x)\n",
              full[full.size() / 2], full.back());
  std::printf("  replot only: median %.1f ms, max %.1f ms (10x)\n", draw[draw.size() / 2], draw.back());
  std::printf("  goal <= 100 ms per render: %s (rebuild), %s (replot)\n",
              full[full.size() / 2] <= 100 ? "met" : "NOT met", draw[draw.size() / 2] <= 100 ? "met" : "NOT met");
  return 0;
}
