// Internal to engine/store: what store.cpp and merge.cpp share (the runs table's column list, the
// row <-> RunRecord mapping and RunStore's private state). Not part of the public API.
#pragma once
#include <functional>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/store/sqlite_db.h"
#include "engine/store/store.h"

namespace hl::store {

namespace detail {

// The runs table's columns in the order bind_run binds and read_run reads them (after id).
extern const char* const kRunColumns;
constexpr int kRunColumnCount = 29;

void bind_run(Stmt& st, const RunRecord& r);                  // binds 1..kRunColumnCount
RunRecord read_run(const Stmt& st, const std::string& path);  // row = id, kRunColumns
std::string select_runs_sql(const std::string& where_order);  // SELECT id, kRunColumns FROM runs ...
std::string insert_run_sql();                                 // INSERT INTO runs (kRunColumns) VALUES (?...)
std::string new_uuid();                                       // a random version-4 UUID, lower-case

// Inside a transaction: replaces run `run_id`'s confusion matrix after task m.after_task (its
// classes, and its non-zero cells).
void write_confusion(Db& db, int64_t run_id, const ConfusionMatrix& m);
// Inside a read: the run's confusion matrices (all, or the one after `after_task` >= 0); throws
// hl::StoreError naming db.path() and the run for a damaged matrix.
std::vector<ConfusionMatrix> read_confusion(Db& db, int64_t run_id, int after_task);

}  // namespace detail

using detail::Db;
using detail::Stmt;

struct RunStore::Impl {
  Db db;
  int version = 0;
  std::mutex mu;  // one connection: serialise calls from several threads

  // UPDATE ... WHERE id = ?N with a check that the run exists.
  void update_run(int64_t id, const char* sql, const std::function<void(Stmt&)>& bind) {
    std::lock_guard<std::mutex> lock(mu);
    db.transaction([&] {
      Stmt st(db, sql);
      bind(st);
      st.run();
      if (sqlite3_changes(db.get()) == 0)
        throw hl::StoreError("run database " + db.path() + ": run " + std::to_string(id) +
                             " does not exist (deleted?).");
    });
  }

  int mark_interrupted() {
    const std::string host = current_host();
    std::vector<int64_t> gone;
    db.read([&] {
      gone.clear();
      Stmt st(db, "SELECT id, pid, process_start FROM runs WHERE status='running' AND host=?");
      st.bind(1, host);
      while (st.step()) {
        int64_t start_now = process_start_time(st.col_int(1));
        int64_t recorded = st.col_int(2);
        bool alive = start_now != 0 && (recorded == 0 || recorded == start_now);
        if (!alive) gone.push_back(st.col_int(0));
      }
    });
    if (gone.empty()) return 0;
    int changed = 0;
    const double now = detail::now_seconds();
    db.transaction([&] {
      Stmt st(db,
              "UPDATE runs SET status='interrupted', finished_at=? WHERE id=? AND "
              "status='running'");
      changed = 0;
      for (int64_t id : gone) {
        st.bind(1, now).bind(2, id).run();
        changed += sqlite3_changes(db.get());
      }
    });
    return changed;
  }
};

}  // namespace hl::store
