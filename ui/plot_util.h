// Pure helpers behind the plots: extremum-preserving decimation, EMA smoothing, mean ± CI over
// seeds, step -> task/sample mapping. No widgets, so they are tested and benchmarked directly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hl::ui {

struct XY {
  std::vector<double> x, y;
  size_t size() const { return x.size(); }
};

// Min/max per bucket: at most 2*buckets points, keeps every bucket's extremes in x order, so
// spikes (divergence) stay visible. Input x ascending. Returns the input when it is small enough.
XY decimate_minmax(const XY& in, int buckets);

// Exponential moving average, y_t = a*y_{t-1} + (1-a)*x_t (a = 0: no smoothing), started at x_0.
std::vector<double> ema(const std::vector<double>& y, double a);

// Two-sided 95% Student t quantile for df degrees of freedom (df >= 1; 1.96 beyond 30).
double t95(int df);

// Mean and 95% CI half-width (t95(n-1) * sd / sqrt(n)) over runs, at the x of the first run; the
// others are linearly interpolated there (outside their range they do not count).
struct Band {
  std::vector<double> x, mean, lo, hi;
  std::vector<int> n;
};
// At most max_points x positions (every k-th x of the first run, and its last) so a band over
// long series costs O(max_points · runs) after one linear pass; 0 = every x.
Band mean_ci(const std::vector<XY>& runs, size_t max_points = 0);

// The range a stored metric can take: accuracies [0, 1]; losses, drift and other norms [0, inf);
// anything else unbounded. A confidence band is clipped to it (with n = 2 seeds t95 = 12.7 sends
// an accuracy band far below 0).
std::pair<double, double> metric_range(const std::string& name);
void clip_band(Band& b, std::pair<double, double> range);

// An axis range with room around the data: `pad` of the span above and below (a curve at its
// maximum is not drawn on the frame, its dots not cut in half). A log axis is widened by a factor
// (1 + 2·pad) each way; a flat range (lo == hi) gets ±pad·|hi| (at least 1e-3).
std::pair<double, double> padded_range(double lo, double hi, bool log_scale, double pad = 0.1);

// Where a plot's legend hides the least: the spot, among the corners and the middles of the left
// and right sides of the axis rect, where a legend of fw × fh (fractions of the axis rect) covers the
// fewest points of the curves, counting 3 points along each segment between neighbours too.
// Curves are in fractions of the axis rect (x rightwards, y upwards); a non-finite point breaks a
// curve. Ties go to the earlier spot in this order (top right, the usual place, first).
enum class LegendSpot { TopRight, MiddleRight, BottomRight, TopLeft, MiddleLeft, BottomLeft };
LegendSpot legend_spot(const std::vector<XY>& curves, double fw, double fh);

// Piecewise-linear map from step to another axis (task position, samples seen), given knots
// (step ascending). Beyond the last knot the last slope continues; with one knot it is an offset.
class AxisMap {
 public:
  void add(double step, double value);
  void clear() {
    s_.clear();
    v_.clear();
  }
  bool empty() const { return s_.empty(); }
  double operator()(double step) const;

 private:
  std::vector<double> s_, v_;
};

}  // namespace hl::ui
