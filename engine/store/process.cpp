// This process's identity as recorded with a run, and the liveness test behind `interrupted`.
#include <unistd.h>

#include <climits>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/store/store.h"

namespace hl::store {

int64_t current_pid() {
  return static_cast<int64_t>(::getpid());
}

std::string current_host() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

// /proc/<pid>/stat: "pid (comm) state ppid ... starttime(22) ...". comm may hold spaces and ')',
// so fields are counted from the last ')'. A zombie (state Z or X) has exited: it counts as gone.
int64_t process_start_time(int64_t pid) {
  if (pid <= 0) return 0;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  if (!f) return 0;
  std::string line;
  std::getline(f, line);
  size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  // Fields after comm start at number 3 (state); starttime is number 22.
  for (int n = 3; n <= 22; ++n) {
    if (!(rest >> field)) return 0;
    if (n == 3 && (field == "Z" || field == "X" || field == "x")) return 0;
  }
  try {
    return static_cast<int64_t>(std::stoll(field));
  } catch (...) {
    return 0;
  }
}

}  // namespace hl::store
