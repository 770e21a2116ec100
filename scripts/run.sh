#!/usr/bin/env bash
# Sets everything up (idempotent, scripts/setup.sh) and runs Hope Lab's main job headless: a
# default class-incremental experiment (Transformer baseline on Banking77, 7 tasks) with a progress
# bar, stored in the run database, then shows the stored run.
#   scripts/run.sh                      # the default experiment
#   scripts/run.sh --preset lstm --epochs 2    # any `hopelab-cli train` options
# Data: $HOPELAB_DATA_DIR, else ../shared/datasets beside the checkout, else the user's data dir
# (filled by `hopelab-cli data fetch` when empty).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
CLI=build/app/cli/hopelab-cli
if [[ -z "${HOPELAB_DATA_DIR:-}" && -d ../shared/datasets ]]; then
  export HOPELAB_DATA_DIR="$(cd ../shared/datasets && pwd)"
fi
if [[ -z "${HOPELAB_DATA_DIR:-}" ]]; then
  "$CLI" data verify >/dev/null 2>&1 || "$CLI" data fetch
fi
args=("$@")
[[ ${#args[@]} -eq 0 ]] && args=(--preset transformer --dataset banking77 --epochs 1)
"$CLI" train "${args[@]}"
"$CLI" runs --limit 5
