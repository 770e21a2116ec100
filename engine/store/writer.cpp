// RunWriter: producers append to a mutex-protected queue; one thread owns a connection and commits
// the queue in batches, one transaction each (every ~200 ms, or at once when 5,000 rows wait or a
// flush() asks). SQLite errors are caught on the thread; the first is rethrown by flush()/finish()
// and shown by error(); a batch that failed is followed by an attempt to save the run's end alone.
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <variant>

#include "engine/store/sqlite_db.h"
#include "engine/store/store.h"
#include "engine/store/store_impl.h"

namespace hl::store {

using detail::Db;
using detail::Stmt;

namespace {

constexpr size_t kBatchRows = 5000;
constexpr auto kBatchInterval = std::chrono::milliseconds(200);

struct PointOp {
  std::string name, level;
  int block, clock;
  int64_t step;
  double value;
};
struct StatusOp {
  RunStatus status;
  std::string error;
  int64_t diverged_step;
};
struct SummaryOp {
  std::string json;
};
struct FinishOp {
  RunStatus status;
  double at;
};
using Op =
    std::variant<PointOp, AccuracyCell, EvalResult, CheckpointEntry, ConfusionMatrix, StatusOp, SummaryOp, FinishOp>;

using SeriesKey = std::tuple<std::string, std::string, int, int>;  // name, level, block, clock

template <typename T>
bool holds(const std::vector<Op>& batch) {
  for (const Op& op : batch)
    if (std::holds_alternative<T>(op)) return true;
  return false;
}

}  // namespace

struct RunWriter::Impl {
  int64_t run_id = 0;
  Db db;

  std::mutex mu;
  std::condition_variable wake;     // producer -> thread
  std::condition_variable done_cv;  // thread -> flush()
  std::vector<Op> queue;
  uint64_t enqueued = 0;   // ops ever enqueued
  uint64_t processed = 0;  // ops handled by the thread (committed, or lost with an error)
  uint64_t flush_target = 0;
  bool stop = false;
  std::string first_error;
  bool end_stored = false;  // a finish() was committed
  std::thread thread;

  CommitHook hook;  // guarded by mu

  // Thread-only state.
  std::map<SeriesKey, int64_t> series_ids;

  void report(const CommitHook& on_commit, const std::vector<Op>& batch) {
    std::vector<CommittedPoint> points;
    for (const Op& op : batch)
      if (auto* p = std::get_if<PointOp>(&op)) points.push_back({p->name, p->level, p->block, p->clock, p->step});
    if (points.empty()) return;
    try {
      on_commit(run_id, points);
    } catch (...) {
    }
  }

  // A batch could not be committed (a full disk, a read-only or vanished file): the run's end, if
  // the batch holds it, matters most. Make room first (a full checkpoint moves the WAL into the
  // database and truncates it, so a small transaction fits again where only the WAL's growth was
  // refused), then commit the status and finish time alone, then the summary. Best effort: what
  // still fails is left, and the first error stays the one reported.
  // Returns whether a finish time was stored.
  bool save_the_end(const std::vector<Op>& batch) {
    std::vector<Op> end, summary;
    for (const Op& op : batch) {
      if (std::holds_alternative<StatusOp>(op) || std::holds_alternative<FinishOp>(op)) end.push_back(op);
      if (std::holds_alternative<SummaryOp>(op)) summary.push_back(op);
    }
    if (end.empty() && summary.empty()) return false;
    sqlite3_wal_checkpoint_v2(db.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
    bool ended = false;
    for (const auto* part : {&end, &summary}) {
      if (part->empty()) continue;
      try {
        commit(*part);
        ended = ended || holds<FinishOp>(*part);
      } catch (const std::exception&) {
      }
    }
    return ended;
  }

  void push(Op op) {
    std::lock_guard<std::mutex> lock(mu);
    queue.push_back(std::move(op));
    ++enqueued;
    if (queue.size() == 1 || queue.size() >= kBatchRows) wake.notify_one();
  }

  void wait_processed(uint64_t target) {
    std::unique_lock<std::mutex> lock(mu);
    flush_target = std::max(flush_target, target);
    wake.notify_one();
    done_cv.wait(lock, [&] { return processed >= target; });
  }

  void check_error() {
    std::lock_guard<std::mutex> lock(mu);
    if (!first_error.empty()) throw hl::StoreError(first_error);
  }

  void run() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      wake.wait(lock, [&] { return stop || !queue.empty(); });
      if (queue.empty()) break;  // stop requested and nothing left
      wake.wait_for(lock, kBatchInterval,
                    [&] { return stop || flush_target > processed || queue.size() >= kBatchRows; });
      std::vector<Op> batch;
      batch.swap(queue);
      const uint64_t last = enqueued;
      const CommitHook on_commit = hook;
      lock.unlock();
      std::string error;
      bool ended = false;
      try {
        commit(batch);
        ended = holds<FinishOp>(batch);
        if (on_commit) report(on_commit, batch);
      } catch (const std::exception& e) {
        error = e.what();
        ended = save_the_end(batch);
      }
      lock.lock();
      if (ended) end_stored = true;
      if (!error.empty() && first_error.empty())
        first_error = "run " + std::to_string(run_id) + ": writing to the run database failed: " + error;
      processed = last;
      done_cv.notify_all();
    }
  }

  int64_t series_id(const PointOp& p) {
    SeriesKey key{p.name, p.level, p.block, p.clock};
    auto it = series_ids.find(key);
    if (it != series_ids.end()) return it->second;
    Stmt ins(db,
             "INSERT INTO series (run_id, name, level, block, clock) VALUES (?,?,?,?,?) "
             "ON CONFLICT (run_id, name, level, block, clock) DO NOTHING");
    ins.bind(1, run_id).bind(2, p.name).bind(3, p.level).bind(4, p.block).bind(5, p.clock).run();
    Stmt sel(db, "SELECT id FROM series WHERE run_id=? AND name=? AND level=? AND block=? AND clock=?");
    sel.bind(1, run_id).bind(2, p.name).bind(3, p.level).bind(4, p.block).bind(5, p.clock);
    if (!sel.step()) throw hl::StoreError("series row for '" + p.name + "' was not created");
    int64_t id = sel.col_int(0);
    series_ids.emplace(std::move(key), id);
    return id;
  }

  void update_run(Stmt& st) {
    st.run();
    if (sqlite3_changes(db.get()) == 0)
      throw hl::StoreError("run " + std::to_string(run_id) + " no longer exists in " + db.path());
  }

  void commit(const std::vector<Op>& batch) {
    db.transaction(
        [&] {
          Stmt point(db, "INSERT OR REPLACE INTO points (series_id, step, value) VALUES (?,?,?)");
          for (const Op& op : batch) {
            if (auto* p = std::get_if<PointOp>(&op)) {
              point.bind(1, series_id(*p)).bind(2, p->step).bind(3, p->value).run();
            } else if (auto* a = std::get_if<AccuracyCell>(&op)) {
              Stmt st(db,
                      "INSERT OR REPLACE INTO accuracy (run_id, after_task, task, acc, task_il_acc) "
                      "VALUES (?,?,?,?,?)");
              st.bind(1, run_id).bind(2, a->after_task).bind(3, a->task).bind(4, a->acc);
              st.bind(5, a->task_il_acc).run();
            } else if (auto* e = std::get_if<EvalResult>(&op)) {
              Stmt st(db, "INSERT INTO evals (run_id, step, current_task, task, acc) VALUES (?,?,?,?,?)");
              st.bind(1, run_id).bind(2, e->step).bind(3, e->current_task).bind(4, e->task);
              st.bind(5, e->acc).run();
            } else if (auto* c = std::get_if<CheckpointEntry>(&op)) {
              Stmt st(db,
                      "INSERT INTO checkpoints (run_id, kind, path, step, task, metric) "
                      "VALUES (?,?,?,?,?,?) ON CONFLICT (run_id, kind, path) DO UPDATE SET "
                      "step=excluded.step, task=excluded.task, metric=excluded.metric");
              st.bind(1, run_id).bind(2, name(c->kind)).bind(3, c->path).bind(4, c->step);
              st.bind(5, c->task).bind(6, c->metric).run();
            } else if (auto* m = std::get_if<ConfusionMatrix>(&op)) {
              detail::write_confusion(db, run_id, *m);
            } else if (auto* s = std::get_if<StatusOp>(&op)) {
              Stmt st(db, "UPDATE runs SET status=?, error=?, diverged_step=? WHERE id=?");
              st.bind(1, name(s->status)).bind(2, s->error).bind(3, s->diverged_step).bind(4, run_id);
              update_run(st);
            } else if (auto* m = std::get_if<SummaryOp>(&op)) {
              Stmt st(db, "UPDATE runs SET summary_json=? WHERE id=?");
              st.bind(1, m->json).bind(2, run_id);
              update_run(st);
            } else if (auto* f = std::get_if<FinishOp>(&op)) {
              Stmt st(db, "UPDATE runs SET status=?, finished_at=? WHERE id=?");
              st.bind(1, name(f->status)).bind(2, f->at).bind(3, run_id);
              update_run(st);
            }
          }
        },
        [&] { series_ids.clear(); });  // ids created in a rolled-back transaction are gone
  }
};

RunWriter::RunWriter(const std::string& db_path, int64_t run_id) : d_(std::make_unique<Impl>()) {
  d_->run_id = run_id;
  d_->db = Db::open(db_path, /*migrate=*/true);
  bool exists = false;
  d_->db.read([&] {
    Stmt st(d_->db, "SELECT 1 FROM runs WHERE id=?");
    st.bind(1, run_id);
    exists = st.step();
  });
  if (!exists)
    throw hl::StoreError("run database " + db_path + " has no run " + std::to_string(run_id) +
                         "; create the run before writing to it.");
  d_->thread = std::thread([this] { d_->run(); });
}

RunWriter::~RunWriter() {
  {
    std::lock_guard<std::mutex> lock(d_->mu);
    d_->stop = true;
  }
  d_->wake.notify_one();
  if (d_->thread.joinable()) d_->thread.join();  // the thread drains the queue before it ends
}

void RunWriter::point(const std::string& name, const std::string& level, int block, int clock, int64_t step,
                      double value) {
  d_->push(PointOp{name, level, block, clock, step, value});
}
void RunWriter::accuracy(const AccuracyCell& c) {
  d_->push(c);
}
void RunWriter::eval(const EvalResult& e) {
  d_->push(e);
}
void RunWriter::checkpoint(const CheckpointEntry& c) {
  d_->push(c);
}
void RunWriter::confusion(const ConfusionMatrix& m) {
  d_->push(m);
}
void RunWriter::status(RunStatus status, const std::string& error, int64_t diverged_step) {
  d_->push(StatusOp{status, error, diverged_step});
}
void RunWriter::summary(const std::string& summary_json) {
  d_->push(SummaryOp{summary_json});
}

void RunWriter::finish(RunStatus status) {
  d_->push(FinishOp{status, detail::now_seconds()});
  flush();
}

void RunWriter::flush() {
  uint64_t target;
  {
    std::lock_guard<std::mutex> lock(d_->mu);
    target = d_->enqueued;
  }
  d_->wait_processed(target);
  d_->check_error();
}

int64_t RunWriter::runId() const {
  return d_->run_id;
}

std::string RunWriter::error() const {
  std::lock_guard<std::mutex> lock(d_->mu);
  return d_->first_error;
}

bool RunWriter::endStored() const {
  std::lock_guard<std::mutex> lock(d_->mu);
  return d_->end_stored;
}

void RunWriter::setCommitHook(CommitHook hook) {
  std::lock_guard<std::mutex> lock(d_->mu);
  d_->hook = std::move(hook);
}

}  // namespace hl::store
