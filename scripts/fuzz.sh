#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, AddressSanitizer + UBSan, torch-free, in
# their own build folder) and runs each for SECONDS. docs/RELIABILITY.md.
#   scripts/fuzz.sh 600                 # every target for 10 minutes, one after the other
#   scripts/fuzz.sh --jobs 2 600        # two targets at a time
#   scripts/fuzz.sh --only csv,spec 20  # some targets
# Environment:
#   FUZZ_BUILD_DIR    build folder (default build-fuzz); corpora grow in FUZZ_BUILD_DIR/corpus/<target>
#   HOPELAB_DATA_DIR  the datasets the seeds are cut from (default ../shared/datasets)
#   FUZZ_ARGS         extra libFuzzer flags
# Exit status: 0 no crash; 1 a target crashed or broke an invariant (the input is saved in
# FUZZ_BUILD_DIR/artifacts/<target>/; keep it in tests/fuzz/regressions/<target>/ once fixed);
# 77 no clang with libFuzzer here (CTest reports the fuzz tests as skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="$(pwd)"
ALL=(csv jsonl clinc folder spec sweep store)
only="" jobs=1
while [[ $# -gt 1 ]]; do
  case "$1" in
    --only) only="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    *) echo "usage: scripts/fuzz.sh [--only t1,t2] [--jobs N] SECONDS" >&2; exit 2 ;;
  esac
done
[[ $# -eq 1 && "$1" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [--only t1,t2] [--jobs N] SECONDS" >&2; exit 2; }
seconds="$1"
targets=("${ALL[@]}")
[[ -n "$only" ]] && IFS=, read -r -a targets <<<"$only"
B="${FUZZ_BUILD_DIR:-build-fuzz}"
log() { printf '\033[1m[fuzz]\033[0m %s\n' "$*"; }

# clang with libFuzzer's runtime (Debian: clang + libclang-rt-<ver>-dev).
CXX="${FUZZ_CXX:-clang++}"
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf '#include <cstdint>\n#include <cstddef>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' >"$probe/p.cpp"
if ! command -v "$CXX" >/dev/null || ! "$CXX" -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2>"$probe/err"; then
  echo "skip: no $CXX that links -fsanitize=fuzzer (install clang and libclang-rt-dev)" >&2
  exit 77
fi

if [[ ! -f "$B/build.ninja" ]]; then
  log "configuring $B (clang, HOPELAB_FUZZ=ON)"
  cmake -S . -B "$B" -G Ninja -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=Debug -DHOPELAB_FUZZ=ON >/dev/null
fi
log "building $B"
start=$(date +%s)
cmake --build "$B" -- -j "${FUZZ_BUILD_JOBS:-$(nproc)}" | grep -v '^\[' || true
[[ ${PIPESTATUS[0]} -eq 0 ]] || { echo "error: the fuzz build failed" >&2; exit 1; }
log "built in $(($(date +%s) - start)) s"

DATA="${HOPELAB_DATA_DIR:-../shared/datasets}"
seeds="$B/seeds"
if [[ -d "$DATA/banking77" ]]; then
  rm -rf "$seeds"
  ASAN_OPTIONS=detect_leaks=0 "$B/tests/fuzz/hl_fuzz_seeds" "$DATA" "$SRC" "$seeds"
else
  echo "warning: no datasets at $DATA: only the committed seeds (tests/fuzz/seeds) are used" >&2
  mkdir -p "$seeds"
fi

run_one() {
  local t="$1"
  local corpus="$B/corpus/$t" art="$B/artifacts/$t/" logf="$B/logs/$t.log"
  mkdir -p "$corpus" "$art" "$B/logs" "$seeds/$t"
  local kept=()  # committed inputs: handmade seeds, fixed crashes
  for d in "tests/fuzz/seeds/$t" "tests/fuzz/regressions/$t"; do [[ -d "$d" ]] && kept+=("$d"); done
  local dict=()
  [[ -f "tests/fuzz/dicts/$t.dict" ]] && dict=(-dict="tests/fuzz/dicts/$t.dict")
  [[ -f "$seeds/$t.dict" ]] && dict=(-dict="$seeds/$t.dict")
  # -timeout: one input longer than 10 s is a finding; -rss_limit_mb: so is more than 2 GiB.
  # -error_exitcode: libFuzzer's default, 77, is CTest's "skipped".
  local rc=0
  "$B/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -error_exitcode=1 \
    -print_final_stats=1 -artifact_prefix="$art" "${dict[@]}" ${FUZZ_ARGS:-} \
    "$corpus" "$seeds/$t" "${kept[@]}" >"$logf" 2>&1 || rc=$?
  local execs cov ft corp
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logf" | tail -1)
  cov=$( (grep -o 'cov: [0-9]*' "$logf" || true) | tail -1 | cut -d' ' -f2)
  ft=$( (grep -o 'ft: [0-9]*' "$logf" || true) | tail -1 | cut -d' ' -f2)
  corp=$( (grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$logf" || true) | tail -1 | cut -d' ' -f2)
  if [[ $rc -eq 0 ]]; then
    printf '%-7s ok     %ss  execs %s  cov %s  ft %s  corpus %s\n' "$t" "$seconds" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
  else
    printf '%-7s FAILED (exit %s) after %s execs: see %s and %s\n' "$t" "$rc" "${execs:-?}" "$logf" "$art"
    (grep -E 'ERROR: |what\(\):|SUMMARY|Test unit written|ParseDictionaryFile' "$logf" || tail -n 5 "$logf") |
      head -8 | sed 's/^/        /'
    return 1
  fi
}

failed=0
running=0
for t in "${targets[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "error: no fuzz target '$t' (targets: ${ALL[*]})" >&2; exit 2; }
  if ((jobs > 1)); then
    run_one "$t" &
    running=$((running + 1))
    if ((running >= jobs)); then
      wait -n || failed=1
      running=$((running - 1))
    fi
  else
    run_one "$t" || failed=1
  fi
done
while ((running > 0)); do
  wait -n || failed=1
  running=$((running - 1))
done
exit $failed
