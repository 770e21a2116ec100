// Running a hopelab-cli child process from a test: its exit code (-1 when it crashed, or ran past
// the timeout and was killed) and its output. Shared by test_cli and test_faults.
#pragma once
#include <QProcess>
#include <QProcessEnvironment>
#include <QString>
#include <QStringList>

struct CliResult {
  int code = -1;
  QString out, err;
};

inline CliResult runCli(const QString& program, const QStringList& args, const QProcessEnvironment& env,
                        int timeout_ms) {
  QProcess p;
  p.setProcessEnvironment(env);
  p.start(program, args);
  if (!p.waitForFinished(timeout_ms)) {
    p.kill();
    p.waitForFinished();
  }
  CliResult r;
  r.code = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
  r.out = QString::fromUtf8(p.readAllStandardOutput());
  r.err = QString::fromUtf8(p.readAllStandardError());
  return r;
}
