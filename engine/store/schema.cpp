#include "engine/store/schema.h"

#include <strings.h>

#include <map>

#include "engine/store/sqlite_db.h"

namespace hl::store::schema {

namespace {

// v1. Never edit a released step: add a new one (see docs/STORE.md, "Versioning").
const char* kV1 = R"sql(
CREATE TABLE runs (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  status        TEXT    NOT NULL,
  name          TEXT    NOT NULL DEFAULT '',
  spec_json     TEXT    NOT NULL DEFAULT '{}',
  config_hash   TEXT    NOT NULL DEFAULT '',
  run_hash      TEXT    NOT NULL DEFAULT '',
  dataset       TEXT    NOT NULL DEFAULT '',
  protocol      TEXT    NOT NULL DEFAULT '',
  strategy      TEXT    NOT NULL DEFAULT '',
  model         TEXT    NOT NULL DEFAULT '',
  head          TEXT    NOT NULL DEFAULT '',
  data_hash     TEXT    NOT NULL DEFAULT '',
  split_hash    TEXT    NOT NULL DEFAULT '',
  seed          INTEGER NOT NULL DEFAULT 0,
  params        INTEGER NOT NULL DEFAULT 0,
  app_version   TEXT    NOT NULL DEFAULT '',
  torch_version TEXT    NOT NULL DEFAULT '',
  cuda_version  TEXT    NOT NULL DEFAULT '',
  device        TEXT    NOT NULL DEFAULT '',
  pid           INTEGER NOT NULL DEFAULT 0,
  host          TEXT    NOT NULL DEFAULT '',
  process_start INTEGER NOT NULL DEFAULT 0,
  created_at    REAL    NOT NULL DEFAULT 0,
  finished_at   REAL    NOT NULL DEFAULT 0,
  tags          TEXT    NOT NULL DEFAULT '[]',
  notes         TEXT    NOT NULL DEFAULT '',
  error         TEXT    NOT NULL DEFAULT '',
  diverged_step INTEGER NOT NULL DEFAULT -1,
  summary_json  TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_created ON runs(created_at);
CREATE INDEX runs_config ON runs(config_hash);
CREATE INDEX runs_status_host ON runs(status, host);

CREATE TABLE series (
  id     INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  name   TEXT    NOT NULL,
  level  TEXT    NOT NULL DEFAULT '',
  block  INTEGER NOT NULL DEFAULT -1,
  clock  INTEGER NOT NULL DEFAULT 1,
  UNIQUE (run_id, name, level, block, clock)
);

CREATE TABLE points (
  series_id INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
  step      INTEGER NOT NULL,
  value     REAL,
  PRIMARY KEY (series_id, step)
) WITHOUT ROWID;

CREATE TABLE accuracy (
  run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  after_task  INTEGER NOT NULL,
  task        INTEGER NOT NULL,
  acc         REAL,
  task_il_acc REAL,
  PRIMARY KEY (run_id, after_task, task)
) WITHOUT ROWID;

CREATE TABLE evals (
  id           INTEGER PRIMARY KEY,
  run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step         INTEGER NOT NULL,
  current_task INTEGER NOT NULL,
  task         INTEGER NOT NULL,
  acc          REAL
);
CREATE INDEX evals_run ON evals(run_id, step);

CREATE TABLE checkpoints (
  id     INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  kind   TEXT    NOT NULL,
  path   TEXT    NOT NULL,
  step   INTEGER NOT NULL,
  task   INTEGER NOT NULL,
  metric REAL,
  UNIQUE (run_id, kind, path)
);
)sql";

// v2: a stable identity for every run (its UUID), so that a run copied between databases (`runs
// merge` of Slurm shards) is recognised as the same run. Existing rows get a random version-4 UUID.
const char* kV2 = R"sql(
ALTER TABLE runs ADD COLUMN uuid TEXT NOT NULL DEFAULT '';
UPDATE runs SET uuid =
  lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
  substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + abs(random() % 4), 1) ||
  substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))
WHERE uuid = '';
CREATE UNIQUE INDEX runs_uuid ON runs(uuid);
)sql";

// v3: a confusion matrix per task end (class-IL predictions on the evaluation split over the
// classes seen so far): its classes in display order, and its non-zero cells.
const char* kV3 = R"sql(
CREATE TABLE confusion_classes (
  run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  after_task INTEGER NOT NULL,
  position   INTEGER NOT NULL,
  class      INTEGER NOT NULL,
  task       INTEGER NOT NULL,
  name       TEXT    NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, after_task, position)
) WITHOUT ROWID;

CREATE TABLE confusion (
  run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  after_task INTEGER NOT NULL,
  true_class INTEGER NOT NULL,
  pred_class INTEGER NOT NULL,
  count      INTEGER NOT NULL,
  PRIMARY KEY (run_id, after_task, true_class, pred_class)
) WITHOUT ROWID;
)sql";

// v4: test-time ablations recorded by `hopelab-cli evaluate --record`: a finished run's saved model
// evaluated with overrides (e.g. its in-context writes off), one row per run, override set and
// checkpoint; `result_json` is the evaluation as `evaluate --json` prints it.
const char* kV4 = R"sql(
CREATE TABLE ablations (
  run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  overrides   TEXT    NOT NULL,
  checkpoint  TEXT    NOT NULL,
  result_json TEXT    NOT NULL DEFAULT '{}',
  app_version TEXT    NOT NULL DEFAULT '',
  created_at  REAL    NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, overrides, checkpoint)
) WITHOUT ROWID;
)sql";

}  // namespace

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> steps = {{1, kV1}, {2, kV2}, {3, kV3}, {4, kV4}};
  return steps;
}

const std::vector<std::string>& required_tables() {
  static const std::vector<std::string> t = {
      "runs", "series", "points", "accuracy", "evals", "checkpoints", "confusion_classes", "confusion", "ablations"};
  return t;
}

namespace {

struct Column {
  std::string name;
  std::string type;  // as declared (PRAGMA table_info's `type`)
  int64_t pk = 0;    // 1-based position in the primary key, 0 if not part of it
};

std::vector<Column> table_info(detail::Db& db, const std::string& table) {
  std::vector<Column> cols;
  detail::Stmt st(db, ("PRAGMA table_info(\"" + table + "\")").c_str());
  while (st.step()) cols.push_back({st.col_text(1), st.col_text(2), st.col_int(5)});
  return cols;
}

bool same(const std::string& a, const std::string& b) {  // SQLite names and types ignore case
  return a.size() == b.size() && strcasecmp(a.c_str(), b.c_str()) == 0;
}

// What this build's migrations create: every required table's columns, read once per process
// from an in-memory database.
const std::map<std::string, std::vector<Column>>& expected_layout() {
  static const std::map<std::string, std::vector<Column>> layout = [] {
    sqlite3* mem = nullptr;
    if (sqlite3_open(":memory:", &mem) != SQLITE_OK) {
      sqlite3_close(mem);
      throw hl::StoreError("cannot open an in-memory SQLite database to check the run-database schema");
    }
    std::map<std::string, std::vector<Column>> out;
    try {
      detail::Db db = detail::Db::borrow(mem, ":memory:");
      for (const Migration& m : migrations()) db.exec(m.sql);
      for (const std::string& t : required_tables()) out[t] = table_info(db, t);
    } catch (...) {
      sqlite3_close(mem);
      throw;
    }
    sqlite3_close(mem);
    return out;
  }();
  return layout;
}

}  // namespace

void check_tables(sqlite3* raw, const std::string& path) {
  const std::string head = path + " is marked as a Hope Lab run database but ";
  const std::string tail =
      " (damaged or edited by hand). Restore it from a backup or choose another run database path.";
  detail::Db db = detail::Db::borrow(raw, path);
  for (const std::string& table : required_tables()) {
    const std::vector<Column>& want = expected_layout().at(table);
    std::vector<Column> have;
    db.read([&] { have = table_info(db, table); });
    if (have.empty()) throw hl::StoreError(head + "lacks the table '" + table + "'" + tail);
    int key_columns = 0;
    for (const Column& w : want) key_columns += w.pk > 0;
    for (const Column& w : want) {
      const Column* h = nullptr;
      for (const Column& c : have)
        if (same(c.name, w.name)) h = &c;
      if (!h) throw hl::StoreError(head + "its table '" + table + "' lacks the column '" + w.name + "'" + tail);
      if (same(h->type, w.type) && h->pk == w.pk) continue;
      const std::string col = table + "." + w.name;
      if (key_columns == 1 && w.pk == 1 && same(w.type, "INTEGER"))  // the row id (INTEGER PRIMARY KEY)
        throw hl::StoreError(
            head + "its column " + col + " is not the table's INTEGER PRIMARY KEY (declared type '" + h->type + "', " +
            (h->pk ? "primary-key position " + std::to_string(h->pk) : "not in the primary key") + ")" + tail);
      throw hl::StoreError(head + "its column " + col + " is declared '" + h->type + "' (primary-key position " +
                           std::to_string(h->pk) + "), where this build's schema has '" + w.type + "' (position " +
                           std::to_string(w.pk) + ")" + tail);
    }
  }
}

int migrate(sqlite3* raw, const std::string& path, const std::vector<Migration>& steps) {
  detail::Db db = detail::Db::borrow(raw, path);
  auto read_version = [&] {
    detail::Stmt st(db, "PRAGMA user_version");
    st.step();
    return static_cast<int>(st.col_int(0));
  };
  int version = 0;
  db.read([&] { version = read_version(); });
  for (const Migration& m : steps) {
    if (m.version <= version) continue;
    db.transaction([&] {
      version = read_version();  // another process may have migrated meanwhile
      if (m.version <= version) return;
      if (m.version != version + 1)
        throw hl::StoreError(path + ": schema migration to version " + std::to_string(m.version) + " needs version " +
                             std::to_string(m.version - 1) + ", found " + std::to_string(version) +
                             ". Open it with the Hope Lab build that "
                             "wrote it, or choose another database path.");
      try {
        db.exec(m.sql);
      } catch (const detail::BusyError&) {
        throw;
      } catch (const hl::StoreError& e) {
        throw hl::StoreError(path + ": schema migration to version " + std::to_string(m.version) +
                             " failed and was rolled back (the database is still at version " +
                             std::to_string(version) + "): " + e.what());
      }
      db.exec("PRAGMA application_id = " + std::to_string(kApplicationId));
      db.exec("PRAGMA user_version = " + std::to_string(m.version));
      version = m.version;
    });
  }
  return version;
}

}  // namespace hl::store::schema
