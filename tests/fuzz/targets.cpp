#include "tests/fuzz/targets.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "engine/common/error.h"
#include "engine/data/dataset.h"
#include "engine/data/text_io.h"
#include "engine/export/export.h"
#include "engine/spec/spec.h"
#include "engine/spec/sweep.h"
#include "engine/store/store.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace hl::fuzz {
namespace {

[[noreturn]] void broken(const std::string& what) {
  throw InvariantBroken(what);
}

// Bad input must be refused with a message that names what was read.
void expect_prefix(const hl::Error& e, const std::string& name) {
  const std::string msg = e.what();
  if (msg.rfind(name, 0) != 0) broken("error message does not start with '" + name + "': " + msg);
}

void write_file(const fs::path& p, std::string_view bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) broken("cannot write scratch file " + p.string());
}

// A fresh, empty folder under the scratch dir.
fs::path fresh(const std::string& name) {
  const fs::path d = fs::path(scratch_dir()) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// ---- csv -------------------------------------------------------------------------------------

std::string quote_csv(const std::vector<data::detail::CsvRecord>& recs) {
  std::string out;
  for (const auto& r : recs) {
    for (size_t i = 0; i < r.fields.size(); ++i) {
      out += i ? ",\"" : "\"";
      for (char c : r.fields[i]) out += c == '"' ? std::string("\"\"") : std::string(1, c);
      out += '"';
    }
    out += '\n';
  }
  return out;
}

std::vector<data::detail::CsvRecord> read_all(const std::string& path, std::string_view text) {
  data::detail::CsvReader reader(path, text);
  std::vector<data::detail::CsvRecord> recs;
  data::detail::CsvRecord rec;
  size_t lines = 1;  // LF, CRLF and a lone CR end a line
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] == '\n' || (text[i] == '\r' && (i + 1 >= text.size() || text[i + 1] != '\n'))) ++lines;
  size_t last = 0;
  while (reader.next(&rec)) {
    if (rec.line <= last || rec.line > lines)
      broken("record line " + std::to_string(rec.line) + " after line " + std::to_string(last) + " of " +
             std::to_string(lines));
    if (rec.fields.empty()) broken("a record without fields at line " + std::to_string(rec.line));
    last = rec.line;
    recs.push_back(rec);
  }
  return recs;
}

void csv(std::string_view bytes) {
  const std::string path = "fuzz.csv";
  data::detail::TextFile f;
  try {
    f = data::detail::text_file(path, std::string(bytes), "fix it");
  } catch (const hl::DataError& e) {
    return expect_prefix(e, path);
  }
  std::vector<data::detail::CsvRecord> recs;
  try {
    recs = read_all(path, f.text);
  } catch (const hl::DataError& e) {
    expect_prefix(e, path);
    recs.clear();
  }
  // What was read, written back fully quoted, reads back the same (below the record limit).
  if (!recs.empty() && f.text.size() < 65536) {
    const std::string again = quote_csv(recs);
    std::vector<data::detail::CsvRecord> back;
    try {
      back = read_all(path, again);
    } catch (const hl::DataError& e) {
      broken(std::string("re-quoted records do not parse: ") + e.what());
    }
    if (back.size() != recs.size()) broken("re-quoted records: different record count");
    for (size_t i = 0; i < recs.size(); ++i)
      if (back[i].fields != recs[i].fields) broken("re-quoted record " + std::to_string(i) + " reads differently");
  }
  for (bool extra : {false, true}) {
    try {
      const auto lf = data::detail::read_labeled_csv(f, "text", "label", extra);
      if (lf.rows.empty()) broken("read_labeled_csv returned no rows");
      for (const auto& r : lf.rows)
        if (data::detail::trim(r.text).empty() || data::detail::trim(r.label).empty())
          broken("an empty text or label passed at line " + std::to_string(r.line));
    } catch (const hl::DataError& e) {
      expect_prefix(e, path);
    }
  }
}

// ---- jsonl -----------------------------------------------------------------------------------

void jsonl(std::string_view bytes) {
  const std::string path = "fuzz.jsonl";
  try {
    const auto f = data::detail::text_file(path, std::string(bytes), "fix it");
    const auto lf = data::detail::read_labeled_jsonl(f, "text", "label");
    if (lf.rows.empty()) broken("read_labeled_jsonl returned no rows");
    size_t last = 0;
    for (const auto& r : lf.rows) {
      if (r.line <= last) broken("row lines not increasing");
      last = r.line;
      if (data::detail::trim(r.text).empty() || data::detail::trim(r.label).empty())
        broken("an empty text or label passed at line " + std::to_string(r.line));
    }
  } catch (const hl::DataError& e) {
    expect_prefix(e, path);
  }
}

// ---- datasets (clinc, folder) ----------------------------------------------------------------

// "key=value" words of an options section; unknown words are ignored.
std::map<std::string, std::string> words(std::string_view s) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find_first_of(" \n", pos);
    if (end == std::string_view::npos) end = s.size();
    const std::string_view w = s.substr(pos, end - pos);
    const size_t eq = w.find('=');
    if (eq != std::string_view::npos) out[std::string(w.substr(0, eq))] = std::string(w.substr(eq + 1));
    pos = end + 1;
  }
  return out;
}

int int_word(const std::map<std::string, std::string>& w, const std::string& key, int def) {
  const auto it = w.find(key);
  if (it == w.end()) return def;
  const long long v = std::strtoll(it->second.c_str(), nullptr, 10);
  return int(std::clamp<long long>(v, -2147483647LL - 1, 2147483647LL));
}

data::LoadOptions load_options(std::string_view section, const std::string& dir) {
  const auto w = words(section);
  data::LoadOptions o;
  o.data_dir = dir;
  o.task_order = int_word(w, "order", 0);
  o.limit_per_class = int_word(w, "limit", 0);
  o.eval_limit_per_class = int_word(w, "eval_limit", 0);
  o.seed = uint64_t(int_word(w, "seed", 0));
  o.classes_per_task = int_word(w, "cpt", 10);
  if (w.count("text")) o.text_column = w.at("text");
  if (w.count("label")) o.label_column = w.at("label");
  if (w.count("split")) o.split = w.at("split");
  return o;
}

// What a loaded dataset promises its users (the trainer indexes with these ids unchecked).
void check_dataset(const data::Dataset& ds, const data::LoadOptions& o) {
  const size_t n = ds.class_names.size();
  if (n == 0 || ds.tasks.empty()) broken("a dataset without classes or tasks");
  std::vector<int> seen(n, 0);
  for (const auto& t : ds.tasks) {
    if (t.empty()) broken("an empty task");
    for (int c : t) {
      if (c < 0 || size_t(c) >= n) broken("task class id out of range: " + std::to_string(c));
      ++seen[size_t(c)];
    }
  }
  for (size_t c = 0; c < n; ++c)
    if (seen[c] != 1) broken("class " + std::to_string(c) + " is in " + std::to_string(seen[c]) + " tasks");
  std::vector<int> n_train(n, 0), n_test(n, 0);
  for (const auto* rows : {&ds.train, &ds.test})
    for (const auto& e : *rows) {
      if (e.label < 0 || size_t(e.label) >= n) broken("example label out of range: " + std::to_string(e.label));
      if (data::detail::trim(e.text).empty()) broken("an example with an empty text");
      ++(rows == &ds.train ? n_train : n_test)[size_t(e.label)];
    }
  for (size_t c = 0; c < n; ++c) {
    if (o.limit_per_class > 0 && n_train[c] > o.limit_per_class) broken("limit_per_class not applied");
    if (o.eval_limit_per_class > 0 && n_test[c] > o.eval_limit_per_class) broken("eval_limit_per_class not applied");
  }
  if (ds.data_hash.size() != 64 || ds.split_hash.size() != 64) broken("data or split hash missing");
}

// Sections: options, clinc150/data_full.json, cl_splits/vag_clinc150_tasks.json.
void clinc(std::string_view bytes) {
  const auto s = sections(bytes);
  const fs::path dir = fresh("clinc");
  write_file(dir / "clinc150" / "data_full.json", s.size() > 1 ? s[1] : std::string_view());
  write_file(dir / "cl_splits" / "vag_clinc150_tasks.json", s.size() > 2 ? s[2] : std::string_view());
  auto o = load_options(s[0], dir.string());
  o.split.clear();  // only banking77 has splits; refused before any file is read
  try {
    check_dataset(data::load("clinc150", o), o);
  } catch (const hl::DataError& e) {
    expect_prefix(e, dir.string() + "/");
  } catch (const hl::SpecError& e) {
    expect_prefix(e, "clinc150: ");
  }
}

// Sections: options (text=, label=, cpt=, order=, limit=, eval_limit=, seed=, train=csv|jsonl,
// test=csv|jsonl), the train file, the test file.
void folder(std::string_view bytes) {
  const auto s = sections(bytes);
  const fs::path dir = fresh("folder");
  const auto w = words(s[0]);
  auto ext = [&](const char* key) { return w.count(key) && w.at(key) == "jsonl" ? ".jsonl" : ".csv"; };
  write_file(dir / (std::string("train") + ext("train")), s.size() > 1 ? s[1] : std::string_view());
  write_file(dir / (std::string("test") + ext("test")), s.size() > 2 ? s[2] : std::string_view());
  const auto o = load_options(s[0], dir.string());
  try {
    check_dataset(data::load(dir.string(), o), o);
  } catch (const hl::Error& e) {
    expect_prefix(e, dir.string());
  }
}

// ---- spec, sweep -----------------------------------------------------------------------------

void spec(std::string_view bytes) {
  const std::string path = "fuzz.json";
  json user;
  try {
    user = spec::parse_text(std::string(bytes), path);
  } catch (const hl::SpecError& e) {
    return expect_prefix(e, path + ":");
  }
  json full;
  try {
    full = spec::complete(user);
  } catch (const hl::SpecError& e) {
    // An object is refused only for a section (experiment, model, ...) that is not an object.
    if (user.is_object() && std::string(e.what()).find("' must be an object of fields") == std::string::npos)
      broken(std::string("complete() refused an object: ") + e.what());
    return;
  }
  const auto v = spec::validate(full);
  for (const auto& i : v.issues) {
    if (i.message.empty()) broken("an issue without a message at '" + i.path + "'");
    if (i.error && i.path.empty()) broken("an error that names no field: " + i.message);
  }
  // The canonical text is what the store hashes and what a run is rebuilt from.
  const std::string canon = spec::canonical(full);
  if (spec::parse_text(canon, "canonical") != full) broken("the canonical text does not read back equal");
  if (spec::config_hash(full).size() != 64 || spec::run_hash(full).size() != 64) broken("hash missing");
  // The app's Load preset on whatever the user had.
  const json loaded = spec::with_preset(full, "transformer");
  if (!loaded.is_object()) broken("with_preset returned a non-object");
  (void)spec::validate(spec::complete(loaded));
}

void sweep(std::string_view bytes) {
  const fs::path dir = fresh("sweep");
  // A base spec a sweep may name with "spec": "base.json".
  write_file(dir / "base.json", R"({"name": "base", "training": {"epochs": 1}})");
  const std::string path = (dir / "fuzz.sweep.json").string();
  try {
    const auto sw = spec::parse_sweep(std::string(bytes), path, dir.string());
    if (sw.runs.empty()) broken("a sweep without runs");
    for (size_t i = 0; i < sw.runs.size(); ++i) {
      if (sw.runs[i].index != int(i)) broken("run indexes are not 0..n-1");
      if (!sw.runs[i].spec["experiment"]["seed"].is_number_integer()) broken("a run without an integer seed");
    }
  } catch (const hl::SpecError& e) {
    expect_prefix(e, path + ": ");
  }
}

// ---- store -----------------------------------------------------------------------------------

void store(std::string_view bytes) {
  const fs::path dir = fresh("store");
  const std::string path = (dir / "runs.db").string();
  write_file(path, bytes);
  try {
    auto st = store::RunStore::open(path);
    const auto runs = st->listRuns();
    exporter::TableOptions opt;
    (void)exporter::results_table(runs, opt);
    size_t n = 0;
    for (const auto& r : runs) {
      if (++n > 8) break;
      const auto again = st->getRun(r.id);
      if (!again || again->id != r.id) broken("listRuns gave run " + std::to_string(r.id) + " that getRun lacks");
      (void)st->series(r.id);
      (void)st->evals(r.id);
      (void)st->checkpoints(r.id);
      for (const auto& m : st->confusion(r.id)) {
        if (m.counts.size() != m.size() * m.size() || m.tasks.size() != m.size() || m.names.size() != m.size())
          broken("a confusion matrix of run " + std::to_string(r.id) + " whose parts differ in size");
        (void)metrics::confusion_csv(m, true);
      }
      const auto cells = st->accuracy(r.id);
      opt.format = exporter::Format::Latex;
      (void)exporter::accuracy_matrix_table(r, cells, opt);
    }
  } catch (const hl::Error& e) {
    const std::string msg = e.what();
    if (msg.find(path) == std::string::npos) broken("a store error that does not name the database: " + msg);
  }
}

}  // namespace

std::vector<std::string_view> sections(std::string_view bytes) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  for (;;) {
    const size_t at = bytes.find(kSection, pos);
    if (at == std::string_view::npos) {
      out.push_back(bytes.substr(pos));
      return out;
    }
    out.push_back(bytes.substr(pos, at - pos));
    pos = at + kSection.size();
  }
}

const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/hl-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("cannot create a scratch folder in " + tmpl);
    static const std::string owned = tmpl;
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(owned, ec);
    });
    return tmpl;
  }();
  return dir;
}

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {{"csv", csv},   {"jsonl", jsonl}, {"clinc", clinc}, {"folder", folder},
                                          {"spec", spec}, {"sweep", sweep}, {"store", store}};
  return all;
}

TargetFn find_target(std::string_view name) {
  for (const auto& t : targets())
    if (name == t.name) return t.run;
  return nullptr;
}

}  // namespace hl::fuzz
