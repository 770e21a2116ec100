#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# The results table (docs/RESULTS.md) from the laptop sweeps: run or resume each sweep, write the
# report, draw its figures (docs/SWEEPS.md "The results report").
#   scripts/results.sh [DB] [SWEEP.json ...]     (default: ~/.local/share/hopelab/results.db, sweeps/laptop/*.json)
# Data: $HOPELAB_DATA_DIR or the app's data dir. Resumable: finished runs are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
DB="${1:-${XDG_DATA_HOME:-$HOME/.local/share}/hopelab/results.db}"
shift || true
SWEEPS=("$@")
[ ${#SWEEPS[@]} -gt 0 ] || SWEEPS=(sweeps/laptop/banking77.json sweeps/laptop/clinc150.json sweeps/laptop/dbpedia70.json)
CLI=build/app/cli/hopelab-cli
GUI=build/app/gui/hopelab
for b in "$CLI" "$GUI"; do [ -x "$b" ] || { echo "results.sh: $b is missing (build first: README)" >&2; exit 2; }; done
mkdir -p "$(dirname "$DB")"
rc=0
for s in "${SWEEPS[@]}"; do
  t0=$SECONDS
  code=0
  "$CLI" --db "$DB" sweep "$s" || code=$?
  echo "results.sh: $s: $((SECONDS - t0)) s wall (exit $code)" >&2
  [ $code -eq 130 ] && exit 130
  [ $code -ne 0 ] && rc=$code
done
"$CLI" --db "$DB" report "${SWEEPS[@]}" --out docs/RESULTS.md --figures docs/figures
ids="$(cut -d' ' -f1 docs/figures/runs.txt | paste -sd, -)"
if [ -n "$ids" ]; then
  # Only the run figures: docs/figures also holds the benchmarks' (steptime.png).
  rm -f docs/figures/*-matrix.png docs/figures/*-forgetting.png
  QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}" "$GUI" --db "$DB" --figures docs/figures --runs "$ids"
fi
exit $rc
