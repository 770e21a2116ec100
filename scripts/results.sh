#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# The results table (docs/RESULTS.md): run or resume each sweep, write the report, draw its figures
# (docs/SWEEPS.md "The results report").
#   scripts/results.sh [--report-only] [DB] [SWEEP.json ...]
# DB defaults to results/runs.db, the committed run database behind docs/RESULTS.md (results/README.md);
# the sweeps default to RESULTS_SWEEPS below. Without --report-only it also records the test-time
# ablation (writes off) of every finished Hope run whose checkpoint is here. --report-only runs
# nothing: the report and figures of the runs (and recorded ablations) already in DB. Data: $HOPELAB_DATA_DIR or the app's data dir. Resumable: finished runs are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=1
if [ "${1:-}" = --report-only ]; then RUN=0; shift; fi
DB="${1:-results/runs.db}"
shift || true
SWEEPS=("$@")
RESULTS_SWEEPS=(sweeps/studies/hope-memory-joint.json sweeps/studies/hope-lr-joint.json sweeps/studies/hope-pooling-joint.json sweeps/studies/hope-pooling-lr.json sweeps/studies/hope-no-replay.json
  sweeps/laptop/banking77.json sweeps/laptop/clinc150.json sweeps/laptop/dbpedia70.json)
[ ${#SWEEPS[@]} -gt 0 ] || SWEEPS=("${RESULTS_SWEEPS[@]}")
CLI=build/app/cli/hopelab-cli
GUI=build/app/gui/hopelab
for b in "$CLI" "$GUI"; do [ -x "$b" ] || { echo "results.sh: $b is missing (build first: README)" >&2; exit 2; }; done
mkdir -p "$(dirname "$DB")"
rc=0
for s in "${SWEEPS[@]}"; do
  [ $RUN -eq 1 ] || break
  t0=$SECONDS
  code=0
  "$CLI" --db "$DB" sweep "$s" || code=$?
  echo "results.sh: $s: $((SECONDS - t0)) s wall (exit $code)" >&2
  [ $code -eq 130 ] && exit 130
  [ $code -ne 0 ] && rc=$code
done
# Test-time ablation of every finished Hope run of the sweeps (its saved model with the in-context
# writes off), recorded in DB for the report; runs recorded earlier are skipped, and a run whose
# checkpoint is not on this machine is named and left out (docs/MODELS.md "Test-time ablation").
for s in "${SWEEPS[@]}"; do
  [ $RUN -eq 1 ] || break
  tag="sweep:$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"])' "$s")"
  ids="$("$CLI" --db "$DB" runs --format json --tag "$tag" |
    python3 -c 'import json,sys; print(" ".join(str(r["id"]) for r in json.load(sys.stdin) if r["status"] == "finished" and r["name"].startswith("hope")))')"
  for id in $ids; do
    "$CLI" --db "$DB" evaluate "$id" --writes-off --record --missing-only --skip-without-writes >/dev/null ||
      echo "results.sh: run $id of $s: not ablated (see the message above)" >&2
  done
done
"$CLI" --db "$DB" report "${SWEEPS[@]}" --out docs/RESULTS.md --figures docs/figures
ids="$(cut -d' ' -f1 docs/figures/runs.txt | paste -sd, -)"
if [ -n "$ids" ]; then
  # Only the run figures: docs/figures also holds the benchmarks' (steptime.png).
  rm -f docs/figures/*-matrix.png docs/figures/*-forgetting.png
  QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}" "$GUI" --db "$DB" --figures docs/figures --runs "$ids"
fi
exit $rc
