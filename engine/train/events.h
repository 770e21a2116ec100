// What the trainer tells the world: plain value structs, no torch, no Qt. Observers (the store
// writer, the CLI progress bar, the GUI feed) receive them on the training thread and must return
// quickly (enqueue, don't block).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "engine/common/kinds.h"
#include "engine/metrics/confusion.h"

namespace hl::train {

enum class EventKind {
  RunStarted,    // run_id, total_steps, num_tasks, message = run name
  Progress,      // step, total_steps, task, epoch, samples_seen (every optimizer step)
  Point,         // a series point: name, level, block, clock, step, value
  TaskStarted,   // task
  TaskFinished,  // task
  Eval,          // periodic evaluation: step, task (current), eval_task, acc, task_il_acc
  Accuracy,      // accuracy-matrix cell after a task: task (after), eval_task, acc, task_il_acc
  Confusion,     // after a task: task (after), confusion (class-IL predictions over the seen classes)
  Checkpoint,    // path, checkpoint (best | last), step, task, value = metric
  Status,        // status (running/finished/failed/diverged/cancelled/paused), message
  Log,           // message
};

struct Event {
  EventKind kind = EventKind::Log;
  int64_t run_id = 0;
  int64_t step = 0;
  int64_t total_steps = 0;
  int64_t samples_seen = 0;
  int task = -1;
  int num_tasks = 0;
  int epoch = 0;
  std::string name;   // series name
  std::string level;  // "outer", "cms1", "context.memory", "head", "" for run-level
  int block = -1;
  int clock = 1;
  double value = 0;
  int eval_task = -1;
  double acc = 0;
  double task_il_acc = 0;
  RunStatus status = RunStatus::Running;  // Status events
  std::string message;
  std::string path;
  CheckpointKind checkpoint = CheckpointKind::Last;  // Checkpoint events
  // Confusion events: the matrix (immutable, shared by every copy of the event).
  std::shared_ptr<const metrics::ConfusionMatrix> confusion;
};

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void onEvent(const Event& e) = 0;
};

}  // namespace hl::train
