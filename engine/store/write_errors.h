// Internal to engine/store: why a write of SQLite's failed. SQLite reports a failed write as
// "disk I/O error" (SQLITE_IOERR_WRITE) and, in the versions we build against, no errno with it
// (sqlite3_system_errno() stays 0), so "File too large" (a file-size limit), "Operation not
// permitted" (an immutable or read-only file) or "Input/output error" would be lost. The unix VFS's
// write system calls are wrapped (sqlite3_vfs::xSetSystemCall, as process_locks.h does for its
// locks) to keep the errno of the last failed write of each thread.
#pragma once

namespace hl::store::detail {

// Installs the wrappers once (process-wide; a no-op where the VFS does not allow it).
void record_write_errors();
// The errno of this thread's last failed write through SQLite, 0 if none since the last clear.
int last_write_error();
void clear_last_write_error();

}  // namespace hl::store::detail
