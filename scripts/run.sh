#!/usr/bin/env bash
# Sets everything up (idempotent, scripts/setup.sh) and starts Hope Lab.
#   scripts/run.sh                         # the desktop app (hopelab) on the default run database
#   scripts/run.sh --db runs.db --tab live # any `hopelab` options (see `hopelab --help`)
#   scripts/run.sh --cli                   # headless: the default experiment with the CLI (Transformer
#                                          # on Banking77, 7 tasks, 1 epoch), then the stored runs
#   scripts/run.sh --cli --preset lstm --epochs 2   # any `hopelab-cli train` options after --cli
# Without a display (no $DISPLAY / $WAYLAND_DISPLAY and no QT_QPA_PLATFORM) the headless path runs.
# Data: $HOPELAB_DATA_DIR, else ../shared/datasets beside the checkout, else the user's data dir
# (filled by `hopelab-cli data fetch` when empty).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
CLI=build/app/cli/hopelab-cli
GUI=build/app/gui/hopelab
if [[ -z "${HOPELAB_DATA_DIR:-}" && -d ../shared/datasets ]]; then
  export HOPELAB_DATA_DIR="$(cd ../shared/datasets && pwd)"
fi
if [[ -z "${HOPELAB_DATA_DIR:-}" ]]; then
  "$CLI" data verify >/dev/null 2>&1 || "$CLI" data fetch
fi
headless=0
if [[ "${1:-}" == "--cli" ]]; then
  headless=1
  shift
elif [[ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}${QT_QPA_PLATFORM:-}" || ! -x "$GUI" ]]; then
  echo "[run] no display (or no GUI build): running the headless experiment; the app needs a display" >&2
  headless=1
fi
if ((headless)); then
  args=("$@")
  [[ ${#args[@]} -eq 0 ]] && args=(--preset transformer --dataset banking77 --epochs 1)
  "$CLI" train "${args[@]}"
  "$CLI" runs --limit 5
else
  exec "$GUI" "$@"
fi
