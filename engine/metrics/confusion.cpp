#include "engine/metrics/confusion.h"

#include <cstdio>
#include <limits>
#include <stdexcept>

namespace hl::metrics {

int64_t ConfusionMatrix::rowSum(size_t r) const {
  int64_t s = 0;
  for (size_t c = 0; c < size(); ++c) s += at(r, c);
  return s;
}

int64_t ConfusionMatrix::total() const {
  int64_t s = 0;
  for (int64_t v : counts) s += v;
  return s;
}

int ConfusionMatrix::indexOf(int c) const {
  for (size_t k = 0; k < classes.size(); ++k)
    if (classes[k] == c) return int(k);
  return -1;
}

double ConfusionMatrix::taskAccuracy(int t) const {
  // Integers first, one division: the evaluator computes correct / n the same way.
  int64_t correct = 0, n = 0;
  for (size_t r = 0; r < size(); ++r) {
    if (tasks[r] != t) continue;
    correct += at(r, r);
    n += rowSum(r);
  }
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  return correct / double(n);
}

double ConfusionMatrix::rowShare(size_t r, size_t c) const {
  const int64_t s = rowSum(r);
  return s > 0 ? double(at(r, c)) / double(s) : 0.0;
}

ConfusionMatrix count_confusion(int after_task, const std::vector<int>& classes, const std::vector<int>& y_true,
                                const std::vector<int>& y_pred, const std::vector<int>& task_of,
                                const std::vector<std::string>& all_names) {
  if (y_true.size() != y_pred.size()) throw std::invalid_argument("count_confusion: y_true and y_pred differ in size");
  ConfusionMatrix m;
  m.after_task = after_task;
  std::vector<int> pos;  // class id -> position, -1 when absent
  auto add = [&](int c) {
    if (c < 0) throw std::invalid_argument("count_confusion: negative class id");
    if (size_t(c) >= pos.size()) pos.resize(size_t(c) + 1, -1);
    if (pos[c] >= 0) return;
    pos[c] = int(m.classes.size());
    m.classes.push_back(c);
    m.tasks.push_back(size_t(c) < task_of.size() ? task_of[c] : -1);
    m.names.push_back(size_t(c) < all_names.size() ? all_names[c] : std::string());
  };
  for (int c : classes) add(c);
  for (size_t k = 0; k < y_true.size(); ++k) {
    add(y_true[k]);
    add(y_pred[k]);
  }
  const size_t n = m.classes.size();
  m.counts.assign(n * n, 0);
  for (size_t k = 0; k < y_true.size(); ++k) ++m.counts[size_t(pos[y_true[k]]) * n + size_t(pos[y_pred[k]])];
  return m;
}

namespace {
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}
std::string class_label(const ConfusionMatrix& m, size_t k) {
  return !m.names[k].empty() ? m.names[k] : "class " + std::to_string(m.classes[k]);
}
}  // namespace

std::string confusion_csv(const ConfusionMatrix& m, bool normalise) {
  std::string out = csv_field("true \\ predicted");
  for (size_t c = 0; c < m.size(); ++c) out += "," + csv_field(class_label(m, c));
  out += "\n";
  char buf[32];
  for (size_t r = 0; r < m.size(); ++r) {
    out += csv_field(class_label(m, r));
    for (size_t c = 0; c < m.size(); ++c) {
      if (normalise)
        std::snprintf(buf, sizeof buf, ",%.6f", m.rowShare(r, c));
      else
        std::snprintf(buf, sizeof buf, ",%lld", static_cast<long long>(m.at(r, c)));
      out += buf;
    }
    out += "\n";
  }
  return out;
}

}  // namespace hl::metrics
