// Replays every kept fuzz input through its target in the normal build: the inputs that once
// crashed a parser (tests/fuzz/regressions/<target>/) and the handmade seeds
// (tests/fuzz/seeds/<target>/). Each must be refused with a clean hl::Error naming the file, or
// parse; a crash, another exception type or a broken invariant (tests/fuzz/targets.h) fails.
#include <QtTest>
#include <filesystem>
#include <fstream>

#include "engine/common/error.h"
#include "tests/fuzz/targets.h"

namespace fs = std::filesystem;

class TestFuzzRegressions : public QObject {
  Q_OBJECT

 private slots:
  void keptInputsParseOrGiveCleanErrors_data() {
    QTest::addColumn<QString>("target");
    QTest::addColumn<QString>("file");
    const fs::path root = fs::path(HL_SOURCE_DIR) / "tests" / "fuzz";
    int n = 0;
    for (const char* kind : {"regressions", "seeds"}) {
      if (!fs::is_directory(root / kind)) continue;
      for (const auto& dir : fs::directory_iterator(root / kind)) {
        if (!dir.is_directory()) continue;
        const std::string target = dir.path().filename().string();
        QVERIFY2(hl::fuzz::find_target(target), ("no fuzz target for folder " + dir.path().string()).c_str());
        for (const auto& f : fs::directory_iterator(dir.path())) {
          const std::string rel = fs::relative(f.path(), root).string();
          QTest::newRow(rel.c_str()) << QString::fromStdString(target) << QString::fromStdString(f.path().string());
          ++n;
        }
      }
    }
    QVERIFY2(n > 0, "no kept fuzz inputs found under tests/fuzz");
  }

  void keptInputsParseOrGiveCleanErrors() {
    QFETCH(QString, target);
    QFETCH(QString, file);
    std::ifstream in(file.toStdString(), std::ios::binary);
    QVERIFY(in.good());
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const auto run = hl::fuzz::find_target(target.toStdString());
    try {
      run(bytes);
    } catch (const hl::fuzz::InvariantBroken& e) {
      QFAIL(qPrintable(QString("invariant broken: ") + e.what()));
    } catch (const std::exception& e) {
      QFAIL(qPrintable(QString("escaped the parser: ") + typeid(e).name() + ": " + e.what()));
    }
  }

  // The section splitter the multi-file targets share.
  void sectionsSplitOnTheScissorsLine() {
    const std::string s = "a=1\n--8<--\nx\n--8<--\n\n--8<--\n";
    const auto parts = hl::fuzz::sections(s);
    QCOMPARE(int(parts.size()), 4);
    QCOMPARE(std::string(parts[0]), std::string("a=1"));
    QCOMPARE(std::string(parts[1]), std::string("x"));
    QCOMPARE(std::string(parts[2]), std::string());
    QCOMPARE(std::string(parts[3]), std::string());
    QCOMPARE(int(hl::fuzz::sections("").size()), 1);
  }
};

QTEST_GUILESS_MAIN(TestFuzzRegressions)
#include "test_fuzz_regressions.moc"
