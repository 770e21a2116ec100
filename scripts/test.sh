#!/usr/bin/env bash
# Sets everything up (idempotent, see scripts/setup.sh) and runs the test suite through CTest.
#   scripts/test.sh                 # all tests
#   scripts/test.sh -L unit         # extra arguments go to ctest
# Data: $HOPELAB_DATA_DIR, default ../shared/datasets beside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
export HOPELAB_DATA_DIR="${HOPELAB_DATA_DIR:-$(cd .. && pwd)/shared/datasets}"
if [[ ! -d "$HOPELAB_DATA_DIR" ]]; then
  echo "error: datasets not found at $HOPELAB_DATA_DIR (set HOPELAB_DATA_DIR)" >&2
  exit 3
fi
BUILD_DIR="${BUILD_DIR:-build}" scripts/setup.sh
cd "${BUILD_DIR:-build}"
# Tests run with their own user data dir so they never touch the user's runs or caches.
export XDG_DATA_HOME="$(pwd)/test-home/data" 
mkdir -p "$XDG_DATA_HOME"
ctest --output-on-failure --timeout 900 "$@"
