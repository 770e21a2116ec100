// The run store: schema identity and migrations, refusal of files that are not ours, run records,
// the batched writer, the interrupted rule, concurrency between connections and processes, and a
// writer killed with SIGKILL mid-run.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <QMimeDatabase>
#include <QTemporaryDir>
#include <QtTest>
#include <atomic>
#include <cmath>
#include <fstream>
#include <functional>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "engine/common/error.h"
#include "engine/common/sha256.h"
#include "engine/store/schema.h"
#include "engine/store/store.h"

using namespace hl::store;

namespace QTest {
template <>
inline char* toString(const std::string& s) {  // readable QCOMPARE failures
  return qstrdup(s.c_str());
}
}  // namespace QTest

namespace {

// A raw SQLite connection for checks and hand-made databases, independent of the code under test.
class Raw {
 public:
  explicit Raw(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) qFatal("sqlite3_open %s", path.c_str());
    sqlite3_busy_timeout(db_, 10000);
  }
  ~Raw() { sqlite3_close(db_); }
  sqlite3* get() { return db_; }
  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string e = err ? err : "?";
      sqlite3_free(err);
      qFatal("sql failed: %s: %s", sql.c_str(), e.c_str());
    }
  }
  std::string text(const std::string& sql, int col = 0) {  // a column of the first row
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
      qFatal("prepare failed: %s: %s", sql.c_str(), sqlite3_errmsg(db_));
    std::string out;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, col))
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, col));
    sqlite3_finalize(st);
    return out;
  }
  int64_t integer(const std::string& sql) { return std::stoll("0" + text(sql)); }

 private:
  sqlite3* db_ = nullptr;
};

// Runs `body` in a forked child; the child's exit code is body's result (99 on an exception).
pid_t spawn(const std::function<int()>& body) {
  pid_t pid = fork();
  if (pid == 0) {
    int rc = 99;
    try {
      rc = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child %d: %s\n", getpid(), e.what());
    }
    _exit(rc);
  }
  return pid;
}

int waitExit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A pid that no longer exists (a child that exited and was reaped).
int64_t deadPid() {
  pid_t pid = spawn([] { return 0; });
  waitExit(pid);
  return pid;
}

// The message of the hl::StoreError that f throws; "" if it throws nothing.
std::string storeErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const hl::StoreError& e) {
    return e.what();
  }
  return "";
}

std::string readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void writeFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

RunRecord sampleRun(const std::string& dataset = "clinc150", const std::string& model = "hope", double created_at = 0) {
  RunRecord r;
  r.status = hl::RunStatus::Finished;
  r.name = model;
  r.model = model;
  r.dataset = dataset;
  r.strategy = "finetune";
  r.protocol = "class_il";
  r.head = "softmax";
  r.config_hash = "cfg-" + dataset + "-" + model;
  r.created_at = created_at;
  return r;
}

// A Hope Lab database with `runs` runs, each with `notes_bytes` of notes (to span many pages).
void makeStore(const std::string& path, int runs, size_t notes_bytes = 0) {
  auto s = RunStore::open(path);
  for (int i = 0; i < runs; ++i) {
    RunRecord r = sampleRun();
    r.notes = std::string(notes_bytes, char('a' + i % 26));
    s->createRun(r);
  }
}

// A task-end confusion matrix over `classes` (task t = position / 2) with the given counts.
hl::metrics::ConfusionMatrix confusionOf(int after_task, std::vector<int> classes, std::vector<int64_t> counts) {
  hl::metrics::ConfusionMatrix m;
  m.after_task = after_task;
  for (size_t k = 0; k < classes.size(); ++k) {
    m.tasks.push_back(int(k / 2));
    m.names.push_back("intent_" + std::to_string(classes[k]));
  }
  m.classes = std::move(classes);
  m.counts = std::move(counts);
  return m;
}

bool sameMatrix(const hl::metrics::ConfusionMatrix& a, const hl::metrics::ConfusionMatrix& b) {
  return a.after_task == b.after_task && a.classes == b.classes && a.tasks == b.tasks && a.names == b.names &&
         a.counts == b.counts;
}

}  // namespace

class TestStore : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir tmp_;
  int counter_ = 0;
  std::string freshPath() { return tmp_.filePath(QString("db%1.db").arg(++counter_)).toStdString(); }

 private slots:
  void initTestCase() { QVERIFY(tmp_.isValid()); }

  // ---- identity, WAL, migrations -----------------------------------------------------------------

  // Statuses and checkpoint kinds are parsed when read: a value this build does not know (another
  // program wrote it) is refused naming the database, the table and the run, not passed on.
  void unknownStatusOrCheckpointKindIsRefusedNamingTheRun() {
    const std::string path = (tmp_.path() + "/unknown-kinds.db").toStdString();
    int64_t id = 0;
    {
      auto s = RunStore::open(path);
      id = s->createRun(sampleRun());
      RunWriter w(path, id);
      w.checkpoint({hl::CheckpointKind::Last, "/x/last.pt", 4, 0, 0.5});
    }
    {
      Raw raw(path);
      raw.exec("UPDATE runs SET status='exploded' WHERE id=" + std::to_string(id));
      raw.exec("UPDATE checkpoints SET kind='newest' WHERE run_id=" + std::to_string(id));
    }
    auto s = RunStore::open(path);
    const std::string e1 = storeErrorOf([&] { s->getRun(id); });
    QVERIFY2(e1.find(path) != std::string::npos && e1.find("runs of run " + std::to_string(id)) != std::string::npos &&
                 e1.find("\"exploded\"") != std::string::npos,
             e1.c_str());
    const std::string e2 = storeErrorOf([&] { s->checkpoints(id); });
    QVERIFY2(e2.find("checkpoints of run " + std::to_string(id)) != std::string::npos &&
                 e2.find("\"newest\"") != std::string::npos,
             e2.c_str());
    {
      Raw raw(path);
      raw.exec("UPDATE runs SET status='paused' WHERE id=" + std::to_string(id));  // live only, never stored
    }
    QVERIFY(!storeErrorOf([&] { s->getRun(id); }).empty());
  }

  void newDatabaseHasWalApplicationIdAndSchemaVersion() {
    const std::string path = freshPath();
    auto s = RunStore::open(path);
    QCOMPARE(s->schemaVersion(), schema::kVersion);
    QCOMPARE(s->path(), path);
    Raw raw(path);
    QCOMPARE(raw.text("PRAGMA journal_mode"), std::string("wal"));
    QCOMPARE(raw.integer("PRAGMA application_id"), int64_t(schema::kApplicationId));
    QCOMPARE(raw.integer("PRAGMA user_version"), int64_t(schema::kVersion));
    for (const std::string& t : schema::required_tables())
      QCOMPARE(raw.integer("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='" + t + "'"), int64_t(1));
    // Points are looked up through the (series_id, step) primary key of the WITHOUT ROWID table.
    const std::string plan =
        raw.text("EXPLAIN QUERY PLAN SELECT step, value FROM points WHERE series_id=1 ORDER BY step",
                 3);  // the "detail" column
    QVERIFY2(plan.find("PRIMARY KEY") != std::string::npos, plan.c_str());
    QVERIFY2(plan.find("SCAN") == std::string::npos, plan.c_str());
  }

  void migratesHandMadeV0Database_data() {
    QTest::addColumn<int>("applicationId");
    QTest::newRow("empty SQLite file") << 0;
    QTest::newRow("Hope Lab id, version 0, no tables") << int(schema::kApplicationId);
  }
  void migratesHandMadeV0Database() {
    QFETCH(int, applicationId);
    const std::string path = freshPath();
    {
      Raw raw(path);
      raw.exec("PRAGMA application_id = " + std::to_string(applicationId) + "; PRAGMA user_version = 0; VACUUM;");
    }
    auto s = RunStore::open(path);
    QCOMPARE(s->schemaVersion(), schema::kVersion);
    QVERIFY(s->createRun(sampleRun()) > 0);
    Raw raw(path);
    QCOMPARE(raw.integer("PRAGMA application_id"), int64_t(schema::kApplicationId));
  }

  void opensHandMadeV1DatabaseAndKeepsItsRows() {
    const std::string path = freshPath();
    {
      Raw raw(path);  // the v1 layout written directly, with a row that uses the column defaults
      raw.exec(schema::migrations().at(0).sql);
      raw.exec("PRAGMA application_id = " + std::to_string(schema::kApplicationId) + "; PRAGMA user_version = 1;");
      raw.exec("INSERT INTO runs (status, name, tags) VALUES ('finished', 'by-hand', '[\"x\"]')");
      raw.exec("INSERT INTO runs (status, name) VALUES ('interrupted', 'second')");
    }
    auto s = RunStore::open(path);
    QCOMPARE(s->schemaVersion(), schema::kVersion);
    auto runs = s->listRuns();
    QCOMPARE(runs.size(), size_t(2));
    // v2 gave each old run its own random version-4 UUID.
    const QRegularExpression v4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
    QVERIFY2(v4.match(QString::fromStdString(runs[0].uuid)).hasMatch(), runs[0].uuid.c_str());
    QVERIFY2(v4.match(QString::fromStdString(runs[1].uuid)).hasMatch(), runs[1].uuid.c_str());
    QVERIFY(runs[0].uuid != runs[1].uuid);
    QCOMPARE(s->getRunByUuid(runs[1].uuid)->id, runs[1].id);
    runs.erase(runs.begin());  // the newest ("second", same created_at 0, higher id)
    QCOMPARE(runs[0].name, std::string("by-hand"));
    QCOMPARE(runs[0].tags, std::vector<std::string>{"x"});
    QCOMPARE(runs[0].summary_json, std::string("{}"));
    QCOMPARE(runs[0].diverged_step, int64_t(-1));
  }

  void migrationRunnerAppliesLaterStepsInOrder() {
    const std::string path = freshPath();
    makeStore(path, 2);
    std::vector<schema::Migration> steps = schema::migrations();
    const int next = schema::kVersion + 1;
    steps.push_back({next,
                     "ALTER TABLE runs ADD COLUMN cadence_json TEXT NOT NULL DEFAULT '{}';"
                     "CREATE TABLE cadence (run_id INTEGER, level TEXT, expected INTEGER);"});
    Raw raw(path);
    QCOMPARE(schema::migrate(raw.get(), path, steps), next);
    QCOMPARE(raw.integer("PRAGMA user_version"), int64_t(next));
    QCOMPARE(raw.integer("SELECT count(*) FROM runs WHERE cadence_json = '{}'"), int64_t(2));
    QCOMPARE(schema::migrate(raw.get(), path, steps), next);  // idempotent
    // This build knows only up to kVersion, so it now refuses the file as newer.
    const std::string err = storeErrorOf([&] { RunStore::open(path); });
    QVERIFY2(err.find("newer") != std::string::npos, err.c_str());
  }

  void failedMigrationStepIsRolledBack() {
    const std::string path = freshPath();
    makeStore(path, 1);
    std::vector<schema::Migration> steps = schema::migrations();
    steps.push_back(
        {schema::kVersion + 1, "CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);"});
    Raw raw(path);
    const std::string err = storeErrorOf([&] { schema::migrate(raw.get(), path, steps); });
    QVERIFY2(err.find(path) != std::string::npos && err.find("rolled back") != std::string::npos, err.c_str());
    QCOMPARE(raw.integer("PRAGMA user_version"), int64_t(schema::kVersion));
    QCOMPARE(raw.integer("SELECT count(*) FROM sqlite_master WHERE name='half_done'"), int64_t(0));
  }

  // ---- files that are not ours: refused, named, untouched ----------------------------------------

  void refusesUnusableFileWithoutTouchingIt_data() {
    QTest::addColumn<QString>("kind");
    QTest::addColumn<QString>("expected");
    QTest::newRow("text file") << "text"
                               << "not a SQLite file";
    QTest::newRow("SQLite header cut short") << "short"
                                             << "shorter than the 100-byte";
    QTest::newRow("truncated database") << "truncated"
                                        << "damaged";
    QTest::newRow("garbled header") << "garbled-header"
                                    << "damaged";
    QTest::newRow("garbled schema page") << "garbled-schema"
                                         << "damaged";
    QTest::newRow("foreign application_id") << "foreign-id"
                                            << "another application";
    QTest::newRow("foreign tables, no id") << "foreign-tables"
                                           << "another application";
    QTest::newRow("newer schema") << "newer"
                                  << "newer than this Hope Lab build";
  }
  void refusesUnusableFileWithoutTouchingIt() {
    QFETCH(QString, kind);
    QFETCH(QString, expected);
    const std::string path = freshPath();
    const std::map<QString, std::function<void()>> make = {
        {"text", [&] { writeFile(path, "run,acc\n1,0.5\n"); }},
        {"short",
         [&] {
           makeStore(path, 1);
           writeFile(path, readFile(path).substr(0, 60));
         }},
        {"truncated",
         [&] {
           makeStore(path, 300, 2000);
           std::string b = readFile(path);
           writeFile(path, b.substr(0, b.size() / 2));
         }},
        {"garbled-header",
         [&] {
           makeStore(path, 3);
           std::string b = readFile(path);
           for (size_t i = 16; i < 100; ++i) b[i] = char(0xA5);
           writeFile(path, b);
         }},
        {"garbled-schema",
         [&] {
           makeStore(path, 3);
           std::string b = readFile(path);
           uint32_t seed = 12345;
           for (size_t i = 100; i < 4096 && i < b.size(); ++i) {
             seed = seed * 1664525u + 1013904223u;
             b[i] = char(seed >> 24);
           }
           writeFile(path, b);
         }},
        {"foreign-id",
         [&] {
           Raw raw(path);
           raw.exec("PRAGMA application_id = 42; CREATE TABLE runs (id INTEGER);");
         }},
        {"foreign-tables",
         [&] {
           Raw raw(path);
           raw.exec("CREATE TABLE customers (id INTEGER, name TEXT);");
         }},
        {"newer",
         [&] {
           makeStore(path, 1);
           Raw raw(path);
           raw.exec("PRAGMA user_version = " + std::to_string(schema::kVersion + 1));
         }},
    };
    make.at(kind)();
    const std::string before = hl::sha256_file(path);

    const std::string err = storeErrorOf([&] { RunStore::open(path); });
    QVERIFY2(!err.empty(), "RunStore::open accepted the file");
    qInfo("%s", err.c_str());  // the message a user sees
    QVERIFY2(err.find(path) != std::string::npos, err.c_str());
    QVERIFY2(err.find(expected.toStdString()) != std::string::npos, err.c_str());
    const std::string werr = storeErrorOf([&] { RunWriter w(path, 1); });
    QVERIFY2(werr.find(path) != std::string::npos, werr.c_str());
    QCOMPARE(hl::sha256_file(path), before);
  }

  // A schema text damaged in place (fuzz_store: tests/fuzz/regressions/store/
  // runs_id_not_a_primary_key.sqlite) still parses, so the tables exist, but `runs.id` became an
  // ordinary column holding NULL: runs were listed with id 0 that getRun could not find. Open checks
  // each required table's columns and primary key (docs/RELIABILITY.md).
  void refusesDamagedTableLayout_data() {
    QTest::addColumn<QString>("table");
    QTest::addColumn<QString>("from");
    QTest::addColumn<QString>("to");
    QTest::addColumn<QString>("expected");
    QTest::newRow("runs.id not the primary key (the fuzz input)")
        << "runs"
        << "PRIMARY KEY AUTOINCREMENT"
        << "PRIMARYEUT  AKYOINCREMENT"
        << "its column runs.id is not the table's INTEGER PRIMARY KEY (declared type 'INTEGER PRIMARYEUT  "
           "AKYOINCREMENT', not in the primary key)";
    QTest::newRow("series.id typed otherwise") << "series"
                                               << "id     INTEGER PRIMARY KEY"
                                               << "id     INTEGEX PRIMARY KEY"
                                               << "its column series.id is not the table's INTEGER PRIMARY KEY "
                                                  "(declared type 'INTEGEX', primary-key position 1)";
    QTest::newRow("a column renamed") << "runs"
                                      << "notes         TEXT"
                                      << "notez         TEXT"
                                      << "its table 'runs' lacks the column 'notes'";
    QTest::newRow("a column retyped") << "evals"
                                      << "step         INTEGER"
                                      << "step         INTEGEX"
                                      << "its column evals.step is declared 'INTEGEX' (primary-key position 0), where "
                                         "this build's schema has 'INTEGER' (position 0)";
  }
  void refusesDamagedTableLayout() {
    QFETCH(QString, table);
    QFETCH(QString, from);
    QFETCH(QString, to);
    QFETCH(QString, expected);
    const std::string path = freshPath();
    makeStore(path, 2);
    {
      Raw raw(path);
      const std::string before = raw.text("SELECT sql FROM sqlite_master WHERE name='" + table.toStdString() + "'");
      QVERIFY2(before.find(from.toStdString()) != std::string::npos, before.c_str());
      raw.exec("PRAGMA writable_schema = ON; UPDATE sqlite_master SET sql = replace(sql, '" + from.toStdString() +
               "', '" + to.toStdString() + "') WHERE name = '" + table.toStdString() +
               "'; PRAGMA writable_schema = OFF;");
    }
    QCOMPARE(Raw(path).integer("SELECT count(*) FROM runs"), int64_t(2));  // SQLite itself still reads it
    const std::string sha = hl::sha256_file(path);
    const std::string err = storeErrorOf([&] { RunStore::open(path); });
    qInfo("%s", err.c_str());
    QVERIFY2(err.find(path + " is marked as a Hope Lab run database but ") == 0, err.c_str());
    QVERIFY2(err.find(expected.toStdString()) != std::string::npos, err.c_str());
    QVERIFY2(err.find("Restore it from a backup") != std::string::npos, err.c_str());
    const std::string werr = storeErrorOf([&] { RunWriter w(path, 1); });
    QVERIFY2(werr.find(expected.toStdString()) != std::string::npos, werr.c_str());
    QCOMPARE(hl::sha256_file(path), sha);
  }

  void refusesDirectoryAndMissingParent() {
    const std::string dir = tmp_.path().toStdString();
    std::string err = storeErrorOf([&] { RunStore::open(dir); });
    QVERIFY2(err.find("is a directory") != std::string::npos, err.c_str());
    const std::string missing = dir + "/no/such/dir/runs.db";
    err = storeErrorOf([&] { RunStore::open(missing); });
    QVERIFY2(err.find(missing) != std::string::npos, err.c_str());
  }

  // ---- run records ---------------------------------------------------------------------------------

  void roundTripsEveryRunField() {
    auto s = RunStore::open(freshPath());
    RunRecord r;
    r.status = hl::RunStatus::Running;
    r.name = "hope-levels-3";
    r.spec_json = R"({"model":{"type":"hope"},"seed":7})";
    r.config_hash = "c0ffee";
    r.run_hash = "beef";
    r.dataset = "banking77";
    r.protocol = "class_il";
    r.strategy = "replay";
    r.model = "hope";
    r.head = "ncm";
    r.data_hash = "d1";
    r.split_hash = "s1";
    r.seed = 7;
    r.params = 1234567;
    r.app_version = "0.1.0-3-gabc";
    r.torch_version = "2.14.1";
    r.cuda_version = "12.8";
    r.device = "cuda:0";
    r.pid = 4242;
    r.host = "elsewhere";  // another host: the interrupted rule leaves it alone
    r.process_start = 99;
    r.created_at = 1700000000.25;
    r.finished_at = 0;
    r.tags = {"paper", "ablation, with comma", "ünïcode \"quoted\""};
    r.notes = "line 1\nline 2";
    r.error = "";
    r.diverged_step = 17;
    r.summary_json = R"({"final_avg_acc":0.5})";
    const int64_t id = s->createRun(r);
    QVERIFY(id > 0);
    auto got = s->getRun(id);
    QVERIFY(got.has_value());
    QCOMPARE(got->id, id);
    for (auto [a, b] : std::vector<std::pair<std::string, std::string>>{{hl::name(got->status), hl::name(r.status)},
                                                                        {got->name, r.name},
                                                                        {got->spec_json, r.spec_json},
                                                                        {got->config_hash, r.config_hash},
                                                                        {got->run_hash, r.run_hash},
                                                                        {got->dataset, r.dataset},
                                                                        {got->protocol, r.protocol},
                                                                        {got->strategy, r.strategy},
                                                                        {got->model, r.model},
                                                                        {got->head, r.head},
                                                                        {got->data_hash, r.data_hash},
                                                                        {got->split_hash, r.split_hash},
                                                                        {got->app_version, r.app_version},
                                                                        {got->torch_version, r.torch_version},
                                                                        {got->cuda_version, r.cuda_version},
                                                                        {got->device, r.device},
                                                                        {got->host, r.host},
                                                                        {got->notes, r.notes},
                                                                        {got->error, r.error},
                                                                        {got->summary_json, r.summary_json}})
      QCOMPARE(a, b);
    QCOMPARE(got->seed, r.seed);
    QCOMPARE(got->params, r.params);
    QCOMPARE(got->pid, r.pid);
    QCOMPARE(got->process_start, r.process_start);
    QCOMPARE(got->created_at, r.created_at);  // REAL round-trips exactly
    QCOMPARE(got->finished_at, 0.0);
    QCOMPARE(got->tags, r.tags);
    QCOMPARE(got->diverged_step, r.diverged_step);
    QVERIFY(!s->getRun(id + 100).has_value());
  }

  void createRunFillsProcessIdentityAndTime() {
    auto s = RunStore::open(freshPath());
    const double before = QDateTime::currentMSecsSinceEpoch() / 1000.0;
    RunRecord r = sampleRun();
    r.summary_json.clear();
    const int64_t id = s->createRun(r);
    auto got = s->getRun(id);
    QCOMPARE(got->pid, current_pid());
    QCOMPARE(got->host, current_host());
    QCOMPARE(got->process_start, process_start_time(current_pid()));
    QVERIFY(std::fabs(got->created_at - before) < 5.0);  // seconds
    QCOMPARE(got->summary_json, std::string("{}"));
    // Every run gets its own version-4 UUID; a given one (a copy from another database) is kept
    // and may not be there twice.
    const QRegularExpression v4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
    QVERIFY2(v4.match(QString::fromStdString(got->uuid)).hasMatch(), got->uuid.c_str());
    QVERIFY(s->getRun(s->createRun(r))->uuid != got->uuid);
    r.uuid = "00000000-0000-4000-8000-000000000001";
    QCOMPARE(s->getRun(s->createRun(r))->uuid, r.uuid);
    QVERIFY(storeErrorOf([&] { s->createRun(r); }).find("UNIQUE") != std::string::npos);
  }

  void listRunsIsNewestFirstAndFilters() {
    auto s = RunStore::open(freshPath());
    struct Spec {
      const char* dataset;
      const char* model;
      const char* status;
      std::vector<std::string> tags;
    };
    const std::vector<Spec> specs = {{"clinc150", "hope", "finished", {"paper"}},
                                     {"clinc150", "transformer", "failed", {"paper", "lr"}},
                                     {"banking77", "hope", "finished", {"papers"}},
                                     {"banking77", "lstm", "running", {}}};
    std::vector<int64_t> ids;
    for (size_t i = 0; i < specs.size(); ++i) {
      RunRecord r = sampleRun(specs[i].dataset, specs[i].model, 1000.0 + double(i));
      r.status = hl::parse<hl::RunStatus>(specs[i].status, "test");
      r.host = "other-host";
      r.tags = specs[i].tags;
      ids.push_back(s->createRun(r));
    }
    auto idsOf = [](const std::vector<RunRecord>& rs) {
      std::vector<int64_t> out;
      for (const auto& r : rs) out.push_back(r.id);
      return out;
    };
    QCOMPARE(idsOf(s->listRuns()), (std::vector<int64_t>{ids[3], ids[2], ids[1], ids[0]}));
    RunFilter f;
    f.dataset = "clinc150";
    QCOMPARE(idsOf(s->listRuns(f)), (std::vector<int64_t>{ids[1], ids[0]}));
    f = {};
    f.model = "hope";
    QCOMPARE(idsOf(s->listRuns(f)), (std::vector<int64_t>{ids[2], ids[0]}));
    f = {};
    f.status = hl::RunStatus::Finished;
    f.strategy = "finetune";
    QCOMPARE(idsOf(s->listRuns(f)), (std::vector<int64_t>{ids[2], ids[0]}));
    f = {};
    f.tag = "paper";  // one whole tag: "papers" does not match
    QCOMPARE(idsOf(s->listRuns(f)), (std::vector<int64_t>{ids[1], ids[0]}));
    f = {};
    f.limit = 2;
    QCOMPARE(idsOf(s->listRuns(f)), (std::vector<int64_t>{ids[3], ids[2]}));
    f = {};
    f.dataset = "dbpedia70";
    QVERIFY(s->listRuns(f).empty());
  }

  void updatesRunFieldsAndRejectsMissingRun() {
    auto s = RunStore::open(freshPath());
    RunRecord r = sampleRun();
    r.status = hl::RunStatus::Running;
    const int64_t id = s->createRun(r);
    s->setStatus(id, hl::RunStatus::Diverged, "loss is NaN at step 12", 12);
    s->setSummary(id, R"({"bwt":-0.1})");
    s->setTags(id, {"a", "b"});
    s->setNotes(id, "note");
    const double before = QDateTime::currentMSecsSinceEpoch() / 1000.0;
    s->finish(id, hl::RunStatus::Diverged);
    auto got = s->getRun(id);
    QCOMPARE(hl::name(got->status), std::string("diverged"));
    QCOMPARE(got->error, std::string("loss is NaN at step 12"));
    QCOMPARE(got->diverged_step, int64_t(12));
    QCOMPARE(got->summary_json, std::string(R"({"bwt":-0.1})"));
    QCOMPARE(got->tags, (std::vector<std::string>{"a", "b"}));
    QCOMPARE(got->notes, std::string("note"));
    QVERIFY(std::fabs(got->finished_at - before) < 5.0);  // seconds

    const std::string err = storeErrorOf([&] { s->setNotes(id + 1, "x"); });
    QVERIFY2(err.find("does not exist") != std::string::npos, err.c_str());
  }

  // ---- writer --------------------------------------------------------------------------------------

  void writerStoresEveryKindOfRow() {
    const std::string path = freshPath();
    auto s = RunStore::open(path);
    const int64_t id = s->createRun(sampleRun());
    {
      RunWriter w(path, id);
      QCOMPARE(w.runId(), id);
      for (int64_t step = 0; step < 10; ++step) {
        w.point("loss", "outer", -1, 1, step, 1.0 / double(step + 1));
        w.point("loss", "cms2", 1, 4, step, double(step));  // same name, other level/block/clock
      }
      w.point("loss", "cms2", 1, 16, 0, 5.0);                 // other clock: its own series
      w.point("grad_norm", "outer", -1, 1, 3, std::nan(""));  // NaN survives (stored as NULL)
      w.point("loss", "outer", -1, 1, 9, 42.0);               // same step again: last value wins
      w.accuracy({0, 0, 0.9, 0.95});
      w.accuracy({1, 0, 0.5, 0.8});
      w.accuracy({1, 1, 0.85, 0.9});
      w.accuracy({1, 1, 0.86, 0.91});  // re-evaluation replaces
      w.eval({100, 0, 0, 0.7});
      w.eval({200, 1, 0, 0.6});
      w.checkpoint({hl::CheckpointKind::Last, "/ckpt/last.pt", 100, 0, 0.7});
      w.checkpoint({hl::CheckpointKind::Best, "/ckpt/best.pt", 100, 0, 0.7});
      w.checkpoint({hl::CheckpointKind::Last, "/ckpt/last.pt", 200, 1, 0.6});  // same file saved again: updated
      w.summary(R"({"final_avg_acc":0.675})");
      w.status(hl::RunStatus::Running);
      w.finish(hl::RunStatus::Finished);
    }
    auto series = s->series(id);
    QCOMPARE(series.size(), size_t(4));
    QCOMPARE(series[0].name, std::string("loss"));
    QCOMPARE(series[0].level, std::string("outer"));
    QCOMPARE(series[0].block, -1);
    QCOMPARE(series[0].clock, 1);
    QCOMPARE(series[0].points.size(), size_t(10));
    QCOMPARE(series[0].points[9].first, int64_t(9));
    QCOMPARE(series[0].points[9].second, 42.0);
    QCOMPARE(series[0].points[3].second, 0.25);
    QCOMPARE(series[1].level, std::string("cms2"));
    QCOMPARE(series[1].block, 1);
    QCOMPARE(series[1].clock, 4);
    QCOMPARE(series[2].clock, 16);
    QCOMPARE(series[3].name, std::string("grad_norm"));
    QVERIFY(std::isnan(series[3].points.at(0).second));

    auto acc = s->accuracy(id);
    QCOMPARE(acc.size(), size_t(3));
    QCOMPARE(acc[2].after_task, 1);
    QCOMPARE(acc[2].task, 1);
    QCOMPARE(acc[2].acc, 0.86);
    QCOMPARE(acc[2].task_il_acc, 0.91);
    auto ev = s->evals(id);
    QCOMPARE(ev.size(), size_t(2));
    QCOMPARE(ev[1].step, int64_t(200));
    QCOMPARE(ev[1].current_task, 1);
    QCOMPARE(ev[1].acc, 0.6);
    auto ck = s->checkpoints(id);
    QCOMPARE(ck.size(), size_t(2));
    QCOMPARE(hl::name(ck[1].kind), std::string("last"));
    QCOMPARE(ck[1].step, int64_t(200));
    QCOMPARE(ck[1].metric, 0.6);
    auto run = s->getRun(id);
    QCOMPARE(hl::name(run->status), std::string("finished"));
    QVERIFY(run->finished_at > 0);
    QCOMPARE(run->summary_json, std::string(R"({"final_avg_acc":0.675})"));
  }

  void writerFlushMakesRowsVisibleToOtherConnections() {
    const std::string path = freshPath();
    auto writerSide = RunStore::open(path);
    const int64_t id = writerSide->createRun(sampleRun());
    auto reader = RunStore::open(path);  // a second connection, as the GUI has
    RunWriter w(path, id);
    for (int round = 1; round <= 3; ++round) {
      for (int k = 0; k < 7000; ++k)  // more than one 5,000-row batch
        w.point("loss", "outer", -1, 1, (round - 1) * 7000 + k, 0.5);
      w.flush();
      auto series = reader->series(id);
      QCOMPARE(series.size(), size_t(1));
      QCOMPARE(series[0].points.size(), size_t(round * 7000));
    }
  }

  // Regression: opening a second connection (the RunWriter beside the trainer's RunStore) used to
  // read the file header with fopen/fclose, which drops every POSIX lock this process holds on the
  // file; another process closing its connection then checkpointed and deleted the WAL under the
  // writer, and every later commit vanished.
  void anotherProcessClosingItsConnectionNeverLosesOurCommits() {
    const std::string path = freshPath();
    auto store = RunStore::open(path);
    const int64_t id = store->createRun(sampleRun());
    RunWriter w(path, id);
    // A separate program (not a fork: a forked child shares SQLite's per-process lock state).
    auto count_in_child = [&] {
      QProcess p;
      p.start("sqlite3", {QString::fromStdString(path), "SELECT count(*) FROM points"});
      if (!p.waitForFinished(30000) || p.exitCode() != 0) return -1;
      return QString::fromUtf8(p.readAllStandardOutput()).trimmed().toInt() / 100;
    };
    for (int round = 1; round <= 3; ++round) {
      for (int k = 0; k < 100; ++k) w.point("loss", "outer", -1, 1, (round - 1) * 100 + k, 1.0);
      w.flush();
      QCOMPARE(count_in_child(), round);
      QVERIFY(QFile::exists(QString::fromStdString(path + "-wal")));
    }
  }

  // Issue 12: the app lost its locks when anything else in the process opened and closed the
  // database file (the file dialog's MIME sniffing, QFile, fopen, a thumbnailer reading the WAL):
  // closing ANY descriptor of a file drops every classic POSIX lock the process holds on it. A
  // CLI run closing its connection then checkpointed and deleted the WAL under the app ("disk I/O
  // error" on every later launch, commits invisible to other processes). The store's locks must
  // survive every such open/close; the peer is the sqlite3 shell (classic locks) or this binary
  // re-executed (Hope Lab's own store code).
  void foreignOpenAndCloseInThisProcessKeepsOurLocks_data() {
    QTest::addColumn<QString>("peer");
    QTest::newRow("sqlite3 shell") << "sqlite3";
    QTest::newRow("hopelab store") << "hopelab";
  }
  void foreignOpenAndCloseInThisProcessKeepsOurLocks() {
    QFETCH(QString, peer);
    const std::string path = freshPath();
    const QString qpath = QString::fromStdString(path);
    auto store = RunStore::open(path);
    auto reader = RunStore::open(path);  // the GUI's polling reader: a second connection
    const int64_t id = store->createRun(sampleRun());
    RunWriter w(path, id);
    for (int k = 0; k < 100; ++k) w.point("loss", "outer", -1, 1, k, 1.0);
    w.flush();
    QCOMPARE(reader->series(id).at(0).points.size(), size_t(100));

    // Every way this process may touch the files besides SQLite.
    QMimeDatabase mimes;
    (void)mimes.mimeTypeForFile(qpath);                               // the file dialog's probe
    (void)mimes.mimeTypeForFile(qpath, QMimeDatabase::MatchContent);  // reads the header
    for (const char* suffix : {"", "-wal", "-shm"}) {
      QFile f(qpath + suffix);
      QVERIFY2(f.open(QIODevice::ReadOnly), suffix);
      (void)f.read(100);
      f.close();
      if (FILE* c = std::fopen((path + suffix).c_str(), "rb")) std::fclose(c);
      int fd = ::open((path + suffix).c_str(), O_RDONLY);
      QVERIFY(fd >= 0);
      ::close(fd);
    }

    // Our locks are still held: /proc/locks lists locks on the database's inode.
    struct stat st {};
    QVERIFY(::stat(path.c_str(), &st) == 0);
    std::ifstream locks("/proc/locks");
    int heldOnDb = 0;
    for (std::string line; std::getline(locks, line);) {
      std::istringstream fields(line);
      std::string f;
      for (int i = 0; i < 6 && fields >> f; ++i) {
      }  // "N: KIND ADVISORY TYPE PID MAJ:MIN:INODE"
      heldOnDb += f.size() > 1 && f.substr(f.rfind(':') + 1) == std::to_string(st.st_ino);
    }
    QVERIFY2(heldOnDb > 0, "no lock of this process on the database file");

    // Another process writes and closes its connection: it must see that we still hold the file,
    // so it leaves the WAL in place.
    QProcess p;
    if (peer == "sqlite3") {
      p.start("sqlite3", {qpath,
                          "PRAGMA busy_timeout=10000; INSERT INTO runs(status, name) "
                          "VALUES('finished', 'from the peer');"});
    } else {
      QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
      env.insert("HL_TEST_STORE_PEER", qpath);
      p.setProcessEnvironment(env);
      p.start(QCoreApplication::applicationFilePath(), {});
    }
    QVERIFY(p.waitForFinished(60000));
    QVERIFY2(p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0, p.readAllStandardError().constData());
    QVERIFY2(QFile::exists(qpath + "-wal"), "the peer deleted the WAL: our locks were gone");

    // We read and write on: nothing lost, no I/O error, the peer's run visible.
    try {
      for (int k = 100; k < 200; ++k) w.point("loss", "outer", -1, 1, k, 2.0);
      w.flush();
      store->setNotes(id, "written after the peer closed");
      bool sawPeer = false;
      for (const auto& r : reader->listRuns()) sawPeer |= r.name == "from the peer";
      QVERIFY(sawPeer);
      QCOMPARE(reader->series(id).at(0).points.size(), size_t(200));
      QCOMPARE(reader->getRun(id)->notes, std::string("written after the peer closed"));
    } catch (const hl::StoreError& e) {
      QFAIL(e.what());
    }
    // ... and so does a fresh process: our commits reached the shared WAL.
    QProcess count;
    count.start("sqlite3", {qpath, QString("SELECT count(*) FROM points JOIN series ON series.id = "
                                           "points.series_id WHERE series.run_id = %1; SELECT notes "
                                           "FROM runs WHERE id = %1;")
                                       .arg(id)});
    QVERIFY(count.waitForFinished(30000));
    QCOMPARE(QString::fromUtf8(count.readAllStandardOutput()).trimmed(), QString("200\nwritten after the peer closed"));
  }

  void writerCommitsWithoutFlushWithinAFewBatchIntervals() {
    const std::string path = freshPath();
    auto s = RunStore::open(path);
    const int64_t id = s->createRun(sampleRun());
    RunWriter w(path, id);
    w.point("loss", "outer", -1, 1, 0, 1.0);
    QTRY_COMPARE_WITH_TIMEOUT(s->series(id).size(), size_t(1), 3000);  // batches every ~200 ms
  }

  void writerErrorIsRethrownFromFlushNotFromProducer() {
    const std::string path = freshPath();
    auto s = RunStore::open(path);
    const int64_t id = s->createRun(sampleRun());
    RunWriter w(path, id);
    w.point("loss", "outer", -1, 1, 0, 1.0);
    w.flush();
    s->deleteRun(id);
    // The producer keeps going; the writer thread hits the foreign key / missing run.
    for (int k = 1; k < 100; ++k) w.point("loss", "outer", -1, 1, k, 1.0);
    w.point("new_series", "outer", -1, 1, 0, 1.0);
    const std::string err = storeErrorOf([&] { w.flush(); });
    qInfo("%s", err.c_str());
    QVERIFY2(err.find("run " + std::to_string(id)) != std::string::npos, err.c_str());
    const std::string again = storeErrorOf([&] { w.finish(hl::RunStatus::Finished); });
    QCOMPARE(again, err);  // the first error stays
  }

  void writerRefusesMissingRun() {
    const std::string path = freshPath();
    makeStore(path, 1);
    const std::string err = storeErrorOf([&] { RunWriter w(path, 999); });
    QVERIFY2(err.find("999") != std::string::npos && err.find(path) != std::string::npos, err.c_str());
  }

  // Confusion matrices (schema 3): written through the writer, read back whole (zeros included,
  // only non-zero cells stored), a task end written again replaces its matrix, deleteRun removes them.
  void confusionMatricesRoundTrip() {
    const std::string path = freshPath();
    auto s = RunStore::open(path);
    const int64_t id = s->createRun(sampleRun());
    const auto m0 = confusionOf(0, {7, 3}, {4, 0, 1, 3});
    const auto m1 = confusionOf(1, {7, 3, 9, 1}, {2, 0, 2, 0, 0, 3, 1, 0, 0, 0, 4, 0, 1, 0, 0, 3});
    auto m1b = m1;
    m1b.counts[0] = 1;
    m1b.counts[1] = 1;
    {
      RunWriter w(path, id);
      w.confusion(m0);
      w.confusion(m1);
      w.confusion(m1b);  // the same task end again (a resumed run): replaces it
    }
    const auto got = s->confusion(id);
    QCOMPARE(got.size(), size_t(2));
    QVERIFY(sameMatrix(got[0], m0));
    QVERIFY(sameMatrix(got[1], m1b));
    QCOMPARE(got[1].rowSum(0), int64_t(4));
    QCOMPARE(got[1].taskAccuracy(0), 4.0 / 8.0);  // (1 + 3) of (4 + 4)
    QCOMPARE(s->confusion(id, 1).size(), size_t(1));
    QVERIFY(s->confusion(id, 5).empty());
    Raw raw(path);
    QCOMPARE(raw.integer("SELECT count(*) FROM confusion WHERE run_id=" + std::to_string(id) + " AND after_task=1"),
             int64_t(8));  // the non-zero cells of m1b
    QCOMPARE(raw.integer("SELECT count(*) FROM confusion_classes WHERE run_id=" + std::to_string(id)), int64_t(6));
    QCOMPARE(raw.text("SELECT name FROM confusion_classes WHERE after_task=1 AND position=2"), std::string("intent_9"));
    s->deleteRun(id);
    QCOMPARE(raw.integer("SELECT count(*) FROM confusion"), int64_t(0));
    QCOMPARE(raw.integer("SELECT count(*) FROM confusion_classes"), int64_t(0));
  }

  void refusesDamagedConfusionCells() {
    const std::string path = freshPath();
    auto s = RunStore::open(path);
    const int64_t id = s->createRun(sampleRun());
    {
      RunWriter w(path, id);
      w.confusion(confusionOf(0, {1, 2}, {1, 0, 0, 1}));
    }
    Raw(path).exec("INSERT INTO confusion VALUES (" + std::to_string(id) + ", 0, 1, 55, 3)");  // class 55: not listed
    const std::string err = storeErrorOf([&] { s->confusion(id); });
    QVERIFY2(err.find(path) != std::string::npos && err.find("run " + std::to_string(id)) != std::string::npos &&
                 err.find("outside its matrix") != std::string::npos,
             err.c_str());
  }

  // A database written by schema 2 (before confusion matrices) opens: migrated to this build's
  // version in place, its runs and rows kept, the new tables there and empty; `check_tables` is satisfied.
  void opensVersion2DatabaseAddingConfusionTables() {
    const std::string path = freshPath();
    {
      Raw raw(path);
      raw.exec(schema::migrations().at(0).sql);
      raw.exec(schema::migrations().at(1).sql);
      raw.exec("PRAGMA application_id = " + std::to_string(schema::kApplicationId) + "; PRAGMA user_version = 2;");
      raw.exec("INSERT INTO runs (status, name, uuid) VALUES ('finished', 'v2-run', 'u-v2')");
      raw.exec("INSERT INTO accuracy VALUES (1, 0, 0, 0.75, 0.8)");
    }
    auto s = RunStore::open(path);
    QCOMPARE(s->schemaVersion(), schema::kVersion);
    QCOMPARE(schema::kVersion, 4);
    const auto r = s->getRunByUuid("u-v2");
    QVERIFY(r.has_value());
    QCOMPARE(s->accuracy(r->id).size(), size_t(1));
    QVERIFY(s->confusion(r->id).empty());
    Raw raw(path);
    QCOMPARE(raw.integer("PRAGMA user_version"), int64_t(4));
    for (const char* t : {"confusion", "confusion_classes", "ablations"})
      QCOMPARE(raw.integer(std::string("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='") + t + "'"),
               int64_t(1));
    RunWriter w(path, r->id);  // and takes new matrices
    w.confusion(confusionOf(0, {4, 5}, {2, 0, 0, 2}));
    w.flush();
    QCOMPARE(s->confusion(r->id).size(), size_t(1));
  }

  // `runs merge` carries a run's confusion matrices with it, once: merging again copies nothing.
  void mergeCarriesConfusionMatricesOnce() {
    const std::string shard = freshPath(), into = freshPath();
    std::string uuid;
    {
      auto s = RunStore::open(shard);
      const int64_t id = s->createRun(sampleRun());
      uuid = s->getRun(id)->uuid;
      RunWriter w(shard, id);
      w.accuracy({0, 0, 0.5, 0.5});
      w.confusion(confusionOf(0, {2, 8}, {1, 1, 0, 2}));
      w.confusion(confusionOf(1, {2, 8, 6, 4}, {1, 0, 1, 0, 0, 2, 0, 0, 0, 0, 2, 0, 1, 0, 0, 1}));
      w.finish(hl::RunStatus::Finished);
    }
    auto target = RunStore::open(into);
    const MergeReport first = target->merge(shard);
    QCOMPARE(first.added, 1);
    QCOMPARE(first.confusion_matrices, int64_t(2));
    const MergeReport second = target->merge(shard);
    QCOMPARE(second.added, 0);
    QCOMPARE(second.unchanged, 1);
    QCOMPARE(second.confusion_matrices, int64_t(0));
    const auto here = target->getRunByUuid(uuid);
    QVERIFY(here.has_value());
    auto src = RunStore::open(shard);
    const auto a = target->confusion(here->id), b = src->confusion(src->getRunByUuid(uuid)->id);
    QCOMPARE(a.size(), size_t(2));
    for (size_t k = 0; k < a.size(); ++k) QVERIFY(sameMatrix(a[k], b[k]));
    Raw raw(into);
    QCOMPARE(raw.integer("SELECT count(*) FROM confusion"), int64_t(9));  // 3 + 6 non-zero cells, once
    QCOMPARE(raw.integer("SELECT count(*) FROM confusion_classes"), int64_t(6));
  }

  // Test-time ablations (schema 4, `evaluate --record`): recorded per run, override set and
  // checkpoint, the same key again replaces; a run that does not exist is refused; a schema-3
  // database migrates; `runs merge` unites them whatever happens to the run itself (a record the
  // target lacks is added, the newer of two replaces the older, merging again changes nothing);
  // deleting the run deletes them.
  void ablationsAreRecordedReplacedMergedAndDeleted() {
    const std::string path = freshPath();
    {
      Raw raw(path);
      for (int v = 0; v < 3; ++v) raw.exec(schema::migrations().at(size_t(v)).sql);
      raw.exec("PRAGMA application_id = " + std::to_string(schema::kApplicationId) + "; PRAGMA user_version = 3;");
      raw.exec("INSERT INTO runs (status, name, uuid) VALUES ('finished', 'v3-run', 'u-v3')");
    }
    auto s = RunStore::open(path);
    QCOMPARE(s->schemaVersion(), 4);
    const int64_t id = s->getRunByUuid("u-v3")->id;
    QVERIFY(s->ablations(id).empty());
    s->recordAblation(id, {"model.blocks.0.memory_writes=false", "last", R"({"mean":{"ablated":0.5}})", "v1", 10});
    s->recordAblation(id, {"model.blocks.0.memory_writes=false", "best", "{}", "v1", 11});
    s->recordAblation(id, {"model.blocks.0.memory_writes=false", "last", R"({"mean":{"ablated":0.6}})", "v2", 12});
    auto a = s->ablations(id);
    QCOMPARE(a.size(), size_t(2));
    QCOMPARE(QString::fromStdString(a[0].checkpoint), QString("best"));
    QCOMPARE(QString::fromStdString(a[1].result_json), QString(R"({"mean":{"ablated":0.6}})"));
    QCOMPARE(QString::fromStdString(a[1].app_version), QString("v2"));
    QCOMPARE(a[1].created_at, 12.0);
    bool refused = false;
    try {
      s->recordAblation(id + 100, {"x=1", "last", "{}", "v", 0});
    } catch (const hl::StoreError& e) {
      refused = std::string(e.what()).find("does not exist") != std::string::npos;
    }
    QVERIFY(refused);
    s->recordAblation(id, {"y=1", "last", "{}", "v", 0});  // created_at 0: now
    QVERIFY(s->ablations(id).back().created_at > 1e9);

    // Merge: the shard's copy of the run holds one newer record (replaces), one older (ignored)
    // and one the target lacks (added); the run itself is identical (unchanged).
    const std::string shard = freshPath();
    {
      auto sh = RunStore::open(shard);
      RunRecord r = *s->getRun(id);
      const int64_t sid = sh->createRun(r);
      sh->recordAblation(sid, {"model.blocks.0.memory_writes=false", "last", R"({"mean":{"ablated":0.7}})", "v3", 20});
      sh->recordAblation(sid, {"model.blocks.0.memory_writes=false", "best", "{old}", "v0", 5});
      sh->recordAblation(sid, {"z=2", "last", "{}", "v3", 21});
    }
    const MergeReport m = s->merge(shard);
    QCOMPARE(m.ablations, int64_t(2));
    a = s->ablations(id);
    QCOMPARE(a.size(), size_t(4));
    QCOMPARE(QString::fromStdString(a[0].result_json), QString("{}"));  // best: the target's newer one stays
    QCOMPARE(QString::fromStdString(a[1].result_json), QString(R"({"mean":{"ablated":0.7}})"));
    QCOMPARE(QString::fromStdString(a[3].overrides), QString("z=2"));
    QCOMPARE(s->merge(shard).ablations, int64_t(0));
    s->deleteRun(id);
    Raw raw(path);
    QCOMPARE(raw.integer("SELECT count(*) FROM ablations"), int64_t(0));
  }

  // A checkpoint path stored relative to the training process's working directory (builds
  // before 2026-12-08 with `--db runs.db`) is read as the folder beside the database; absolute
  // paths and relative ones that name no such folder are returned as stored.
  void relativeCheckpointPathsAreReadBesideTheDatabase() {
    const std::string path = freshPath();
    auto s = RunStore::open(path);
    const int64_t id = s->createRun(sampleRun());
    const std::string name = std::filesystem::path(path).filename().string();
    {
      RunWriter w(path, id);
      w.checkpoint({hl::CheckpointKind::Last, name + ".checkpoints/run-1/last.pt", 1, 0, 0});
      w.checkpoint({hl::CheckpointKind::Best, "sub/" + name + ".checkpoints/run-1/best.pt", 1, 0, 0});
      w.checkpoint({hl::CheckpointKind::Snapshot, "/abs/" + name + ".checkpoints/run-1/snapshot-task0.pt", 1, 0, 0});
      w.checkpoint({hl::CheckpointKind::Snapshot, "other.db.checkpoints/run-1/snapshot-task1.pt", 2, 1, 0});
      w.flush();
    }
    const std::string beside = std::filesystem::absolute(path).lexically_normal().string() + ".checkpoints/run-1/";
    std::map<std::string, std::string> got;
    for (const auto& c : s->checkpoints(id)) got[std::filesystem::path(c.path).filename().string()] = c.path;
    QCOMPARE(QString::fromStdString(got["last.pt"]), QString::fromStdString(beside + "last.pt"));
    QCOMPARE(QString::fromStdString(got["best.pt"]), QString::fromStdString(beside + "best.pt"));
    QCOMPARE(QString::fromStdString(got["snapshot-task0.pt"]),
             QString::fromStdString("/abs/" + name + ".checkpoints/run-1/snapshot-task0.pt"));
    QCOMPARE(QString::fromStdString(got["snapshot-task1.pt"]), QString("other.db.checkpoints/run-1/snapshot-task1.pt"));
  }

  void deleteRunRemovesEveryRow() {
    const std::string path = freshPath();
    auto s = RunStore::open(path);
    const int64_t gone = s->createRun(sampleRun());
    const int64_t kept = s->createRun(sampleRun());
    for (int64_t id : {gone, kept}) {
      RunWriter w(path, id);
      w.point("loss", "outer", -1, 1, 0, 1.0);
      w.point("drift", "cms1", 0, 4, 4, 0.1);
      w.accuracy({0, 0, 0.9, 0.9});
      w.eval({10, 0, 0, 0.8});
      w.checkpoint({hl::CheckpointKind::Last, "/x.pt", 10, 0, 0.8});
    }
    s->deleteRun(gone);
    QVERIFY(!s->getRun(gone).has_value());
    Raw raw(path);
    const std::string g = std::to_string(gone), k = std::to_string(kept);
    for (const std::string& table : {"series", "accuracy", "evals", "checkpoints"}) {
      QCOMPARE(raw.integer("SELECT count(*) FROM " + table + " WHERE run_id=" + g), int64_t(0));
      QVERIFY(raw.integer("SELECT count(*) FROM " + table + " WHERE run_id=" + k) > 0);
    }
    QCOMPARE(raw.integer("SELECT count(*) FROM points"), int64_t(2));  // kept run's only
    QCOMPARE(s->series(kept).size(), size_t(2));
    QCOMPARE(raw.text("PRAGMA foreign_key_check"), std::string());
  }

  // A damaged file's task indices would size a huge T x T matrix or array in every reader (found
  // while writing fuzz_store; docs/RELIABILITY.md): refused with the path and the run, like any damage.
  void refusesAccuracyCellsBeyondTheTaskLimit_data() {
    QTest::addColumn<qint64>("after_task");
    QTest::addColumn<qint64>("task");
    QTest::newRow("int max") << qint64(2147483647) << qint64(0);
    QTest::newRow("beyond int") << qint64(1) << qint64(int64_t(1) << 40);
    QTest::newRow("negative") << qint64(-1) << qint64(0);
    QTest::newRow("limit") << qint64(hl::store::kMaxTasks) << qint64(0);
  }

  void refusesAccuracyCellsBeyondTheTaskLimit() {
    QFETCH(qint64, after_task);
    QFETCH(qint64, task);
    const std::string path = freshPath();
    auto s = RunStore::open(path);
    const int64_t id = s->createRun(sampleRun());
    {
      RunWriter w(path, id);
      w.accuracy({0, 0, 0.9, 0.9});
      w.accuracy({hl::store::kMaxTasks - 1, 0, 0.5, 0.5});  // the largest index allowed
    }
    QCOMPARE(s->accuracy(id).size(), size_t(2));
    QCOMPARE(s->evals(id).size(), size_t(0));
    const std::string run = std::to_string(id), a = std::to_string(after_task), t = std::to_string(task);
    Raw(path).exec("INSERT INTO accuracy(run_id, after_task, task, acc) VALUES (" + run + ", " + a + ", " + t +
                   ", 0.5); INSERT INTO evals(run_id, step, current_task, task, acc) VALUES (" + run + ", 1, " + a +
                   ", " + t + ", 0.5)");
    for (const char* what : {"accuracy", "evals"}) {
      try {
        if (std::string(what) == "accuracy")
          s->accuracy(id);
        else
          s->evals(id);
        QFAIL((std::string("no error from ") + what).c_str());
      } catch (const hl::StoreError& e) {
        const std::string msg = e.what();
        QVERIFY2(msg.find(path) != std::string::npos && msg.find("run " + run) != std::string::npos &&
                     msg.find("damaged") != std::string::npos,
                 e.what());
      }
    }
  }

  // ---- the interrupted rule --------------------------------------------------------------------

  // ---- merging databases (runs merge: the shards of a Slurm job array) -------------------------

  // A run with every kind of row: `n` loss points, a 2x2 accuracy matrix, evals, two checkpoints.
  int64_t fullRun(const std::string& path, const std::string& model, hl::RunStatus status, int n) {
    auto s = RunStore::open(path);
    RunRecord r = sampleRun("banking77", model);
    r.status = hl::RunStatus::Running;
    r.tags = {"sweep:t", model};
    r.notes = "from " + model;
    const int64_t id = s->createRun(r);
    RunWriter w(path, id);
    for (int step = 0; step < n; ++step) w.point("loss", "outer", -1, 1, step, 1.0 / (step + 1));
    w.point("drift", "cms1", 0, 4, 4, std::nan(""));
    w.accuracy({0, 0, 0.9, 0.9});
    w.accuracy({1, 0, 0.4, 0.8});
    w.accuracy({1, 1, 0.7, 0.75});
    w.eval({10, 0, 0, 0.8});
    w.eval({20, 1, 0, 0.5});
    w.checkpoint({hl::CheckpointKind::Last, path + ".checkpoints/run-" + std::to_string(id) + "/last.pt", 20, 1, 0.5});
    w.checkpoint({hl::CheckpointKind::Best, path + ".checkpoints/run-" + std::to_string(id) + "/best.pt", 10, 0, 0.8});
    w.summary("{\"final_avg_acc\":0.55,\"model\":\"" + model + "\"}");
    w.finish(status);
    return id;
  }

  static int64_t count(const std::string& path, const std::string& table) {
    Raw raw(path);
    return raw.integer("SELECT count(*) FROM " + table);
  }

  void mergeCopiesShardsOnceMatchedByUuid() {
    const std::string a = freshPath(), b = freshPath(), into = freshPath();
    fullRun(a, "lstm", hl::RunStatus::Finished, 30);
    fullRun(a, "transformer", hl::RunStatus::Finished, 20);
    fullRun(b, "hope", hl::RunStatus::Finished, 25);
    const int64_t unfinished = fullRun(b, "titans", hl::RunStatus::Interrupted, 5);
    auto target = RunStore::open(into);
    const int64_t local = target->createRun(sampleRun());  // a run of the target's own stays as it is
    // Meanwhile, as with the app open and a CLI training into the same file: a second connection
    // reads, a writer streams points into the local run.
    auto gui = RunStore::open(into);
    std::atomic<bool> stop{false};
    std::thread training([&] {
      RunWriter w(into, local);
      for (int64_t step = 0; !stop; ++step) {
        w.point("loss", "outer", -1, 1, step, 0.5);
        if (step % 50 == 0) w.flush();
      }
    });

    MergeReport ra = target->merge(a);
    QCOMPARE(int(gui->listRuns().size()), 3);
    QCOMPARE(ra.added, 2);
    QCOMPARE(ra.updated + ra.unchanged + ra.kept, 0);
    QCOMPARE(ra.points, int64_t(30 + 1 + 20 + 1));
    QCOMPARE(ra.accuracy_cells, int64_t(6));
    QCOMPARE(ra.evals, int64_t(4));
    QCOMPARE(ra.checkpoints, int64_t(4));
    MergeReport rb = target->merge(b);
    QCOMPARE(rb.added, 2);
    QCOMPARE(rb.points, int64_t(25 + 1 + 5 + 1));
    stop = true;
    training.join();
    QCOMPARE(int(gui->listRuns().size()), 5);
    target->deleteRun(local);  // its points were the writer's; what follows counts the merged rows
    QCOMPARE(int(target->listRuns().size()), 4);
    QCOMPARE(count(into, "points"), int64_t(52 + 32));
    QCOMPARE(count(into, "series"), int64_t(8));
    QCOMPARE(count(into, "accuracy"), int64_t(12));
    QCOMPARE(count(into, "evals"), int64_t(8));
    QCOMPARE(count(into, "checkpoints"), int64_t(8));

    // Every run's copy equals the shard's: record (but its id), series, matrix, evals, checkpoints.
    for (const std::string& shard : {a, b}) {
      auto src = RunStore::open(shard);
      for (const RunRecord& r : src->listRuns()) {
        auto got = target->getRunByUuid(r.uuid);
        QVERIFY(got.has_value());
        QVERIFY(got->id != local);
        QCOMPARE(hl::name(got->status), hl::name(r.status));
        QCOMPARE(got->name, r.name);
        QCOMPARE(got->tags, r.tags);
        QCOMPARE(got->notes, r.notes);
        QCOMPARE(got->summary_json, r.summary_json);
        QCOMPARE(got->created_at, r.created_at);
        QCOMPARE(got->finished_at, r.finished_at);
        QCOMPARE(got->host, r.host);
        QCOMPARE(got->pid, r.pid);
        const auto ss = src->series(r.id), gs = target->series(got->id);
        QCOMPARE(gs.size(), ss.size());
        for (size_t i = 0; i < ss.size(); ++i) {
          QCOMPARE(gs[i].name, ss[i].name);
          QCOMPARE(gs[i].level, ss[i].level);
          QCOMPARE(gs[i].clock, ss[i].clock);
          QCOMPARE(gs[i].points.size(), ss[i].points.size());
          for (size_t k = 0; k < ss[i].points.size(); ++k) {
            QCOMPARE(gs[i].points[k].first, ss[i].points[k].first);
            const double x = gs[i].points[k].second, y = ss[i].points[k].second;
            QVERIFY(x == y || (std::isnan(x) && std::isnan(y)));
          }
        }
        const auto sa = src->accuracy(r.id), ga = target->accuracy(got->id);
        QCOMPARE(ga.size(), sa.size());
        for (size_t i = 0; i < sa.size(); ++i) QCOMPARE(ga[i].acc, sa[i].acc);
        QCOMPARE(target->evals(got->id).size(), src->evals(r.id).size());
        const auto sc = src->checkpoints(r.id), gc = target->checkpoints(got->id);
        QCOMPARE(gc.size(), sc.size());
        for (size_t i = 0; i < sc.size(); ++i) QCOMPARE(gc[i].path, sc[i].path);  // the shard's files
      }
    }

    // A second merge adds nothing.
    for (const std::string& shard : {a, b}) {
      MergeReport again = target->merge(shard);
      QCOMPARE(again.added, 0);
      QCOMPARE(again.updated, 0);
      QCOMPARE(again.kept, 0);
      QCOMPARE(again.unchanged, 2);
      QCOMPARE(again.points, int64_t(0));
    }
    QCOMPARE(int(target->listRuns().size()), 4);
    QCOMPARE(count(into, "points"), int64_t(84));

    // The unfinished run goes on in its shard and finishes: its finished copy replaces the target's
    // interrupted one (same id here), and the notes edited here stay.
    const std::string uuid = RunStore::open(b)->getRun(unfinished)->uuid;
    const int64_t here = target->getRunByUuid(uuid)->id;
    target->setNotes(here, "edited in the GUI");
    {
      auto sb = RunStore::open(b);
      sb->resumeRun(unfinished, current_pid(), current_host(), process_start_time(current_pid()));
      RunWriter w(b, unfinished);
      for (int step = 5; step < 40; ++step) w.point("loss", "outer", -1, 1, step, 0.01 * step);
      w.summary(R"({"final_avg_acc":0.61})");
      w.finish(hl::RunStatus::Finished);
    }
    MergeReport upd = target->merge(b);
    QCOMPARE(upd.updated, 1);
    QCOMPARE(upd.unchanged, 1);
    QCOMPARE(upd.added, 0);
    auto now = target->getRunByUuid(uuid);
    QCOMPARE(now->id, here);
    QCOMPARE(hl::name(now->status), std::string("finished"));
    QCOMPARE(now->summary_json, std::string(R"({"final_avg_acc":0.61})"));
    QCOMPARE(now->notes, std::string("edited in the GUI"));
    QCOMPARE(target->series(here).at(0).points.size(), size_t(40));
    QCOMPARE(count(into, "points"), int64_t(84 + 35));
    QCOMPARE(target->merge(b).unchanged, 2);

    // A finished copy here is never replaced by an unfinished one (an older shard, say): kept, said.
    RunStore::open(b)->setStatus(unfinished, hl::RunStatus::Interrupted);
    MergeReport kept = target->merge(b);
    QCOMPARE(kept.kept, 1);
    QCOMPARE(kept.updated, 0);
    QCOMPARE(int(kept.kept_why.size()), 1);
    QVERIFY2(kept.kept_why[0].find(uuid) != std::string::npos, kept.kept_why[0].c_str());
    QCOMPARE(hl::name(target->getRunByUuid(uuid)->status), std::string("finished"));
    QCOMPARE(int(target->listRuns().size()), 4);
  }

  // An old shard (schema 1, no UUIDs) is migrated in place on the first merge, so the UUIDs its
  // runs get then are theirs in every later merge: merging it again adds nothing.
  void mergeOfAnOldShardIsIdempotent() {
    const std::string old = freshPath(), into = freshPath();
    {
      Raw raw(old);
      raw.exec(schema::migrations().at(0).sql);
      raw.exec("PRAGMA application_id = " + std::to_string(schema::kApplicationId) + "; PRAGMA user_version = 1;");
      raw.exec("INSERT INTO runs (status, name) VALUES ('finished', 'v1-a'), ('finished', 'v1-b')");
      raw.exec(
          "INSERT INTO series (id, run_id, name) VALUES (1, 1, 'loss');"
          "INSERT INTO points VALUES (1, 0, 0.5), (1, 1, 0.25)");
    }
    auto target = RunStore::open(into);
    MergeReport first = target->merge(old);
    QCOMPARE(first.added, 2);
    QCOMPARE(first.points, int64_t(2));
    MergeReport second = target->merge(old);
    QCOMPARE(second.added, 0);
    QCOMPARE(second.unchanged, 2);
    QCOMPARE(int(target->listRuns().size()), 2);
    Raw raw(old);
    QCOMPARE(raw.integer("PRAGMA user_version"), int64_t(schema::kVersion));
  }

  void mergeRefusesWhatIsNotAShardNamingIt_data() {
    QTest::addColumn<QString>("kind");
    QTest::addColumn<QString>("expected");
    QTest::newRow("missing") << "missing"
                             << "no such file";
    QTest::newRow("empty file") << "empty-file"
                                << "empty file";
    QTest::newRow("empty SQLite database") << "empty-db"
                                           << "empty SQLite database";
    QTest::newRow("text file") << "text"
                               << "not a SQLite file";
    QTest::newRow("another application's") << "foreign"
                                           << "another application";
    QTest::newRow("newer schema") << "newer"
                                  << "newer than this Hope Lab build";
    QTest::newRow("the target itself") << "self"
                                       << "the database being merged into";
  }
  void mergeRefusesWhatIsNotAShardNamingIt() {
    QFETCH(QString, kind);
    QFETCH(QString, expected);
    const std::string into = freshPath();
    std::string shard = freshPath();
    auto target = RunStore::open(into);
    target->createRun(sampleRun());
    if (kind == "empty-file") writeFile(shard, "");
    if (kind == "empty-db") Raw(shard).exec("CREATE TABLE x (a INTEGER); DROP TABLE x;");  // pages, no tables
    if (kind == "text") writeFile(shard, "id,acc\n1,0.5\n");
    if (kind == "foreign") Raw(shard).exec("CREATE TABLE customers (id INTEGER);");
    if (kind == "newer") {
      makeStore(shard, 1);
      Raw(shard).exec("PRAGMA user_version = " + std::to_string(schema::kVersion + 1));
    }
    if (kind == "self") shard = into;
    const bool existed = QFile::exists(QString::fromStdString(shard));
    const std::string before = existed ? hl::sha256_file(shard) : "";
    const std::string err = storeErrorOf([&] { target->merge(shard); });
    qInfo("%s", err.c_str());
    QVERIFY2(err.find(shard) != std::string::npos, err.c_str());
    QVERIFY2(err.find(expected.toStdString()) != std::string::npos, err.c_str());
    QCOMPARE(int(target->listRuns().size()), 1);
    QCOMPARE(QFile::exists(QString::fromStdString(shard)), existed);  // a missing shard is not created
    if (existed && kind != "self") QCOMPARE(hl::sha256_file(shard), before);
  }

  // The CPU a run's summary records: /proc/cpuinfo's model name with vendor, family and model (the
  // name alone, "AMD EPYC", hides the generation), the same as the file's own first lines.
  void cpuIdentityReadsProcCpuinfo() {
    QFile f("/proc/cpuinfo");
    if (!f.open(QIODevice::ReadOnly)) QSKIP("no /proc/cpuinfo here");
    QString name, family, model;
    for (const QByteArray& raw : f.readAll().split('\n')) {
      const QString line = QString::fromUtf8(raw);
      const auto kv = line.split(':');
      if (kv.size() < 2) {
        if (!name.isEmpty()) break;
        continue;
      }
      const QString k = kv[0].trimmed(), v = line.mid(line.indexOf(':') + 1).trimmed();
      if (k == "model name" && name.isEmpty()) name = v;
      if (k == "cpu family" && family.isEmpty()) family = v;
      if (k == "model" && model.isEmpty()) model = v;
    }
    const QString cpu = QString::fromStdString(current_cpu());
    if (name.isEmpty()) {
      QCOMPARE(cpu, QString("unknown"));
      return;
    }
    QVERIFY2(cpu.startsWith(name + " ("), qPrintable(cpu));
    QVERIFY2(cpu.endsWith(" family " + family + ", model " + model + ")"), qPrintable(cpu));
    QCOMPARE(QString::fromStdString(current_cpu()), cpu);
  }

  void processIdentityReadsProcStat() {
    QCOMPARE(current_pid(), int64_t(getpid()));
    QVERIFY(!current_host().empty());
    QVERIFY(process_start_time(current_pid()) > 0);
    QCOMPARE(process_start_time(current_pid()), process_start_time(current_pid()));
    QCOMPARE(process_start_time(deadPid()), int64_t(0));
    QCOMPARE(process_start_time(0), int64_t(0));
    pid_t zombie = spawn([] { return 0; });  // exited but not reaped yet: counts as gone
    QTRY_COMPARE_WITH_TIMEOUT(process_start_time(zombie), int64_t(0), 5000);
    waitExit(zombie);
  }

  void marksDeadLocalRunsInterruptedOnOpen() {
    const std::string path = freshPath();
    const int64_t dead = deadPid();
    const int64_t me = current_pid(), my_start = process_start_time(me);
    struct Case {
      const char* status;
      std::string host;
      int64_t pid, start;
      const char* expected;
    };
    const std::vector<Case> cases = {
        {"running", current_host(), dead, 1, "interrupted"},           // process gone
        {"running", current_host(), me, my_start, "running"},          // alive
        {"running", current_host(), me, my_start + 1, "interrupted"},  // pid reused by another
        {"running", "some-other-host", dead, 1, "running"},            // not ours to judge
        {"finished", current_host(), dead, 1, "finished"},             // only running runs change
    };
    std::vector<int64_t> ids;
    {
      auto s = RunStore::open(path);
      for (const Case& c : cases) {
        RunRecord r = sampleRun();
        r.status = hl::parse<hl::RunStatus>(c.status, "test");
        r.host = c.host;
        r.pid = c.pid;
        r.process_start = c.start;
        ids.push_back(s->createRun(r));
      }
    }
    const double before = QDateTime::currentMSecsSinceEpoch() / 1000.0;
    auto s = RunStore::open(path);
    for (size_t i = 0; i < cases.size(); ++i) {
      auto r = s->getRun(ids[i]);
      QCOMPARE(hl::name(r->status), std::string(cases[i].expected));
      if (std::string(cases[i].expected) == "interrupted")
        QVERIFY(std::fabs(r->finished_at - before) < 5.0);  // seconds
      else
        QCOMPARE(r->finished_at, 0.0);
    }
    QCOMPARE(s->markInterrupted(), 0);  // already applied by open()
    RunRecord late = sampleRun();       // a run whose process dies while the store is open
    late.status = hl::RunStatus::Running;
    late.pid = deadPid();
    late.process_start = 1;
    const int64_t lateId = s->createRun(late);
    QCOMPARE(s->markInterrupted(), 1);
    QCOMPARE(hl::name(s->getRun(lateId)->status), std::string("interrupted"));
  }

  // ---- concurrency ---------------------------------------------------------------------------------

  void waitsForAnotherWriterInsteadOfFailing() {
    const std::string path = freshPath();
    auto s = RunStore::open(path);
    const int64_t id = s->createRun(sampleRun());
    std::atomic<bool> locked{false};
    std::thread holder([&] {
      Raw raw(path);
      raw.exec("BEGIN IMMEDIATE");
      locked = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      raw.exec("COMMIT");
    });
    while (!locked) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    QElapsedTimer t;
    t.start();
    s->setNotes(id, "written after the lock was released");  // must wait, not fail
    QVERIFY(t.elapsed() >= 1000);                            // ms: it really waited for the other writer
    holder.join();
    QCOMPARE(s->getRun(id)->notes, std::string("written after the lock was released"));
  }

  void concurrentConnectionsInThreadsNeverFail() {
    const std::string path = freshPath();
    makeStore(path, 0);
    constexpr int kRuns = 100, kPoints = 20000;
    std::atomic<bool> done{false};
    std::atomic<int> failures{0};
    std::string firstFailure;
    std::mutex failMu;
    auto guard = [&](const std::function<void()>& body) {
      try {
        body();
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(failMu);
        if (failures++ == 0) firstFailure = e.what();
      }
    };
    auto writer = [&](const std::string& model) {
      guard([&] {
        auto s = RunStore::open(path);  // own connection
        int64_t last = 0;
        for (int i = 0; i < kRuns; ++i) {
          RunRecord r = sampleRun("clinc150", model);
          r.status = hl::RunStatus::Running;
          last = s->createRun(r);
          s->setTags(last, {model, "t" + std::to_string(i)});
        }
        RunWriter w(path, last);
        for (int k = 0; k < kPoints; ++k) w.point("loss", "outer", -1, 1, k, double(k));
        w.finish(hl::RunStatus::Finished);
      });
    };
    std::thread reader([&] {
      guard([&] {
        auto s = RunStore::open(path);
        while (!done) {
          for (const auto& r : s->listRuns()) s->series(r.id);
        }
      });
    });
    std::thread a(writer, "hope"), b(writer, "transformer");
    a.join();
    b.join();
    done = true;
    reader.join();
    QVERIFY2(failures == 0, firstFailure.c_str());
    auto s = RunStore::open(path);
    RunFilter f;
    f.status = hl::RunStatus::Finished;
    auto finished = s->listRuns(f);
    QCOMPARE(finished.size(), size_t(2));
    for (const auto& r : finished) QCOMPARE(s->series(r.id).at(0).points.size(), size_t(kPoints));
    QCOMPARE(s->listRuns().size(), size_t(2 * kRuns));
  }

  void twoProcessesWriteConcurrently() {
    const std::string path = freshPath();  // not created yet: the children race to create it
    constexpr int kRuns = 50, kPoints = 20000;
    auto child = [&](const char* model) {
      return spawn([&path, model] {
        auto s = RunStore::open(path);
        for (int i = 0; i < kRuns; ++i) {
          const int64_t id = s->createRun(sampleRun("banking77", model));
          s->setNotes(id, "from pid " + std::to_string(getpid()));
          RunWriter w(path, id);
          for (int k = 0; k < kPoints / kRuns; ++k) w.point("loss", "outer", -1, 1, k, 1.0);
          w.finish(hl::RunStatus::Finished);
        }
        return 0;
      });
    };
    const pid_t children[2] = {child("hope"), child("lstm")};
    std::map<pid_t, int> exitCode;
    std::unique_ptr<RunStore> s;
    int reads = 0;
    while (exitCode.size() < 2) {  // read while both write
      for (pid_t p : children) {
        int status = 0;
        if (!exitCode.count(p) && waitpid(p, &status, WNOHANG) == p)
          exitCode[p] = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      if (!s && QFileInfo::exists(QString::fromStdString(path))) s = RunStore::open(path);
      if (s) {
        s->listRuns();
        ++reads;
      }
    }
    QCOMPARE(exitCode[children[0]], 0);
    QCOMPARE(exitCode[children[1]], 0);
    if (!s) s = RunStore::open(path);
    RunFilter f;
    f.status = hl::RunStatus::Finished;
    auto runs = s->listRuns(f);
    QCOMPARE(runs.size(), size_t(2 * kRuns));
    for (const auto& r : runs) QCOMPARE(s->series(r.id).at(0).points.size(), size_t(kPoints / kRuns));
    qInfo("%d reads during the writes", reads);
  }

  // ---- crash safety ------------------------------------------------------------------------------

  void sigkillMidRunLeavesCommittedPrefixAndInterruptedRun() {
    const std::string path = freshPath();
    makeStore(path, 0);
    int fds[2];
    QCOMPARE(pipe(fds), 0);
    pid_t pid = spawn([&] {
      close(fds[0]);
      auto s = RunStore::open(path);
      RunRecord r = sampleRun();
      r.status = hl::RunStatus::Running;
      int64_t id = s->createRun(r);
      if (write(fds[1], &id, sizeof id) != sizeof id) return 1;
      RunWriter w(path, id);
      for (int64_t i = 0; i < 50'000'000; ++i) {
        w.point("loss", "outer", -1, 1, i, double(i) * 0.25);
        if ((i + 1) % 100 == 0) {
          w.flush();
          int64_t committed = i + 1;
          if (write(fds[1], &committed, sizeof committed) != sizeof committed) return 1;
        }
      }
      return 0;
    });
    close(fds[1]);
    auto readCount = [&](int64_t& v) { return read(fds[0], &v, sizeof v) == sizeof v; };
    int64_t id = 0, reported = 0, v = 0;
    QVERIFY(readCount(id));
    while (reported < 5000 && readCount(v)) reported = v;
    QCOMPARE(reported, int64_t(5000));
    usleep(3000);  // let it run on, so the kill lands at an arbitrary point of its write cycle
    kill(pid, SIGKILL);
    while (readCount(v)) reported = v;  // whatever it reported before it died
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    QVERIFY(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    auto s = RunStore::open(path);
    auto run = s->getRun(id);
    QCOMPARE(hl::name(run->status), std::string("interrupted"));
    QVERIFY(run->finished_at > 0);
    {
      Raw raw(path);
      QCOMPARE(raw.text("PRAGMA integrity_check"), std::string("ok"));
    }
    auto series = s->series(id);
    QCOMPARE(series.size(), size_t(1));
    const auto& pts = series[0].points;
    qInfo("child reported %lld points committed; %zu stored", (long long)reported, pts.size());
    QVERIFY2(int64_t(pts.size()) >= reported,
             qPrintable(QString("%1 points stored, %2 reported committed").arg(pts.size()).arg(reported)));
    for (size_t i = 0; i < pts.size(); ++i) {
      if (pts[i].first != int64_t(i) || pts[i].second != double(i) * 0.25)
        QFAIL(qPrintable(QString("point %1 is (%2, %3)").arg(i).arg(pts[i].first).arg(pts[i].second)));
    }
  }
};

// Run with HL_TEST_STORE_PEER=<db>, this binary is the "other process" of the lock tests: it adds
// a run named "from the peer" through Hope Lab's store, with points, and closes its connection.
int main(int argc, char** argv) {
  if (const char* peer = std::getenv("HL_TEST_STORE_PEER")) {
    try {
      auto s = RunStore::open(peer);
      RunRecord r = sampleRun();
      r.name = "from the peer";
      const int64_t id = s->createRun(r);
      RunWriter w(peer, id);
      for (int k = 0; k < 10; ++k) w.point("peer", "outer", -1, 1, k, 1.0);
      w.finish(hl::RunStatus::Finished);
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "peer: %s\n", e.what());
      return 1;
    }
  }
  QCoreApplication app(argc, argv);
  TestStore tc;
  QTEST_SET_MAIN_SOURCE_PATH
  return QTest::qExec(&tc, argc, argv);
}
#include "test_store.moc"
