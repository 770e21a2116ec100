#include "ui/run_data.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace hl::ui {

using hl::train::EventKind;

void RunData::clear() {
  *this = RunData();
}

SeriesData& RunData::get(const std::string& name, const std::string& level, int block, int clock) {
  std::string key = name + '\x1f' + level + '\x1f' + std::to_string(block);
  auto it = index_.find(key);
  if (it != index_.end()) return series_[it->second];
  index_[key] = series_.size();
  series_.push_back(SeriesData{name, level, block, clock, {}, 0});
  return series_.back();
}

const SeriesData* RunData::find(const std::string& name, const std::string& level, int block) const {
  for (const auto& s : series_)
    if (s.name == name && s.level == level && (block == -2 || s.block == block)) return &s;
  return nullptr;
}

std::vector<const SeriesData*> RunData::lossLanes() const {
  std::vector<const SeriesData*> out;
  for (const auto& s : series_)
    if (s.name == "loss") out.push_back(&s);
  auto rank = [](const SeriesData* s) {
    if (s->level == "outer") return 0;
    if (s->level == "head") return 3;
    if (s->level.rfind("context", 0) == 0) return 2;
    return 1;
  };
  std::stable_sort(out.begin(), out.end(), [&](const SeriesData* a, const SeriesData* b) {
    if (a->clock != b->clock) return a->clock < b->clock;
    if (rank(a) != rank(b)) return rank(a) < rank(b);
    return a->level < b->level;
  });
  return out;
}

double RunData::taskPosition(double step) const {
  if (task_starts_.empty()) return 0;
  auto it = std::upper_bound(task_starts_.begin(), task_starts_.end(), int64_t(step));
  int t = std::max(0, int(it - task_starts_.begin()) - 1);
  double a = double(task_starts_[t]);
  double b = t + 1 < int(task_starts_.size())     ? double(task_starts_[t + 1])
             : total_steps_ > 0 && num_tasks_ > 0 ? a + double(total_steps_ - task_starts_[0]) / num_tasks_
                                                  : std::max(a + 1, double(step_));
  if (b <= a) b = a + 1;
  return t + std::clamp((step - a) / (b - a), 0.0, 1.0);
}

void RunData::apply(const hl::train::Event& e) {
  switch (e.kind) {
    case EventKind::RunStarted:
      run_id_ = e.run_id;
      total_steps_ = e.total_steps;
      num_tasks_ = e.num_tasks;
      name_ = e.message;
      status_ = hl::RunStatus::Running;
      break;
    case EventKind::Progress:
      step_ = e.step;
      total_steps_ = e.total_steps;
      samples_ = e.samples_seen;
      task_ = e.task;
      num_tasks_ = e.num_tasks;
      samples_map_.add(double(e.step), double(e.samples_seen));
      break;
    case EventKind::TaskStarted:
      task_ = e.task;
      num_tasks_ = std::max(num_tasks_, e.num_tasks);
      if (int(task_starts_.size()) <= e.task) task_starts_.resize(e.task + 1, step_);
      task_starts_[e.task] = step_;
      break;
    case EventKind::Point: {
      auto& s = get(e.name, e.level, e.block, e.clock);
      if (!s.raw.x.empty() && double(e.step) < s.raw.x.back()) break;  // out of order: ignore
      s.raw.x.push_back(double(e.step));
      s.raw.y.push_back(e.value);
      ++s.version;
      break;
    }
    case EventKind::Accuracy: {
      bool replaced = false;
      for (auto& c : cells_)
        if (c.after_task == e.task && c.task == e.eval_task) {
          c.acc = e.acc;
          c.task_il_acc = e.task_il_acc;
          replaced = true;
        }
      if (!replaced) cells_.push_back({e.task, e.eval_task, e.acc, e.task_il_acc});
      ++cells_version_;
      break;
    }
    case EventKind::Confusion: {
      if (!e.confusion) break;
      auto it = std::find_if(confusion_.begin(), confusion_.end(),
                             [&](const auto& m) { return m.after_task >= e.confusion->after_task; });
      if (it != confusion_.end() && it->after_task == e.confusion->after_task)
        *it = *e.confusion;
      else
        confusion_.insert(it, *e.confusion);
      ++confusion_version_;
      break;
    }
    case EventKind::Status:
      status_ = e.status;
      break;
    default:
      break;
  }
}

void RunData::load(hl::store::RunStore& db, int64_t run_id) {
  clear();
  auto r = db.getRun(run_id);
  if (!r) return;
  run_id_ = run_id;
  status_ = r->status;
  name_ = r->name;
  int batch = 0;
  try {
    auto spec = nlohmann::json::parse(r->spec_json);
    batch = spec.at("training").value("batch_size", 0);
  } catch (...) {
  }
  for (auto& s : db.series(run_id)) {
    auto& d = get(s.name, s.level, s.block, s.clock);
    d.raw.x.reserve(s.points.size());
    d.raw.y.reserve(s.points.size());
    for (const auto& [st, v] : s.points) {
      d.raw.x.push_back(double(st));
      d.raw.y.push_back(v);
      step_ = std::max<int64_t>(step_, st);
    }
    ++d.version;
  }
  cells_ = db.accuracy(run_id);
  ++cells_version_;
  confusion_ = db.confusion(run_id);
  ++confusion_version_;
  // Task boundaries: each task ends with an evaluation at its last step; the next one starts there.
  auto evals = db.evals(run_id);
  std::map<int, int64_t> task_end;
  for (const auto& e : evals) task_end[e.current_task] = std::max(task_end[e.current_task], e.step);
  int T = 0;
  for (const auto& c : cells_) T = std::max({T, c.after_task + 1, c.task + 1});
  for (const auto& [t, s] : task_end) T = std::max(T, t + 1);
  num_tasks_ = T;
  if (T > 0) {
    task_starts_.assign(T, 0);
    for (int t = 1; t < T; ++t) {
      auto it = task_end.find(t - 1);
      task_starts_[t] = it != task_end.end() ? it->second : task_starts_[t - 1];
    }
    task_ = int(task_end.empty() ? 0 : task_end.rbegin()->first);
  }
  total_steps_ = r->status == hl::RunStatus::Running ? 0 : step_;  // a run still being written: end unknown
  // Samples seen are not stored: steps × batch size (exact except for each epoch's last batch).
  if (batch > 0) {
    samples_map_.add(0, 0);
    samples_map_.add(double(std::max<int64_t>(1, step_)), double(std::max<int64_t>(1, step_)) * batch);
  }
  samples_ = int64_t(samplesAt(double(step_)));
}

}  // namespace hl::ui
