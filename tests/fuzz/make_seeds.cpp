// Writes the seed corpora and dictionaries of the fuzz targets (scripts/fuzz.sh runs it):
//   hl_fuzz_seeds DATA_DIR SOURCE_DIR OUT_DIR
// Seeds are small slices of the real datasets (whole records, a few KB each), the built-in
// presets, and run databases written through the store's own API; OUT_DIR/<target>/ gets them,
// OUT_DIR/<target>.dict the tokens libFuzzer splices in. Handmade seeds live in tests/fuzz/seeds/.
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "engine/data/text_io.h"
#include "engine/spec/spec.h"
#include "engine/store/store.h"
#include "tests/fuzz/targets.h"

namespace fs = std::filesystem;
using hl::data::detail::CsvReader;
using hl::data::detail::CsvRecord;
using nlohmann::json;

namespace {

fs::path g_data, g_src, g_out;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path p = g_out / target / name;
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

std::string join_sections(const std::vector<std::string>& parts) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? std::string(hl::fuzz::kSection) : "") + parts[i];
  return out;
}

// The first `n` whole CSV records of a file (quoted multi-line fields stay whole).
std::string csv_head(const std::string& rel, size_t n) {
  const std::string text = read(g_data / rel);
  CsvReader reader(rel, text);
  CsvRecord rec;
  size_t k = 0, end_line = 0;
  while (reader.next(&rec))
    if (k++ == n + 1) {  // the first record not kept (the header is record 0)
      end_line = rec.line;
      break;
    }
  if (!end_line) return text;
  size_t pos = 0;
  for (size_t line = 1; line < end_line; ++line) pos = text.find('\n', pos) + 1;
  return text.substr(0, pos);
}

std::vector<CsvRecord> records(const std::string& csv) {
  CsvReader reader("seed", csv);
  std::vector<CsvRecord> out;
  CsvRecord rec;
  while (reader.next(&rec)) out.push_back(rec);
  return out;
}

void csv_seeds() {
  put("csv", "banking77_train.csv", csv_head("banking77/train.csv", 12));
  put("csv", "banking77_test.csv", csv_head("banking77/test.csv", 6));
  put("csv", "clinc_train.csv", csv_head("klda_inca_subsets/clinc_train.csv", 10));
  put("csv", "dbpedia_test.csv", csv_head("klda_inca_subsets/dbpedia_test.csv", 3));
  put("csv", "dbpedia14_sample.csv", csv_head("dbpedia14/test_sample_7600.csv", 4));
  put("csv", "dbpedia_hierarchical.csv", csv_head("dbpedia_hierarchical/DBPEDIA_train_first5000_noheader.csv", 3));
}

// banking77 rows as JSONL; every third label an integer.
std::string banking_jsonl(size_t n, const std::string& text_key, const std::string& label_key) {
  const auto recs = records(csv_head("banking77/train.csv", n));
  std::string out;
  for (size_t i = 1; i < recs.size(); ++i) {
    json j = {{text_key, recs[i].fields[0]}};
    if (i % 3 == 0)
      j[label_key] = int(i);
    else
      j[label_key] = recs[i].fields[1];
    out += j.dump() + (i % 4 == 0 ? "\r\n" : "\n");
  }
  return out;
}

void jsonl_seeds() {
  put("jsonl", "banking77.jsonl", banking_jsonl(12, "text", "label"));
}

void clinc_seeds() {
  const json data = json::parse(read(g_data / "clinc150/data_full.json"));
  const json split = json::parse(read(g_data / "cl_splits/vag_clinc150_tasks.json"));
  // The first two tasks' classes: two train rows and one test row each, plus an "oos" row.
  std::vector<std::string> classes;
  for (size_t t = 0; t < 2; ++t)
    for (const auto& c : split["tasks"][t]) classes.push_back(c.get<std::string>());
  json small = {{"train", json::array()}, {"test", json::array()}};
  for (const auto& [part, per_class] : {std::pair<const char*, int>{"train", 2}, {"test", 1}}) {
    std::map<std::string, int> taken;
    for (const auto& row : data[part]) {
      const std::string label = row[1].get<std::string>();
      if (std::find(classes.begin(), classes.end(), label) != classes.end() && taken[label]++ < per_class)
        small[part].push_back(row);
    }
    small[part].push_back(json::array({"what is the meaning of life", "oos"}));
  }
  json small_split = split;
  small_split["tasks"] = json::array({split["tasks"][0], split["tasks"][1]});
  small_split["label_id_order"] = classes;
  small_split["n_tasks"] = 2;
  small_split["task_orders"] = json::array({json::array({0, 1}), json::array({1, 0})});
  put("clinc", "two_tasks", join_sections({"", small.dump(1), small_split.dump(1)}));
  put("clinc", "two_tasks_options",
      join_sections({"order=1 limit=1 eval_limit=1 seed=3", small.dump(), small_split.dump()}));
  put("clinc", "real_split", join_sections({"", small.dump(), split.dump()}));
}

void folder_seeds() {
  const std::string train = csv_head("banking77/train.csv", 12), test = csv_head("banking77/test.csv", 6);
  std::string renamed = "sentence,intent" + train.substr(train.find('\n'));
  put("folder", "banking_csv", join_sections({"text=text label=category cpt=2", train, test}));
  put("folder", "banking_jsonl",
      join_sections({"label=category cpt=1 order=2 limit=1 seed=5 train=jsonl test=csv",
                     banking_jsonl(10, "text", "category"), test}));
  put("folder", "renamed_columns",
      join_sections({"text=sentence label=intent cpt=3 eval_limit=1 test=jsonl", renamed,
                     banking_jsonl(6, "sentence", "intent")}));
}

void spec_seeds() {
  for (const auto& e : fs::directory_iterator(g_src / "resources/presets"))
    put("spec", e.path().filename().string(), read(e.path()));
  put("spec", "defaults.json", hl::spec::defaults().dump(1));
}

// Every key and string value of the default spec and of each block type's defaults.
void spec_dict() {
  std::set<std::string> tokens;
  std::function<void(const json&)> walk = [&](const json& j) {
    if (j.is_object())
      for (auto it = j.begin(); it != j.end(); ++it) {
        tokens.insert("\"" + it.key() + "\"");
        walk(it.value());
      }
    else if (j.is_array())
      for (const auto& x : j) walk(x);
    else if (j.is_string() && !j.get<std::string>().empty())
      tokens.insert(j.dump());
  };
  walk(hl::spec::defaults());
  for (const auto& t : hl::spec::block_types()) walk(hl::spec::block_defaults(t));
  for (const auto& p : hl::spec::preset_names()) tokens.insert("\"" + p + "\"");
  for (const char* k : {"\"grid\"", "\"seeds\"", "\"set\"", "\"preset\"", "\"spec\"", "\"base.json\"",
                        "\"experiment.seed\"", "\"model.blocks[0].type\"", "\"training.epochs\""})
    tokens.insert(k);
  std::string dict;
  for (const auto& t : tokens) {
    std::string esc;
    for (char c : t) esc += c == '\\' ? std::string("\\\\") : std::string(1, c);
    dict += esc + "\n";
  }
  for (const char* target : {"spec", "sweep"}) std::ofstream(g_out / (std::string(target) + ".dict")) << dict;
}

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string msg = err ? err : "?";
    sqlite3_free(err);
    throw std::runtime_error(std::string(sql) + ": " + msg);
  }
}

// Rewrites a database file in 512-byte pages without a WAL: the smallest faithful copy.
void compact(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("cannot open " + path);
  exec(db, "PRAGMA journal_mode=DELETE");
  exec(db, "PRAGMA page_size=512");
  exec(db, "VACUUM");
  sqlite3_close(db);
}

void store_seeds() {
  const fs::path tmp = fs::path(hl::fuzz::scratch_dir()) / "seed.db";
  {
    auto st = hl::store::RunStore::open(tmp.string());
    hl::store::RunRecord r;
    r.status = hl::RunStatus::Finished;
    r.name = "transformer";
    r.spec_json = hl::spec::canonical(hl::spec::defaults());
    r.config_hash = hl::spec::config_hash(hl::spec::defaults());
    r.run_hash = hl::spec::run_hash(hl::spec::defaults());
    r.dataset = "banking77";
    r.strategy = "finetune";
    r.tags = {"seed", "sweep:x"};
    const int64_t a = st->createRun(r);
    {
      hl::store::RunWriter w(tmp.string(), a);
      for (int step = 0; step < 4; ++step) {
        w.point("loss", "", -1, 1, step, 1.0 / (step + 1));
        w.point("lr", "cms1", 0, 4, step, 0.001);
      }
      w.accuracy({0, 0, 0.9, 0.95});
      w.accuracy({1, 0, 0.5, 0.8});
      w.accuracy({1, 1, 0.85, 0.9});
      w.eval({2, 0, 0, 0.7});
      w.checkpoint({hl::CheckpointKind::Best, "/nonexistent/best.pt", 3, 1, 0.8});
      w.summary(R"({"final_avg_acc": 0.675, "forgetting": 0.4, "bwt": -0.4})");
      w.finish(hl::RunStatus::Finished);
    }
    r.status = hl::RunStatus::Running;
    r.pid = 999999999;  // no such process: open() marks it interrupted
    r.seed = 1;
    st->createRun(r);
  }
  compact(tmp.string());
  put("store", "two_runs.db", read(tmp));
  fs::remove(tmp);
  // A foreign SQLite database (another application's).
  sqlite3* db = nullptr;
  sqlite3_open(tmp.c_str(), &db);
  exec(db,
       "PRAGMA page_size=512; CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT); "
       "INSERT INTO notes(body) VALUES ('hello')");
  sqlite3_close(db);
  put("store", "foreign.db", read(tmp));
  fs::remove(tmp);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: hl_fuzz_seeds DATA_DIR SOURCE_DIR OUT_DIR\n";
    return 2;
  }
  g_data = argv[1];
  g_src = argv[2];
  g_out = argv[3];
  try {
    fs::create_directories(g_out);
    csv_seeds();
    jsonl_seeds();
    clinc_seeds();
    folder_seeds();
    spec_seeds();
    spec_dict();
    store_seeds();
  } catch (const std::exception& e) {
    std::cerr << "hl_fuzz_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
