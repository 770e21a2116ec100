// Locks that survive other code closing the database file. See process_locks.h.
#include "engine/store/process_locks.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <utility>

namespace hl::store::detail {

namespace {

#if defined(__linux__) && defined(F_OFD_SETLK)

// Per file (device, inode) that SQLite opened in this process: how many of SQLite's descriptors
// are open on it, and the one open file description (our own descriptor) that carries every lock
// this process takes on it.
struct FileLocks {
  int sqlite_fds = 0;
  int lock_fd = -1;
  bool classic = false;  // the file system refused OFD locks (EINVAL): classic locks, consistently
};

using FileId = std::pair<dev_t, ino_t>;
using OpenFn = int (*)(const char*, int, int);
using CloseFn = int (*)(int);
using FcntlFn = int (*)(int, int, ...);

// A plain mutex (not std::mutex) so that pthread_atfork can hold it across fork().
pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
std::map<FileId, FileLocks>* g_files = nullptr;  // never destroyed: SQLite may close at exit
// SQLite's previous system calls (its defaults), called through so that nothing is bypassed.
OpenFn g_open = nullptr;
CloseFn g_close = nullptr;
FcntlFn g_fcntl = nullptr;

bool id_of(int fd, FileId* id) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  *id = {st.st_dev, st.st_ino};
  return true;
}

struct Guard {
  Guard() { pthread_mutex_lock(&g_mu); }
  ~Guard() { pthread_mutex_unlock(&g_mu); }
};

int hl_open(const char* path, int flags, int mode) {
  int fd = g_open(path, flags, mode);
  if (fd < 0) return fd;
  FileId id;
  if (!id_of(fd, &id)) {  // an uncounted descriptor could not be given our locks: refuse it
    const int err = errno;
    g_close(fd);
    errno = err;
    return -1;
  }
  Guard g;
  ++(*g_files)[id].sqlite_fds;
  return fd;
}

int hl_close(int fd) {
  FileId id;
  const bool known = id_of(fd, &id);
  Guard g;  // closing under the lock: the inode cannot be freed and reused in between
  const int rc = g_close(fd);
  const int err = errno;
  if (known) {
    auto it = g_files->find(id);
    if (it != g_files->end() && --it->second.sqlite_fds <= 0) {
      // SQLite closed its last descriptor of the file: under classic POSIX semantics every lock
      // of the process on it is gone now, so release ours too (SQLite unlocks before anyway).
      if (it->second.lock_fd >= 0) ::close(it->second.lock_fd);
      g_files->erase(it);
    }
  }
  errno = err;
  return rc;
}

// Moves a descriptor above stdio (as SQLite does for its own): a lock fd at 2 would receive
// whatever the process writes to stderr.
int above_stdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  return moved;
}

// The descriptor that carries this process's locks on fd's file: a second open file description
// of the same file, read-write (write locks need it), made on first use. -1 with errno set when
// none can be had; the caller then fails the lock call rather than mix lock kinds (OFD and classic
// locks conflict even within one process). *classic: the file system refused OFD locks before.
int lock_fd_for(int fd, bool* classic) {
  *classic = false;
  FileId id;
  if (!id_of(fd, &id)) return -1;
  Guard g;
  auto it = g_files->find(id);
  if (it == g_files->end()) {
    errno = ENOLCK;  // not opened through SQLite's open: never the case for SQLite's own files
    return -1;
  }
  if (it->second.classic) {
    *classic = true;
    return fd;
  }
  if (it->second.lock_fd < 0) {
    // Our own open file description of the file, with fd's access mode (a read-only connection
    // takes only read locks; a read-write one needs write locks).
    const int mode = ::fcntl(fd, F_GETFL) & O_ACCMODE;
    char proc[64];
    std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int lfd = above_stdio(::open(proc, (mode == O_RDONLY ? O_RDONLY : O_RDWR) | O_CLOEXEC));
    if (lfd < 0) lfd = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);  // no /proc: share fd's description
    if (lfd < 0) {
      errno = ENOLCK;
      return -1;
    }
    // Decided once per file, before any lock is taken: a file system without OFD locks (some
    // FUSE and network file systems answer EINVAL) keeps SQLite's classic locks on it, so the two
    // kinds never mix. Such a file is not protected against foreign closes (process_locks.h).
    struct flock probe {};
    probe.l_type = F_RDLCK;
    probe.l_whence = SEEK_SET;
    probe.l_len = 1;
    if (g_fcntl(lfd, F_OFD_GETLK, &probe) != 0 && errno == EINVAL) {
      ::close(lfd);
      it->second.classic = true;
      *classic = true;
      return fd;
    }
    it->second.lock_fd = lfd;
  }
  return it->second.lock_fd;
}

int hl_fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);  // on Linux SQLite passes a struct flock* with every command
  va_end(ap);
  if (cmd != F_SETLK && cmd != F_SETLKW && cmd != F_GETLK) return g_fcntl(fd, cmd, arg);
  auto* fl = static_cast<struct flock*>(arg);
  bool classic = false;
  int lfd = lock_fd_for(fd, &classic);
  if (lfd < 0) return -1;
  if (classic) return g_fcntl(fd, cmd, fl);
  const int ofd_cmd = cmd == F_SETLK ? F_OFD_SETLK : cmd == F_SETLKW ? F_OFD_SETLKW : F_OFD_GETLK;
  fl->l_pid = 0;  // required by the OFD commands (SQLite leaves it unset)
  return g_fcntl(lfd, ofd_cmd, fl);
}

// fork(): the child must not keep using the parent's lock descriptors (they share the parent's
// open file descriptions, hence its locks); it starts with an empty table, like a new process.
void atfork_prepare() {
  pthread_mutex_lock(&g_mu);
}
void atfork_parent() {
  pthread_mutex_unlock(&g_mu);
}
void atfork_child() {
  for (auto& [id, f] : *g_files)
    if (f.lock_fd >= 0) ::close(f.lock_fd);
  g_files->clear();
  pthread_mutex_unlock(&g_mu);
}

// Whether this kernel has open-file-description locks (Linux >= 3.15).
bool kernel_has_ofd_locks() {
  int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock fl {};
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 1;
  fl.l_pid = 0;
  const bool ok = ::fcntl(fd, F_OFD_GETLK, &fl) == 0;
  ::close(fd);
  return ok;
}

bool install() {
  if (!kernel_has_ofd_locks()) return false;
  sqlite3_vfs* unix_vfs = sqlite3_vfs_find("unix");  // initialises SQLite
  if (!unix_vfs || unix_vfs->iVersion < 3 || !unix_vfs->xSetSystemCall || !unix_vfs->xGetSystemCall) return false;
  g_open = reinterpret_cast<OpenFn>(unix_vfs->xGetSystemCall(unix_vfs, "open"));
  g_close = reinterpret_cast<CloseFn>(unix_vfs->xGetSystemCall(unix_vfs, "close"));
  g_fcntl = reinterpret_cast<FcntlFn>(unix_vfs->xGetSystemCall(unix_vfs, "fcntl"));
  if (!g_open || !g_close || !g_fcntl) return false;
  g_files = new std::map<FileId, FileLocks>();
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  // All three or none: the lock descriptor must see every open and close of its file.
  auto set = [&](const char* name, sqlite3_syscall_ptr f) {
    return unix_vfs->xSetSystemCall(unix_vfs, name, f) == SQLITE_OK;
  };
  if (set("open", reinterpret_cast<sqlite3_syscall_ptr>(hl_open))) {
    if (set("close", reinterpret_cast<sqlite3_syscall_ptr>(hl_close))) {
      if (set("fcntl", reinterpret_cast<sqlite3_syscall_ptr>(hl_fcntl))) return true;
      set("close", reinterpret_cast<sqlite3_syscall_ptr>(g_close));
    }
    set("open", reinterpret_cast<sqlite3_syscall_ptr>(g_open));
  }
  return false;
}

#else
bool install() {
  return false;
}
#endif

}  // namespace

bool use_process_safe_locks() {
  static const bool active = install();
  return active;
}

namespace {
// Before main(): SQLite must see every descriptor from the process's first connection on, or a
// connection opened earlier would still hold classic locks (which conflict with our OFD locks even
// within this process).
const bool g_installed_at_start = use_process_safe_locks();
}  // namespace

}  // namespace hl::store::detail
