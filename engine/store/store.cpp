#include "engine/store/store.h"

#include <sys/random.h>

#include <cstdio>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <type_traits>

#include "engine/store/schema.h"
#include "engine/store/sqlite_db.h"
#include "engine/store/store_impl.h"

namespace hl::store {

namespace detail {

// Column order shared by INSERT and SELECT (id is selected first, never inserted).
const char* const kRunColumns =
    "status, name, spec_json, config_hash, run_hash, dataset, protocol, strategy, model, head, "
    "data_hash, split_hash, seed, params, app_version, torch_version, cuda_version, device, pid, "
    "host, process_start, created_at, finished_at, tags, notes, error, diverged_step, summary_json, uuid";

std::string tags_to_json(const std::vector<std::string>& tags) {
  return nlohmann::json(tags).dump();
}

std::vector<std::string> tags_from_json(const std::string& text) {
  std::vector<std::string> tags;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_array())
    for (const auto& t : j)
      if (t.is_string()) tags.push_back(t.get<std::string>());
  return tags;
}

void bind_run(Stmt& st, const RunRecord& r) {
  int i = 0;
  auto b = [&](const auto& v) { st.bind(++i, v); };
  b(name(r.status));
  b(r.name);
  b(r.spec_json);
  b(r.config_hash);
  b(r.run_hash);
  b(r.dataset);
  b(r.protocol);
  b(r.strategy);
  b(r.model);
  b(r.head);
  b(r.data_hash);
  b(r.split_hash);
  b(r.seed);
  b(r.params);
  b(r.app_version);
  b(r.torch_version);
  b(r.cuda_version);
  b(r.device);
  b(r.pid);
  b(r.host);
  b(r.process_start);
  b(r.created_at);
  b(r.finished_at);
  b(tags_to_json(r.tags));
  b(r.notes);
  b(r.error);
  b(r.diverged_step);
  b(r.summary_json.empty() ? std::string("{}") : r.summary_json);
  b(r.uuid);
}

// A stored kind (status, checkpoint kind); a value this build does not know is refused.
template <class E>
E stored_kind(const std::string& text, const std::string& path, const char* table, int64_t id) {
  auto e = try_parse<E>(text);
  if constexpr (std::is_same_v<E, RunStatus>)
    if (e == RunStatus::Paused) e.reset();  // a live state only, never stored
  if (e) return *e;
  throw hl::StoreError(path + ": " + table + " of run " + std::to_string(id) + " has " + KindNames<E>::what + " \"" +
                       text + "\", which this build does not know (written by another program or a newer Hope Lab?)");
}

RunRecord read_run(const Stmt& st, const std::string& path) {  // row = id, kRunColumns
  RunRecord r;
  int c = 0;
  r.id = st.col_int(c++);
  r.status = stored_kind<RunStatus>(st.col_text(c++), path, "runs", r.id);
  r.name = st.col_text(c++);
  r.spec_json = st.col_text(c++);
  r.config_hash = st.col_text(c++);
  r.run_hash = st.col_text(c++);
  r.dataset = st.col_text(c++);
  r.protocol = st.col_text(c++);
  r.strategy = st.col_text(c++);
  r.model = st.col_text(c++);
  r.head = st.col_text(c++);
  r.data_hash = st.col_text(c++);
  r.split_hash = st.col_text(c++);
  r.seed = st.col_int(c++);
  r.params = st.col_int(c++);
  r.app_version = st.col_text(c++);
  r.torch_version = st.col_text(c++);
  r.cuda_version = st.col_text(c++);
  r.device = st.col_text(c++);
  r.pid = st.col_int(c++);
  r.host = st.col_text(c++);
  r.process_start = st.col_int(c++);
  r.created_at = st.col_double(c++);
  r.finished_at = st.col_double(c++);
  r.tags = tags_from_json(st.col_text(c++));
  r.notes = st.col_text(c++);
  r.error = st.col_text(c++);
  r.diverged_step = st.col_int(c++);
  r.summary_json = st.col_text(c++);
  r.uuid = st.col_text(c++);
  return r;
}

std::string select_runs_sql(const std::string& where_order) {
  return std::string("SELECT id, ") + kRunColumns + " FROM runs " + where_order;
}

std::string insert_run_sql() {
  std::string q = std::string("INSERT INTO runs (") + kRunColumns + ") VALUES (?";
  for (int i = 1; i < kRunColumnCount; ++i) q += ",?";
  return q + ")";
}

std::string new_uuid() {
  // From the kernel each time: no generator state in the process, so forked processes (sweep
  // workers) never repeat each other's UUIDs.
  uint64_t w[2] = {0, 0};
  if (getrandom(w, sizeof w, 0) != ssize_t(sizeof w)) {
    std::random_device rd;
    w[0] = (uint64_t(rd()) << 32) ^ rd();
    w[1] = (uint64_t(rd()) << 32) ^ rd();
  }
  uint64_t hi = w[0], lo = w[1];
  hi = (hi & ~0xF000ull) | 0x4000ull;                  // version 4
  lo = (lo & ~(0xC000ull << 48)) | (0x8000ull << 48);  // variant 10
  char b[40];
  std::snprintf(b, sizeof b, "%08llx-%04llx-%04llx-%04llx-%012llx", (unsigned long long)(hi >> 32),
                (unsigned long long)((hi >> 16) & 0xFFFF), (unsigned long long)(hi & 0xFFFF),
                (unsigned long long)(lo >> 48), (unsigned long long)(lo & 0xFFFFFFFFFFFFull));
  return b;
}

void write_confusion(Db& db, int64_t run_id, const ConfusionMatrix& m) {
  for (const char* sql : {"DELETE FROM confusion WHERE run_id=? AND after_task=?",
                          "DELETE FROM confusion_classes WHERE run_id=? AND after_task=?"})
    Stmt(db, sql).bind(1, run_id).bind(2, m.after_task).run();
  Stmt cls(db, "INSERT INTO confusion_classes (run_id, after_task, position, class, task, name) VALUES (?,?,?,?,?,?)");
  for (size_t k = 0; k < m.size(); ++k)
    cls.bind(1, run_id)
        .bind(2, m.after_task)
        .bind(3, int64_t(k))
        .bind(4, m.classes[k])
        .bind(5, k < m.tasks.size() ? m.tasks[k] : -1)
        .bind(6, k < m.names.size() ? m.names[k] : std::string())
        .run();
  Stmt cell(db, "INSERT INTO confusion (run_id, after_task, true_class, pred_class, count) VALUES (?,?,?,?,?)");
  for (size_t r = 0; r < m.size(); ++r)
    for (size_t c = 0; c < m.size(); ++c)
      if (m.at(r, c) != 0)
        cell.bind(1, run_id)
            .bind(2, m.after_task)
            .bind(3, m.classes[r])
            .bind(4, m.classes[c])
            .bind(5, m.at(r, c))
            .run();
}

std::vector<ConfusionMatrix> read_confusion(Db& db, int64_t run_id, int after_task) {
  std::vector<ConfusionMatrix> out;
  const std::string where = after_task >= 0 ? " AND after_task=?2" : "";
  auto damaged = [&](const std::string& what) {
    return hl::StoreError("run database " + db.path() + ": run " + std::to_string(run_id) + " has " + what +
                          ": the database is damaged or was not written by Hope Lab. Delete the run "
                          "(hopelab-cli delete) or restore the database from a backup.");
  };
  {
    Stmt st(db, ("SELECT after_task, position, class, task, name FROM confusion_classes WHERE run_id=?1" + where +
                 " ORDER BY after_task, position")
                    .c_str());
    st.bind(1, run_id);
    if (after_task >= 0) st.bind(2, after_task);
    while (st.step()) {
      const int64_t after = st.col_int(0), pos = st.col_int(1), task = st.col_int(3);
      if (after < 0 || after >= kMaxTasks || task < -1 || task >= kMaxTasks)
        throw damaged("a confusion matrix after task " + std::to_string(after) + " with a class of task " +
                      std::to_string(task) + ", outside 0.." + std::to_string(kMaxTasks - 1));
      if (out.empty() || out.back().after_task != int(after)) {
        out.emplace_back();
        out.back().after_task = int(after);
      }
      ConfusionMatrix& m = out.back();
      if (m.classes.size() >= metrics::kMaxConfusionClasses)
        throw damaged("a confusion matrix after task " + std::to_string(after) + " with more than " +
                      std::to_string(metrics::kMaxConfusionClasses) + " classes");
      if (pos != int64_t(m.classes.size()))
        throw damaged("a confusion matrix after task " + std::to_string(after) + " whose class positions skip " +
                      std::to_string(m.classes.size()));
      m.classes.push_back(int(st.col_int(2)));
      m.tasks.push_back(int(task));
      m.names.push_back(st.col_text(4));
    }
  }
  for (auto& m : out) m.counts.assign(m.size() * m.size(), 0);
  Stmt st(db, ("SELECT after_task, true_class, pred_class, count FROM confusion WHERE run_id=?1" + where).c_str());
  st.bind(1, run_id);
  if (after_task >= 0) st.bind(2, after_task);
  size_t k = 0;
  while (st.step()) {
    const int after = int(st.col_int(0));
    if (k >= out.size() || out[k].after_task != after) {  // rows come grouped by after_task (primary key)
      k = 0;
      while (k < out.size() && out[k].after_task != after) ++k;
    }
    if (k >= out.size())
      throw damaged("confusion cells after task " + std::to_string(after) + " without the matrix's classes");
    ConfusionMatrix& m = out[k];
    const int r = m.indexOf(int(st.col_int(1))), c = m.indexOf(int(st.col_int(2)));
    if (r < 0 || c < 0)
      throw damaged("a confusion cell after task " + std::to_string(after) + " for a class outside its matrix");
    const int64_t count = st.col_int(3);
    if (count < 0 || count > (int64_t(1) << 40))  // sums of a matrix must not overflow
      throw damaged("a confusion cell after task " + std::to_string(after) + " counting " + std::to_string(count) +
                    " rows");
    m.counts[size_t(r) * m.size() + size_t(c)] = count;
  }
  return out;
}

}  // namespace detail

using detail::stored_kind;
using detail::tags_to_json;

RunStore::RunStore() : d_(std::make_unique<Impl>()) {}
RunStore::~RunStore() = default;

std::unique_ptr<RunStore> RunStore::open(const std::string& path) {
  std::unique_ptr<RunStore> s(new RunStore());
  s->d_->db = Db::open(path, /*migrate=*/true);
  s->d_->db.read([&] {
    Stmt st(s->d_->db, "PRAGMA user_version");
    st.step();
    s->d_->version = static_cast<int>(st.col_int(0));
  });
  s->d_->mark_interrupted();
  return s;
}

int RunStore::schemaVersion() const {
  return d_->version;
}

int RunStore::markInterrupted() {
  std::lock_guard<std::mutex> lock(d_->mu);
  return d_->mark_interrupted();
}
const std::string& RunStore::path() const {
  return d_->db.path();
}

int64_t RunStore::createRun(const RunRecord& in) {
  RunRecord r = in;
  if (r.host.empty()) r.host = current_host();
  if (r.pid == 0) {
    r.pid = current_pid();
    if (r.process_start == 0) r.process_start = process_start_time(r.pid);
  }
  if (r.created_at == 0) r.created_at = detail::now_seconds();
  if (r.uuid.empty()) r.uuid = detail::new_uuid();
  std::lock_guard<std::mutex> lock(d_->mu);
  int64_t id = 0;
  const std::string sql = detail::insert_run_sql();
  d_->db.transaction([&] {
    Stmt st(d_->db, sql.c_str());
    detail::bind_run(st, r);
    st.run();
    id = sqlite3_last_insert_rowid(d_->db.get());
  });
  return id;
}

void RunStore::setStatus(int64_t id, RunStatus status, const std::string& error, int64_t diverged_step) {
  d_->update_run(id, "UPDATE runs SET status=?, error=?, diverged_step=? WHERE id=?",
                 [&](Stmt& st) { st.bind(1, name(status)).bind(2, error).bind(3, diverged_step).bind(4, id); });
}

void RunStore::resumeRun(int64_t id, int64_t pid, const std::string& host, int64_t process_start) {
  d_->update_run(id,
                 "UPDATE runs SET status='running', error='', diverged_step=-1, finished_at=0, pid=?, host=?, "
                 "process_start=? WHERE id=?",
                 [&](Stmt& st) { st.bind(1, pid).bind(2, host).bind(3, process_start).bind(4, id); });
}

void RunStore::setSummary(int64_t id, const std::string& summary_json) {
  d_->update_run(id, "UPDATE runs SET summary_json=? WHERE id=?",
                 [&](Stmt& st) { st.bind(1, summary_json).bind(2, id); });
}

void RunStore::finish(int64_t id, RunStatus status) {
  const double now = detail::now_seconds();
  d_->update_run(id, "UPDATE runs SET status=?, finished_at=? WHERE id=?",
                 [&](Stmt& st) { st.bind(1, name(status)).bind(2, now).bind(3, id); });
}

void RunStore::setTags(int64_t id, const std::vector<std::string>& tags) {
  d_->update_run(id, "UPDATE runs SET tags=? WHERE id=?",
                 [&](Stmt& st) { st.bind(1, tags_to_json(tags)).bind(2, id); });
}

void RunStore::setNotes(int64_t id, const std::string& notes) {
  d_->update_run(id, "UPDATE runs SET notes=? WHERE id=?", [&](Stmt& st) { st.bind(1, notes).bind(2, id); });
}

void RunStore::deleteRun(int64_t id) {
  std::lock_guard<std::mutex> lock(d_->mu);
  static const char* kDeletes[] = {
      "DELETE FROM points WHERE series_id IN (SELECT id FROM series WHERE run_id=?)",
      "DELETE FROM series WHERE run_id=?",
      "DELETE FROM accuracy WHERE run_id=?",
      "DELETE FROM evals WHERE run_id=?",
      "DELETE FROM checkpoints WHERE run_id=?",
      "DELETE FROM confusion WHERE run_id=?",
      "DELETE FROM confusion_classes WHERE run_id=?",
      "DELETE FROM ablations WHERE run_id=?",
      "DELETE FROM runs WHERE id=?",
  };
  d_->db.transaction([&] {
    for (const char* sql : kDeletes) Stmt(d_->db, sql).bind(1, id).run();
  });
}

std::vector<RunRecord> RunStore::listRuns(const RunFilter& f) {
  std::string where;
  std::vector<std::string> args;
  auto add = [&](const std::string& value, const char* clause) {
    if (value.empty()) return;
    where += where.empty() ? "WHERE " : " AND ";
    where += clause;
    args.push_back(value);
  };
  add(f.dataset, "dataset=?");
  add(f.model, "model=?");
  add(f.strategy, "strategy=?");
  if (f.status) add(name(*f.status), "status=?");
  add(f.tag, "EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE json_each.value=?)");
  std::string sql = detail::select_runs_sql(where + " ORDER BY created_at DESC, id DESC");
  if (f.limit > 0) sql += " LIMIT " + std::to_string(f.limit);

  std::lock_guard<std::mutex> lock(d_->mu);
  std::vector<RunRecord> out;
  d_->db.read([&] {
    out.clear();
    Stmt st(d_->db, sql.c_str());
    for (size_t i = 0; i < args.size(); ++i) st.bind(static_cast<int>(i + 1), args[i]);
    while (st.step()) out.push_back(detail::read_run(st, d_->db.path()));
  });
  return out;
}

std::optional<RunRecord> RunStore::getRun(int64_t id) {
  std::lock_guard<std::mutex> lock(d_->mu);
  std::optional<RunRecord> out;
  const std::string sql = detail::select_runs_sql("WHERE id=?");
  d_->db.read([&] {
    out.reset();
    Stmt st(d_->db, sql.c_str());
    st.bind(1, id);
    if (st.step()) out = detail::read_run(st, d_->db.path());
  });
  return out;
}

std::optional<RunRecord> RunStore::getRunByUuid(const std::string& uuid) {
  std::lock_guard<std::mutex> lock(d_->mu);
  std::optional<RunRecord> out;
  const std::string sql = detail::select_runs_sql("WHERE uuid=?");
  d_->db.read([&] {
    out.reset();
    Stmt st(d_->db, sql.c_str());
    st.bind(1, uuid);
    if (st.step()) out = detail::read_run(st, d_->db.path());
  });
  return out;
}

std::vector<Series> RunStore::series(int64_t id) {
  std::lock_guard<std::mutex> lock(d_->mu);
  std::vector<Series> out;
  d_->db.read([&] {
    out.clear();
    Stmt st(d_->db,
            "SELECT s.id, s.name, s.level, s.block, s.clock, p.step, p.value FROM series s "
            "LEFT JOIN points p ON p.series_id = s.id WHERE s.run_id=? ORDER BY s.id, p.step");
    st.bind(1, id);
    int64_t current = -1;
    while (st.step()) {
      if (st.col_int(0) != current) {
        current = st.col_int(0);
        Series s;
        s.name = st.col_text(1);
        s.level = st.col_text(2);
        s.block = static_cast<int>(st.col_int(3));
        s.clock = static_cast<int>(st.col_int(4));
        out.push_back(std::move(s));
      }
      if (!st.col_null(5)) out.back().points.emplace_back(st.col_int(5), st.col_double(6));
    }
  });
  return out;
}

std::vector<AccuracyCell> RunStore::accuracy(int64_t id) {
  std::lock_guard<std::mutex> lock(d_->mu);
  std::vector<AccuracyCell> out;
  d_->db.read([&] {
    out.clear();
    Stmt st(d_->db,
            "SELECT after_task, task, acc, task_il_acc FROM accuracy WHERE run_id=? "
            "ORDER BY after_task, task");
    st.bind(1, id);
    while (st.step()) {
      const int64_t after = st.col_int(0), task = st.col_int(1);
      // Readers size a T x T matrix from these indices: a damaged file must not make T huge.
      if (after < 0 || task < 0 || after >= kMaxTasks || task >= kMaxTasks)
        throw hl::StoreError("run database " + d_->db.path() + ": run " + std::to_string(id) +
                             " has an accuracy cell for after_task " + std::to_string(after) + ", task " +
                             std::to_string(task) + ", outside 0.." + std::to_string(kMaxTasks - 1) +
                             ": the database is damaged or was not written by Hope Lab. Delete the run "
                             "(hopelab-cli delete) or restore the database from a backup.");
      out.push_back({static_cast<int>(after), static_cast<int>(task), st.col_double(2), st.col_double(3)});
    }
  });
  return out;
}

void RunStore::recordAblation(int64_t id, AblationRecord a) {
  if (a.created_at == 0) a.created_at = detail::now_seconds();
  std::lock_guard<std::mutex> lock(d_->mu);
  d_->db.transaction([&] {
    Stmt exists(d_->db, "SELECT 1 FROM runs WHERE id=?");
    exists.bind(1, id);
    if (!exists.step())
      throw hl::StoreError("run database " + d_->db.path() + ": run " + std::to_string(id) +
                           " does not exist (deleted?); the ablation was not recorded.");
    Stmt st(d_->db,
            "INSERT OR REPLACE INTO ablations (run_id, overrides, checkpoint, result_json, app_version, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)");
    st.bind(1, id).bind(2, a.overrides).bind(3, a.checkpoint).bind(4, a.result_json).bind(5, a.app_version);
    st.bind(6, a.created_at).run();
  });
}

std::vector<AblationRecord> RunStore::ablations(int64_t id) {
  std::lock_guard<std::mutex> lock(d_->mu);
  std::vector<AblationRecord> out;
  d_->db.read([&] {
    out.clear();
    Stmt st(d_->db,
            "SELECT overrides, checkpoint, result_json, app_version, created_at FROM ablations WHERE run_id=? "
            "ORDER BY overrides, checkpoint");
    st.bind(1, id);
    while (st.step()) out.push_back({st.col_text(0), st.col_text(1), st.col_text(2), st.col_text(3), st.col_double(4)});
  });
  return out;
}

std::vector<EvalResult> RunStore::evals(int64_t id) {
  std::lock_guard<std::mutex> lock(d_->mu);
  std::vector<EvalResult> out;
  d_->db.read([&] {
    out.clear();
    Stmt st(d_->db, "SELECT step, current_task, task, acc FROM evals WHERE run_id=? ORDER BY step, task, id");
    st.bind(1, id);
    while (st.step()) {
      const int64_t current = st.col_int(1), task = st.col_int(2);
      if (current < 0 || task < 0 || current >= kMaxTasks || task >= kMaxTasks)  // as accuracy(): sizes arrays
        throw hl::StoreError("run database " + d_->db.path() + ": run " + std::to_string(id) +
                             " has an evaluation of task " + std::to_string(task) + " during task " +
                             std::to_string(current) + ", outside 0.." + std::to_string(kMaxTasks - 1) +
                             ": the database is damaged or was not written by Hope Lab. Delete the run "
                             "(hopelab-cli delete) or restore the database from a backup.");
      out.push_back({st.col_int(0), static_cast<int>(current), static_cast<int>(task), st.col_double(3)});
    }
  });
  return out;
}

std::vector<CheckpointEntry> RunStore::checkpoints(int64_t id) {
  std::lock_guard<std::mutex> lock(d_->mu);
  std::vector<CheckpointEntry> out;
  d_->db.read([&] {
    out.clear();
    Stmt st(d_->db, "SELECT kind, path, step, task, metric FROM checkpoints WHERE run_id=? ORDER BY step, id");
    st.bind(1, id);
    while (st.step())
      out.push_back({stored_kind<CheckpointKind>(st.col_text(0), d_->db.path(), "checkpoints", id), st.col_text(1),
                     st.col_int(2), static_cast<int>(st.col_int(3)), st.col_double(4)});
  });
  // Builds before 2026-12-08 stored the path as given with --db: relative to the working
  // directory of the training process ("runs.db.checkpoints/run-3/last.pt"). Such a path is read
  // as the folder beside this database, the only place a run's checkpoints are written to.
  const std::string beside = std::filesystem::path(d_->db.path()).filename().string() + ".checkpoints/";
  for (auto& c : out) {
    if (c.path.empty() || std::filesystem::path(c.path).is_absolute()) continue;
    size_t at = c.path.find(beside);
    while (at != std::string::npos && at != 0 && c.path[at - 1] != '/') at = c.path.find(beside, at + 1);
    if (at == std::string::npos) continue;
    std::error_code ec;
    const auto db = std::filesystem::absolute(d_->db.path(), ec);
    if (!ec) c.path = db.lexically_normal().string() + ".checkpoints/" + c.path.substr(at + beside.size());
  }
  return out;
}

std::vector<ConfusionMatrix> RunStore::confusion(int64_t id, int after_task) {
  std::lock_guard<std::mutex> lock(d_->mu);
  std::vector<ConfusionMatrix> out;
  d_->db.read([&] { out = detail::read_confusion(d_->db, id, after_task); });
  return out;
}

}  // namespace hl::store
