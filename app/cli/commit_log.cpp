#include "commit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "engine/common/error.h"

namespace hl::cli {

store::RunWriter::CommitHook commit_log_from_env() {
  const char* dir = std::getenv("HOPELAB_COMMIT_LOG");
  if (!dir || !*dir) return {};
  const std::string path = std::string(dir) + "/commits-" + std::to_string(::getpid()) + ".tsv";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw RunError("HOPELAB_COMMIT_LOG: cannot write " + path + ": " + std::strerror(errno));
  // Shared by the hooks of this process's runs; closed at exit. One write per transaction.
  auto shared = std::shared_ptr<int>(new int(fd), [](int* f) {
    ::close(*f);
    delete f;
  });
  return [shared](int64_t run_id, const std::vector<store::CommittedPoint>& points) {
    std::string text;
    for (const auto& p : points)
      text += std::to_string(run_id) + '\t' + p.name + '\t' + p.level + '\t' + std::to_string(p.block) + '\t' +
              std::to_string(p.clock) + '\t' + std::to_string(p.step) + '\n';
    for (size_t done = 0; done < text.size();) {
      const ssize_t n = ::write(*shared, text.data() + done, text.size() - done);
      if (n <= 0) return;  // a report lost is not a run lost
      done += size_t(n);
    }
  };
}

}  // namespace hl::cli
