#include "engine/data/dataset.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "engine/common/error.h"
#include "engine/common/sha256.h"
#include "engine/data/known_files.h"
#include "engine/data/text_io.h"

#ifndef _WIN32
#include <pwd.h>
#include <unistd.h>

using json = nlohmann::json;
#endif

namespace fs = std::filesystem;
using nlohmann::json;

namespace hl::data {
using namespace detail;

namespace {

const std::vector<std::string> kKnown = {"clinc150", "banking77", "dbpedia70", "dbpedia14"};
// DBpedia-14: only a test sample exists; it is split 80/20 with this fixed seed (not opt.seed, so
// the test rows do not change with the run seed).
constexpr uint64_t kDbpedia14SplitSeed = 14;

std::string known_list() {
  std::string s;
  for (const auto& n : kKnown) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// Reads the files of a known dataset: data_hash over their sha256s, a warning when one differs
// from the published checksum.
class KnownReader {
 public:
  KnownReader(std::string name, std::string dir) : name_(std::move(name)), dir_(std::move(dir)) {}

  TextFile read(const std::string& rel) {
    TextFile f =
        read_text_file(dir_ + "/" + rel, "download it with `hopelab-cli data fetch " + name_ +
                                             "` (or `hopelab-cli data import DIR`), or point to the data folder "
                                             "with --data-dir or HOPELAB_DATA_DIR (searched " +
                                             dir_ + ")");
    digests_ += f.sha256 + "\n";
    const KnownFile* k = find_known_file(rel);
    if (k && k->sha256 != f.sha256)
      warnings.push_back(f.path + ": sha256 " + f.sha256 + " differs from the published " + k->sha256 +
                         " — the file was edited, so results are not comparable with "
                         "the benchmark; restore it with `hopelab-cli data fetch " +
                         name_ + "` if that was not intended");
    return f;
  }
  std::string fix() const { return "restore it with `hopelab-cli data fetch " + name_ + "`"; }
  std::string data_hash() const { return sha256_hex(digests_); }
  std::vector<std::string> warnings;

 private:
  std::string name_, dir_, digests_;
};

// Runs `fn` and turns nlohmann's structure errors (missing key, wrong type) into a DataError.
template <class F>
auto json_structure(const std::string& file, const std::string& fix, F fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const json::exception& e) {
    throw DataError(file + ": unexpected content (" + e.what() + ") — " + fix);
  }
}

// How labels become class ids and tasks.
struct Plan {
  std::vector<std::string> classes;      // class id -> name, natural task order
  std::vector<std::vector<int>> tasks;   // natural order
  std::vector<std::vector<int>> orders;  // listed task orders (VAG), may be empty
  std::set<std::string> dropped;         // labels whose rows are skipped
  std::string source;                    // where the classes come from (messages)
};

Plan plan_from_tasks(const std::vector<std::vector<std::string>>& tasks, const std::string& source) {
  Plan p;
  p.source = source;
  std::set<std::string> seen;
  for (const auto& t : tasks) {
    if (t.empty()) throw DataError(source + ": a task has no classes — every task needs classes");
    p.tasks.emplace_back();
    for (const auto& c : t) {
      if (!seen.insert(c).second)
        throw DataError(source + ": class '" + c + "' is listed twice — each class belongs to one task");
      p.tasks.back().push_back(int(p.classes.size()));
      p.classes.push_back(c);
    }
  }
  if (p.tasks.empty()) throw DataError(source + ": no tasks — the split needs at least one task");
  return p;
}

std::vector<std::vector<std::string>> chunk(const std::vector<std::string>& v, size_t n) {
  std::vector<std::vector<std::string>> out;
  for (size_t i = 0; i < v.size(); i += n) out.emplace_back(v.begin() + i, v.begin() + std::min(v.size(), i + n));
  return out;
}

std::vector<Example> to_examples(const LabeledFile& f, const std::unordered_map<std::string, int>& ids,
                                 const Plan& plan) {
  std::vector<Example> out;
  out.reserve(f.rows.size());
  for (const auto& r : f.rows) {
    const auto it = ids.find(r.label);
    if (it != ids.end()) {
      out.push_back({r.text, it->second});
    } else if (!plan.dropped.count(r.label)) {
      throw DataError(f.where(r) + ": label '" + r.label + "' is not one of the dataset's classes (" + plan.source +
                      ") — correct the label or remove the row");
    }
  }
  return out;
}

// Keeps the first `n` rows per class after a seeded shuffle; kept rows stay in file order.
std::vector<Example> limit_seeded(const std::vector<Example>& rows, int n, uint64_t seed, size_t n_classes) {
  std::vector<int> count(n_classes, 0);
  std::vector<char> keep(rows.size(), 0);
  for (size_t i : seeded_permutation(rows.size(), seed))
    if (count[rows[i].label]++ < n) keep[i] = 1;
  std::vector<Example> out;
  for (size_t i = 0; i < rows.size(); ++i)
    if (keep[i]) out.push_back(rows[i]);
  return out;
}

// Keeps the first `n` rows per class in file order.
std::vector<Example> limit_first(const std::vector<Example>& rows, int n, size_t n_classes) {
  std::vector<int> count(n_classes, 0);
  std::vector<Example> out;
  for (const auto& r : rows)
    if (count[r.label]++ < n) out.push_back(r);
  return out;
}

// task_order k < number of listed orders: the k-th listed order; otherwise 0 = natural order and
// k > 0 = the permutation seeded with k.
std::vector<std::vector<int>> order_tasks(const Plan& p, int task_order) {
  const size_t n = p.tasks.size();
  std::vector<size_t> perm;
  if (size_t(task_order) < p.orders.size()) {
    const auto& o = p.orders[size_t(task_order)];
    std::vector<char> seen(n, 0);
    for (int t : o) {
      if (t < 0 || size_t(t) >= n || seen[size_t(t)])
        throw DataError(p.source + ": task order " + std::to_string(task_order) + " is not a permutation of 0.." +
                        std::to_string(n - 1) + " — " + "restore the split file");
      seen[size_t(t)] = 1;
      perm.push_back(size_t(t));
    }
    if (perm.size() != n)
      throw DataError(p.source + ": task order " + std::to_string(task_order) + " lists " +
                      std::to_string(perm.size()) + " of " + std::to_string(n) + " tasks — restore the split file");
  } else if (task_order == 0) {
    for (size_t i = 0; i < n; ++i) perm.push_back(i);
  } else {
    perm = seeded_permutation(n, uint64_t(task_order));
  }
  std::vector<std::vector<int>> out;
  for (size_t t : perm) out.push_back(p.tasks[t]);
  return out;
}

Dataset assemble(Dataset ds, const Plan& plan, const LabeledFile& train, const LabeledFile& test,
                 const LoadOptions& opt) {
  std::unordered_map<std::string, int> ids;
  for (size_t i = 0; i < plan.classes.size(); ++i) ids[plan.classes[i]] = int(i);
  ds.class_names = plan.classes;
  ds.train = to_examples(train, ids, plan);
  ds.test = to_examples(test, ids, plan);
  const size_t nc = plan.classes.size();
  if (opt.limit_per_class > 0) ds.train = limit_seeded(ds.train, opt.limit_per_class, opt.seed, nc);
  if (opt.eval_limit_per_class > 0) ds.test = limit_first(ds.test, opt.eval_limit_per_class, nc);
  ds.tasks = order_tasks(plan, opt.task_order);

  json canon = json::array();
  for (const auto& t : ds.tasks) {
    json names = json::array();
    for (int c : t) names.push_back(plan.classes[size_t(c)]);
    canon.push_back(names);
  }
  ds.split_hash = sha256_hex(canon.dump());

  std::vector<int> n_train(nc, 0), n_test(nc, 0);
  for (const auto& e : ds.train) ++n_train[size_t(e.label)];
  for (const auto& e : ds.test) ++n_test[size_t(e.label)];
  for (size_t c = 0; c < nc; ++c) {
    if (!n_train[c]) ds.warnings.push_back(ds.name + ": class '" + plan.classes[c] + "' has no train rows");
    if (!n_test[c]) ds.warnings.push_back(ds.name + ": class '" + plan.classes[c] + "' has no test rows");
  }
  return ds;
}

// VAG split file: label_id_order, tasks, task_orders, optional dropped_classes.
struct VagSplit {
  std::vector<std::string> label_id_order;
  std::vector<std::vector<std::string>> tasks;
  std::vector<std::vector<int>> orders;
  std::vector<std::string> dropped;
};

VagSplit read_vag(const TextFile& f, const std::string& fix) {
  const json j = parse_json(f, fix);
  return json_structure(f.path, fix, [&] {
    VagSplit v;
    v.label_id_order = j.at("label_id_order").get<std::vector<std::string>>();
    v.tasks = j.at("tasks").get<std::vector<std::vector<std::string>>>();
    v.orders = j.at("task_orders").get<std::vector<std::vector<int>>>();
    if (j.contains("dropped_classes")) v.dropped = j.at("dropped_classes").get<std::vector<std::string>>();
    return v;
  });
}

// CLINC-style JSON: `key` is a list of [text, label] pairs.
LabeledFile json_pairs(const TextFile& f, const json& j, const std::string& key, const std::string& fix) {
  LabeledFile out;
  out.file = f.path;
  out.json_key = key;
  json_structure(f.path, fix, [&] {
    const auto& arr = j.at(key);
    if (!arr.is_array()) throw DataError(f.path + ": '" + key + "' is not a list — " + fix);
    for (size_t i = 0; i < arr.size(); ++i) {
      const auto& p = arr[i];
      LabeledRow r;
      r.line = i;
      if (!p.is_array() || p.size() != 2 || !p[0].is_string() || !p[1].is_string())
        throw DataError(out.where(r) + ": expected a [text, label] pair of strings — " + fix);
      r.text = p[0].get<std::string>();
      r.label = p[1].get<std::string>();
      check_text(out.where(r), r.text, "text");
      check_label(out.where(r), r.label, "label");
      out.rows.push_back(std::move(r));
    }
    return 0;
  });
  return out;
}

Dataset base(const std::string& name, int max_len, int vocab) {
  Dataset ds;
  ds.name = name;
  ds.max_len = max_len;
  ds.default_vocab = vocab;
  return ds;
}

void finish(Dataset& ds, const KnownReader& rd) {
  ds.data_hash = rd.data_hash();
  ds.warnings.insert(ds.warnings.begin(), rd.warnings.begin(), rd.warnings.end());
}

Dataset load_clinc150(const std::string& dir, const LoadOptions& opt) {
  KnownReader rd("clinc150", dir);
  const TextFile data = rd.read("clinc150/data_full.json");
  const TextFile split = rd.read("cl_splits/vag_clinc150_tasks.json");
  const json j = parse_json(data, rd.fix());
  const LabeledFile train = json_pairs(data, j, "train", rd.fix());
  const LabeledFile test = json_pairs(data, j, "test", rd.fix());
  const VagSplit vag = read_vag(split, rd.fix());
  Plan plan = plan_from_tasks(vag.tasks, split.path);
  plan.orders = vag.orders;
  plan.dropped = {"oos"};
  Dataset ds = assemble(base("clinc150", 64, 3000), plan, train, test, opt);
  finish(ds, rd);
  return ds;
}

Dataset load_banking77(const std::string& dir, const LoadOptions& opt) {
  const std::string split_name = opt.split.empty() ? "vag" : opt.split;
  if (split_name != "vag" && split_name != "all77")
    throw SpecError("banking77: unknown split '" + opt.split + "' — use vag (default) or all77");
  KnownReader rd("banking77", dir);
  const LabeledFile train = read_labeled_csv(rd.read("banking77/train.csv"), "text", "category", false);
  const LabeledFile test = read_labeled_csv(rd.read("banking77/test.csv"), "text", "category", false);
  const TextFile split = rd.read("cl_splits/vag_banking77_tasks.json");
  const VagSplit vag = read_vag(split, rd.fix());
  Plan plan;
  if (split_name == "vag") {
    plan = plan_from_tasks(vag.tasks, split.path);
    plan.orders = vag.orders;
    plan.dropped.insert(vag.dropped.begin(), vag.dropped.end());
  } else {
    if (vag.label_id_order.size() != 77)
      throw DataError(split.path + ": label_id_order has " + std::to_string(vag.label_id_order.size()) +
                      " classes, all77 needs 77 — " + rd.fix());
    plan = plan_from_tasks(chunk(vag.label_id_order, 11), split.path + " (label_id_order)");
  }
  Dataset ds = assemble(base("banking77", 64, 2000), plan, train, test, opt);
  finish(ds, rd);
  return ds;
}

Dataset load_dbpedia70(const std::string& dir, const LoadOptions& opt) {
  KnownReader rd("dbpedia70", dir);
  const LabeledFile train = read_labeled_csv(rd.read("klda_inca_subsets/dbpedia_train.csv"), "text", "label", false);
  const LabeledFile test = read_labeled_csv(rd.read("klda_inca_subsets/dbpedia_test.csv"), "text", "label", false);
  const TextFile orders = rd.read("cl_splits/klda_class_orders.json");
  const json j = parse_json(orders, rd.fix());
  const auto classes = json_structure(orders.path, rd.fix(), [&] {
    return j.at("dbpedia").at("first_appearance_order_in_train_csv").get<std::vector<std::string>>();
  });
  if (classes.size() != 70)
    throw DataError(orders.path + ": dbpedia lists " + std::to_string(classes.size()) + " classes, expected 70 — " +
                    rd.fix());
  const Plan plan = plan_from_tasks(chunk(classes, 10), orders.path + " (dbpedia)");
  Dataset ds = assemble(base("dbpedia70", 128, 8000), plan, train, test, opt);
  finish(ds, rd);
  return ds;
}

Dataset load_dbpedia14(const std::string& dir, const LoadOptions& opt) {
  KnownReader rd("dbpedia14", dir);
  const TextFile names_file = rd.read("dbpedia14/classes.txt");
  std::vector<std::string> names;
  for (size_t pos = 0, line = 1; pos < names_file.text.size(); ++line) {
    size_t eol = names_file.text.find('\n', pos);
    if (eol == std::string::npos) eol = names_file.text.size();
    const std::string name = trim(std::string_view(names_file.text).substr(pos, eol - pos));
    pos = eol + 1;
    if (name.empty()) continue;
    if (std::find(names.begin(), names.end(), name) != names.end())
      throw DataError(at(names_file.path, line) + ": class '" + name + "' is listed twice — " + rd.fix());
    names.push_back(name);
  }
  if (names.size() != 14)
    throw DataError(names_file.path + ": " + std::to_string(names.size()) + " class names, expected 14 — " + rd.fix());

  const TextFile csv = rd.read("dbpedia14/test_sample_7600.csv");
  std::vector<LabeledRow> rows;
  CsvReader reader(csv.path, csv.text);
  CsvRecord rec;
  while (reader.next(&rec)) {
    const std::string where = at(csv.path, rec.line);
    if (rec.fields.size() != 3)
      throw DataError(where + ": expected 3 fields (class_index,\"title\",\"content\"), found " +
                      std::to_string(rec.fields.size()) + " — the row is truncated or not quoted");
    const std::string idx = trim(rec.fields[0]);
    const bool digits = !idx.empty() && idx.size() < 4 &&
                        std::all_of(idx.begin(), idx.end(), [](char c) { return c >= '0' && c <= '9'; });
    const int k = digits ? std::stoi(idx) : 0;
    if (k < 1 || k > int(names.size()))
      throw DataError(where + ": class_index '" + idx + "' is not a number from 1 to 14 — " + rd.fix());
    const std::string title = trim(rec.fields[1]);
    const std::string content = trim(rec.fields[2]);
    LabeledRow r;
    r.text = title.empty() ? content : content.empty() ? title : title + ". " + content;
    r.label = names[size_t(k - 1)];
    r.line = rec.line;
    check_text(where, r.text, "title/content");
    rows.push_back(std::move(r));
  }
  if (rows.empty()) throw DataError(csv.path + ": no rows — " + rd.fix());

  // 80/20 split: the first 20 % of a fixed-seed permutation are test rows; both keep file order.
  LabeledFile train, test;
  train.file = test.file = csv.path;
  std::vector<char> is_test(rows.size(), 0);
  const auto perm = seeded_permutation(rows.size(), kDbpedia14SplitSeed);
  for (size_t i = 0; i < rows.size() / 5; ++i) is_test[perm[i]] = 1;
  for (size_t i = 0; i < rows.size(); ++i) (is_test[i] ? test : train).rows.push_back(std::move(rows[i]));

  const Plan plan = plan_from_tasks(chunk(names, 2), names_file.path);
  Dataset ds = assemble(base("dbpedia14", 128, 8000), plan, train, test, opt);
  finish(ds, rd);
  ds.warnings.push_back(
      "dbpedia14: only a 7,600-row sample of the DBpedia-14 test split is available; it is split "
      "80/20 (fixed seed) into train/test rows. Use it to test loaders, not as a benchmark");
  return ds;
}

// train.csv|train.jsonl (exactly one of them) in `dir`.
std::string pick_file(const fs::path& dir, const std::string& stem) {
  const fs::path csv = dir / (stem + ".csv"), jsonl = dir / (stem + ".jsonl");
  const bool has_csv = fs::exists(csv), has_jsonl = fs::exists(jsonl);
  if (has_csv && has_jsonl)
    throw DataError(dir.string() + ": both " + stem + ".csv and " + stem + ".jsonl exist — keep only one of them");
  if (!has_csv && !has_jsonl)
    throw DataError(dir.string() + ": no " + stem + ".csv or " + stem +
                    ".jsonl — a dataset folder holds train.csv|train.jsonl and test.csv|test.jsonl");
  return (has_csv ? csv : jsonl).string();
}

LabeledFile read_generic(const std::string& path, const LoadOptions& opt, std::string* digests) {
  const TextFile f = read_text_file(path, "a dataset folder holds train.csv|train.jsonl and test.csv|test.jsonl");
  *digests += f.sha256 + "\n";
  if (path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0)
    return read_labeled_jsonl(f, opt.text_column, opt.label_column);
  return read_labeled_csv(f, opt.text_column, opt.label_column, true);
}

Dataset load_folder(const std::string& name, const LoadOptions& opt) {
  const fs::path dir(name);
  const std::string train_path = pick_file(dir, "train");
  const std::string test_path = pick_file(dir, "test");
  std::string digests;
  const LabeledFile train = read_generic(train_path, opt, &digests);
  const LabeledFile test = read_generic(test_path, opt, &digests);
  std::vector<std::string> classes;
  std::set<std::string> seen;
  for (const auto& r : train.rows)
    if (seen.insert(r.label).second) classes.push_back(r.label);
  const Plan plan = plan_from_tasks(chunk(classes, size_t(opt.classes_per_task)), "first appearance in " + train_path);
  Dataset ds = assemble(base(name, 64, 2000), plan, train, test, opt);
  ds.data_hash = sha256_hex(digests);
  if (classes.size() % size_t(opt.classes_per_task))
    ds.warnings.push_back(name + ": " + std::to_string(classes.size()) + " classes do not fill " + "tasks of " +
                          std::to_string(opt.classes_per_task) + "; the last task has " +
                          std::to_string(classes.size() % size_t(opt.classes_per_task)));
  return ds;
}

void check_options(const std::string& name, const LoadOptions& opt) {
  auto bad = [&](const std::string& what) { throw SpecError(name + ": " + what); };
  if (opt.task_order < 0) bad("task_order must be >= 0");
  if (opt.limit_per_class < 0) bad("limit_per_class must be >= 0 (0 = all rows)");
  if (opt.eval_limit_per_class < 0) bad("eval_limit_per_class must be >= 0 (0 = all rows)");
  if (opt.classes_per_task <= 0) bad("classes_per_task must be >= 1");
  if (!opt.split.empty() && name != "banking77")
    bad("unknown split '" + opt.split + "' — only banking77 has splits (vag, all77)");
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

}  // namespace

Dataset load(const std::string& name_or_path, const LoadOptions& opt) {
  check_options(name_or_path, opt);
  const std::string dir = opt.data_dir.empty() ? resolve_data_dir("") : opt.data_dir;
  if (name_or_path == "clinc150") return load_clinc150(dir, opt);
  if (name_or_path == "banking77") return load_banking77(dir, opt);
  if (name_or_path == "dbpedia70") return load_dbpedia70(dir, opt);
  if (name_or_path == "dbpedia14") return load_dbpedia14(dir, opt);
  std::error_code ec;
  if (!fs::is_directory(name_or_path, ec))
    throw DataError(name_or_path + ": neither a known dataset (" + known_list() +
                    ") nor a folder — give a known name or a folder holding train.csv|train.jsonl "
                    "and test.csv|test.jsonl");
  return load_folder(name_or_path, opt);
}

std::vector<std::string> known_datasets() {
  return kKnown;
}

std::string user_data_dir() {
  const std::string xdg = env("XDG_DATA_HOME");
  if (!xdg.empty() && fs::path(xdg).is_absolute()) return (fs::path(xdg) / "hopelab").string();
  std::string home = env("HOME");
#ifndef _WIN32
  if (home.empty())
    if (const passwd* pw = getpwuid(getuid()); pw && pw->pw_dir) home = pw->pw_dir;
#endif
  if (home.empty()) home = ".";
  return (fs::path(home) / ".local" / "share" / "hopelab").string();
}

std::string resolve_data_dir(const std::string& flag) {
  if (!flag.empty()) return flag;
  const std::string e = env("HOPELAB_DATA_DIR");
  if (!e.empty()) return e;
  return (fs::path(user_data_dir()) / "datasets").string();
}

}  // namespace hl::data
