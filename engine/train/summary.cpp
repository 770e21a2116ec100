#include "engine/train/summary.h"

#include <cmath>

#include "engine/store/store.h"
#include "engine/train/level_schedule.h"
#include "hl_kernels/cpu_isa.h"

using json = nlohmann::json;

namespace hl::train {
namespace {

json num_or_null(double v) {
  return std::isnan(v) ? json(nullptr) : json(v);
}

}  // namespace

json run_summary(const TrainerState& st, const RunSetup& s, const EvalRow& last_eval, double train_seconds) {
  const auto& R = st.R;
  const auto& RT = st.RT;
  const int T = s.T;
  json summary;
  int rows_done = 0;
  for (int i = 0; i < T; ++i)
    if (!std::isnan(R[i][0])) rows_done = i + 1;
  if (s.joint) {
    double a = 0, til = 0;
    int n = 0;
    for (int j = 0; j < T; ++j)
      if (!std::isnan(R[T - 1][j])) {
        a += R[T - 1][j];
        til += RT[T - 1][j];
        ++n;
      }
    summary["final_avg_acc"] = n ? json(a / n) : json(nullptr);
    summary["task_il_acc"] = n ? json(til / n) : json(nullptr);
    summary["forgetting"] = nullptr;
    summary["bwt"] = nullptr;
    summary["avg_acc"] = n ? json::array({a / n}) : json::array();
  } else if (rows_done > 0) {
    metrics::Matrix done(R.begin(), R.begin() + rows_done);
    for (auto& row : done) row.resize(rows_done);
    auto m = metrics::summarize(done);
    summary["final_avg_acc"] = num_or_null(m.final_avg_acc);
    summary["forgetting"] = num_or_null(m.forgetting);
    summary["bwt"] = num_or_null(m.bwt);
    summary["avg_acc"] = m.avg_acc;
    double til = 0;
    for (int j = 0; j < rows_done; ++j) til += RT[rows_done - 1][j];
    summary["task_il_acc"] = til / rows_done;
  } else {
    for (const char* k : {"final_avg_acc", "forgetting", "bwt", "task_il_acc"}) summary[k] = nullptr;
    summary["avg_acc"] = json::array();
  }
  summary["macro_f1"] =
      last_eval.y_true.empty() ? json(nullptr) : json(metrics::macro_f1(last_eval.y_true, last_eval.y_pred));
  summary["accuracy_matrix"] = matrix_to_json(R);  // R and RT are T x T throughout
  summary["task_il_matrix"] = matrix_to_json(RT);
  summary["tasks_completed"] = s.joint ? (rows_done ? 1 : 0) : rows_done;
  summary["num_tasks"] = T;
  summary["steps"] = st.step;
  summary["cadence"] = cadence_audit(st, s);
  if (st.head.on) summary["head_clamped_writes"] = st.head.clamped;
  if (!st.context_audit.empty()) {
    int64_t clamped = 0;
    for (const auto& [key, a] : st.context_audit) clamped += a.clamped;
    summary["clamped_writes"] = clamped;
  }
  if (!s.dev.labels.empty()) summary["dev_rows"] = int64_t(s.dev.labels.size());
  summary["kernels"] = s.model->kernelPath();  // which code ran the memory recurrences (docs/KERNELS.md)
  if (summary["kernels"] == "fused-cpu" || summary["kernels"] == "mixed")  // and with which instruction set
    summary["kernel_isa"] = hl::kernels::cpu_isa_name(hl::kernels::cpu_isa());
  // The machine, for the train seconds: runs of one database may come from several (results/README.md).
  summary["cpu"] = hl::store::current_cpu();
  summary["threads"] = torch::get_num_threads();
  summary["samples_seen"] = st.samples;
  summary["params"] = s.n_params;
  summary["train_seconds"] = train_seconds;
  summary["eval_seconds"] = st.eval_seconds;  // part of train_seconds (TrainerState::eval_seconds)
  summary["classes"] = s.ds.class_names;
  summary["tasks"] = s.ds.tasks;
  if (!s.ds.warnings.empty()) summary["data_warnings"] = s.ds.warnings;
  return summary;
}

}  // namespace hl::train
