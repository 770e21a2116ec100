// Confusion matrices of class-incremental evaluations: after task i, the class-IL predictions on
// the evaluation split over the classes seen so far, counted per (true class, predicted class).
// A plain value type shared by the trainer's events, the run store and the views. No Qt, no torch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hl::metrics {

// The most classes a confusion matrix holds (n² counts: 134 MB at this size). The trainer skips
// the matrix of a larger class set (saying so), and the store refuses one as damage.
constexpr size_t kMaxConfusionClasses = 4096;

struct ConfusionMatrix {
  int after_task = 0;  // 0-based i: evaluated after training task i
  // Rows and columns, in this order: the classes seen after task i, task by task in training
  // order and within a task in the dataset's task order (so each task is a diagonal block).
  std::vector<int> classes;        // class ids
  std::vector<int> tasks;          // the task (0-based, training order) of each class
  std::vector<std::string> names;  // class names ("" when unknown)
  std::vector<int64_t> counts;     // n × n, row-major: counts[r·n + c] = rows of classes[r] predicted as classes[c]

  size_t size() const { return classes.size(); }
  int64_t at(size_t r, size_t c) const { return counts[r * classes.size() + c]; }
  int64_t rowSum(size_t r) const;
  int64_t total() const;
  // The position of class id `c` in `classes`, -1 when it is not there.
  int indexOf(int c) const;
  // Class-IL accuracy on task t: the diagonal over the rows of t's classes ÷ those rows; NaN when
  // the task has no rows. Equal, to the bit, to the accuracy-matrix cell R[after_task][t].
  double taskAccuracy(int t) const;
  // The cell normalised by its row (the true class's recall share); 0 for an empty row.
  double rowShare(size_t r, size_t c) const;
};

// Counts the pairs (y_true[k], y_pred[k]) into a matrix over `classes` (with their tasks and
// names). A label outside `classes` is added at the end (its task and name from task_of and
// all_names) so that every pair is counted. Throws std::invalid_argument when the sizes differ.
ConfusionMatrix count_confusion(int after_task, const std::vector<int>& classes, const std::vector<int>& y_true,
                                const std::vector<int>& y_pred, const std::vector<int>& task_of,
                                const std::vector<std::string>& all_names);

// The matrix as CSV (RFC 4180, LF): a header "true \ predicted" then one column per predicted
// class (its name, or "class <id>"), one row per true class; counts, or row shares with 6 decimals
// when `normalise` is set.
std::string confusion_csv(const ConfusionMatrix& m, bool normalise = false);

}  // namespace hl::metrics
