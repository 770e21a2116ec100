// Internal to engine/store: a thin RAII layer over the SQLite C API with Hope Lab's error policy
// (every failure is an hl::StoreError naming the database path) and the open/validate/migrate
// sequence shared by RunStore and RunWriter. Not part of the public API.
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <string>

#include "engine/common/error.h"

namespace hl::store::detail {

// A failed SQLite call; `rc` is the extended result code.
struct SqliteError : hl::StoreError {
  SqliteError(int code, const std::string& w) : hl::StoreError(w), rc(code) {}
  int rc;
};
// SQLITE_BUSY / SQLITE_LOCKED that outlasted the busy timeout. Transactions catch it and retry.
struct BusyError : SqliteError {
  BusyError(int code, const std::string& w) : SqliteError(code, w) {}
};

constexpr int kBusyTimeoutMs = 10000;  // per statement (sqlite3_busy_timeout)
constexpr int kBusyRetries = 3;        // whole-transaction retries on top of the busy timeout

class Db {
 public:
  // Opens (creating if needed) and validates: not-SQLite, damaged, foreign and newer-schema files
  // are refused before anything is written to them. Then WAL, foreign keys, and (if `migrate`)
  // the schema migrations. Throws hl::StoreError.
  static Db open(const std::string& path, bool migrate = true);

  Db() = default;
  // Wraps a connection owned elsewhere (not closed by this object); for schema::migrate.
  static Db borrow(sqlite3* db, const std::string& path);
  Db(Db&& o) noexcept;
  Db& operator=(Db&& o) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }

  void exec(const std::string& sql);
  // Throws (BusyError for busy/locked, StoreError otherwise) with `what` and SQLite's message.
  [[noreturn]] void fail(int rc, const std::string& what) const;

  // BEGIN IMMEDIATE; body(); COMMIT. On BusyError the transaction is rolled back, on_rollback()
  // is called and the whole body is retried (kBusyRetries times); any other exception rolls back,
  // calls on_rollback() and propagates.
  void transaction(const std::function<void()>& body, const std::function<void()>& on_rollback = {});
  // Runs a read-only body, retrying it on BusyError.
  void read(const std::function<void()>& body);

 private:
  void release();
  void registerOpenFile();

  sqlite3* db_ = nullptr;
  std::string path_;
  bool owned_ = true;
  // The file's identity in this process's registry of open databases (see sqlite_db.cpp).
  bool registered_ = false;
  uint64_t dev_ = 0, ino_ = 0;
};

class Stmt {
 public:
  Stmt(const Db& db, const char* sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, double v);  // NaN is stored as NULL by SQLite; col_double maps it back
  Stmt& bind(int i, const std::string& v);
  Stmt& bind(int i, const char* v) { return bind(i, std::string(v)); }

  bool step();   // true while a row is available; throws on error
  void run();    // step() for a statement without rows, then reset()
  void reset();  // reset and clear bindings
  int64_t col_int(int c) const;
  double col_double(int c) const;  // NULL -> NaN
  std::string col_text(int c) const;
  bool col_null(int c) const;

 private:
  const Db& db_;
  sqlite3_stmt* st_ = nullptr;
};

double now_seconds();

}  // namespace hl::store::detail
