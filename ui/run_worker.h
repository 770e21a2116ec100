// Runs experiments off the GUI thread, after Qt's Mandelbrot example: the GUI thread enqueues a
// request, the worker thread runs it, results come back by value through queued signals, and
// pause/resume/stop go through hl::train::Control (atomics). Trainer events are buffered in an
// EventFeed that the GUI drains on a timer, so nothing the trainer does blocks the GUI thread.
#pragma once
#include <QMetaType>
#include <QMutex>
#include <QObject>
#include <QString>
#include <QThread>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "engine/train/events.h"
#include "engine/train/experiment.h"

namespace hl::ui {

// Thread-safe event buffer: onEvent (training thread) appends, take() (GUI thread) swaps it out.
class EventFeed : public hl::train::Observer {
 public:
  void onEvent(const hl::train::Event& e) override;
  std::vector<hl::train::Event> take();
  size_t pending() const;

 private:
  mutable QMutex mu_;
  std::vector<hl::train::Event> buf_;
};

struct RunRequest {
  int id = 0;           // queue id (assigned by enqueue)
  nlohmann::json spec;  // completed spec, seed set
  QString label;        // shown in the queue, e.g. "hope · banking77 · seed 1"
  hl::train::RunOptions options;
};

struct RunOutcome {  // by value across threads
  int request_id = 0;
  qint64 run_id = 0;
  hl::RunStatus status = hl::RunStatus::Failed;  // finished, failed, diverged or cancelled
  QString error;
  QString summary_json;
};

class RunWorker : public QThread {
  Q_OBJECT
 public:
  explicit RunWorker(QObject* parent = nullptr);
  ~RunWorker() override;  // cancels, drains the queue, joins

  int enqueue(RunRequest r);  // returns the request id; starts the thread when idle
  // Pause holds the current run between two steps (and the next queued one before its first);
  // both Q_EMIT pausedChanged when the state changes. Pausing an idle worker does nothing.
  void pause();
  void resume();
  void stopCurrent();  // cancels the running request (the run is stored as cancelled)
  void stopAll();      // also drops the queued requests (each reported as cancelled, run_id 0)
  bool paused() const;
  bool busy() const;
  int queued() const;
  EventFeed* feed() { return &feed_; }

 Q_SIGNALS:
  void requestStarted(int request_id);
  void requestFinished(const hl::ui::RunOutcome& outcome);
  void queueChanged(int queued);
  void pausedChanged(bool paused);  // GUI thread, on pause()/resume()/stop
  void idle();

 protected:
  void run() override;

 private:
  mutable QMutex mu_;
  std::deque<RunRequest> queue_;
  std::shared_ptr<hl::train::Control> control_;
  bool abort_ = false;
  bool running_ = false;
  bool thread_active_ = false;
  bool paused_ = false;
  int next_id_ = 1;
  EventFeed feed_;
};

}  // namespace hl::ui

Q_DECLARE_METATYPE(hl::ui::RunOutcome)
