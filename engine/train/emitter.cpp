#include "engine/train/emitter.h"

#include "engine/common/error.h"

namespace hl::train {

void Emitter::operator()(Event e) {
  e.run_id = run_id;
  for (auto* o : obs) o->onEvent(e);
}

void Emitter::point(const std::string& name, const std::string& level, int64_t step, double v, int block, int clock) {
  Event e;
  e.kind = EventKind::Point;
  e.name = name;
  e.level = level;
  e.step = step;
  e.value = v;
  e.block = block;
  e.clock = clock;
  (*this)(e);
}

void Emitter::log(const std::string& m) {
  Event e;
  e.kind = EventKind::Log;
  e.message = m;
  (*this)(e);
}

void Emitter::status(RunStatus status, int64_t step, const std::string& message) {
  Event e;
  e.kind = EventKind::Status;
  e.status = status;
  e.message = message;
  e.step = step;
  (*this)(e);
}

void StoreObserver::onEvent(const Event& e) {
  if (e.kind == EventKind::Progress && !stopped_) {
    std::string failed = w_.error();
    if (!failed.empty()) {
      stopped_ = true;
      throw StoreError(failed);
    }
  }
  switch (e.kind) {
    case EventKind::Point:
      w_.point(e.name, e.level, e.block, e.clock, e.step, e.value);
      break;
    case EventKind::Eval:
      w_.eval({e.step, e.task, e.eval_task, e.acc});
      break;
    case EventKind::Accuracy:
      w_.accuracy({e.task, e.eval_task, e.acc, e.task_il_acc});
      break;
    case EventKind::Confusion:
      if (e.confusion) w_.confusion(*e.confusion);
      break;
    case EventKind::Checkpoint:
      w_.checkpoint({e.checkpoint, e.path, e.step, e.task, e.value});
      break;
    default:
      break;
  }
}

void StoreObserver::end(RunStatus& status, std::string& error, int64_t diverged_step, const std::string& summary_json) {
  try {
    w_.flush();  // was everything before the end committed?
  } catch (const std::exception& e) {
    if (status != RunStatus::Failed || error.empty()) {
      status = RunStatus::Failed;  // trained, maybe to the end, but its records are incomplete
      error = e.what();
    }
  }
  if (status != RunStatus::Finished) w_.status(status, error, diverged_step);
  w_.summary(summary_json);
  try {
    w_.finish(status);
  } catch (const std::exception&) {  // the error is already in `error`
  }
  if (!w_.endStored()) {
    if (status != RunStatus::Failed || error.empty()) error = w_.error();
    status = RunStatus::Failed;
    error +=
        " (the run database could not record the run's end either: it stays `running` there until the "
        "next open marks it interrupted)";
  }
}

}  // namespace hl::train
