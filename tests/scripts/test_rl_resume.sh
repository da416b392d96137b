#!/usr/bin/env bash
# Exact resume of the rl stage: the tiny deck runs once without interruption; then, for several
# kill points inside the rl stage (as soon as it starts, a moment later, right after or just
# after a checkpoint, late in the stage) and one in the reward stage, a fresh run is killed with SIGKILL (every rank, no chance to
# clean up) and continued with `rlaif run --resume` until it finishes. The final policy and value
# models (models/policy_rl.gguf, models/value_rl.gguf) must be byte-identical to the
# uninterrupted run's, and so must the metrics of the rl stage (all but the timings).
set -u
cd "$(dirname "$0")/../.."
BIN=${RLAIF_BIN:-build/rlaif}
DECK=${RESUME_DECK:-input/tiny.yaml}
T=${TEST_TMP:-/tmp}/rl_resume.$$
mkdir -p "$T"
NP=4
if ! grep -q '\brl\b' "$DECK" 2>/dev/null; then
  echo "ok - rl resume # SKIP $DECK has no rl stage"; exit 0
fi

# deck copy with out_dir under $T and a checkpoint every 3 steps (the kill points need them)
deck_for() {
  sed -e "s#^\\(  out_dir:\\).*#\\1 $1#" -e "s#^\\(  checkpoint_every:\\).*#\\1 3#" "$DECK" > "$T/deck_$2.yaml"
}

run() { # run OUTDIR TAG [--resume]
  tools/mpirun.sh -np $NP "$BIN" run "$T/deck_$2.yaml" ${3:-} >>"$T/$2.log" 2>&1
}

digest() { # the rl stage's results of a run directory
  (cd "$1/models" && sha256sum policy_rl.gguf value_rl.gguf) 2>/dev/null
  /usr/bin/python3 - "$1/metrics.h5" <<'PYEOF' 2>/dev/null
import sys, h5py
f = h5py.File(sys.argv[1], "r")
g = f["metrics/rl"]
for k in sorted(g):
    if k.startswith("time_") or k.endswith("_per_s"):
        continue  # wall-clock figures differ between any two runs
    a = g[k][:]
    print(k, len(a), list(a["step"])[-3:], ["%.9g" % v for v in a["value"][-3:]])
PYEOF
}

deck_for "$T/ref" ref
if ! run "$T/ref" ref; then
  echo "not ok - the uninterrupted run failed"; tail -20 "$T/ref.log" | sed 's/^/#   /'; rm -rf "$T"; exit 0
fi
want=$(digest "$T/ref")
if [ -z "$want" ]; then echo "not ok - the uninterrupted run wrote no rl models"; exit 0; fi
echo "ok - uninterrupted run of $DECK"

# kill points: a pattern in the log to wait for, then a delay in seconds
points=("stage rl: start|0"
        "stage rl: start|0.3"
        "committed (rl step 3,|0"
        "committed (rl step 6,|0.02"
        "committed (rl step 9,|0"
        "committed (reward step 3,|0.1")
i=0
for pt in "${points[@]}"; do
  i=$((i + 1))
  pat=${pt%|*}; delay=${pt#*|}
  out="$T/k$i"; deck_for "$out" "k$i"
  # setsid: mpirun and its ranks share one session whose id is mpirun's pid; SIGKILL goes to
  # every process of that session at once, so no rank gets to clean up
  setsid tools/mpirun.sh -np $NP "$BIN" run "$T/deck_k$i.yaml" >"$T/k$i.log" 2>&1 &
  sid=$!
  killed=0
  for _ in $(seq 1 1200); do
    if grep -qF -- "$pat" "$T/k$i.log"; then
      sleep "$delay"
      pkill -9 -s "$sid" 2>/dev/null
      killed=1
      break
    fi
    kill -0 $sid 2>/dev/null || break
    sleep 0.05
  done
  wait $sid 2>/dev/null
  for _ in $(seq 1 100); do pgrep -s "$sid" >/dev/null || break; sleep 0.05; done
  if [ $killed -eq 0 ]; then
    echo "not ok - kill point $i ('$pat' + ${delay}s) never came"; continue
  fi
  ok=0
  for attempt in 1 2 3; do
    if run "$out" "k$i" --resume; then ok=1; break; fi
  done
  got=$(digest "$out")
  # the resumed attempt must have started from a checkpoint of the stage that was killed
  from=$(grep -o 'resuming from checkpoint step_[0-9]*' "$T/k$i.log" | head -1)
  if [ -z "$from" ]; then
    echo "not ok - kill point $i ('$pat' + ${delay}s): the resumed run did not start from a checkpoint"
    continue
  fi
  if [ $ok -eq 1 ] && [ "$got" = "$want" ]; then
    echo "ok - killed with SIGKILL at '$pat' + ${delay}s, --resume (${from#resuming from checkpoint }) ends bit-identical"
  else
    echo "not ok - kill point $i ('$pat' + ${delay}s): resumed run differs (ok=$ok)"
    diff <(echo "$want") <(echo "$got") | head -10 | sed 's/^/#   /'
    tail -15 "$T/k$i.log" | sed 's/^/#   /'
  fi
done
rm -rf "$T"
