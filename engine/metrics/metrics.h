// Continual-learning metrics (DECISIONS.md), computed from an accuracy matrix. No Qt, no torch.
#pragma once
#include <cmath>
#include <limits>
#include <vector>

namespace hl::metrics {

// R[i][j] = accuracy on task j after training task i (0-based). Entries with j > i are NaN
// (not yet seen). Rows may be fewer than T while a run is in progress.
using Matrix = std::vector<std::vector<double>>;

inline double nan() { return std::numeric_limits<double>::quiet_NaN(); }

struct Summary {
  std::vector<double> avg_acc;  // A_i = mean_{j<=i} R[i][j], one per finished task
  double final_avg_acc = nan(); // A_T
  double forgetting = nan();    // mean_{j<T-1} (max_{j<=l<T-1} R[l][j] - R[T-1][j]); NaN if T < 2
  double bwt = nan();           // mean_{j<T-1} (R[T-1][j] - R[j][j]); NaN if T < 2
};

// Uses the last complete row as "final". Throws std::invalid_argument for a ragged matrix.
Summary summarize(const Matrix& R);

// Macro-F1 over the classes that occur in y_true (sklearn's convention for labels=present classes:
// F1 = 0 for a class with no true positives).
double macro_f1(const std::vector<int>& y_true, const std::vector<int>& y_pred);

}  // namespace hl::metrics
