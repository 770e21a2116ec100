// RunStore::merge: copies the runs of another run database (a Slurm array task's shard) into this
// one, matched by run UUID, one transaction per run (docs/STORE.md, "Merging databases").
#include <sqlite3.h>

#include <filesystem>
#include <map>
#include <string>
#include <tuple>

#include "engine/store/schema.h"
#include "engine/store/store_impl.h"

namespace hl::store {

namespace {

namespace fs = std::filesystem;

// How much a run holds: compared to tell an identical copy from a different one, and (for two
// unfinished copies) which one got further.
struct Content {
  int64_t series = 0, points = 0, accuracy = 0, evals = 0, checkpoints = 0, confusion = 0;
  int64_t rows() const { return series + points + accuracy + evals + checkpoints + confusion; }
  bool operator==(const Content& o) const {
    return std::tie(series, points, accuracy, evals, checkpoints, confusion) ==
           std::tie(o.series, o.points, o.accuracy, o.evals, o.checkpoints, o.confusion);
  }
};

Content content_of(Db& db, std::mutex& mu, int64_t run_id) {
  std::lock_guard<std::mutex> lock(mu);
  Content c;
  db.read([&] {
    Stmt st(db,
            "SELECT (SELECT count(*) FROM series WHERE run_id=?1), "
            "(SELECT count(*) FROM points WHERE series_id IN (SELECT id FROM series WHERE run_id=?1)), "
            "(SELECT count(*) FROM accuracy WHERE run_id=?1), (SELECT count(*) FROM evals WHERE run_id=?1), "
            "(SELECT count(*) FROM checkpoints WHERE run_id=?1), "
            "(SELECT count(*) FROM confusion WHERE run_id=?1) + (SELECT count(*) FROM confusion_classes WHERE "
            "run_id=?1)");
    st.bind(1, run_id);
    st.step();
    c = {st.col_int(0), st.col_int(1), st.col_int(2), st.col_int(3), st.col_int(4), st.col_int(5)};
  });
  return c;
}

// Finished, failed or diverged: the run is over and will not be resumed by a sweep.
bool is_final(RunStatus s) {
  return s == RunStatus::Finished || is_failure(s);
}

// Refuses an empty SQLite database before RunStore::open would turn it into a run database: there
// is nothing to merge from it, and a shard path that names one is a mistake.
void refuse_empty_database(const std::string& path) {
  sqlite3* raw = nullptr;
  bool empty = false;
  if (sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(raw, detail::kBusyTimeoutMs);
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(raw,
                           "SELECT (SELECT application_id FROM pragma_application_id), "
                           "(SELECT user_version FROM pragma_user_version), "
                           "(SELECT count(*) FROM sqlite_master)",
                           -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      empty = sqlite3_column_int64(st, 0) == 0 && sqlite3_column_int64(st, 1) == 0 && sqlite3_column_int64(st, 2) == 0;
    sqlite3_finalize(st);
  }
  sqlite3_close(raw);  // errors (not SQLite, damaged) are left to RunStore::open, which names them
  if (empty)
    throw hl::StoreError(path + " is an empty SQLite database, not a Hope Lab run database: nothing to merge from it.");
}

struct Bundle {
  std::vector<Series> series;
  std::vector<AccuracyCell> accuracy;
  std::vector<EvalResult> evals;
  std::vector<CheckpointEntry> checkpoints;
  std::vector<ConfusionMatrix> confusion;
};

}  // namespace

MergeReport RunStore::merge(const std::string& shard_path) {
  std::error_code ec;
  if (!fs::exists(shard_path, ec))
    throw hl::StoreError(shard_path +
                         ": no such file (a shard that was never written? its array task may not "
                         "have started); nothing was merged.");
  if (fs::equivalent(shard_path, path(), ec))
    throw hl::StoreError(shard_path + " is the database being merged into; nothing was merged.");
  if (fs::is_regular_file(shard_path, ec) && fs::file_size(shard_path, ec) == 0)
    throw hl::StoreError(shard_path + " is an empty file, not a Hope Lab run database: nothing to merge from it.");
  refuse_empty_database(shard_path);
  // Validates (not SQLite, damaged, foreign, newer schema: refused, naming the file) and migrates an
  // older shard in place, so that its runs keep the UUIDs they get now in every later merge.
  auto shard = RunStore::open(shard_path);

  MergeReport rep;
  // The shard's recorded ablations of a run, united with this database's copy of it (id here): a
  // record this copy lacks is added, a newer one replaces the older.
  const auto unite_ablations = [&](int64_t src_id, int64_t id) {
    const std::vector<AblationRecord> theirs = shard->ablations(src_id);
    if (theirs.empty()) return;
    std::map<std::pair<std::string, std::string>, double> mine;
    for (const AblationRecord& a : ablations(id)) mine[{a.overrides, a.checkpoint}] = a.created_at;
    for (const AblationRecord& a : theirs) {
      const auto it = mine.find({a.overrides, a.checkpoint});
      if (it != mine.end() && it->second >= a.created_at) continue;
      recordAblation(id, a);
      ++rep.ablations;
    }
  };
  auto runs = shard->listRuns();  // newest first: copy the oldest first, so ids here keep their order
  for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
    const RunRecord& src = *it;
    const Content cs = content_of(shard->d_->db, shard->d_->mu, src.id);
    std::optional<RunRecord> dst = getRunByUuid(src.uuid);
    if (dst) {
      const Content ct = content_of(d_->db, d_->mu, dst->id);
      const bool same = dst->status == src.status && dst->finished_at == src.finished_at &&
                        dst->summary_json == src.summary_json && dst->error == src.error &&
                        dst->diverged_step == src.diverged_step && ct == cs;
      if (same) {
        ++rep.unchanged;
        unite_ablations(src.id, dst->id);
        continue;
      }
      const bool replace = (is_final(src.status) && !is_final(dst->status)) ||
                           (!is_final(src.status) && !is_final(dst->status) && cs.rows() >= ct.rows());
      if (!replace) {
        ++rep.kept;
        rep.kept_why.push_back("run " + std::to_string(dst->id) + " (" + name(dst->status) + ", " +
                               std::to_string(ct.rows()) + " rows) kept over " + shard_path + "'s run " +
                               std::to_string(src.id) + " (" + name(src.status) + ", " + std::to_string(cs.rows()) +
                               " rows), uuid " + src.uuid);
        unite_ablations(src.id, dst->id);
        continue;
      }
    }
    Bundle b{shard->series(src.id), shard->accuracy(src.id), shard->evals(src.id), shard->checkpoints(src.id),
             shard->confusion(src.id)};
    RunRecord r = src;
    if (dst) {  // this database's annotations of the run stay
      r.tags = dst->tags;
      r.notes = dst->notes;
    }
    int64_t id = 0;
    std::unique_lock<std::mutex> lock(d_->mu);
    d_->db.transaction([&] {
      if (dst) {
        id = dst->id;
        static const char* kClear[] = {
            "DELETE FROM points WHERE series_id IN (SELECT id FROM series WHERE run_id=?)",
            "DELETE FROM series WHERE run_id=?",
            "DELETE FROM accuracy WHERE run_id=?",
            "DELETE FROM evals WHERE run_id=?",
            "DELETE FROM checkpoints WHERE run_id=?",
            "DELETE FROM confusion WHERE run_id=?",
            "DELETE FROM confusion_classes WHERE run_id=?",
        };
        for (const char* sql : kClear) Stmt(d_->db, sql).bind(1, id).run();
        std::string sql = std::string("UPDATE runs SET (") + detail::kRunColumns + ") = (?";
        for (int i = 1; i < detail::kRunColumnCount; ++i) sql += ",?";
        sql += ") WHERE id=" + std::to_string(id);
        Stmt st(d_->db, sql.c_str());
        detail::bind_run(st, r);
        st.run();
      } else {
        const std::string sql = detail::insert_run_sql();
        Stmt st(d_->db, sql.c_str());
        detail::bind_run(st, r);
        st.run();
        id = sqlite3_last_insert_rowid(d_->db.get());
      }
      Stmt ser(d_->db, "INSERT INTO series (run_id, name, level, block, clock) VALUES (?, ?, ?, ?, ?)");
      Stmt pt(d_->db, "INSERT INTO points (series_id, step, value) VALUES (?, ?, ?)");
      for (const Series& s : b.series) {
        ser.bind(1, id).bind(2, s.name).bind(3, s.level).bind(4, s.block).bind(5, s.clock).run();
        const int64_t sid = sqlite3_last_insert_rowid(d_->db.get());
        for (const auto& [step, value] : s.points) pt.bind(1, sid).bind(2, step).bind(3, value).run();
      }
      Stmt acc(d_->db, "INSERT INTO accuracy (run_id, after_task, task, acc, task_il_acc) VALUES (?, ?, ?, ?, ?)");
      for (const AccuracyCell& c : b.accuracy)
        acc.bind(1, id).bind(2, c.after_task).bind(3, c.task).bind(4, c.acc).bind(5, c.task_il_acc).run();
      Stmt ev(d_->db, "INSERT INTO evals (run_id, step, current_task, task, acc) VALUES (?, ?, ?, ?, ?)");
      for (const EvalResult& e : b.evals)
        ev.bind(1, id).bind(2, e.step).bind(3, e.current_task).bind(4, e.task).bind(5, e.acc).run();
      Stmt ck(d_->db, "INSERT INTO checkpoints (run_id, kind, path, step, task, metric) VALUES (?, ?, ?, ?, ?, ?)");
      for (const CheckpointEntry& c : b.checkpoints)
        ck.bind(1, id).bind(2, name(c.kind)).bind(3, c.path).bind(4, c.step).bind(5, c.task).bind(6, c.metric).run();
      for (const ConfusionMatrix& m : b.confusion) detail::write_confusion(d_->db, id, m);
    });
    lock.unlock();
    unite_ablations(src.id, id);
    ++(dst ? rep.updated : rep.added);
    for (const Series& s : b.series) rep.points += int64_t(s.points.size());
    rep.accuracy_cells += int64_t(b.accuracy.size());
    rep.evals += int64_t(b.evals.size());
    rep.checkpoints += int64_t(b.checkpoints.size());
    rep.confusion_matrices += int64_t(b.confusion.size());
  }
  return rep;
}

}  // namespace hl::store
