#include "ui/plot_util.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace hl::ui {

XY decimate_minmax(const XY& in, int buckets) {
  const size_t n = in.size();
  if (buckets < 1 || n <= size_t(2 * buckets)) return in;
  XY out;
  out.x.reserve(2 * buckets);
  out.y.reserve(2 * buckets);
  for (int b = 0; b < buckets; ++b) {
    size_t lo = n * size_t(b) / size_t(buckets), hi = n * size_t(b + 1) / size_t(buckets);
    if (lo >= hi) continue;
    size_t imin = lo, imax = lo;
    for (size_t i = lo + 1; i < hi; ++i) {
      if (in.y[i] < in.y[imin] || std::isnan(in.y[imin])) imin = i;
      if (in.y[i] > in.y[imax] || std::isnan(in.y[imax])) imax = i;
    }
    size_t a = std::min(imin, imax), c = std::max(imin, imax);
    out.x.push_back(in.x[a]);
    out.y.push_back(in.y[a]);
    if (c != a) {
      out.x.push_back(in.x[c]);
      out.y.push_back(in.y[c]);
    }
  }
  return out;
}

std::vector<double> ema(const std::vector<double>& y, double a) {
  if (a <= 0 || y.empty()) return y;
  std::vector<double> out(y.size());
  double s = y[0];
  for (size_t i = 0; i < y.size(); ++i) {
    if (std::isfinite(y[i])) s = a * s + (1 - a) * y[i];
    out[i] = s;
  }
  return out;
}

double t95(int df) {
  static const double t[] = {0,     12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                             2.201, 2.179,  2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080,
                             2.074, 2.069,  2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (df < 1) return 0;
  if (df <= 30) return t[df];
  return 1.96;
}

namespace {
// Linear interpolation at ascending x positions: a cursor per run instead of a binary search.
struct Cursor {
  const XY* r;
  size_t i = 0;
  bool at(double x, double* y) {
    const auto& X = r->x;
    if (X.empty() || x < X.front() || x > X.back()) return false;
    while (i + 1 < X.size() && X[i + 1] <= x) ++i;
    if (X[i] == x || i + 1 >= X.size()) {
      *y = r->y[i];
      return true;
    }
    double x0 = X[i], x1 = X[i + 1];
    *y = r->y[i] + (r->y[i + 1] - r->y[i]) * (x - x0) / (x1 - x0);
    return true;
  }
};
}  // namespace

Band mean_ci(const std::vector<XY>& runs, size_t max_points) {
  Band b;
  if (runs.empty() || runs[0].x.empty()) return b;
  const auto& X = runs[0].x;
  const size_t stride = max_points > 0 && X.size() > max_points ? (X.size() + max_points - 1) / max_points : 1;
  std::vector<Cursor> cur;
  for (const auto& r : runs) cur.push_back(Cursor{&r});
  std::vector<double> v;
  std::vector<size_t> at;
  for (size_t k = 0; k < X.size(); k += stride) at.push_back(k);
  if (at.back() != X.size() - 1) at.push_back(X.size() - 1);  // always end on the last x
  for (size_t k : at) {
    double x = X[k];
    v.clear();
    for (auto& c : cur) {
      double y;
      if (c.at(x, &y) && std::isfinite(y)) v.push_back(y);
    }
    const int n = int(v.size());
    if (n == 0) continue;
    double sum = 0, sq = 0;
    for (double y : v) sum += y;
    const double m = sum / n;
    for (double y : v) sq += (y - m) * (y - m);
    const double half = n > 1 ? t95(n - 1) * std::sqrt(sq / (n - 1)) / std::sqrt(double(n)) : 0;
    b.x.push_back(x);
    b.mean.push_back(m);
    b.lo.push_back(m - half);
    b.hi.push_back(m + half);
    b.n.push_back(n);
  }
  return b;
}

std::pair<double, double> metric_range(const std::string& name) {
  const double inf = std::numeric_limits<double>::infinity();
  if (name.find("acc") != std::string::npos) return {0.0, 1.0};
  if (name.rfind("loss", 0) == 0 || name.rfind("drift", 0) == 0 || name.rfind("grad_norm", 0) == 0) return {0.0, inf};
  return {-inf, inf};
}

void clip_band(Band& b, std::pair<double, double> range) {
  for (auto* v : {&b.lo, &b.hi, &b.mean})
    for (double& y : *v) y = std::clamp(y, range.first, range.second);
}

std::pair<double, double> padded_range(double lo, double hi, bool log_scale, double pad) {
  if (log_scale) {
    if (lo <= 0 || hi <= 0) return {lo, hi};
    return {lo / (1 + 2 * pad), hi * (1 + 2 * pad)};
  }
  const double d = hi > lo ? pad * (hi - lo) : std::max(1e-3, pad * std::abs(hi));
  return {lo - d, hi + d};
}

void AxisMap::add(double step, double value) {
  if (!s_.empty() && step <= s_.back()) {
    if (step == s_.back()) v_.back() = value;
    return;
  }
  s_.push_back(step);
  v_.push_back(value);
}

double AxisMap::operator()(double step) const {
  if (s_.empty()) return step;
  if (s_.size() == 1) return v_[0] + (step - s_[0]);
  auto it = std::upper_bound(s_.begin(), s_.end(), step);
  size_t i = size_t(it - s_.begin());
  if (i == 0) i = 1;
  if (i >= s_.size()) i = s_.size() - 1;
  double s0 = s_[i - 1], s1 = s_[i];
  return v_[i - 1] + (v_[i] - v_[i - 1]) * (step - s0) / (s1 - s0);
}

LegendSpot legend_spot(const std::vector<XY>& curves, double fw, double fh) {
  fw = std::clamp(fw, 0.0, 1.0), fh = std::clamp(fh, 0.0, 1.0);
  const double x0[] = {1 - fw, 1 - fw, 1 - fw, 0, 0, 0}, y0[] = {1 - fh, 0.5 - fh / 2, 0, 1 - fh, 0.5 - fh / 2, 0};
  constexpr int kSpots = 6;
  int64_t under[kSpots] = {};
  auto count = [&](double x, double y) {
    for (int i = 0; i < kSpots; ++i)
      if (x >= x0[i] && x <= x0[i] + fw && y >= y0[i] && y <= y0[i] + fh) ++under[i];
  };
  for (const XY& c : curves) {
    bool prev = false;
    double px = 0, py = 0;
    for (size_t j = 0; j < c.size(); ++j) {
      const double x = c.x[j], y = c.y[j];
      if (!std::isfinite(x) || !std::isfinite(y)) {
        prev = false;
        continue;
      }
      if (prev)
        for (int k = 1; k < 4; ++k) count(px + (x - px) * k / 4.0, py + (y - py) * k / 4.0);
      count(x, y);
      px = x, py = y, prev = true;
    }
  }
  int best = 0;
  for (int i = 1; i < kSpots; ++i)
    if (under[i] < under[best]) best = i;
  return static_cast<LegendSpot>(best);
}

}  // namespace hl::ui
