#!/usr/bin/env bash
# Throughput of the label stage with 1 and 2 judge ranks: pairs from a JSONL file (so only rank 0
# and the judges work), a random judge of the default dimensions (throughput does not depend on
# the weights), wall and CPU time of the whole mpirun, pairs/s and the judges' busy times.
#   tools/bench_label.sh [PAIRS=512] [REPS=2]
# On a 2-core machine rank 0 sleeps in its waits, so two judge ranks have a core each; whatever
# else runs on the machine takes from them (the table says how much CPU the run got).
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-build/rlaif}
PY=${PYTHON:-/usr/bin/python3}
PAIRS=${1:-512}
REPS=${2:-2}
T=$(mktemp -d /tmp/rlaif-bench-label.XXXXXX)
trap 'rm -rf "$T"' EXIT
MPIRUN=(mpirun --oversubscribe)
[ "$(id -u)" -eq 0 ] && MPIRUN+=(--allow-run-as-root)
"$BIN" bench judge --write-pairs "$T/pairs.jsonl" --pairs "$PAIRS" >/dev/null
"$BIN" bench judge --write-model "$T/judge.gguf" >/dev/null
printf '%-7s %4s %9s %9s %9s %9s %26s %s\n' judges rep wall_s cpu_s "pairs/s" "per_judge" "busy_s min/avg/max" "pairs each"
for nj in 1 2; do
  for rep in $(seq 1 "$REPS"); do
    cat > "$T/d$nj.yaml" <<DECK
run: {name: bench-label, seed: 1, out_dir: $T/run$nj}
ranks: {judge: $nj, reward: 0, policy: 0}
stages: [label]
judge: {model: {gguf: "$T/judge.gguf", max_seq: 320}, batch_pairs: 8}
label: {source: file, pairs_file: "$T/pairs.jsonl", pairs: 0}
DECK
    "${MPIRUN[@]}" -np $((nj + 1)) "$BIN" run "$T/d$nj.yaml" --force >"$T/log" 2>&1 ||
      { echo "run failed:"; tail -5 "$T/log"; exit 1; }
    "$PY" - "$T/run$nj/metrics.h5" "$nj" "$rep" <<'PYEOF'
import sys, h5py
f = h5py.File(sys.argv[1], "r")["summary"]
nj, rep = int(sys.argv[2]), sys.argv[3]
wall = f["label_wall_seconds"][()]
cpu = f["label_cpu_seconds_judges"][()] + f["label_cpu_seconds_coordinator"][()]
per = [f["label_judge%d_pairs_per_s" % j][()] for j in range(nj)]
each = [int(f["label_judge%d_pairs" % j][()]) for j in range(nj)]
print("%-7d %4s %9.1f %9.1f %9.1f %9.1f %8.1f/%.1f/%.1f %s" % (nj, rep, wall, cpu,
      f["label_pairs_per_s"][()], sum(per) / nj, f["label_judge_busy_min"][()],
      f["label_judge_busy_avg"][()], f["label_judge_busy_max"][()], "/".join(map(str, each))))
PYEOF
  done
done
echo "pairs/s: labelled pairs over the labelling's wall time; per_judge: a judge's pairs over its busy time"
echo "wall_s: the labelling (first batch dealt to last label in); cpu_s: CPU seconds of the"
echo "judges and rank 0 over the whole stage (model loading included; rank 0 sleeps in its waits)"
