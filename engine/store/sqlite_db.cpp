#include "engine/store/sqlite_db.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/store/process_locks.h"
#include "engine/store/schema.h"
#include "engine/store/write_errors.h"

namespace hl::store::detail {

namespace {

const char* kNotModified = "Hope Lab did not modify it";
const char* kChooseAnother = "Move the file away or choose another run database path.";

bool is_busy(int rc) {
  int primary = rc & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

bool is_damaged(int rc) {
  int primary = rc & 0xff;
  return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

// What the first 100 bytes (the SQLite header) say before SQLite touches the file.
struct RawHeader {
  bool exists = false;
  bool is_dir = false;
  int64_t size = 0;
  bool sqlite_magic = false;
  bool short_file = false;       // exists, not empty, but shorter than the 100-byte header
  bool maybe_truncated = false;  // header's page count * page size exceeds the file size
};

// Files this process holds open through SQLite, by (device, inode). Classic POSIX locks belong
// to the process and are dropped when ANY descriptor of the file is closed; process_locks.h moves
// SQLite's locks to open file descriptions where the kernel allows, which makes that harmless. Where
// it does not, reading a database's header with fopen/fclose while another connection of this
// process has it open would silently release that connection's locks (another process could then
// checkpoint and delete the WAL under it), so the raw header is read only while no connection of
// this process has the file open; such a file was already validated when it was first opened.
std::mutex g_open_mu;
std::map<std::pair<uint64_t, uint64_t>, int> g_open_files;

bool file_id(const std::string& path, uint64_t* dev, uint64_t* ino) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  *dev = uint64_t(st.st_dev);
  *ino = uint64_t(st.st_ino);
  return true;
}

bool open_in_this_process(const std::string& path) {
  uint64_t dev, ino;
  if (!file_id(path, &dev, &ino)) return false;
  std::lock_guard<std::mutex> lock(g_open_mu);
  auto it = g_open_files.find({dev, ino});
  return it != g_open_files.end() && it->second > 0;
}

RawHeader read_header(const std::string& path) {
  RawHeader h;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return h;
  h.exists = true;
  h.is_dir = S_ISDIR(st.st_mode);
  h.size = static_cast<int64_t>(st.st_size);
  if (h.is_dir || h.size == 0) return h;
  unsigned char b[100] = {};
  size_t n = 0;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    n = std::fread(b, 1, sizeof b, f);
    std::fclose(f);
  } else {
    throw hl::StoreError("cannot read run database " + path + ": " + std::strerror(errno) +
                         ". Check the file's permissions.");
  }
  static const char kMagic[16] = {'S', 'Q', 'L', 'i', 't', 'e', ' ', 'f', 'o', 'r', 'm', 'a', 't', ' ', '3', '\0'};
  h.sqlite_magic = n >= 16 && std::memcmp(b, kMagic, 16) == 0;
  h.short_file = n < 100;
  if (h.sqlite_magic && !h.short_file) {
    auto be32 = [&](int o) {
      return (uint32_t(b[o]) << 24) | (uint32_t(b[o + 1]) << 16) | (uint32_t(b[o + 2]) << 8) | uint32_t(b[o + 3]);
    };
    uint32_t page_size = (uint32_t(b[16]) << 8) | b[17];
    if (page_size == 1) page_size = 65536;
    uint32_t pages = be32(28);
    bool pages_valid = pages != 0 && be32(92) == be32(24);  // "version-valid-for" == change counter
    if (pages_valid && static_cast<int64_t>(pages) * page_size > h.size) h.maybe_truncated = true;
  }
  return h;
}

// The start of a statement, for error messages: "INSERT OR REPLACE INTO points".
std::string sql_head(const std::string& sql) {
  std::string head = sql.substr(0, sql.find_first_of("\n;("));
  size_t start = head.find_first_not_of(" \t");
  size_t end = head.find_last_not_of(" \t");
  return start == std::string::npos ? "statement" : head.substr(start, end - start + 1);
}

std::string hex32(int64_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(static_cast<uint32_t>(v)));
  return buf;
}

}  // namespace

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// ---- Db ----------------------------------------------------------------------------------------

Db::Db(Db&& o) noexcept
    : db_(o.db_), path_(std::move(o.path_)), owned_(o.owned_), registered_(o.registered_), dev_(o.dev_), ino_(o.ino_) {
  o.db_ = nullptr;
  o.registered_ = false;
}

Db& Db::operator=(Db&& o) noexcept {
  if (this != &o) {
    release();
    db_ = o.db_;
    path_ = std::move(o.path_);
    owned_ = o.owned_;
    registered_ = o.registered_;
    dev_ = o.dev_;
    ino_ = o.ino_;
    o.db_ = nullptr;
    o.registered_ = false;
  }
  return *this;
}

void Db::release() {
  if (db_ && owned_) sqlite3_close_v2(db_);
  db_ = nullptr;
  if (registered_) {
    std::lock_guard<std::mutex> lock(g_open_mu);
    auto it = g_open_files.find({dev_, ino_});
    if (it != g_open_files.end() && --it->second <= 0) g_open_files.erase(it);
    registered_ = false;
  }
}

Db::~Db() {
  release();
}

Db Db::borrow(sqlite3* db, const std::string& path) {
  Db d;
  d.db_ = db;
  d.path_ = path;
  d.owned_ = false;
  return d;
}

void Db::fail(int rc, const std::string& what) const {
  std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  if (is_busy(rc))
    throw BusyError(rc, "run database " + path_ + " is locked by another connection (" + what + ": " + msg +
                            "). Another Hope Lab process held a write lock for longer than " +
                            std::to_string(kBusyTimeoutMs / 1000) + " s; retry when it is done.");
  if (is_damaged(rc))
    throw SqliteError(rc, "run database " + path_ + " is damaged (" + what + ": " + msg +
                              "). Hope Lab stopped using it. Restore it from a backup, try "
                              "`sqlite3 " +
                              path_ + " .recover`, or choose another run database path.");
  int primary = rc & 0xff;
  std::string hint;
  // An I/O error says which only through errno: "disk I/O error (File too large)".
  int os_error = 0;
  if (db_ && (primary == SQLITE_IOERR || primary == SQLITE_FULL))
    os_error = sqlite3_system_errno(db_) ? sqlite3_system_errno(db_) : last_write_error();
  if (os_error) msg += std::string(" (") + std::strerror(os_error) + ")";
  if (primary == SQLITE_FULL || os_error == ENOSPC || os_error == EFBIG || os_error == EDQUOT)
    hint = " The disk is full (or a file-size limit or quota was reached); free some space.";
  if (primary == SQLITE_READONLY || primary == SQLITE_PERM || primary == SQLITE_CANTOPEN || os_error == EROFS ||
      os_error == EPERM || os_error == EACCES)
    hint = " Check that the file and its directory exist and are writable.";
  throw SqliteError(rc, "run database " + path_ + ": " + what + " failed: " + msg + "." + hint);
}

void Db::exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (err) sqlite3_free(err);
  if (rc != SQLITE_OK) fail(rc, sql_head(sql));
}

void Db::transaction(const std::function<void()>& body, const std::function<void()>& on_rollback) {
  auto rollback = [&] {
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    if (on_rollback) on_rollback();
  };
  for (int attempt = 0;; ++attempt) {
    clear_last_write_error();  // what a failure below reports is this transaction's
    try {
      exec("BEGIN IMMEDIATE");
      body();
      exec("COMMIT");
      return;
    } catch (const BusyError&) {
      rollback();
      if (attempt + 1 >= kBusyRetries) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(50 * (attempt + 1)));
    } catch (...) {
      rollback();
      throw;
    }
  }
}

void Db::read(const std::function<void()>& body) {
  for (int attempt = 0;; ++attempt) {
    try {
      body();
      return;
    } catch (const BusyError&) {
      if (attempt + 1 >= kBusyRetries) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(50 * (attempt + 1)));
    }
  }
}

Db Db::open(const std::string& path, bool migrate) {
  use_process_safe_locks();  // normally done before main(); this also links it in
  record_write_errors();     // likewise
  const bool already_open = open_in_this_process(path);
  RawHeader h;
  if (already_open) {  // validated when first opened; reading it now would drop our locks
    h.exists = true;
    h.size = 100;
    h.sqlite_magic = true;
  } else {
    h = read_header(path);
  }
  if (h.is_dir)
    throw hl::StoreError(path +
                         " is a directory, not a run database. Give the path of a database "
                         "file (it is created if missing).");
  if (h.exists && h.size > 0 && !h.sqlite_magic)
    throw hl::StoreError(path +
                         " is not a Hope Lab run database: it is not a SQLite file (its "
                         "header does not start with \"SQLite format 3\"). " +
                         kNotModified + ". " + kChooseAnother);
  if (h.exists && h.short_file)
    throw hl::StoreError(path +
                         " is a damaged SQLite file: it is shorter than the 100-byte "
                         "SQLite header (" +
                         std::to_string(h.size) + " bytes; truncated?). " + kNotModified +
                         ". Restore it from a backup or choose another run "
                         "database path.");

  Db db;
  db.path_ = path;
  int rc = sqlite3_open_v2(path.c_str(), &db.db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db.db_ ? sqlite3_errmsg(db.db_) : sqlite3_errstr(rc);
    throw hl::StoreError("cannot open run database " + path + ": " + msg +
                         ". Check that its directory exists and is writable.");
  }
  sqlite3_extended_result_codes(db.db_, 1);
  sqlite3_busy_timeout(db.db_, kBusyTimeoutMs);
  db.registerOpenFile();

  // Everything up to the journal-mode switch only reads, so a refused file stays as it was.
  auto refuse_damaged = [&](const std::string& detail) {
    throw hl::StoreError(path + " is a damaged SQLite database (" + detail + "). " + kNotModified +
                         ". Restore it from a backup, try `sqlite3 " + path +
                         " .recover`, or choose another run database path.");
  };
  int64_t app_id = 0, user_version = 0;
  std::vector<std::string> tables;
  try {
    db.read([&] {
      if (h.maybe_truncated) {  // cheap header check said "short": let SQLite decide
        Stmt qc(db, "PRAGMA quick_check(1)");
        std::string verdict = qc.step() ? qc.col_text(0) : std::string("no result");
        if (verdict != "ok") refuse_damaged("truncated? quick_check: " + verdict);
      }
      Stmt a(db, "PRAGMA application_id");
      a.step();
      app_id = a.col_int(0);
      Stmt u(db, "PRAGMA user_version");
      u.step();
      user_version = u.col_int(0);
      Stmt t(db,
             "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite\\_%' "
             "ESCAPE '\\' ORDER BY name");
      tables.clear();
      while (t.step()) tables.push_back(t.col_text(0));
    });
  } catch (const BusyError&) {
    throw;
  } catch (const SqliteError& e) {
    // Damaged files surface here as SQLITE_NOTADB / SQLITE_CORRUPT.
    if (is_damaged(e.rc)) refuse_damaged(std::string("sqlite: ") + sqlite3_errstr(e.rc));
    throw;
  }

  const bool ours = app_id == schema::kApplicationId;
  const bool empty = app_id == 0 && user_version == 0 && tables.empty();
  if (!ours && !empty) {
    std::string list;
    for (size_t i = 0; i < tables.size() && i < 6; ++i) list += (i ? ", " : "") + tables[i];
    if (tables.size() > 6) list += ", ...";
    throw hl::StoreError(path + " is a SQLite database of another application (application_id " + hex32(app_id) +
                         ", Hope Lab uses " + hex32(schema::kApplicationId) +
                         "; tables: " + (list.empty() ? "none" : list) + "). " + kNotModified + ". " + kChooseAnother);
  }
  if (ours && user_version > schema::kVersion)
    throw hl::StoreError(path + " has run-database schema version " + std::to_string(user_version) +
                         ", newer than this Hope Lab build knows "
                         "(up to " +
                         std::to_string(schema::kVersion) + "). " + kNotModified +
                         ". Open it with a newer Hope Lab, or choose another run database path.");

  // From here on the file is Hope Lab's (or empty) and may be written.
  {
    std::string mode;
    db.read([&] {
      Stmt jm(db, "PRAGMA journal_mode = WAL");
      mode = jm.step() ? jm.col_text(0) : "";
    });
    if (mode != "wal")
      throw hl::StoreError("run database " + path +
                           ": cannot switch to WAL mode (journal mode "
                           "stays '" +
                           mode +
                           "'). Put the database on a local file system "
                           "(WAL needs shared memory, which network file systems lack).");
  }
  db.exec("PRAGMA foreign_keys = ON");
  db.exec("PRAGMA synchronous = NORMAL");

  if (migrate) {
    schema::migrate(db.db_, path, schema::migrations());
    schema::check_tables(db.db_, path);  // tables, columns, primary keys
  }
  db.registerOpenFile();  // a new file exists only once something was written
  return db;
}

void Db::registerOpenFile() {
  if (registered_ || !db_) return;
  uint64_t dev, ino;
  if (!file_id(path_, &dev, &ino)) return;
  std::lock_guard<std::mutex> lock(g_open_mu);
  ++g_open_files[{dev, ino}];
  dev_ = dev;
  ino_ = ino;
  registered_ = true;
}

// ---- Stmt --------------------------------------------------------------------------------------

Stmt::Stmt(const Db& db, const char* sql) : db_(db) {
  int rc = sqlite3_prepare_v2(db.get(), sql, -1, &st_, nullptr);
  if (rc != SQLITE_OK) db.fail(rc, std::string("prepare '") + sql + "'");
}

Stmt::~Stmt() {
  sqlite3_finalize(st_);
}

Stmt& Stmt::bind(int i, int64_t v) {
  int rc = sqlite3_bind_int64(st_, i, v);
  if (rc != SQLITE_OK) db_.fail(rc, "bind");
  return *this;
}

Stmt& Stmt::bind(int i, double v) {
  int rc = std::isnan(v) ? sqlite3_bind_null(st_, i) : sqlite3_bind_double(st_, i, v);
  if (rc != SQLITE_OK) db_.fail(rc, "bind");
  return *this;
}

Stmt& Stmt::bind(int i, const std::string& v) {
  int rc = sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) db_.fail(rc, "bind");
  return *this;
}

bool Stmt::step() {
  int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  std::string sql = sqlite3_sql(st_) ? sqlite3_sql(st_) : "";
  sqlite3_reset(st_);
  db_.fail(rc, sql_head(sql));
}

void Stmt::run() {
  step();
  reset();
}

void Stmt::reset() {
  sqlite3_reset(st_);
  sqlite3_clear_bindings(st_);
}

int64_t Stmt::col_int(int c) const {
  return sqlite3_column_int64(st_, c);
}

double Stmt::col_double(int c) const {
  if (sqlite3_column_type(st_, c) == SQLITE_NULL) return std::numeric_limits<double>::quiet_NaN();
  return sqlite3_column_double(st_, c);
}

std::string Stmt::col_text(int c) const {
  const unsigned char* t = sqlite3_column_text(st_, c);
  int n = sqlite3_column_bytes(st_, c);
  return t ? std::string(reinterpret_cast<const char*>(t), static_cast<size_t>(n)) : std::string();
}

bool Stmt::col_null(int c) const {
  return sqlite3_column_type(st_, c) == SQLITE_NULL;
}

}  // namespace hl::store::detail
