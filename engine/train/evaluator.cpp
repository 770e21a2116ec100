#include "engine/train/evaluator.h"

#include <algorithm>
#include <cmath>

#include "engine/train/level_schedule.h"

namespace hl::train {

std::vector<std::vector<int64_t>> eval_batches(const Encoded& e, std::vector<int64_t> rows) {
  // Shortest first (stable: rows of one length keep their order). A batch is padded to its longest
  // row, and in file order Banking77's test batches of 256 hold about 4.5x as many positions as
  // words: the pads cost every layer but the memory kernels (which skip a row's pad tail).
  auto len = [&](int64_t i) { return int64_t(e.ids[size_t(i)].size()); };
  std::stable_sort(rows.begin(), rows.end(), [&](int64_t a, int64_t b) { return len(a) < len(b); });
  std::vector<std::vector<int64_t>> out;
  size_t s = 0;
  while (s < rows.size()) {
    // Rows [s, e): at most kEvalBatch; past kEvalMinBatch rows, the batch ends before the row that
    // would make its positions (rows x the longest) more than 5/4 of its real tokens.
    size_t e = s;
    int64_t real = 0;
    while (e < rows.size() && e - s < size_t(kEvalBatch)) {
      const int64_t l = std::max<int64_t>(1, len(rows[e]));
      if (e - s >= size_t(kEvalMinBatch) && 4 * int64_t(e - s + 1) * l > 5 * (real + l)) break;
      real += l;
      ++e;
    }
    // Shortest and longest alternate, so that threads splitting the batch into contiguous ranges
    // of rows (the memory kernels) get about the same number of real tokens.
    std::vector<int64_t> idx;
    for (size_t lo = s, hi = e; lo < hi;) {
      idx.push_back(rows[lo++]);
      if (lo < hi) idx.push_back(rows[--hi]);
    }
    out.push_back(std::move(idx));
    s = e;
  }
  return out;
}

EvalRow evaluate(models::Classifier& model, const Encoded& test, const std::vector<std::vector<int>>& tasks,
                 const std::vector<int>& eval_tasks, const torch::Tensor& seen_mask, int64_t pad) {
  torch::NoGradGuard ng;
  bool was_training = model->is_training();
  model->eval();
  EvalRow row;
  const int C = int(seen_mask.size(0));
  std::vector<int> task_of(C, -1);
  for (size_t t = 0; t < tasks.size(); ++t)
    for (int c : tasks[t]) task_of[c] = int(t);
  std::vector<std::vector<int64_t>> rows_of(tasks.size());
  for (size_t i = 0; i < test.labels.size(); ++i) {
    int t = task_of[test.labels[i]];
    if (t >= 0) rows_of[t].push_back(int64_t(i));
  }
  for (int t : eval_tasks) {
    auto own = torch::full({C}, kMaskedLogit);
    for (int c : tasks[t]) own[c] = 0.f;
    own = own.to(seen_mask.device());
    int64_t correct = 0, correct_til = 0;
    const auto& rows = rows_of[t];
    for (const auto& idx : eval_batches(test, rows)) {
      auto logits = model->forward(batch_tokens(test, idx, pad).to(seen_mask.device()));
      auto y = batch_labels(test, idx).to(seen_mask.device());
      auto pred = (logits + seen_mask).argmax(1);
      auto pred_til = (logits + own).argmax(1);
      correct += pred.eq(y).sum().item<int64_t>();
      correct_til += pred_til.eq(y).sum().item<int64_t>();
      auto pv = to_vec(pred);
      for (size_t k = 0; k < idx.size(); ++k) {
        row.y_true.push_back(int(test.labels[idx[k]]));
        row.y_pred.push_back(int(pv[k]));
      }
    }
    double n = std::max<size_t>(rows.size(), 1);
    row.acc.push_back(rows.empty() ? metrics::nan() : correct / n);
    row.til.push_back(rows.empty() ? metrics::nan() : correct_til / n);
  }
  model->train(was_training);
  return row;
}

torch::Tensor seen_mask_for(const RunSetup& s, int phase) {
  auto m = torch::full({s.C}, kMaskedLogit);
  for (int p = 0; p <= phase; ++p)
    for (int c : s.phases[p]) m[c] = 0.f;
  return m.to(s.device);
}

std::vector<int> eval_tasks_for(const RunSetup& s, int phase) {
  std::vector<int> ts;
  int upto = s.joint ? s.T - 1 : phase;
  for (int t = 0; t <= upto; ++t) ts.push_back(t);
  return ts;
}

void periodic_eval(TrainerState& st, RunSetup& s, int phase, Emitter& emit) {
  auto row = evaluate(s.model, s.test, s.ds.tasks, eval_tasks_for(s, phase), seen_mask_for(s, phase), s.pad);
  auto ts = eval_tasks_for(s, phase);
  for (size_t k = 0; k < ts.size(); ++k) {
    Event e;
    e.kind = EventKind::Eval;
    e.step = st.step;
    e.task = phase;
    e.eval_task = ts[k];
    e.acc = row.acc[k];
    e.task_il_acc = row.til[k];
    emit(e);
    emit.point("acc.task" + std::to_string(ts[k]), "eval", st.step, row.acc[k], ts[k]);
  }
  emit_drift(st, s, emit);
}

EvalRow task_end_eval(TrainerState& st, RunSetup& s, int phase, const torch::Tensor& seen, Emitter& emit) {
  EvalRow row = evaluate(s.model, s.test, s.ds.tasks, eval_tasks_for(s, phase), seen, s.pad);
  auto ts = eval_tasks_for(s, phase);
  int row_i = s.joint ? s.T - 1 : phase;
  for (size_t k = 0; k < ts.size(); ++k) {
    st.R[row_i][ts[k]] = row.acc[k];
    st.RT[row_i][ts[k]] = row.til[k];
    Event e;
    e.kind = EventKind::Accuracy;
    e.task = row_i;
    e.eval_task = ts[k];
    e.acc = row.acc[k];
    e.task_il_acc = row.til[k];
    emit(e);
    Event ev = e;
    ev.kind = EventKind::Eval;
    ev.step = st.step;
    ev.task = phase;
    emit(ev);
    emit.point("acc.task" + std::to_string(ts[k]), "eval", st.step, row.acc[k], ts[k]);
  }
  emit.point("avg_acc", "eval", st.step, mean_acc(row));
  emit_confusion(s, row_i, ts, row, emit);
  return row;
}

void emit_confusion(const RunSetup& s, int after_task, const std::vector<int>& eval_tasks, const EvalRow& row,
                    Emitter& emit) {
  // The same predictions as the accuracy cells: nothing is evaluated again.
  std::vector<int> classes, task_of(s.C, -1);
  for (size_t t = 0; t < s.ds.tasks.size(); ++t)
    for (int c : s.ds.tasks[t]) task_of[c] = int(t);
  for (int t : eval_tasks) classes.insert(classes.end(), s.ds.tasks[t].begin(), s.ds.tasks[t].end());
  if (classes.size() > metrics::kMaxConfusionClasses) {
    emit.log("no confusion matrix after task " + std::to_string(after_task + 1) + ": " +
             std::to_string(classes.size()) + " classes seen, more than the " +
             std::to_string(metrics::kMaxConfusionClasses) + " a matrix holds");
    return;
  }
  Event e;
  e.kind = EventKind::Confusion;
  e.task = after_task;
  e.confusion = std::make_shared<const metrics::ConfusionMatrix>(
      metrics::count_confusion(after_task, classes, row.y_true, row.y_pred, task_of, s.ds.class_names));
  emit(e);
}

double mean_acc(const EvalRow& row) {
  double avg = 0;
  for (double a : row.acc) avg += a;
  return avg / std::max<size_t>(1, row.acc.size());
}

double best_score(TrainerState& st, RunSetup& s, int phase, const torch::Tensor& seen, double avg, Emitter& emit) {
  if (s.dev.labels.empty()) return avg;
  auto drow = evaluate(s.model, s.dev, s.ds.tasks, eval_tasks_for(s, phase), seen, s.pad);
  double select = 0;
  int nd = 0;
  for (double a : drow.acc)
    if (!std::isnan(a)) {
      select += a;
      ++nd;
    }
  select /= std::max(nd, 1);
  emit.point("dev_avg_acc", "eval", st.step, select);
  return select;
}

}  // namespace hl::train
