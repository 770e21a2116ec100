// hopelab-cli export and data subcommands.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "engine/common/error.h"
#include "engine/data/dataset.h"
#include "engine/data/fetch.h"
#include "engine/export/export.h"
#include "engine/common/version.h"
#include "engine/export/report.h"
#include "engine/spec/sweep.h"
#include "engine/store/store.h"

namespace fs = std::filesystem;

namespace hl::cli {
namespace {

void emit(const std::string& text, const std::string& out) {
  if (out.empty()) {
    std::cout << text;
    return;
  }
  std::ofstream f(out, std::ios::binary);
  if (!f) throw SpecError("--out " + out + ": cannot write this file");
  f << text;
  std::fprintf(stderr, "wrote %s\n", out.c_str());
}

auto logger() {
  return [](std::string line) { std::fprintf(stderr, "%s\n", line.c_str()); };
}

}  // namespace

int Commands::exportTables() {
  exporter::TableOptions t;
  t.format = export_format_ == "csv"     ? exporter::Format::Csv
             : export_format_ == "latex" ? exporter::Format::Latex
                                         : exporter::Format::Markdown;
  t.decimals = decimals_;
  auto db = store::RunStore::open(dbPath());
  if (matrix_run_ > 0) {
    auto r = db->getRun(matrix_run_);
    if (!r)
      throw SpecError("run " + std::to_string(matrix_run_) + " is not in " + dbPath() + " (see `hopelab-cli runs`)");
    emit(exporter::accuracy_matrix_table(*r, db->accuracy(matrix_run_), t), out_);
    return 0;
  }
  std::vector<store::RunRecord> runs;
  if (export_runs_.empty()) {
    store::RunFilter f;
    f.status = RunStatus::Finished;
    runs = db->listRuns(f);
  } else {
    for (int64_t id : hl::exporter::parse_run_ids(export_runs_)) {
      auto r = db->getRun(id);
      if (!r) throw SpecError("run " + std::to_string(id) + " is not in " + dbPath() + " (see `hopelab-cli runs`)");
      if (r->status != RunStatus::Finished)
        std::fprintf(stderr, "warning: run %lld is %s; its metrics may be partial\n", (long long)id,
                     name(r->status).c_str());
      runs.push_back(*r);
    }
  }
  if (runs.empty()) std::fprintf(stderr, "warning: no finished runs to export in %s\n", dbPath().c_str());
  emit(exporter::results_table(runs, t), out_);
  return 0;
}

int Commands::reportResults() {
  auto db = store::RunStore::open(dbPath());
  const auto all = db->listRuns();
  std::vector<exporter::ReportSection> sections;
  std::string command = "hopelab-cli report";
  for (const auto& file : report_files_) {
    const auto sw = spec::load_sweep(file);  // a bad file: SpecError naming it (exit 2)
    auto section = exporter::match_sweep(sw, all);
    section.file = file;
    for (const auto& r : section.runs)
      if (auto a = db->ablations(r.id); !a.empty()) section.ablations[r.id] = std::move(a);
    std::ifstream in(file);
    const auto raw = nlohmann::json::parse(in, nullptr, false);
    if (raw.is_object() && raw.contains("set") && raw["set"].is_object()) section.set = raw["set"];
    std::fprintf(stderr, "%s: %zu of %d runs finished in %s\n", file.c_str(), section.runs.size(), section.planned,
                 dbPath().c_str());
    sections.push_back(std::move(section));
    command += " " + file;
  }
  if (!out_.empty()) command += " --out " + out_;
  exporter::ReportOptions opt;
  opt.decimals = decimals_;
  opt.command = command;
  opt.db = dbPath();
  opt.version = app_version();
  if (!report_figures_.empty()) {
    // The Markdown links the figures relative to itself; the GUI draws them (no Qt here).
    const fs::path dir = fs::absolute(report_figures_);
    const fs::path base = out_.empty() ? fs::current_path() : fs::absolute(out_).parent_path();
    opt.figures_link = dir.lexically_relative(base).generic_string();
    std::error_code ec;
    fs::create_directories(dir, ec);
    std::ofstream ids(dir / "runs.txt");
    std::string list;
    for (const auto& s : sections)
      for (const auto& r : exporter::figure_runs(s)) {
        ids << r.id << " " << r.uuid << " " << s.name << " " << r.name << " seed " << r.seed << "\n";
        list += (list.empty() ? "" : ",") + std::to_string(r.id);
      }
    if (!ids) throw SpecError("--figures " + report_figures_ + ": cannot write runs.txt here");
    command += " --figures " + report_figures_;
    opt.command = command;
    std::fprintf(stderr, "figures: QT_QPA_PLATFORM=offscreen hopelab --db %s --figures %s --runs %s\n",
                 dbPath().c_str(), report_figures_.c_str(), list.empty() ? "(none)" : list.c_str());
  }
  emit(exporter::results_report(sections, opt), out_);
  return 0;
}

int Commands::dataList() {
  std::string dir = dataDir();
  std::printf("data dir: %s\n", dir.c_str());
  auto st = data::verify(dir);
  for (const auto& name : data::known_datasets()) {
    int present = 0, total = 0;
    for (const auto& kf : data::known_files()) {
      bool in = false;
      for (const auto& g : kf.groups) in |= g == name;
      if (!in) continue;
      ++total;
      for (const auto& s : st)
        if (s.path == kf.path && s.present()) ++present;
    }
    std::printf("  %-10s %d/%d files present\n", name.c_str(), present, total);
  }
  std::printf("or a folder with train.csv|jsonl and test.csv|jsonl (generic format)\n");
  return 0;
}

int Commands::dataVerify() {
  std::string dir = dataDir();
  int bad = 0, missing = 0;
  for (const auto& s : data::verify(dir)) {
    std::printf("%-9s %s\n", data::to_string(s.state), s.path.c_str());
    if (s.state == data::FileState::Mismatch) ++bad;
    if (s.state == data::FileState::Missing) ++missing;
  }
  std::printf("%s: %d mismatch(es), %d missing\n", dir.c_str(), bad, missing);
  if (bad) std::fprintf(stderr, "warning: edited files are still used; every record is validated when loaded\n");
  return bad || missing ? 3 : 0;
}

// fetch and import write where every other command reads: --data-dir, else $HOPELAB_DATA_DIR,
// else <user data dir>/datasets (data::resolve_data_dir), and say which before they start.
std::string Commands::dataDestination() const {
  const std::string dest = dataDir();
  const char* why = !data_dir_.empty()                                                    ? "--data-dir"
                    : std::getenv("HOPELAB_DATA_DIR") && *std::getenv("HOPELAB_DATA_DIR") ? "$HOPELAB_DATA_DIR"
                                                                                          : "the user data dir";
  std::fprintf(stderr, "writing datasets to %s (%s)\n", dest.c_str(), why);
  std::error_code ec;
  fs::create_directories(dest, ec);
  if (ec) throw hl::DataError(dest + ": cannot create the data folder (" + ec.message() + ")");
  return dest;
}

int Commands::dataFetch() {
  const std::string dest = dataDestination();
  data::fetch(fetch_what_, dest, mirror_, logger());
  std::printf("datasets in %s\n", dest.c_str());
  return 0;
}

int Commands::dataImport() {
  const std::string dest = dataDestination();
  data::import_dir(import_src_, dest, logger());
  std::printf("datasets in %s\n", dest.c_str());
  return 0;
}

}  // namespace hl::cli
