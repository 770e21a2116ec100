#include "engine/export/report.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "engine/export/export.h"
#include "engine/spec/spec.h"

namespace hl::exporter {
namespace {

using json = nlohmann::json;

// A configuration of a sweep as the "Hope against the Transformer" section sees it: what kind of
// run it is and its seeds' final accuracies.
struct RunKind {
  std::string name, strategy, protocol, head;
};
struct Config {
  RunKind kind;
  std::vector<double> accs;
};

// Whether a configuration label ("preset=hope experiment.strategy.type=replay", the sweep's grid
// values) varies nothing but the preset and the set-up axes (protocol, strategy, head). Hope
// against the Transformer compares those runs only: an ablation of either (an inner learning rate,
// the clip off) is a row of the table, not the preset.
bool onlySetupAxes(const std::string& label) {
  static const std::set<std::string> axes = {"preset", "experiment.protocol", "experiment.strategy.type",
                                             "model.head.type"};
  std::istringstream in(label);
  std::string tok;
  while (in >> tok) {
    const auto eq = tok.find('=');
    if (eq == std::string::npos || !axes.count(tok.substr(0, eq))) return false;
  }
  return true;
}

// Which builds, LibTorch versions, devices, hosts, CPUs and kernel paths made the runs (the store
// keeps them per run: the record's columns, the summary's `cpu`, `threads`, `kernels` and
// `kernel_isa`), each with its run count: "Hope Lab `8954394` (30 runs), `0a8e4a9` (15 runs);
// LibTorch 2.14.1 (45 runs); device cpu (45 runs); host vm (45 runs); CPU AMD EPYC (…), 2 threads
// (45 runs); kernels fused-cpu avx2-fma (15 runs), none (30 runs)". Runs from before a key existed
// count as "unknown".
std::string provenance(const std::vector<hl::store::RunRecord>& runs) {
  using R = hl::store::RunRecord;
  std::vector<nlohmann::json> summaries;
  for (const auto& r : runs) summaries.push_back(nlohmann::json::parse(r.summary_json, nullptr, false));
  const auto text = [&](size_t i, const char* key) -> std::string {
    const auto& j = summaries[i];
    if (!j.is_object() || !j.contains(key)) return "";
    return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
  };
  const auto list = [&](const char* what, bool code, auto&& field) {
    std::map<std::string, int> n;
    for (size_t i = 0; i < runs.size(); ++i) {
      const std::string v = field(runs[i], i);
      ++n[v.empty() ? std::string("unknown") : v];
    }
    std::string out = what;
    bool first = true;
    for (const auto& [v, k] : n) {
      out +=
          (first ? " " : ", ") + (code ? "`" + v + "`" : v) + " (" + std::to_string(k) + (k == 1 ? " run)" : " runs)");
      first = false;
    }
    return out;
  };
  return list("Hope Lab", true, [](const R& r, size_t) { return r.app_version; }) + "; " +
         list("LibTorch", false, [](const R& r, size_t) { return r.torch_version; }) + "; " +
         list("device", false, [](const R& r, size_t) { return r.device; }) + "; " +
         list("host", false, [](const R& r, size_t) { return r.host; }) + "; " +
         list("CPU", false,
              [&](const R&, size_t i) {
                const std::string cpu = text(i, "cpu"), th = text(i, "threads");
                return cpu.empty() || th.empty() ? cpu : cpu + ", " + th + (th == "1" ? " thread" : " threads");
              }) +
         "; " + list("kernels", false, [&](const R&, size_t i) {
           const std::string k = text(i, "kernels"), isa = text(i, "kernel_isa");
           return isa.empty() ? k : k + " " + isa;
         });
}

}  // namespace

ReportSection match_sweep(const hl::spec::Sweep& sw, const std::vector<hl::store::RunRecord>& all) {
  std::map<std::pair<std::string, int64_t>, const hl::store::RunRecord*> newest, newest_other;
  for (const auto& r : all) {
    auto& slot = (r.status == RunStatus::Finished ? newest : newest_other)[{r.config_hash, r.seed}];
    if (!slot || r.id > slot->id) slot = &r;
  }
  ReportSection out;
  out.name = sw.name;
  out.planned = int(sw.runs.size());
  for (const auto& run : sw.runs) {
    const std::string hash = hl::spec::config_hash(run.spec);
    std::string label = run.label.substr(0, run.label.rfind("seed="));
    while (!label.empty() && label.back() == ' ') label.pop_back();
    out.labels[hash] = label.empty() ? "(base)" : label;
    const std::pair<std::string, int64_t> key{hash, run.spec["experiment"]["seed"].get<int64_t>()};
    if (const auto it = newest.find(key); it != newest.end())
      out.runs.push_back(*it->second);
    else if (const auto other = newest_other.find(key); other != newest_other.end())
      out.unfinished.emplace_back(run.label, *other->second);
    else
      out.missing.push_back(run.label);
  }
  return out;
}

std::vector<hl::store::RunRecord> figure_runs(const ReportSection& s) {
  std::vector<hl::store::RunRecord> out;
  int64_t seed = INT64_MAX;
  for (const auto& r : s.runs) seed = std::min(seed, r.seed);
  for (const char* model : {"hope", "transformer"})
    for (const auto& r : s.runs)
      if (r.name == model && r.seed == seed && r.strategy == "finetune" && r.protocol == "class-incremental" &&
          r.head == "softmax") {
        out.push_back(r);
        break;
      }
  return out;
}

const std::vector<SeedClaim>& seed_claims() {
  static const std::vector<SeedClaim> claims = {
      {"transformer", "clinc150", 85.3}, {"transformer", "banking77", 78.2}, {"transformer", "dbpedia", 88.1},
      {"lstm", "clinc150", 82.7},        {"lstm", "banking77", 76.5},        {"lstm", "dbpedia", 85.4},
      {"hope", "clinc150", 90.5},        {"hope", "banking77", 83.7},        {"hope", "dbpedia", 92.3},
  };
  return claims;
}

std::string results_report(const std::vector<ReportSection>& sections, const ReportOptions& opt) {
  std::ostringstream o;
  o << "# Results\n\n"
    << "Generated by `" << opt.command << "` from `" << opt.db << "` (Hope Lab " << opt.version
    << "). Do not edit by hand: change the sweep files and run the command again. Every number below is "
       "a finished run in that database; rows group the seeds of one configuration (mean ± sample std).\n";
  TableOptions t;
  t.decimals = opt.decimals;
  t.train_time = true;
  for (const auto& s : sections) {
    o << "\n## " << s.name << "\n\n";
    o << "Sweep `" << s.file << "`: " << s.runs.size() << " of " << s.planned << " runs finished";
    if (!s.set.empty()) o << "; every run with `" << s.set.dump() << "`";
    o << ".\n\n";
    t.config_labels = s.labels;
    if (!s.runs.empty()) o << "Made by " << provenance(s.runs) << ".\n\n" << results_table(s.runs, t);
    if (!s.unfinished.empty()) {
      // A diverged run is a result (the configuration does not train): say so with the engine's
      // message, never count it as not run.
      o << "\nStarted, not finished (" << s.unfinished.size() << "):";
      for (size_t i = 0; i < s.unfinished.size(); ++i) {
        const auto& [label, r] = s.unfinished[i];
        std::string why = r.error.substr(0, r.error.find('\n'));
        if (why.size() > 200) why = why.substr(0, 197) + "...";
        o << (i ? ";" : "") << " `" << label << "` " << hl::name(r.status) << " (run " << r.id
          << (why.empty() ? std::string() : ": " + why) << ")";
      }
      o << ".\n";
    }
    if (!s.missing.empty()) {
      o << "\nNot run yet (" << s.missing.size() << "):";
      for (size_t i = 0; i < s.missing.size() && i < 20; ++i) o << (i ? ";" : "") << " `" << s.missing[i] << "`";
      if (s.missing.size() > 20) o << "; and " << s.missing.size() - 20 << " more";
      o << ".\n";
    }
    const auto figs = opt.figures_link.empty() ? std::vector<hl::store::RunRecord>{} : figure_runs(s);
    if (!figs.empty()) {
      o << "\nFine-tuned, seed " << figs.front().seed
        << ": the accuracy matrix (row i: after training task i; column j: task j's class-IL accuracy) and the "
           "forgetting curves (each task's accuracy at every evaluation), drawn by the app's Live view.\n\n|";
      for (const auto& r : figs) o << " " << r.name << " |";
      o << "\n|";
      for (size_t i = 0; i < figs.size(); ++i) o << " --- |";
      for (const char* kind : {"matrix", "forgetting"}) {
        o << "\n|";
        for (const auto& r : figs)
          o << " ![" << r.name << ", " << kind << "](" << opt.figures_link << "/" << r.uuid << "-" << kind << ".png) |";
      }
      o << "\n";
    }
  }

  // Hope against the Transformer, per sweep and set-up, and each sweep's best row: generated from
  // the runs, so "where Hope loses" is never typed by hand.
  o << "\n## Hope against the Transformer\n\n"
    << "For each sweep, every set-up (strategy, protocol, head) that ran both `hope` and `transformer` as "
       "presets (runs that change anything else, such as an ablation's inner learning rate, stay out of this "
       "comparison and are rows of the table above): final "
       "average accuracy (mean ± std over seeds) and the difference. *Loses* / *wins*: the difference is "
       "larger than the larger of the two standard deviations; otherwise *within seed noise*; with one seed on either "
       "side there is no spread to judge by "
       "(*not judged*). Then the sweep's best configuration by the same mean; where a set-up has more than one "
       "`hope` or `transformer` row (a tuned hyperparameter), each model's best row against the other's; the best "
       "class-incremental "
       "Hope variant without replay that trains (any `hope*` preset, any strategy but replay, any head but "
       "`ncm`) against the best replay configuration, judged by the same rule; and, apart, Hope's untrained "
       "features with the NCM head against the same replay row.\n";
  for (const auto& s : sections) {
    std::map<std::string, std::map<std::string, std::vector<double>>> by_setup;  // set-up -> model -> accs
    std::map<std::string, Config> by_config;                                     // config label -> runs
    for (const auto& r : s.runs) {
      const json sum = json::parse(r.summary_json, nullptr, false);
      if (!sum.is_object() || !sum.contains("final_avg_acc") || !sum["final_avg_acc"].is_number()) continue;
      const double acc = sum["final_avg_acc"].get<double>();
      const auto lab = s.labels.find(r.config_hash);
      const std::string label = lab == s.labels.end() ? r.name : lab->second;
      auto& cfg = by_config[label];
      cfg.kind = {r.name, r.strategy, r.protocol, r.head};
      cfg.accs.push_back(acc);
      if ((r.name == "hope" || r.name == "transformer") && onlySetupAxes(label))
        by_setup[r.strategy + ", " + r.protocol + ", " + r.head + " head"][r.name].push_back(acc);
    }
    o << "\n### " << s.name << "\n\n";
    if (by_config.empty()) {
      o << "No finished runs.\n";
      continue;
    }
    const auto mean_sd = [](const std::vector<double>& xs) {
      double m = 0, v = 0;
      for (double x : xs) m += x;
      m /= double(xs.size());
      for (double x : xs) v += (x - m) * (x - m);
      return std::pair<double, double>{m, xs.size() > 1 ? std::sqrt(v / double(xs.size() - 1)) : 0.0};
    };
    // a against b: a difference beyond the larger of the two spreads decides; one seed on either
    // side leaves nothing to judge by.
    const auto judge = [&](const std::vector<double>& a, const std::vector<double>& b, const char* loses,
                           const char* wins) {
      const auto [am, as] = mean_sd(a);
      const auto [bm, bs] = mean_sd(b);
      const double d = am - bm;
      return a.size() < 2 || b.size() < 2      ? "not judged (1 seed)"
             : std::abs(d) <= std::max(as, bs) ? "within seed noise"
             : d < 0                           ? loses
                                               : wins;
    };
    const auto signedDiff = [&](double d) {  // "+0.007" / "-0.140" at the report's decimals
      std::ostringstream o2;
      o2.setf(std::ios::fixed);
      o2.precision(opt.decimals);
      o2 << (d >= 0 ? "+" : "") << d;
      return o2.str();
    };
    bool any = false;
    for (const auto& [setup, models] : by_setup) {
      const auto h = models.find("hope"), t = models.find("transformer");
      if (h == models.end() || t == models.end()) continue;
      if (!any) o << "| Set-up | hope | transformer | hope − transformer | |\n| --- | --: | --: | --: | --- |\n";
      any = true;
      const char* verdict = judge(h->second, t->second, "**Hope loses**", "**Hope wins**");
      const std::string diff = signedDiff(mean_sd(h->second).first - mean_sd(t->second).first);
      o << "| " << setup << " | " << mean_std_markdown(h->second, opt.decimals) << " | "
        << mean_std_markdown(t->second, opt.decimals) << " | " << diff << " | " << verdict << " |\n";
    }
    if (!any) o << "No set-up ran both `hope` and `transformer`.\n";
    const auto best = std::max_element(by_config.begin(), by_config.end(), [&](const auto& a, const auto& b) {
      return mean_sd(a.second.accs).first < mean_sd(b.second.accs).first;
    });
    const auto seeds = [](size_t n) { return std::to_string(n) + (n == 1 ? " seed" : " seeds"); };
    o << "\nBest configuration: `" << best->first << "`, " << mean_std_markdown(best->second.accs, opt.decimals) << " ("
      << seeds(best->second.accs.size()) << ").\n";

    // Tuned: per set-up, each model's best row of the sweep (any change beyond the set-up, such as
    // a learning rate), where at least one side had more than one row to choose from. The rows are
    // chosen by the test accuracy they report, so both sides are optimistic alike (no dev split).
    std::map<std::string, std::map<std::string, std::vector<const std::pair<const std::string, Config>*>>> rows;
    for (const auto& kv : by_config) {
      const auto& k = kv.second.kind;
      if (k.name == "hope" || k.name == "transformer")
        rows[k.strategy + ", " + k.protocol + ", " + k.head + " head"][k.name].push_back(&kv);
    }
    for (const auto& [setup, models] : rows) {
      const auto h = models.find("hope"), t = models.find("transformer");
      if (h == models.end() || t == models.end() || (h->second.size() < 2 && t->second.size() < 2)) continue;
      const auto top = [&](const auto& v) {
        return *std::max_element(v.begin(), v.end(), [&](const auto* a, const auto* b) {
          return mean_sd(a->second.accs).first < mean_sd(b->second.accs).first;
        });
      };
      const auto *bh = top(h->second), *bt = top(t->second);
      const std::string diff = signedDiff(mean_sd(bh->second.accs).first - mean_sd(bt->second.accs).first);
      o << "\nTuned (" << setup << "; each model's best of its " << h->second.size() << " and " << t->second.size()
        << " rows, chosen by the test accuracy shown, so optimistic for both alike): `" << bh->first << "`, "
        << mean_std_markdown(bh->second.accs, opt.decimals) << " (" << seeds(bh->second.accs.size()) << ") against `"
        << bt->first << "`, " << mean_std_markdown(bt->second.accs, opt.decimals) << " ("
        << seeds(bt->second.accs.size()) << "): " << diff << ", "
        << judge(bh->second.accs, bt->second.accs, "**Hope loses**", "**Hope wins**") << ".\n";
    }

    // The project's question (docs/HOPE.md): does a Hope variant without replay beat replay? The
    // best class-incremental Hope-family configuration that trains (any preset named hope*, any
    // strategy but replay, any head but ncm) against the best replay configuration, judged by the
    // same rule; then, apart, Hope's untrained features with the NCM head (nothing trains there, so
    // it answers a different question: how good are the features at initialisation?).
    const auto best_of = [&](auto&& pick) {
      const std::pair<const std::string, Config>* out = nullptr;
      for (const auto& kv : by_config)
        if (pick(kv.second.kind) && (!out || mean_sd(kv.second.accs).first > mean_sd(out->second.accs).first))
          out = &kv;
      return out;
    };
    const auto hope_no_replay = [](const RunKind& k, bool ncm) {
      return k.name.rfind("hope", 0) == 0 && k.strategy != "replay" && k.protocol == "class-incremental" &&
             (k.head == "ncm") == ncm;
    };
    const auto* trained = best_of([&](const RunKind& k) { return hope_no_replay(k, false); });
    const auto* untrained = best_of([&](const RunKind& k) { return hope_no_replay(k, true); });
    const auto* replay =
        best_of([](const RunKind& k) { return k.strategy == "replay" && k.protocol == "class-incremental"; });
    const auto against_replay = [&](const char* what, const auto* cfg) {
      if (!cfg || !replay) return;
      const auto &a = cfg->second.accs, &r = replay->second.accs;
      o << "\n"
        << what << ": `" << cfg->first << "`, " << mean_std_markdown(a, opt.decimals) << " (" << seeds(a.size())
        << "); best replay: `" << replay->first << "`, " << mean_std_markdown(r, opt.decimals) << " ("
        << seeds(r.size()) << "): " << judge(a, r, "**replay wins**", "**Hope without replay wins**") << ".\n";
    };
    against_replay("Best trained Hope variant without replay", trained);
    against_replay("Hope's untrained features with the NCM head (nothing trains)", untrained);

    // Recorded test-time ablations (`hopelab-cli evaluate RUNS --writes-off --record`): per
    // configuration and override set, the seeds' mean accuracy over tasks as saved and ablated and
    // the change in points, each seed's change listed. Only runs whose ablation was recorded count.
    struct Abl {
      std::vector<double> saved, ablated;
      std::vector<int64_t> seeds;
      int inexact = 0;
    };
    std::map<std::pair<std::string, std::string>, Abl> abl;  // (config label, overrides) -> seeds
    for (const auto& r : s.runs) {
      const auto it = s.ablations.find(r.id);
      if (it == s.ablations.end()) continue;
      const auto lab = s.labels.find(r.config_hash);
      const std::string label = lab == s.labels.end() ? r.name : lab->second;
      for (const auto& a : it->second) {
        if (a.checkpoint != "last") continue;  // best.pt may be an earlier model than the row's
        const json res = json::parse(a.result_json, nullptr, false);
        if (!res.is_object() || !res.contains("mean") || !res["mean"].is_object()) continue;
        const json& m = res["mean"];
        if (!m.contains("as_saved") || !m.contains("ablated") || !m["as_saved"].is_number() ||
            !m["ablated"].is_number())
          continue;
        Abl& e = abl[{label, a.overrides}];
        e.saved.push_back(m["as_saved"].get<double>());
        e.ablated.push_back(m["ablated"].get<double>());
        e.seeds.push_back(r.seed);
        if (!res.value("exact", false)) ++e.inexact;
      }
    }
    if (!abl.empty()) {
      o << "\nTest-time ablations recorded (`hopelab-cli --db DB evaluate RUNS --writes-off --record`: each run's "
           "saved final model evaluated on every task's test rows with the overrides; change = ablated − as "
           "saved, in accuracy points; a change beyond its own spread is *measurable*):\n\n"
        << "| Configuration | Overrides | n | As saved | Ablated | Change (points) | Per seed | |\n"
        << "| --- | --- | --: | --: | --: | --: | --- | --- |\n";
      for (const auto& [key, e] : abl) {
        std::vector<double> ch;
        for (size_t i = 0; i < e.saved.size(); ++i) ch.push_back(100 * (e.ablated[i] - e.saved[i]));
        const auto [cm, cs] = mean_sd(ch);
        std::ostringstream per;
        per.setf(std::ios::fixed);
        per.precision(1);
        for (size_t i = 0; i < ch.size(); ++i)
          per << (i ? " / " : "") << e.seeds[i] << ": " << (ch[i] >= 0 ? "+" : "") << ch[i];
        std::ostringstream c;
        c.setf(std::ios::fixed);
        c.precision(1);
        c << (cm >= 0 ? "+" : "") << cm;
        if (ch.size() > 1) c << " ± " << cs;
        const char* verdict = ch.size() < 2        ? "not judged (1 seed)"
                              : std::abs(cm) <= cs ? "within seed noise"
                              : cm < 0             ? "**measurably worse**"
                                                   : "**measurably better**";
        o << "| `" << key.first << "` | `" << key.second << "` | " << ch.size() << " | "
          << mean_std_markdown(e.saved, opt.decimals) << " | " << mean_std_markdown(e.ablated, opt.decimals) << " | "
          << c.str() << " | " << per.str() << " | " << verdict
          << (e.inexact ? " (" + std::to_string(e.inexact) + " not reproduced bit for bit as saved)" : std::string())
          << " |\n";
      }
    }
  }

  // Fine-tuned, class-incremental, softmax head: the seed's protocol as far as it says one.
  std::map<std::pair<std::string, std::string>, std::vector<double>> measured;
  for (const auto& s : sections)
    for (const auto& r : s.runs) {
      if (r.strategy != "finetune" || r.protocol != "class-incremental" || r.head != "softmax") continue;
      const json sum = json::parse(r.summary_json, nullptr, false);
      if (!sum.is_object() || !sum.contains("final_avg_acc") || !sum["final_avg_acc"].is_number()) continue;
      const std::string ds = r.dataset.rfind("dbpedia", 0) == 0 ? "dbpedia" : r.dataset;
      measured[{r.name, ds}].push_back(100 * sum["final_avg_acc"].get<double>());
    }
  o << "\n## Against the seed document's claims\n\n"
    << "The seed document (`../shared/seed/`) claims these final accuracies; they are not in the paper "
       "(docs/HOPE.md) and it gives no protocol, budget or seeds. Measured: the fine-tuned, "
       "class-incremental, softmax-head runs above (final average accuracy over all tasks, percent, "
       "mean ± std over seeds; `dbpedia` is whichever DBpedia split the sweeps used). A dash: not run.\n\n"
    << "| Model | Dataset | Seed's claim (%) | Measured (%) | n |\n| --- | --- | --: | --: | --: |\n";
  for (const auto& c : seed_claims()) {
    const auto it = measured.find({c.model, c.dataset});
    o << "| " << c.model << " | " << c.dataset << " | " << mean_std_markdown({c.percent}, 1) << " | "
      << mean_std_markdown(it == measured.end() ? std::vector<double>{} : it->second, 1) << " | "
      << (it == measured.end() ? 0 : it->second.size()) << " |\n";
  }
  return o.str();
}

}  // namespace hl::exporter
