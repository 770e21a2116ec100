#include "ui/run_worker.h"

#include <QMutexLocker>

namespace hl::ui {

void EventFeed::onEvent(const hl::train::Event& e) {
  QMutexLocker lock(&mu_);
  buf_.push_back(e);
}

std::vector<hl::train::Event> EventFeed::take() {
  std::vector<hl::train::Event> out;
  QMutexLocker lock(&mu_);
  out.swap(buf_);
  return out;
}

size_t EventFeed::pending() const {
  QMutexLocker lock(&mu_);
  return buf_.size();
}

RunWorker::RunWorker(QObject* parent) : QThread(parent) {
  qRegisterMetaType<hl::ui::RunOutcome>("hl::ui::RunOutcome");
}

RunWorker::~RunWorker() {
  {
    QMutexLocker lock(&mu_);
    abort_ = true;
    queue_.clear();
    if (control_) control_->requestCancel();
  }
  wait();
}

int RunWorker::enqueue(RunRequest r) {
  int id;
  bool need_start = false;
  {
    QMutexLocker lock(&mu_);
    id = r.id = next_id_++;
    queue_.push_back(std::move(r));
    if (!thread_active_) need_start = thread_active_ = true;
  }
  Q_EMIT queueChanged(queued());
  if (need_start) {
    wait();  // a previous loop that just ended may still be returning from run()
    start(QThread::LowPriority);
  }
  return id;
}

void RunWorker::pause() {
  {
    QMutexLocker lock(&mu_);
    if (paused_ || !(running_ || !queue_.empty())) return;
    paused_ = true;
    if (control_) control_->requestPause();
  }
  Q_EMIT pausedChanged(true);
}

void RunWorker::resume() {
  {
    QMutexLocker lock(&mu_);
    if (!paused_) return;
    paused_ = false;
    if (control_) control_->requestResume();
  }
  Q_EMIT pausedChanged(false);
}

void RunWorker::stopCurrent() {
  bool was_paused;
  {
    QMutexLocker lock(&mu_);
    was_paused = paused_;
    paused_ = false;
    if (control_) {
      control_->requestResume();
      control_->requestCancel();
    }
  }
  if (was_paused) Q_EMIT pausedChanged(false);
}

void RunWorker::stopAll() {
  std::deque<RunRequest> dropped;
  {
    QMutexLocker lock(&mu_);
    dropped.swap(queue_);
  }
  stopCurrent();
  Q_EMIT queueChanged(0);
  for (const auto& r : dropped) {  // every request gets exactly one requestFinished
    RunOutcome o;
    o.request_id = r.id;
    o.status = hl::RunStatus::Cancelled;
    o.error = tr("removed from the queue before it started");
    Q_EMIT requestFinished(o);
  }
}

bool RunWorker::paused() const {
  QMutexLocker lock(&mu_);
  return paused_;
}

bool RunWorker::busy() const {
  QMutexLocker lock(&mu_);
  return running_ || !queue_.empty();
}

int RunWorker::queued() const {
  QMutexLocker lock(&mu_);
  return int(queue_.size());
}

void RunWorker::run() {
  for (;;) {
    RunRequest req;
    std::shared_ptr<hl::train::Control> control;
    {
      QMutexLocker lock(&mu_);
      if (abort_ || queue_.empty()) {
        running_ = false;
        thread_active_ = false;
        break;
      }
      req = std::move(queue_.front());
      queue_.pop_front();
      control = control_ = std::make_shared<hl::train::Control>();
      if (paused_) control->requestPause();
      running_ = true;
    }
    Q_EMIT queueChanged(queued());
    Q_EMIT requestStarted(req.id);
    RunOutcome out;
    out.request_id = req.id;
    try {
      auto r = hl::train::run_experiment(req.spec, req.options, {&feed_}, control.get());
      out.run_id = r.run_id;
      out.status = r.status;
      out.error = QString::fromStdString(r.error);
      out.summary_json = QString::fromStdString(r.summary.dump());
    } catch (const std::exception& e) {  // spec or data errors before the run was created
      out.status = hl::RunStatus::Failed;
      out.error = QString::fromUtf8(e.what());
    }
    {
      QMutexLocker lock(&mu_);
      control_.reset();
      running_ = false;
    }
    Q_EMIT requestFinished(out);
  }
  Q_EMIT idle();
}

}  // namespace hl::ui
