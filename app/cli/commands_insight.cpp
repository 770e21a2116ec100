// `runs confusion` and `attribute`: what a finished run's predictions and levels say about its
// forgetting (docs/STORE.md "confusion", docs/MODELS.md "Levels and forgetting attribution").
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "engine/common/error.h"
#include "engine/export/export.h"
#include "engine/metrics/confusion.h"
#include "engine/store/store.h"
#include "engine/train/attribution.h"

using json = nlohmann::json;

namespace hl::cli {
namespace {

void write_out(const std::string& out, const std::string& text) {
  if (out.empty()) {
    std::cout << text;
    return;
  }
  std::ofstream f(out, std::ios::binary);
  f << text;
  if (!f) throw SpecError("--out " + out + ": cannot write the file");
  std::fprintf(stderr, "wrote %s\n", out.c_str());
}

std::string label(const metrics::ConfusionMatrix& m, size_t k) {
  return m.names[k].empty() ? "class " + std::to_string(m.classes[k]) : m.names[k];
}

// A signed number of accuracy points ("+3.1", "-0.4", "-" for NaN).
std::string points(double v, int decimals = 1) {
  if (std::isnan(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%+.*f", decimals, 100 * v);
  return b;
}

}  // namespace

int Commands::runsConfusion() {
  auto db = store::RunStore::open(dbPath());
  const std::string id = "run " + std::to_string(run_id_);
  if (!db->getRun(run_id_)) throw SpecError(id + " is not in " + dbPath() + " (see `hopelab-cli runs`)");
  const auto all = db->confusion(run_id_);
  if (all.empty())
    throw RunError(id +
                   " has no confusion matrix: none of its tasks ended yet, or a Hope Lab build older than the "
                   "confusion matrices (run-database schema 3) recorded it");
  const metrics::ConfusionMatrix* m = &all.back();
  if (confusion_task_ > 0) {
    m = nullptr;
    for (const auto& c : all)
      if (c.after_task == confusion_task_ - 1) m = &c;
    if (!m) {
      std::string have;
      for (const auto& c : all) have += (have.empty() ? "" : ", ") + std::to_string(c.after_task + 1);
      throw SpecError(id + " has no confusion matrix after task " + std::to_string(confusion_task_) +
                      " (it has: after task " + have + ")");
    }
  }
  if (csv_) {
    write_out(out_, metrics::confusion_csv(*m, normalise_));
    return 0;
  }
  if (json_) {
    json classes = json::array(), counts = json::array();
    for (size_t k = 0; k < m->size(); ++k) {
      classes.push_back({{"id", m->classes[k]}, {"task", m->tasks[k]}, {"name", m->names[k]}});
      json row = json::array();
      for (size_t c = 0; c < m->size(); ++c) row.push_back(m->at(k, c));
      counts.push_back(row);
    }
    json tasks = json::array();
    for (int t = 0; t <= m->after_task; ++t) tasks.push_back(m->taskAccuracy(t));
    json out = {{"run", run_id_},   {"after_task", m->after_task}, {"classes", classes},
                {"counts", counts}, {"task_accuracy", tasks},      {"rows", m->total()}};
    write_out(out_, out.dump(2) + "\n");
    return 0;
  }
  // The summary: per-task accuracy from the diagonal, where each task's rows went, the top confusions.
  std::ostringstream o;
  int T = 0;
  for (int t : m->tasks) T = std::max(T, t + 1);
  o << id << ": confusion after task " << m->after_task + 1 << " (" << m->size() << " classes seen, " << m->total()
    << " evaluation rows; class-IL predictions over the seen classes)\n";
  o << "  rows of task (row) predicted as a class of task (column), share of the row's rows:\n        ";
  char b[64];
  for (int u = 0; u < T; ++u) {
    std::snprintf(b, sizeof b, " %6s", ("T" + std::to_string(u + 1)).c_str());
    o << b;
  }
  o << "   accuracy\n";
  for (int t = 0; t < T; ++t) {
    std::vector<int64_t> to(T, 0);
    int64_t n = 0;
    for (size_t r = 0; r < m->size(); ++r) {
      if (m->tasks[r] != t) continue;
      for (size_t c = 0; c < m->size(); ++c)
        if (m->tasks[c] >= 0) to[m->tasks[c]] += m->at(r, c);
      n += m->rowSum(r);
    }
    std::snprintf(b, sizeof b, "  %-6s", ("T" + std::to_string(t + 1)).c_str());
    o << b;
    for (int u = 0; u < T; ++u) {
      std::snprintf(b, sizeof b, " %6.3f", n ? double(to[u]) / double(n) : 0.0);
      o << b;
    }
    std::snprintf(b, sizeof b, "   %.4f\n", m->taskAccuracy(t));
    o << b;
  }
  struct Pair {
    size_t r, c;
    int64_t n;
  };
  std::vector<Pair> off;
  for (size_t r = 0; r < m->size(); ++r)
    for (size_t c = 0; c < m->size(); ++c)
      if (r != c && m->at(r, c) > 0) off.push_back({r, c, m->at(r, c)});
  std::sort(off.begin(), off.end(), [](const Pair& a, const Pair& b) {
    return a.n != b.n ? a.n > b.n : std::make_pair(a.r, a.c) < std::make_pair(b.r, b.c);
  });
  o << "  most frequent confusions (true -> predicted: rows, share of the true class's rows):\n";
  for (size_t k = 0; k < std::min<size_t>(off.size(), 10); ++k) {
    const Pair& p = off[k];
    std::snprintf(b, sizeof b, "%lld, %.3f", (long long)p.n, m->rowShare(p.r, p.c));
    o << "    " << label(*m, p.r) << " (T" << m->tasks[p.r] + 1 << ") -> " << label(*m, p.c) << " (T"
      << m->tasks[p.c] + 1 << "): " << b << "\n";
  }
  if (off.empty()) o << "    none: every row was predicted right\n";
  o << "  the whole matrix: --csv (--normalise for row shares) or --json; other tasks: --task J\n";
  write_out(out_, o.str());
  return 0;
}

int Commands::attribute() {
  train::AttributionOptions opt;
  opt.data_dir = dataDir();
  if (!quiet_ && isatty(fileno(stderr))) {
    opt.progress = [](int done, int total, const std::string& what) {
      std::fprintf(stderr, "\r[%d/%d] %-60.60s", done, total, what.c_str());
      if (done == total) std::fprintf(stderr, "\n");
    };
    opt.waiting = [] { std::fprintf(stderr, "waiting for a training run of this process to end\n"); };
  }
  const train::Attribution a = train::attribute_forgetting(dbPath(), run_id_, opt);
  if (json_) {
    std::cout << a.toJson().dump(2) << "\n";
    return 0;
  }
  const int T = a.num_tasks;
  if (csv_) {
    std::cout << "level,block";
    for (int j = 0; j + 1 < T; ++j) std::cout << ",task" << j + 1;
    std::cout << "\n";
    auto row = [&](const std::string& name, int block, const std::vector<double>& v) {
      std::cout << '"' << name << "\"," << block;
      for (int j = 0; j + 1 < T; ++j) std::cout << "," << (std::isnan(v[j]) ? "" : points(v[j], 3));
      std::cout << "\n";
    };
    for (size_t l = 0; l < a.levels.size(); ++l) row(a.levels[l].label, a.levels[l].block, a.gain[l]);
    row("every level at once", -1, a.gain_all);
    row("forgetting", -1, a.forgetting);
    return 0;
  }
  std::printf("run %lld: per-level forgetting attribution, %d tasks\n", (long long)a.run_id, T);
  std::printf(
      "  gain in accuracy points on task j when the level is put back to its state at the end of task j (the rest\n"
      "  final), over the final model; gains of different levels do not add up (levels interact)\n");
  // Columns by characters, not bytes (labels hold "·").
  auto width = [](const std::string& s) {
    return size_t(
        std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
  };
  auto padded = [&](const std::string& s, size_t w) { return s + std::string(w - std::min(w, width(s)), ' '); };
  size_t w = width("R[j][j] (end of task j)");
  for (const auto& l : a.levels) w = std::max(w, width(l.label));
  std::printf("  %s", padded("level", w).c_str());
  for (int j = 0; j + 1 < T; ++j) std::printf(" %7s", ("task " + std::to_string(j + 1)).c_str());
  std::printf("\n");
  auto line = [&](const std::string& name, const std::vector<double>& v, bool signed_points) {
    std::printf("  %s", padded(name, w).c_str());
    for (int j = 0; j + 1 < T; ++j) {
      char b[32];
      if (std::isnan(v[j]))
        std::snprintf(b, sizeof b, "-");
      else if (signed_points)
        std::snprintf(b, sizeof b, "%s", points(v[j]).c_str());
      else
        std::snprintf(b, sizeof b, "%.1f", 100 * v[j]);
      std::printf(" %7s", b);
    }
    std::printf("\n");
  };
  for (size_t l = 0; l < a.levels.size(); ++l) line(a.levels[l].label, a.gain[l], true);
  line("every level at once", a.gain_all, true);
  std::printf("  for reference (accuracy, %%):\n");
  line("forgetting F_j", a.forgetting, false);
  line("R[j][j] (end of task j)", a.acc_at_end, false);
  line("R[T][j] (final)", a.final_acc, false);
  std::printf("  check: the snapshots reproduce R[j][j] and R[T][j] %s\n",
              a.exact ? "exactly (bit for bit)"
                      : "NOT exactly: another machine, LibTorch or thread count than the run's? (the gains are still "
                        "measured against the recomputed final accuracy)");
  return 0;
}

int Commands::evaluateRun() {
  train::AblationOptions opt;
  opt.data_dir = dataDir();
  opt.which = eval_which_;
  opt.sets = sets_;
  opt.writes_off = writes_off_;
  std::vector<int64_t> given, ids;
  for (int64_t id : exporter::parse_run_ids(eval_runs_, "evaluate"))
    if (std::find(given.begin(), given.end(), id) == given.end()) given.push_back(id);
  if (given.empty()) throw SpecError("evaluate: no run id given (e.g. 3 or 3,5,7-9)");
  std::unique_ptr<store::RunStore> db;
  if (record_ || skip_without_writes_) db = store::RunStore::open(dbPath());
  for (int64_t id : given) {
    // What the ablation of this run would change, sorted: the key of its record.
    std::vector<std::string> key = sets_;
    if (writes_off_ && db) {
      const auto rec = db->getRun(id);
      if (!rec) throw SpecError("run " + std::to_string(id) + " is not in " + dbPath() + " (see `hopelab-cli runs`)");
      const json spec = json::parse(rec->spec_json, nullptr, false);
      bool writes = false;
      if (spec.is_object() && spec.contains("model") && spec["model"].contains("blocks"))
        for (const auto& b : spec["model"]["blocks"])
          writes = writes || (b.value("mixer", std::string("selfmod")) == "selfmod" && b.contains("memory_writes") &&
                              b["memory_writes"].is_boolean() && b["memory_writes"].get<bool>());
      if (skip_without_writes_ && !writes) {
        std::fprintf(stderr, "evaluate: run %lld (%s) skipped: it has no in-context writes to turn off\n",
                     (long long)id, rec->name.c_str());
        continue;
      }
      const auto off = train::writes_off_overrides(spec);
      key.insert(key.begin(), off.begin(), off.end());
    }
    if (missing_only_) {
      const std::string joined = train::ablation_key(key);
      bool have = false;
      for (const auto& a : db->ablations(id)) have = have || (a.overrides == joined && a.checkpoint == eval_which_);
      if (have) {
        std::fprintf(stderr, "evaluate: run %lld skipped: this ablation is recorded already (--missing-only)\n",
                     (long long)id);
        continue;
      }
    }
    ids.push_back(id);
  }
  if (ids.empty()) {
    if (!json_) std::printf("nothing to evaluate: every run given was skipped\n");
    if (json_) std::cout << "[]\n";
    return 0;
  }
  // --record: the result goes into the run database (table ablations) as soon as it is measured.
  const auto record = [&](const train::Ablation& a) {
    if (record_) train::record_ablation(dbPath(), a);
  };
  if (ids.size() > 1) {
    // Several runs (seeds): one line each, then the change's mean ± sample std.
    json all = json::array();
    std::vector<double> changes;
    if (!json_)
      std::printf("%-6s %8s %9s %9s %8s %6s  %s\n", "run", "stored", "as saved", "ablated", "change", "exact",
                  "overrides");
    for (int64_t id : ids) {
      const train::Ablation a = train::ablate_run(dbPath(), id, opt);
      record(a);
      const double ch = a.mean(a.ablated) - a.mean(a.as_saved);
      changes.push_back(ch);
      if (json_) {
        all.push_back(a.toJson());
        continue;
      }
      std::string sets;
      for (const auto& s : a.sets) sets += (sets.empty() ? "" : ", ") + s;
      std::printf("%-6lld %8.4f %9.4f %9.4f %8s %6s  %s\n", (long long)id, a.mean(a.stored), a.mean(a.as_saved),
                  a.mean(a.ablated), points(ch).c_str(),
                  a.which != "last" ? "-"
                  : a.exact         ? "yes"
                                    : "no",
                  sets.c_str());
      std::fflush(stdout);
    }
    if (json_) {
      std::cout << all.dump(2) << "\n";
      return 0;
    }
    double m = 0, v = 0;
    for (double c : changes) m += c / double(changes.size());
    for (double c : changes) v += (c - m) * (c - m) / double(changes.size() - 1);
    std::printf("change (ablated - as saved, mean accuracy over tasks): %s ± %.1f points over %zu runs (sample std)\n",
                points(m).c_str(), 100 * std::sqrt(v), changes.size());
    return 0;
  }
  const train::Ablation a = train::ablate_run(dbPath(), ids.front(), opt);
  record(a);
  if (json_) {
    std::cout << a.toJson().dump(2) << "\n";
    return 0;
  }
  std::printf("run %lld: %s.pt (step %lld) on the test rows of %zu task(s), over the final class set\n",
              (long long)a.run_id, a.which.c_str(), (long long)a.step, a.tasks.size());
  for (const auto& s : a.sets) std::printf("  override: %s\n", s.c_str());
  std::printf("%-6s %8s %9s %9s %8s %12s %12s\n", "task", "stored", "as saved", "ablated", "change", "task-IL saved",
              "task-IL abl.");
  auto f3 = [](double v) { return std::isnan(v) ? std::string("-") : std::to_string(v).substr(0, 5); };
  for (size_t i = 0; i < a.tasks.size(); ++i)
    std::printf("%-6d %8s %9s %9s %8s %12s %12s\n", a.tasks[i] + 1, f3(a.stored[i]).c_str(), f3(a.as_saved[i]).c_str(),
                f3(a.ablated[i]).c_str(), points(a.ablated[i] - a.as_saved[i]).c_str(), f3(a.as_saved_til[i]).c_str(),
                f3(a.ablated_til[i]).c_str());
  if (a.tasks.size() > 1)
    std::printf("%-6s %8s %9s %9s %8s %12s %12s\n", "mean", f3(a.mean(a.stored)).c_str(),
                f3(a.mean(a.as_saved)).c_str(), f3(a.mean(a.ablated)).c_str(),
                points(a.mean(a.ablated) - a.mean(a.as_saved)).c_str(), f3(a.mean(a.as_saved_til)).c_str(),
                f3(a.mean(a.ablated_til)).c_str());
  std::printf("  change in accuracy points (ablated - as saved)\n");
  if (record_) std::printf("  recorded in %s (table ablations)\n", dbPath().c_str());
  if (a.which == "last")
    std::printf(a.exact ? "  as saved reproduces the stored accuracies bit for bit\n"
                        : "  as saved differs from the stored accuracies (another build, CPU or kernel path: compare "
                          "the ablation with the as-saved column)\n");
  return 0;
}

}  // namespace hl::cli
