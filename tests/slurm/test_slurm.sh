#!/usr/bin/env bash
# test_slurm: `hopelab-cli sweep --slurm --submit` against a real Slurm. A single-node Slurm (munged,
# slurmctld and slurmd from a temporary configuration, all state under a temporary folder, private
# ports and munge socket) runs a 4-task job array of tiny runs (2 presets x 2 seeds, one epoch); the
# shards are merged with `runs merge` (twice: the second adds nothing), and the merged table must
# equal the one `sweep --jobs 1` writes into another database: the same runs by config hash and
# seed, each finished with the same final metrics, compared exactly (CPU runs with one thread are
# deterministic). Writing the script again then finds nothing left to submit.
#   test_slurm.sh HOPELAB_CLI DATA_DIR
# Needs root and the Debian packages slurmctld, slurmd, slurm-client and munge (scripts/setup.sh
# installs them); without them it exits 77 (skipped), naming what is missing. The daemons are
# stopped by their pids on every exit.
set -uo pipefail
cli=$(readlink -f "$1")
data=$2

need=()
for b in munged slurmctld slurmd sbatch squeue sinfo sqlite3; do command -v "$b" >/dev/null || need+=("$b"); done
if ((${#need[@]})); then
  echo "SKIP: missing ${need[*]} (apt-get install slurmctld slurmd slurm-client munge sqlite3)"
  exit 77
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: a private single-node Slurm needs root (SlurmUser=root)"
  exit 77
fi

T=$(mktemp -d /tmp/hl-slurm.XXXXXX)
chmod 700 "$T"
pids=()
cleanup() {
  local rc=$?
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  if [[ $rc -ne 0 && $rc -ne 77 ]]; then
    echo "--- logs (failure) ---"
    tail -n 30 "$T"/*.log "$T"/shards/logs/* 2>/dev/null
  fi
  rm -rf "$T"
  exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() {
  echo "FAIL: $*"
  exit 1
}
start=$SECONDS

# munge: a fresh key, a private socket.
mkdir -p "$T/munge" "$T/state" "$T/spool" "$T/shards"
chmod 700 "$T/munge"
head -c 1024 /dev/urandom >"$T/munge/munge.key"
chmod 400 "$T/munge/munge.key"
sock="$T/munge/munge.socket"
munged -F --force --key-file="$T/munge/munge.key" --socket="$sock" --pid-file="$T/munge/munged.pid" \
  --seed-file="$T/munge/munged.seed" >"$T/munged.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [[ -S $sock ]] && break; sleep 0.1; done
[[ -S $sock ]] || fail "munged did not start"

# Slurm: one node (this host, its CPUs, reached at 127.0.0.1 whatever its name resolves to), one
# default partition, ports of our own.
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2))
port=$((20000 + ($$ % 5000) * 2))
export SLURM_CONF="$T/slurm.conf"
cat >"$SLURM_CONF" <<EOF
ClusterName=hltest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -i -f "$SLURM_CONF" >"$T/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >"$T/slurmd.out" 2>&1 &
pids+=($!)
for _ in $(seq 60); do
  [[ $(sinfo -h -N -o '%t' 2>/dev/null) == idle ]] && break
  sleep 1
done
[[ $(sinfo -h -N -o '%t' 2>/dev/null) == idle ]] || fail "the node did not become idle: $(sinfo -N 2>&1)"
echo "ok: single-node Slurm up ($host, $cpus CPUs) in $((SECONDS - start)) s"

# The sweep: 2 presets x 2 seeds, tiny, one thread each.
cat >"$T/tiny.json" <<'EOF'
{"name": "slurm-test", "preset": "transformer",
 "set": {"model.d_model": 32, "model.vocab_size": 300, "training.epochs": 1, "training.limit_per_class": 3,
         "training.eval_limit_per_class": 3, "training.threads": 1},
 "grid": {"preset": ["transformer", "lstm"]}, "seeds": [0, 1]}
EOF
export HOPELAB_DATA_DIR="$data" XDG_DATA_HOME="$T/xdg"
out=$("$cli" --db "$T/local.db" sweep "$T/tiny.json" --slurm --submit --shard-dir "$T/shards" \
  --cpus-per-task 1 --mem 256M --time 0:10:00 --max-parallel 4 2>&1) || fail "sweep --slurm --submit: $out"
echo "$out"
job=$(sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p' <<<"$out")
[[ -n $job ]] || fail "no job id in the output"
grep -q '^#SBATCH --array=0-3%4$' "$T/shards/slurm-test.sbatch" || fail "the script's array is not 0-3%4"

for _ in $(seq 240); do
  [[ -z $(squeue -h -j "$job" 2>/dev/null) ]] && break
  sleep 1
done
[[ -z $(squeue -h -j "$job" 2>/dev/null) ]] && echo "ok: array job $job done in $((SECONDS - start)) s" ||
  fail "array job $job still queued or running after 240 s: $(squeue -j "$job" 2>&1)"
for i in 0 1 2 3; do
  [[ -f $T/shards/shard-$i.db ]] || fail "task $i wrote no shard (log: $(cat "$T"/shards/logs/*_"$i".out 2>&1))"
  grep -q "^run 1 finished" "$T"/shards/logs/*_"$i".out || fail "task $i: $(cat "$T"/shards/logs/*_"$i".out)"
done

m1=$("$cli" runs merge "$T"/shards/shard-*.db --into "$T/merged.db") || fail "runs merge: $m1"
echo "$m1" | tail -n 1
grep -q "4 added, 0 updated, 0 unchanged, 0 kept" <<<"$m1" || fail "first merge: $m1"
m2=$("$cli" runs merge "$T"/shards/shard-*.db --into "$T/merged.db") || fail "runs merge again: $m2"
grep -q "0 added, 0 updated, 4 unchanged, 0 kept; 0 points copied" <<<"$m2" || fail "second merge: $m2"
echo "ok: merged 4 shards; merged again: nothing added"

ref=$("$cli" --db "$T/ref.db" sweep "$T/tiny.json" --jobs 1 --quiet 2>&1) || fail "sweep --jobs 1: $ref"
table() {
  sqlite3 "$1" "SELECT config_hash, seed, name, status, printf('%.17g', json_extract(summary_json, '\$.final_avg_acc')),
    printf('%.17g', json_extract(summary_json, '\$.forgetting')), printf('%.17g', json_extract(summary_json, '\$.macro_f1')),
    (SELECT count(*) FROM accuracy a WHERE a.run_id = runs.id)
    FROM runs ORDER BY config_hash, seed"
}
table "$T/merged.db" >"$T/merged.txt"
table "$T/ref.db" >"$T/ref.txt"
[[ $(wc -l <"$T/ref.txt") -eq 4 ]] || fail "the reference has $(wc -l <"$T/ref.txt") runs, not 4"
grep -vq "|finished|" "$T/ref.txt" && fail "a reference run did not finish: $(cat "$T/ref.txt")"
diff "$T/ref.txt" "$T/merged.txt" || fail "the merged table differs from sweep --jobs 1's (above)"
echo "ok: the merged table equals sweep --jobs 1's:"
cat "$T/merged.txt"
points_merged=$(sqlite3 "$T/merged.db" "SELECT count(*) FROM points")
points_ref=$(sqlite3 "$T/ref.db" "SELECT count(*) FROM points")
[[ $points_merged -eq $points_ref && $points_ref -gt 0 ]] || fail "points: merged $points_merged, reference $points_ref"

again=$("$cli" --db "$T/local.db" sweep "$T/tiny.json" --slurm --shard-dir "$T/shards") || fail "$again"
grep -q "all 4 run(s) already finished" <<<"$again" || fail "resubmission: $again"
echo "ok: written again, the script has nothing left to submit"
echo "PASS in $((SECONDS - start)) s"
