// HOPELAB_COMMIT_LOG=DIR: every run this process writes reports the points its writer committed to
// DIR/commits-<pid>.tsv, one line per point ("run<TAB>name<TAB>level<TAB>block<TAB>clock<TAB>step"),
// appended once the transaction that holds them has committed. For stress tests and anyone who
// wants proof of what a process stored: a point listed there is in the run database (a process
// killed while appending leaves at most its last line cut, without its newline). Unset: nothing.
#pragma once
#include "engine/store/store.h"

namespace hl::cli {

// The hook for RunOptions::on_commit, or an empty one when HOPELAB_COMMIT_LOG is not set.
// Throws RunError when the folder cannot be written.
store::RunWriter::CommitHook commit_log_from_env();

}  // namespace hl::cli
