// The run-store schema: its identity (PRAGMA application_id), its version (PRAGMA user_version) and
// the table-driven migrations that bring any older Hope Lab database up to this build's version.
// docs/STORE.md describes every table. Internal to engine/store (tests use it to exercise the runner).
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hl::store::schema {

// PRAGMA application_id of every Hope Lab run database: ASCII "HLAB".
constexpr int32_t kApplicationId = 0x484C4142;

// One step: `sql` (any number of statements) takes a database from version `version - 1` to
// `version`. Steps are applied in order, each in its own BEGIN IMMEDIATE transaction together
// with `PRAGMA user_version = version` (and application_id), so a failed step changes nothing.
struct Migration {
  int version;
  std::string sql;
};

// This build's steps, v1 ... kVersion (v2: runs.uuid; v3: the confusion and confusion_classes
// tables; v4: the ablations table). To add v5: append {5, "ALTER TABLE ..."} and bump kVersion.
const std::vector<Migration>& migrations();
constexpr int kVersion = 4;

// Tables a migrated database must have (checked on open).
const std::vector<std::string>& required_tables();

// Checks, after migrating, that each required table exists and has every column this build's
// schema gives it (the layout that migrations() produces in an empty database) with the same
// declared type and primary-key position, so that e.g. `runs.id` is still the table's INTEGER
// PRIMARY KEY. Extra columns are allowed. One PRAGMA table_info per table. Throws hl::StoreError
// naming `path`, the table and what is wrong.
void check_tables(sqlite3* db, const std::string& path);

// Applies every step of `steps` whose version is above the database's user_version. Re-reads the
// version inside each transaction, so concurrent openers migrate once. Returns the resulting
// version. Throws hl::StoreError naming `path` (the failed step is rolled back).
int migrate(sqlite3* db, const std::string& path, const std::vector<Migration>& steps);

}  // namespace hl::store::schema
