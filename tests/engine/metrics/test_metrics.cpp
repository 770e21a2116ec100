// Continual-learning metrics against matrices worked out by hand (DECISIONS.md formulas), NaN and
// in-progress handling, malformed input, macro-F1, and the summary JSON.
#include <QtTest>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "engine/metrics/metrics.h"

using hl::metrics::Matrix;
using hl::metrics::nan;

namespace {

constexpr double kTol = 1e-12;  // every expected value below is exact up to rounding

#define QCOMPARE_NEAR(actual, expected)                                                                        \
  QVERIFY2(std::fabs((actual) - (expected)) <= kTol, qPrintable(QString("%1 = %2, expected %3 (tolerance %4)") \
                                                                    .arg(#actual)                              \
                                                                    .arg(actual, 0, 'g', 17)                   \
                                                                    .arg(expected, 0, 'g', 17)                 \
                                                                    .arg(kTol)))

const double N = nan();

}  // namespace

class TestMetrics : public QObject {
  Q_OBJECT

 private slots:
  void summarizesHandWorkedThreeTaskMatrix() {
    // R[i][j] after training task i, on task j:
    //            task 0  task 1  task 2
    //   after 0   0.90     -       -
    //   after 1   0.95    0.80     -      (task 0 improved after task 1)
    //   after 2   0.60    0.40    0.85
    // A_0 = 0.90; A_1 = (0.95 + 0.80) / 2 = 0.875; A_2 = (0.60 + 0.40 + 0.85) / 3 = 0.61666...
    // Forgetting: j=0: max(0.90, 0.95) - 0.60 = 0.35; j=1: 0.80 - 0.40 = 0.40 -> mean 0.375
    //   (the max over rows l < T-1 is 0.95, not the diagonal 0.90).
    // BWT: j=0: 0.60 - 0.90 = -0.30; j=1: 0.40 - 0.80 = -0.40 -> mean -0.35.
    const Matrix R = {{0.90, N, N}, {0.95, 0.80, N}, {0.60, 0.40, 0.85}};
    const auto s = hl::metrics::summarize(R);
    QCOMPARE(s.avg_acc.size(), size_t(3));
    QCOMPARE_NEAR(s.avg_acc[0], 0.90);
    QCOMPARE_NEAR(s.avg_acc[1], 0.875);
    QCOMPARE_NEAR(s.avg_acc[2], 1.85 / 3.0);
    QCOMPARE_NEAR(s.final_avg_acc, 1.85 / 3.0);
    QCOMPARE_NEAR(s.forgetting, 0.375);
    QCOMPARE_NEAR(s.bwt, -0.35);
    QCOMPARE(s.complete_rows, 3);
  }

  void noForgettingGivesZeroForgettingAndBwt() {
    const Matrix R = {{1, N, N, N}, {1, 1, N, N}, {1, 1, 1, N}, {1, 1, 1, 1}};
    const auto s = hl::metrics::summarize(R);
    QCOMPARE_NEAR(s.final_avg_acc, 1.0);
    QCOMPARE_NEAR(s.forgetting, 0.0);
    QCOMPARE_NEAR(s.bwt, 0.0);
  }

  void singleTaskHasNoForgettingOrBwt() {
    const auto s = hl::metrics::summarize({{0.7}});
    QCOMPARE(s.avg_acc.size(), size_t(1));
    QCOMPARE_NEAR(s.final_avg_acc, 0.7);
    QVERIFY(std::isnan(s.forgetting));
    QVERIFY(std::isnan(s.bwt));
  }

  void emptyMatrixHasNothing() {
    const auto s = hl::metrics::summarize({});
    QVERIFY(s.avg_acc.empty());
    QVERIFY(std::isnan(s.final_avg_acc));
    QCOMPARE(s.complete_rows, 0);
  }

  void runInProgressUsesLastCompleteRow() {
    // 4 tasks, 3 rows so far, the third only half evaluated (task 1 missing): final is row 1.
    // A_0 = 0.8, A_1 = (0.6 + 0.9) / 2 = 0.75; F = 0.8 - 0.6 = 0.2; BWT = 0.6 - 0.8 = -0.2.
    const Matrix R = {{0.8, N, N, N}, {0.6, 0.9, N, N}, {0.5, N, 0.7, N}};
    const auto s = hl::metrics::summarize(R);
    QCOMPARE(s.complete_rows, 2);
    QCOMPARE(s.avg_acc.size(), size_t(2));
    QCOMPARE_NEAR(s.final_avg_acc, 0.75);
    QCOMPARE_NEAR(s.forgetting, 0.2);
    QCOMPARE_NEAR(s.bwt, -0.2);
  }

  void valuesAboveTheDiagonalAreIgnored() {
    // Class-incremental accuracy on an unseen task is undefined; a number there must not count.
    const Matrix R = {{0.9, 0.1}, {0.5, 0.7}};
    const auto s = hl::metrics::summarize(R);
    QCOMPARE_NEAR(s.avg_acc[0], 0.9);
    QCOMPARE_NEAR(s.final_avg_acc, 0.6);
  }

  void firstRowWithNanOnOrBelowDiagonalEndsTheSummary() {
    const Matrix R = {{N, N}, {0.5, 0.7}};
    const auto s = hl::metrics::summarize(R);
    QCOMPARE(s.complete_rows, 0);
    QVERIFY(std::isnan(s.final_avg_acc));
    QVERIFY(std::isnan(s.forgetting));
  }

  void raggedOrOverlongMatrixThrows_data() {
    QTest::addColumn<int>("which");
    QTest::newRow("rows of different length") << 0;
    QTest::newRow("lower-triangular rows") << 1;
    QTest::newRow("more rows than tasks") << 2;
  }
  void raggedOrOverlongMatrixThrows() {
    QFETCH(int, which);
    const Matrix bad[] = {{{0.9, N, N}, {0.8, 0.7}}, {{0.9}, {0.8, 0.7}}, {{0.9, N}, {0.8, 0.7}, {0.6, 0.5}}};
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, hl::metrics::summarize(bad[which]));
  }

  void macroF1MatchesHandCount() {
    // y_true 0 0 1 1 2 2, y_pred 0 1 1 1 0 3:
    // class 0: tp 1, fp 1 (a 2 predicted as 0), fn 1 -> F1 = 2/(2+1+1) = 0.5
    // class 1: tp 2, fp 1 (a 0 predicted as 1), fn 0 -> F1 = 4/5 = 0.8
    // class 2: tp 0 -> F1 = 0 (3 is not a true class: it only costs class 2 recall)
    // macro = (0.5 + 0.8 + 0) / 3
    const double f1 = hl::metrics::macro_f1({0, 0, 1, 1, 2, 2}, {0, 1, 1, 1, 0, 3});
    QCOMPARE_NEAR(f1, 1.3 / 3.0);
  }

  void macroF1PerfectAndDegenerateInputs() {
    QCOMPARE_NEAR(hl::metrics::macro_f1({3, 1, 2}, {3, 1, 2}), 1.0);
    QCOMPARE_NEAR(hl::metrics::macro_f1({1, 1}, {0, 0}), 0.0);
    QVERIFY(std::isnan(hl::metrics::macro_f1({}, {})));
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, hl::metrics::macro_f1({1, 2}, {1}));
  }

  void summaryJsonHasTheDocumentedKeysAndNullForNaN() {
    const Matrix R = {{0.9, N}, {0.5, 0.7}};
    const auto j = nlohmann::json::parse(hl::metrics::summary_json(R, 0.55));
    for (const char* key :
         {"final_avg_acc", "forgetting", "bwt", "macro_f1", "task_il_acc", "avg_acc", "accuracy_matrix"})
      QVERIFY2(j.contains(key), key);
    QCOMPARE_NEAR(j["final_avg_acc"].get<double>(), 0.6);
    QCOMPARE_NEAR(j["forgetting"].get<double>(), 0.4);
    QCOMPARE_NEAR(j["bwt"].get<double>(), -0.4);
    QCOMPARE_NEAR(j["macro_f1"].get<double>(), 0.55);
    QVERIFY(j["task_il_acc"].is_null());
    QCOMPARE(j["avg_acc"].size(), size_t(2));
    QVERIFY(j["accuracy_matrix"][0][1].is_null());
    QCOMPARE_NEAR(j["accuracy_matrix"][1][1].get<double>(), 0.7);
    const auto one = nlohmann::json::parse(hl::metrics::summary_json({{0.5}}));
    QVERIFY(one["forgetting"].is_null());
    QVERIFY(one["bwt"].is_null());
  }
};

QTEST_APPLESS_MAIN(TestMetrics)
#include "test_metrics.moc"
