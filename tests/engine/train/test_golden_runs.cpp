// Frozen behaviour of the trainer (issue 8, step 1): short CPU runs whose every metric point,
// periodic evaluation and accuracy-matrix cell must stay bit-identical while the trainer is
// refactored. Scenarios: fine-tune, EWC, replay, joint, a Hope preset with CMS levels on task
// clocks, and a run cancelled inside a CMS window (clocks 3 and 5 across the task-end checkpoint)
// and resumed. Each run's events are written as text, doubles as their bit patterns, and compared
// line by line with tests/golden/runs/<scenario>.txt.
//
// The files hold the numbers of one platform (LibTorch version and its CPU dispatch level, first
// line; for the fused-kernel scenario also the instruction set our kernels chose, since FMA rounds
// once where two instructions round twice): elsewhere the test skips and says so, since another
// SIMD width sums in another order. Within one dispatch level, the math libraries still pick
// kernels by CPU model (seen: two machines that LibTorch both calls AVX512, one with AMX, gave
// other bits from the first gradient norm of a Transformer run on), so recordings are kept per CPU:
// tests/golden/runs/cpu-<vendor>-<family>-<model>-<stepping>-<SIMD features>/ for the CPU that made them; the files
// directly under tests/golden/runs/ are those of the CPU of the CI machine, recorded before CPUs were told apart (not
// named, for it was not known), and serve every CPU that has no folder of its own. A scenario with no recording there
// is skipped and says so. Recording (into this CPU's folder):
//   HL_UPDATE_GOLDEN=1 build/tests/test_golden_runs   (then review and commit the files)
// A change that is meant to change the numbers re-records them in the same commit and says why.
#include "engine/torch_wrap.h"

#include <ATen/Version.h>

#include <QtTest>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "engine/spec/spec.h"
#include "engine/store/store.h"
#include "engine/train/experiment.h"
#include "hl_kernels/cpu_isa.h"

using json = nlohmann::json;
using namespace hl::train;

namespace {

std::string bits(double v) {
  uint64_t u;
  std::memcpy(&u, &v, sizeof u);
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(u));
  return buf;
}

// Every number the trainer reports, in order, one line each.
struct Transcript : Observer {
  std::vector<std::string> lines;
  void onEvent(const Event& e) override {
    std::ostringstream o;
    switch (e.kind) {
      case EventKind::Point:
        o << "P " << e.name << ' ' << (e.level.empty() ? "-" : e.level) << ' ' << e.block << ' ' << e.clock << ' '
          << e.step << ' ' << bits(e.value);
        break;
      case EventKind::Eval:
        o << "E " << e.step << ' ' << e.task << ' ' << e.eval_task << ' ' << bits(e.acc);
        break;
      case EventKind::Accuracy:
        o << "A " << e.task << ' ' << e.eval_task << ' ' << bits(e.acc) << ' ' << bits(e.task_il_acc);
        break;
      case EventKind::TaskFinished:
        o << "T " << e.task << ' ' << e.step << ' ' << bits(e.value);
        break;
      default:
        return;
    }
    lines.push_back(o.str());
  }
};

struct Canceller : Observer {
  Control* c = nullptr;
  int after = 0;
  int seen = 0;
  void onEvent(const Event& e) override {
    if (e.kind == EventKind::Progress && ++seen == after) c->requestCancel();
  }
};

// withBuild: also the LibTorch build (its commit, from at::show_config()), which the per-CPU
// recordings name; the CI machine's older ones do not.
std::string platform(const QString& scenario, bool withBuild) {
  std::string p = "torch " + std::string(TORCH_VERSION) + " cpu " + at::get_cpu_capability();
  if (scenario == "hope-taskclock") p += std::string(" kernels ") + hl::kernels::cpu_isa_name(hl::kernels::cpu_isa());
  if (withBuild) {
    const std::string cfg = at::show_config(), key = "COMMIT_SHA=";
    const auto at = cfg.find(key);
    p += " build " + (at == std::string::npos ? std::string("unknown") : cfg.substr(at + key.size(), 12));
  }
  return p;
}

// The kernels' instruction set a recording's platform line names ("... kernels avx2-fma ..."), when
// this CPU and build have it.
std::optional<hl::kernels::CpuIsa> recordedIsa(const QString& file) {
  std::ifstream in(file.toStdString());
  std::string head;
  if (!in.good() || !std::getline(in, head)) return std::nullopt;
  const auto at = head.find(" kernels ");
  if (at == std::string::npos) return std::nullopt;
  std::istringstream rest(head.substr(at + 9));
  std::string name;
  rest >> name;
  const auto isa = hl::kernels::cpu_isa_from_name(name);
  if (isa && hl::kernels::cpu_isa_available(*isa)) return isa;
  return std::nullopt;
}

// This CPU as a folder name: vendor, family, model, stepping and the SIMD features the math
// libraries dispatch on (Linux's /proc/cpuinfo; "cpu-unknown" elsewhere).
QString cpuTag() {
  std::ifstream in("/proc/cpuinfo");
  std::map<std::string, std::string> f;
  for (std::string l; std::getline(in, l) && !l.empty();) {
    const auto c = l.find(':');
    if (c == std::string::npos) continue;
    auto key = l.substr(0, c);
    key.erase(key.find_last_not_of(" \t") + 1);
    f[key] = c + 2 <= l.size() ? l.substr(c + 2) : "";
  }
  if (f.empty()) return "cpu-unknown";
  QString tag = QString("cpu-%1-%2-%3-%4")
                    .arg(QString::fromStdString(f["vendor_id"]), QString::fromStdString(f["cpu family"]),
                         QString::fromStdString(f["model"]), QString::fromStdString(f["stepping"]));
  const QStringList flags = QString::fromStdString(f["flags"]).split(' ', Qt::SkipEmptyParts);
  for (const char* feature : {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile"})
    if (flags.contains(feature)) tag += "-" + QString(feature).remove('_');
  return tag.replace(QRegularExpression("[^A-Za-z0-9_.-]"), "_");
}

json transformer_spec() {
  json s = hl::spec::preset("transformer");
  // The transcripts were recorded with dropout on the residual branches only; the preset's other
  // sites (embeddings here, attention and FFN hidden in its blocks, replaced below) stay off.
  s["model"]["embedding_dropout"] = 0.0;
  s["model"]["d_model"] = 32;
  s["model"]["vocab_size"] = 300;
  s["model"]["max_len"] = 32;
  s["model"]["blocks"] = json::array({hl::spec::block_defaults("transformer")});
  s["optimizer"]["lr"] = 5e-3;
  s["training"]["epochs"] = 1;
  s["training"]["limit_per_class"] = 6;
  s["training"]["eval_limit_per_class"] = 4;
  s["training"]["batch_size"] = 16;
  s["training"]["eval_every"] = 3;
  s["training"]["checkpoints"] = false;
  s["training"]["threads"] = 1;
  s["experiment"]["dataset"] = "banking77";
  return s;
}

json scenario(const QString& name) {
  json s = transformer_spec();
  auto& st = s["experiment"]["strategy"];
  if (name == "ewc") {
    st["type"] = "ewc";
    st["ewc_lambda"] = 50.0;
  } else if (name == "replay") {
    st["type"] = "replay";
    st["replay_per_class"] = 2;
  } else if (name == "joint") {
    s["experiment"]["protocol"] = "joint";
  } else if (name == "hope-taskclock" || name == "hope-taskclock-reference") {
    json h = hl::spec::preset("hope-taskclock");
    s["name"] = h["name"];
    s["model"] = h["model"];
    s["model"]["d_model"] = 32;
    s["model"]["vocab_size"] = 300;
    s["model"]["max_len"] = 16;
    s["model"]["blocks"] = json::array({h["model"]["blocks"][0]});
    s["model"]["blocks"][0]["heads"] = 2;
    s["training"]["grad_clip"] = h["training"]["grad_clip"];
    s["training"]["limit_per_class"] = 3;
    // The LibTorch path: its transcript is the one recorded before the fused kernels existed
    // (docs/KERNELS.md), so the reference path is proven unchanged bit for bit.
    if (name == "hope-taskclock-reference") s["training"]["kernels"] = "reference";
  } else if (name == "resume-cms-window") {
    s["model"]["blocks"].push_back({{"type", "cms"}, {"levels", json::array({{{"clock", 3}}, {{"clock", 5}}})}});
    s["training"]["checkpoints"] = true;
  }
  return hl::spec::complete(s);
}

}  // namespace

class TestGoldenRuns : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;
  RunOptions opt_;

  std::vector<std::string> transcriptOf(const QString& name) {
    const json s = scenario(name);
    Transcript t;
    RunOptions o = opt_;
    if (name != "resume-cms-window") {
      auto r = run_experiment(s, o, {&t});
      if (r.status != hl::RunStatus::Finished)
        qFatal("%s: %s %s", qPrintable(name), hl::name(r.status).c_str(), r.error.c_str());
      return t.lines;
    }
    // Cancelled at the 10th step (task 2 of 7 has steps 4..7 at 4 steps per task: inside the
    // clock-3 and clock-5 windows that span its start), resumed from the task-end checkpoint.
    o.db_path = tmp_.filePath("resume.db").toStdString();
    Control control;
    Canceller c;
    c.c = &control;
    c.after = 10;
    auto cut = run_experiment(s, o, {&c}, &control);
    if (cut.status != hl::RunStatus::Cancelled) qFatal("resume scenario: the cut run %s", hl::name(cut.status).c_str());
    RunOptions ro = o;
    ro.resume_run = cut.run_id;
    auto r = run_experiment(json::object(), ro, {&t});
    if (r.status != hl::RunStatus::Finished)
      qFatal("resume scenario: %s %s", hl::name(r.status).c_str(), r.error.c_str());
    // The resumed part, and the whole run as stored (the committed prefix + the resumed part).
    auto db = hl::store::RunStore::open(o.db_path);
    t.lines.push_back("# stored");
    for (const auto& se : db->series(r.run_id))
      for (const auto& [step, v] : se.points)
        t.lines.push_back("S " + se.name + ' ' + (se.level.empty() ? "-" : se.level) + ' ' + std::to_string(se.block) +
                          ' ' + std::to_string(se.clock) + ' ' + std::to_string(step) + ' ' + bits(v));
    for (const auto& cell : db->accuracy(r.run_id))
      t.lines.push_back("M " + std::to_string(cell.after_task) + ' ' + std::to_string(cell.task) + ' ' +
                        bits(cell.acc) + ' ' + bits(cell.task_il_acc));
    return t.lines;
  }

 private slots:
  void initTestCase() {
    QVERIFY(tmp_.isValid());
    torch::set_num_threads(1);
    opt_.data_dir = qEnvironmentVariable("HOPELAB_DATA_DIR", HL_TEST_DATA_DEFAULT).toStdString();
    opt_.cache_dir = tmp_.filePath("cache").toStdString();
  }

  void runsAreBitIdenticalToTheRecordedOnes_data() {
    QTest::addColumn<QString>("name");
    for (const char* n :
         {"finetune", "ewc", "replay", "joint", "hope-taskclock", "hope-taskclock-reference", "resume-cms-window"})
      QTest::newRow(n) << QString(n);
  }
  void runsAreBitIdenticalToTheRecordedOnes() {
    QFETCH(QString, name);
    const QString root = QString(HL_SOURCE_DIR) + "/tests/golden/runs/", own = root + cpuTag() + "/";
    // The fused scenario runs with the instruction set its recording names when this CPU has it
    // (a recording stays valid when the default ISA changes, e.g. AVX-512 kernels added); a new
    // recording uses the default.
    struct RestoreIsa {
      hl::kernels::CpuIsa isa = hl::kernels::cpu_isa();
      ~RestoreIsa() { hl::kernels::set_cpu_isa(isa); }
    } restore;  // the comparison below names the ISA in force, so it stays until the end
    if (!qEnvironmentVariableIsSet("HL_UPDATE_GOLDEN"))
      for (const QString& f : {own + name + ".txt", root + name + ".txt"})
        if (const auto isa = recordedIsa(f)) {
          hl::kernels::set_cpu_isa(*isa);
          break;
        }
    const auto lines = transcriptOf(name);
    QVERIFY(lines.size() > 20);
    if (qEnvironmentVariableIsSet("HL_UPDATE_GOLDEN")) {
      QVERIFY(QDir().mkpath(own));
      const QString file = own + name + ".txt";
      std::ofstream out(file.toStdString());
      out << "# platform: " << platform(name, true) << "\n# scenario: " << name.toStdString() << "\n";
      for (const auto& l : lines) out << l << "\n";
      QVERIFY(out.good());
      qInfo("recorded %zu lines in %s", lines.size(), qPrintable(file));
      return;
    }
    // This CPU's own recording where there is one made by this LibTorch build, else the CI
    // machine's (whose platform line names no build).
    auto platformOf = [](const QString& file) -> std::optional<std::string> {
      std::ifstream in(file.toStdString());
      std::string head;
      if (!in.good() || !std::getline(in, head)) return std::nullopt;
      return head.substr(std::min(head.size(), std::string("# platform: ").size()));
    };
    QString file = own + name + ".txt";
    std::string expected = platform(name, true);
    if (platformOf(file) != expected) {
      file = root + name + ".txt";
      expected = platform(name, false);
    }
    const auto recorded = platformOf(file);
    if (!recorded)
      QSKIP(qPrintable(
          file + ": no recording of this scenario for this CPU (" + cpuTag() +
          ") and LibTorch build; record with HL_UPDATE_GOLDEN=1 from a commit whose numbers are known good"));
    if (*recorded != expected)
      QSKIP(qPrintable(QString("recorded on '%1', this is '%2': bit-identity holds only on one platform; "
                               "record on this one with HL_UPDATE_GOLDEN=1 from the commit that recorded them")
                           .arg(QString::fromStdString(*recorded), QString::fromStdString(expected))));
    std::ifstream in(file.toStdString());
    std::string head, scen;
    std::getline(in, head);
    std::getline(in, scen);
    std::vector<std::string> golden;
    for (std::string l; std::getline(in, l);) golden.push_back(l);
    for (size_t i = 0; i < std::min(golden.size(), lines.size()); ++i)
      if (golden[i] != lines[i])
        QFAIL(qPrintable(QString("%1 line %2 differs:\n  recorded %3\n  now      %4")
                             .arg(file)
                             .arg(i + 3)
                             .arg(QString::fromStdString(golden[i]), QString::fromStdString(lines[i]))));
    QCOMPARE(lines.size(), golden.size());
  }

  // The fused kernels and the LibTorch path on the same short Hope run: the same events in the same
  // order; every reported number within 1e-4 relative (float32 rounding differs in the last bits
  // and grows a little over the run), accuracies within two evaluation rows of a task (4 rows per
  // class × 10 classes: 0.05).
  void fusedAndReferenceHopeRunsAgree() {
    const auto fused = transcriptOf("hope-taskclock"), ref = transcriptOf("hope-taskclock-reference");
    QCOMPARE(fused.size(), ref.size());
    auto value = [](const std::string& hex) {
      const uint64_t u = std::stoull(hex, nullptr, 16);
      double v;
      std::memcpy(&v, &u, sizeof v);
      return v;
    };
    double worst = 0, worstAcc = 0;
    for (size_t i = 0; i < fused.size(); ++i) {
      std::istringstream a(fused[i]), b(ref[i]);
      std::vector<std::string> fa, fb;
      for (std::string w; a >> w;) fa.push_back(w);
      for (std::string w; b >> w;) fb.push_back(w);
      QCOMPARE(fa.size(), fb.size());
      const size_t nums = fa[0] == "A" ? 2 : 1;                              // the trailing fields holding values
      for (size_t k = 0; k + nums < fa.size(); ++k) QCOMPARE(fa[k], fb[k]);  // same event, key and step
      for (size_t k = fa.size() - nums; k < fa.size(); ++k) {
        const double x = value(fa[k]), y = value(fb[k]);
        if (fa[0] == "P" || fa[0] == "T")
          worst = std::max(worst, std::abs(x - y) / std::max(std::abs(y), 1e-3));
        else
          worstAcc = std::max(worstAcc, std::abs(x - y));
      }
    }
    qInfo("fused vs reference: worst relative difference %.3g, worst accuracy difference %.3g", worst, worstAcc);
    QVERIFY2(worst < 1e-4, qPrintable(QString::number(worst)));
    QVERIFY2(worstAcc <= 0.05 + 1e-12, qPrintable(QString::number(worstAcc)));
  }
};

QTEST_GUILESS_MAIN(TestGoldenRuns)
#include "test_golden_runs.moc"
