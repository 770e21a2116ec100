// Continual-learning metrics (DECISIONS.md), computed from an accuracy matrix. No Qt, no torch.
#pragma once
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace hl::metrics {

// R[i][j] = accuracy on task j after training task i (0-based). Entries with j > i are NaN
// (not yet seen). Rows may be fewer than T while a run is in progress.
using Matrix = std::vector<std::vector<double>>;

inline double nan() {
  return std::numeric_limits<double>::quiet_NaN();
}

struct Summary {
  std::vector<double> avg_acc;   // A_i = mean_{j<=i} R[i][j], one per finished task
  double final_avg_acc = nan();  // A_T
  double forgetting = nan();     // mean_{j<T-1} (max_{j<=l<T-1} R[l][j] - R[T-1][j]); NaN if T < 2
  double bwt = nan();            // mean_{j<T-1} (R[T-1][j] - R[j][j]); NaN if T < 2
  int complete_rows = 0;         // T used above: leading rows whose R[i][j], j <= i, are all numbers
};

// Throws std::invalid_argument if rows differ in length or there are more rows than columns.
void check_matrix(const Matrix& R);

// Uses the last complete row as "final" (rows are complete from the top; the first row with a
// NaN at j <= i ends them). Throws std::invalid_argument for a ragged matrix.
Summary summarize(const Matrix& R);

// Macro-F1 over the classes that occur in y_true (sklearn's convention for labels=present classes:
// F1 = 0 for a class with no true positives).
// Throws std::invalid_argument if the sizes differ; NaN for empty input.
double macro_f1(const std::vector<int>& y_true, const std::vector<int>& y_pred);

// The JSON object stored as RunRecord.summary_json (docs/STORE.md): final_avg_acc, forgetting, bwt,
// macro_f1, task_il_acc, avg_acc (list), accuracy_matrix (R with null for NaN). Every NaN or
// infinite value is written as null. task_il_acc is by convention summarize(task-IL matrix).final_avg_acc.
std::string summary_json(const Matrix& R, double macro_f1 = nan(), double task_il_acc = nan());

}  // namespace hl::metrics
