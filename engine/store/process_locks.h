// Internal to engine/store: SQLite locks that belong to the connection's file, not to the process.
//
// SQLite's unix VFS locks with classic POSIX record locks (fcntl F_SETLK). Those belong to the
// process and are ALL dropped when the process closes ANY descriptor of the file, whoever opened
// it: a file dialog sniffing the database's MIME type, a QFile, an fopen, a thumbnailer reading the
// WAL. Another process closing its connection then believes it is the last one, checkpoints and
// deletes the WAL and shared-memory files under us, and our later commits vanish or fail with
// "disk I/O error". Guarding each such caller cannot be complete (Qt and plugins open files on
// their own), so the fix sits under SQLite instead: the unix VFS's open/close/fcntl system calls
// are replaced (sqlite3_vfs::xSetSystemCall) so that every lock SQLite takes on a file is taken
// as an open-file-description lock (Linux F_OFD_SETLK) on one descriptor that this module owns per
// file. Such locks are released only when that descriptor is closed, which happens when SQLite
// closes its last descriptor of the file: exactly the classic per-process semantics SQLite expects,
// minus the silent loss. OFD locks and classic locks conflict with each other, so other processes
// (the sqlite3 shell, older Hope Lab builds) still see ours.
//
// Installed before main() and process-wide (it affects every SQLite connection of the process).
// Where the kernel lacks OFD locks (Linux < 3.15, other systems) nothing is replaced and SQLite's
// classic locks are used; the store then still avoids its own header read (sqlite_db.cpp).
#pragma once

namespace hl::store::detail {

// Installs the replacement once; true when it is active in this process.
bool use_process_safe_locks();

}  // namespace hl::store::detail
