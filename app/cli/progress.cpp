#include "progress.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>

namespace hl::cli {
namespace {

std::atomic<train::Control*> g_control{nullptr};  // read from the signal handler

extern "C" void on_sigint(int) {
  if (train::Control* c = g_control.load()) c->requestCancel();
}

}  // namespace

CancelOnSignal::CancelOnSignal(train::Control* c) {
  g_control = c;
  std::signal(SIGINT, on_sigint);
  std::signal(SIGTERM, on_sigint);
}

CancelOnSignal::~CancelOnSignal() {
  g_control = nullptr;
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  long t = long(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", t / 60, t % 60);
  return buf;
}

ProgressBar::ProgressBar(bool quiet) : tty_(isatty(STDERR_FILENO)), quiet_(quiet) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void ProgressBar::onEvent(const train::Event& e) {
  using K = train::EventKind;
  if (quiet_) {  // quiet hides progress, never warnings, nor why a run failed
    if (e.kind == K::Log && e.message.rfind("warning:", 0) == 0) std::fprintf(stderr, "%s\n", e.message.c_str());
    if (e.kind == K::Status && is_failure(e.status) && !e.message.empty())
      std::fprintf(stderr, "run %lld %s: %s\n", (long long)e.run_id, name(e.status).c_str(), e.message.c_str());
    return;
  }
  switch (e.kind) {
    case K::RunStarted:
      total_ = e.total_steps;
      num_tasks_ = e.num_tasks;
      start_ = std::chrono::steady_clock::now();
      std::fprintf(stderr, "run %lld: %s, %lld steps over %d task(s)\n", (long long)e.run_id, e.message.c_str(),
                   (long long)e.total_steps, e.num_tasks);
      break;
    case K::Point:
      if (e.name == "loss" && e.level == "outer") last_loss_ = e.value;
      break;
    case K::Progress:
      draw(e, false);
      break;
    case K::TaskFinished:
      if (tty_ && drawn_) std::fputc('\n', stderr);
      drawn_ = false;
      std::fprintf(stderr, "task %d/%d done: average accuracy over seen tasks %.3f\n", e.task + 1, e.num_tasks,
                   e.value);
      break;
    case K::Log:
      std::fprintf(stderr, "%s\n", e.message.c_str());
      break;
    case K::Status:
      if (tty_ && drawn_) std::fputc('\n', stderr);
      drawn_ = false;
      if (e.status != RunStatus::Finished)
        std::fprintf(stderr, "run %s%s%s\n", name(e.status).c_str(), e.message.empty() ? "" : ": ", e.message.c_str());
      break;
    default:
      break;
  }
}

void ProgressBar::draw(const train::Event& e, bool force) {
  auto now = std::chrono::steady_clock::now();
  double frac = total_ > 0 ? double(e.step) / double(total_) : 0;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double eta = frac > 0 ? elapsed * (1 - frac) / frac : NAN;
  if (tty_) {
    if (!force && e.step != total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const int width = 30;
    int fill = int(frac * width);
    std::string bar(fill, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r[%s] %5.1f%%  step %lld/%lld  task %d/%d  loss %.4f  %s<%s ", bar.c_str(), 100 * frac,
                 (long long)e.step, (long long)total_, e.task + 1, num_tasks_, last_loss_,
                 format_duration(elapsed).c_str(), format_duration(eta).c_str());
    drawn_ = true;
  } else {
    int dec = int(frac * 10);
    if (dec == last_decile_ && !force) return;
    last_decile_ = dec;
    std::fprintf(stderr, "%3d%%  step %lld/%lld  task %d/%d  loss %.4f  elapsed %s  eta %s\n", dec * 10,
                 (long long)e.step, (long long)total_, e.task + 1, num_tasks_, last_loss_,
                 format_duration(elapsed).c_str(), format_duration(eta).c_str());
  }
  std::fflush(stderr);
}

}  // namespace hl::cli
