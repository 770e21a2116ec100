#include "engine/store/write_errors.h"

#include <sqlite3.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <type_traits>

namespace hl::store::detail {
namespace {

thread_local int t_last_error = 0;

using WriteFn = ssize_t (*)(int, const void*, size_t);
using PwriteFn = ssize_t (*)(int, const void*, size_t, off_t);
using Pwrite64Fn = ssize_t (*)(int, const void*, size_t, off64_t);
WriteFn g_write = nullptr;
PwriteFn g_pwrite = nullptr;
Pwrite64Fn g_pwrite64 = nullptr;

ssize_t keep(ssize_t r) {
  if (r < 0) t_last_error = errno;
  return r;
}
ssize_t hl_write(int fd, const void* b, size_t n) {
  return keep(g_write(fd, b, n));
}
ssize_t hl_pwrite(int fd, const void* b, size_t n, off_t o) {
  return keep(g_pwrite(fd, b, n, o));
}
ssize_t hl_pwrite64(int fd, const void* b, size_t n, off64_t o) {
  return keep(g_pwrite64(fd, b, n, o));
}

bool install() {
  sqlite3_vfs* vfs = sqlite3_vfs_find("unix");
  if (!vfs || vfs->iVersion < 3 || !vfs->xSetSystemCall || !vfs->xGetSystemCall) return false;
  auto wrap = [&](const char* name, auto& original, auto replacement) {
    original = reinterpret_cast<std::remove_reference_t<decltype(original)>>(vfs->xGetSystemCall(vfs, name));
    if (original) vfs->xSetSystemCall(vfs, name, reinterpret_cast<sqlite3_syscall_ptr>(replacement));
  };
  wrap("write", g_write, hl_write);
  wrap("pwrite", g_pwrite, hl_pwrite);
  wrap("pwrite64", g_pwrite64, hl_pwrite64);
  return true;
}

}  // namespace

void record_write_errors() {
  static const bool installed = install();
  (void)installed;
}

namespace {
// Before main(), as process_locks.cpp: no connection can be writing while the calls are replaced.
const bool g_installed_at_start = (record_write_errors(), true);
}  // namespace

int last_write_error() {
  return t_last_error;
}

void clear_last_write_error() {
  t_last_error = 0;
}

}  // namespace hl::store::detail
