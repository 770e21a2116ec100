// A terminal progress bar with ETA for hopelab-cli (stderr). Redraws at most 10 times a second on
// a terminal; prints a line every 10 % when stderr is not a terminal (logs, CI).
#pragma once
#include <chrono>
#include <cstdio>
#include <string>

#include "engine/train/events.h"
#include "engine/train/experiment.h"

namespace hl::cli {

class ProgressBar : public train::Observer {
 public:
  explicit ProgressBar(bool quiet = false);
  void onEvent(const train::Event& e) override;

 private:
  void draw(const train::Event& e, bool force);
  bool tty_ = false;
  bool quiet_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_decile_ = -1;
  double last_loss_ = 0;
  int64_t total_ = 0;
  int num_tasks_ = 0;
  bool drawn_ = false;
};

std::string format_duration(double seconds);

// While it lives, Ctrl-C and SIGTERM ask the running experiment to stop cleanly (run `cancelled`).
struct CancelOnSignal {
  explicit CancelOnSignal(train::Control* c);
  ~CancelOnSignal();
  CancelOnSignal(const CancelOnSignal&) = delete;
  CancelOnSignal& operator=(const CancelOnSignal&) = delete;
};

}  // namespace hl::cli
