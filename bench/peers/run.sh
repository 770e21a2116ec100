#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Hope Lab vs the nested-learning 0.2.0 peer (PyPI), same CPU, same torch, same threads:
# training samples/s on random tokens, 2 blocks, 4 heads, CMS clocks 1/4/16, memory chunks 4/8,
# batch 32, length 32, AdamW 1e-3, widths 128 and 256. Prints a Markdown table of ours ÷ theirs.
#
#   bench/peers/run.sh [--steps N] [--json FILE]
#
# Needs the build (build/bench/hopelab-bench) and the pinned torch venv scripts/setup.sh makes
# (~/.cache/hopelab/torch-<version>, or $HOPELAB_TORCH_VENV). The peer is installed once with
# `pip install --no-deps` into ~/.cache/hopelab/peers/nl-0.2.0 (its model code needs only torch;
# its training module also imports omegaconf, installed the same way). docs/BENCHMARKS.md "Peers".
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=5
JSON=""
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS="$2"; shift 2 ;;
    --json) JSON="$2"; shift 2 ;;
    -h|--help) sed -n '3,12p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
VENV="${HOPELAB_TORCH_VENV:-$(ls -d "$HOME"/.cache/hopelab/torch-* 2>/dev/null | sort | tail -1)}"
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "run.sh: no torch venv at '$VENV' (run scripts/setup.sh, or set HOPELAB_TORCH_VENV)" >&2; exit 2; }
BENCH=build/bench/hopelab-bench
[ -x "$BENCH" ] || { echo "run.sh: $BENCH is missing (build first: README)" >&2; exit 2; }
PEER="$HOME/.cache/hopelab/peers/nl-0.2.0"
if [ ! -d "$PEER/nested_learning" ] || [ ! -d "$PEER/omegaconf" ]; then
  "$VENV/bin/pip" install -q --no-deps --target "$PEER" nested-learning==0.2.0 numpy omegaconf==2.3.0 \
    antlr4-python3-runtime==4.9.3 PyYAML
fi
THREADS="${OMP_NUM_THREADS:-$(nproc)}"
export OMP_NUM_THREADS="$THREADS"
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT
# Interleaved by width, so slow drift of the machine hits both sides alike.
for dim in 128 256; do
  "$BENCH" peers --dims "$dim" --steps "$STEPS" >>"$OUT"
  PYTHONPATH="$PEER" "$PY" bench/peers/nested_learning_peer.py --dims "$dim" --steps "$STEPS" \
    --threads "$THREADS" >>"$OUT"
done
[ -n "$JSON" ] && cp "$OUT" "$JSON"
"$PY" - "$OUT" "$STEPS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
get = lambda peer, var, dim: next(r for r in rows if r["peer"] == peer and r["variant"] == var and r["dim"] == dim)
# (ours, theirs, like for like?)
pairs = [
    ("hope/stop-grad", "hope_selfmod", "yes: neither backpropagates through memory writes"),
    ("hope/differentiable", "hope_selfmod", "no: ours also backpropagates through every memory write"),
    ("hope-attention", "hope_attention", "mostly: attention + CMS on both sides; its CMS steps per token in a second pass"),
    ("transformer", "transformer", "yes"),
]
print("| width | Hope Lab | samples/s | nested-learning 0.2.0 | samples/s | ours ÷ theirs | like for like |")
print("| --: | --- | --: | --- | --: | --: | --- |")
for dim in sorted({r["dim"] for r in rows}):
    for ours, theirs, like in pairs:
        a, b = get("hopelab", ours, dim), get("nested-learning", theirs, dim)
        print(f"| {dim} | {ours} | {a['samples_per_s']:.1f} | {theirs} | {b['samples_per_s']:.1f} | "
              f"**{a['samples_per_s'] / b['samples_per_s']:.2f}** | {like} |")
t = rows[0]["threads"]
print(f"\n(batch 32, length 32, 2 blocks, 4 heads, AdamW 1e-3, {t} threads, median of {sys.argv[2]} timed steps "
      "after one warm-up, random tokens; parameters: "
      + ", ".join(f"{r['peer']} {r['variant']} d{r['dim']} {r['params']}" for r in rows) + ")")
EOF
