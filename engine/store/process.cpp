// This process's identity as recorded with a run, and the liveness test behind `interrupted`.
#include <unistd.h>

#include <algorithm>
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

// /proc/cpuinfo's first processor: "model name (vendor family F, model M)". The name alone does not
// tell the generations a hypervisor hides apart ("AMD EPYC"), so family and model come with it.
std::string current_cpu() {
  std::ifstream f("/proc/cpuinfo");
  std::string line, name, vendor, family, model;
  auto value = [&](const std::string& key, std::string& out) {
    if (!out.empty() || line.compare(0, key.size(), key) != 0) return;
    const auto colon = line.find(':');
    if (colon == std::string::npos || line.find_first_not_of(" \t", key.size()) != colon) return;
    out = line.substr(std::min(line.size(), colon + 2));
  };
  while (std::getline(f, line)) {
    if (line.empty() && !name.empty()) break;  // the end of the first processor's block
    value("model name", name);
    value("vendor_id", vendor);
    value("cpu family", family);
    value("model", model);
  }
  if (name.empty()) return "unknown";
  if (!family.empty() && !model.empty()) name += " (" + vendor + " family " + family + ", model " + model + ")";
  return name;
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
