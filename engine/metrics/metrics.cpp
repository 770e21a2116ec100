#include "engine/metrics/metrics.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace hl::metrics {

namespace {

// Row i is complete when every R[i][j], j <= i, is a number.
bool row_complete(const std::vector<double>& row, size_t i) {
  for (size_t j = 0; j <= i; ++j)
    if (std::isnan(row[j])) return false;
  return true;
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return nan();
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

nlohmann::json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace

void check_matrix(const Matrix& R) {
  if (R.empty()) return;
  const size_t T = R[0].size();
  for (size_t i = 0; i < R.size(); ++i) {
    if (R[i].size() != T)
      throw std::invalid_argument("accuracy matrix is ragged: row " + std::to_string(i) + " has " +
                                  std::to_string(R[i].size()) + " entries, row 0 has " + std::to_string(T));
  }
  if (R.size() > T)
    throw std::invalid_argument("accuracy matrix has " + std::to_string(R.size()) + " rows but only " +
                                std::to_string(T) + " tasks (columns)");
}

Summary summarize(const Matrix& R) {
  check_matrix(R);
  Summary s;
  size_t T = 0;  // complete rows, counted from the top; the first incomplete row ends the prefix
  while (T < R.size() && row_complete(R[T], T)) ++T;
  s.complete_rows = static_cast<int>(T);
  for (size_t i = 0; i < T; ++i) s.avg_acc.push_back(mean(std::vector<double>(R[i].begin(), R[i].begin() + i + 1)));
  if (T == 0) return s;
  s.final_avg_acc = s.avg_acc.back();
  if (T < 2) return s;
  const std::vector<double>& last = R[T - 1];
  std::vector<double> forget, back;
  for (size_t j = 0; j + 1 < T; ++j) {
    double best = R[j][j];
    for (size_t l = j; l + 1 < T; ++l) best = std::max(best, R[l][j]);
    forget.push_back(best - last[j]);
    back.push_back(last[j] - R[j][j]);
  }
  s.forgetting = mean(forget);
  s.bwt = mean(back);
  return s;
}

double macro_f1(const std::vector<int>& y_true, const std::vector<int>& y_pred) {
  if (y_true.size() != y_pred.size())
    throw std::invalid_argument("macro_f1: " + std::to_string(y_true.size()) + " labels but " +
                                std::to_string(y_pred.size()) + " predictions");
  if (y_true.empty()) return nan();
  struct Counts {
    int64_t tp = 0, fp = 0, fn = 0;
  };
  std::map<int, Counts> c;
  for (int t : y_true) c[t];  // the classes that occur in y_true
  for (size_t k = 0; k < y_true.size(); ++k) {
    const int t = y_true[k], p = y_pred[k];
    if (t == p) {
      ++c[t].tp;
    } else {
      ++c[t].fn;
      auto it = c.find(p);
      if (it != c.end()) ++it->second.fp;  // predictions of absent classes count only as misses
    }
  }
  double sum = 0;
  for (const auto& [cls, n] : c) {
    (void)cls;
    // F1 = 2PR / (P + R) = 2 tp / (2 tp + fp + fn); 0 when tp = 0.
    if (n.tp > 0) sum += 2.0 * n.tp / static_cast<double>(2 * n.tp + n.fp + n.fn);
  }
  return sum / static_cast<double>(c.size());
}

std::string summary_json(const Matrix& R, double macro_f1_value, double task_il_acc) {
  const Summary s = summarize(R);
  nlohmann::json j;
  j["final_avg_acc"] = number_or_null(s.final_avg_acc);
  j["forgetting"] = number_or_null(s.forgetting);
  j["bwt"] = number_or_null(s.bwt);
  j["macro_f1"] = number_or_null(macro_f1_value);
  j["task_il_acc"] = number_or_null(task_il_acc);
  j["avg_acc"] = nlohmann::json::array();
  for (double a : s.avg_acc) j["avg_acc"].push_back(number_or_null(a));
  j["accuracy_matrix"] = nlohmann::json::array();
  for (const auto& row : R) {
    nlohmann::json r = nlohmann::json::array();
    for (double v : row) r.push_back(number_or_null(v));
    j["accuracy_matrix"].push_back(r);
  }
  return j.dump();
}

}  // namespace hl::metrics
