#!/usr/bin/env bash
# Kill trials: SIGKILL one random rank (coordinator included) at a random moment of a run of
# every stage on toy models, then check what an operator would: mpirun ends non-zero and says
# which rank died, nothing hangs, ckpt/latest names a whole checkpoint (`rlaif ckpt verify`:
# MANIFEST, sizes, markers, every CRC-32C), `rlaif run --resume` finishes, and the final state
# (every model file, the AI labels, the summary figures but timings) is byte-identical to an
# uninterrupted run's.
#
# The trials are reproducible: KILL_SEED (default 20240601) seeds the draws, each trial prints
# its seed, rank and moment; KILL_TRIALS (default 20) sets how many kills must land.
set -u
cd "$(dirname "$0")/../.."
BIN=${RLAIF_BIN:-build/rlaif}
T=${TEST_TMP:-/tmp}/kill_trials.$$
NP=4
TRIALS=${KILL_TRIALS:-20}
SEED=${KILL_SEED:-20240601}
mkdir -p "$T"
trap 'rm -rf "$T"' EXIT
t_start=$(date +%s.%N)

if ! command -v mpirun >/dev/null; then
  echo "ok - kill trials # SKIP mpirun is not installed"; exit 0
fi

# every stage of the built-in task on models smaller than input/tiny.yaml's, a checkpoint every
# 3 steps: a run takes a few seconds, and most moments fall between two checkpoints
deck_for() { # deck_for OUT_DIR NAME
  cat > "$T/$2.yaml" <<EOF
run:
  name: kill-trials
  seed: 5
  out_dir: $1
  checkpoint_every: 3
  metrics_flush_seconds: 0.2
ranks: {judge: 1, reward: 1, policy: 1}
threads_per_rank: 1
stages: [sft, judge_sft, label, reward, rl, eval]
task: {n_train: 200, n_val: 20, n_test: 40, judge_pairs: 8}
tokenizer: {vocab_size: 600}
policy: {dim: 32, layers: 1, heads: 2, kv_heads: 2, ffn: 64, max_seq: 160}
judge:
  model: {dim: 32, layers: 1, heads: 2, kv_heads: 2, ffn: 64, max_seq: 224}
  batch_pairs: 4
sft: {steps: 30, batch: 4, warmup: 2, train_ranks: 2, eval_docs: 8}
judge_sft:
  pretrain: {steps: 12, batch: 4, warmup: 2}
  finetune: {steps: 12, batch: 4, warmup: 2}
  train_ranks: 2
  eval_pairs: 8
label: {pairs: 80, max_new_tokens: 12}
reward: {batch: 8, epochs: 1, eval_every: 5, norm_samples: 16, train_ranks: 2}
rl: {steps: 8, rollouts: 8, minibatch: 4, epochs: 1, max_new_tokens: 10, sample_every: 4, train_ranks: 2}
eval: {prompts: 8, samples: 2}
EOF
}

digest() { # the final state of a run directory, one line per item
  (cd "$1/models" && sha256sum ./*.gguf) 2>/dev/null
  /usr/bin/python3 - "$1" <<'PYEOF' 2>&1
import sys, re, hashlib, h5py
run = sys.argv[1]
with h5py.File(run + "/labels.h5", "r") as f:
    p = f["pairs"]
    for k in ("p", "p_ab", "p_ba", "prompt_id", "done"):
        print("labels", k, hashlib.sha256(p[k][:].tobytes()).hexdigest())
    for k in ("a", "b"):
        print("labels", k, hashlib.sha256(b"\0".join(p[k][:])).hexdigest())
# figures of one attempt's work, not of the run's result: timings, and the label stage's
# per-judge pair counts and prefix-cache share (a resumed label stage labels the rest only)
timing = re.compile(r"seconds|per_s|busy|cpu|this_attempt|time|fraction|judge[0-9]+_pairs$|reused_share")
with h5py.File(run + "/metrics.h5", "r") as f:
    print("status", f.attrs["status"])
    for k in sorted(f["summary"]):
        if not timing.search(k):
            v = f["summary"][k][()]
            print("summary", k, v if isinstance(v, bytes) else "%.9g" % v)
PYEOF
}

# the job's ranks: pid of each MPI rank, from the environment Open MPI gives them
rank_pid() { # rank_pid MPIRUN_PID RANK
  local p
  for p in $(pgrep -P "$1"); do
    if tr '\0' '\n' 2>/dev/null < "/proc/$p/environ" | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$p"; return 0
    fi
  done
  return 1
}

deck_for "$T/ref" ref
t0=$(date +%s.%N)
if ! tools/mpirun.sh -np $NP "$BIN" run "$T/ref.yaml" >"$T/ref.log" 2>&1; then
  echo "not ok - the uninterrupted run failed"; tail -20 "$T/ref.log" | sed 's/^/#   /'; exit 0
fi
wall=$(echo "$(date +%s.%N) - $t0" | bc)
want=$(digest "$T/ref")
if ! grep -q '^summary ' <<<"$want" || [ "$(grep -c '\.gguf$' <<<"$want")" -lt 6 ]; then
  echo "not ok - the uninterrupted run left no models or summary"; echo "$want" | sed 's/^/#   /'
  exit 0
fi
printf 'ok - uninterrupted run: %.1f s\n' "$wall"

# the draws: a 64-bit LCG (Knuth's MMIX constants) on the seed; bash arithmetic wraps mod 2^64
state=$SEED
draw() { # draw N: sets d to an integer in [0, N) (no subshell: the state must advance)
  state=$(( state * 6364136223846793005 + 1442695040888963407 ))
  d=$(( ((state >> 33) & 0x7fffffff) % $1 ))
}

landed=0 attempt=0 failures=0
while [ $landed -lt "$TRIALS" ] && [ $attempt -lt $((TRIALS * 2)) ]; do
  attempt=$((attempt + 1))
  draw $NP; rank=$d
  # a moment between 0.3 s (the ranks are up) and the reference run's wall time W: the seed
  # fixes the fraction (in 1/1000 of the window), W the seconds
  draw 1000; permille=$d
  ms=$(printf '%.0f' "$(echo "300 + ($wall * 1000 - 300) * $permille / 1000" | bc -l)")
  moment=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
  tag="trial $attempt (seed $SEED, rank $rank, at ${moment}s = ${permille}/1000 of the window)"
  out="$T/k$attempt"
  deck_for "$out" "k$attempt"
  log="$T/k$attempt.log"
  tools/mpirun.sh -np $NP "$BIN" run "$T/k$attempt.yaml" >"$log" 2>&1 &
  mp=$!
  sleep "$moment"
  pid=""
  for _ in 1 2 3 4 5; do pid=$(rank_pid $mp "$rank") && break; sleep 0.05; done
  # Open MPI's shared-memory segments of this job (/dev/shm/vader_segment.HOST.N.JOBID.RANK,
  # JOBID in hex): a killed job leaves them behind, so the trial removes them at its end
  jobid=$(tr '\0' '\n' 2>/dev/null < "/proc/$pid/environ" | sed -n 's/^OMPI_MCA_ess_base_jobid=//p')
  if [ -z "$pid" ] || ! kill -9 "$pid" 2>/dev/null; then
    wait $mp; rc=$?
    echo "# $tag: the run ended (status $rc) before the kill; drawing again"
    continue
  fi
  landed=$((landed + 1))
  # the job must end by itself, quickly: mpirun kills the other ranks
  ended=0
  for _ in $(seq 1 600); do kill -0 $mp 2>/dev/null || { ended=1; break; }; sleep 0.05; done
  if [ $ended -eq 0 ]; then
    echo "not ok - $tag: the job still runs 30 s after the kill (hang)"
    ps -o pid,stat,args --ppid $mp | sed 's/^/#   /'
    pkill -9 -P $mp; kill -9 $mp; wait $mp 2>/dev/null
    failures=$((failures + 1)); continue
  fi
  wait $mp; rc=$?
  [ -n "$jobid" ] && rm -f /dev/shm/vader_segment.*."$(printf '%x' "$jobid")".*
  problems=""
  [ $rc -ne 0 ] || problems+=" mpirun exited 0 after a rank was killed;"
  grep -q "process rank $rank with PID .* exited on signal 9 (Killed)" "$log" ||
    problems+=" mpirun did not name the killed rank;"
  # no rank may outlive the job
  if pgrep -f "$T/k$attempt.yaml" >/dev/null; then
    problems+=" ranks still alive after mpirun ended;"
    pkill -9 -f "$T/k$attempt.yaml"
  fi
  # the latest checkpoint must be whole (none at all only before the first one was committed)
  vout=$("$BIN" ckpt verify "$out" 2>&1); vrc=$?
  latest=$(cat "$out/ckpt/latest" 2>/dev/null)
  if [ $vrc -ne 0 ]; then
    if [ -n "$latest" ] || grep -q "committed" "$log"; then
      problems+=" ckpt verify: $vout;"
    fi
  fi
  if ! tools/mpirun.sh -np $NP "$BIN" run "$T/k$attempt.yaml" --resume >"$T/k$attempt.resume.log" 2>&1; then
    problems+=" --resume failed;"
  fi
  got=$(digest "$out")
  if [ "$got" != "$want" ]; then
    problems+=" the resumed run's final state differs from the uninterrupted run's;"
    diff <(echo "$want") <(echo "$got") | sed 's/^/#   /'
  fi
  from=$(grep -o 'resuming from checkpoint step_[0-9]*' "$T/k$attempt.resume.log" | head -1)
  from=${from#resuming from checkpoint }
  if [ -z "$from" ]; then
    if grep -q 'nothing to do' "$T/k$attempt.resume.log"; then from="nowhere (the run had finished)"
    else from="the start"; fi
  fi
  if [ -n "$latest" ]; then ckstate="latest $latest whole"; else ckstate="no checkpoint yet"; fi
  if [ -z "$problems" ]; then
    echo "ok - $tag: mpirun exit $rc, $ckstate, resumed from $from, final state identical"
  else
    echo "not ok - $tag:$problems"
    diff <(echo "$want") <(echo "$got") | head -8 | sed 's/^/#   /'
    tail -6 "$log" | sed 's/^/#   run: /'
    tail -6 "$T/k$attempt.resume.log" | sed 's/^/#   resume: /'
    failures=$((failures + 1))
  fi
  rm -rf "$out"
done
# the whole job killed at once while rank 0 writes metrics.h5 leaves that file unreadable (an
# HDF5 file cut in the middle of a flush); the run directory is then moved elsewhere, as after
# a full disk. --resume must set the file aside, continue from the checkpoint, and end with
# the same models (the summary figures of the dead attempt are in the file set aside).
deck_for "$T/whole" whole
setsid tools/mpirun.sh -np $NP "$BIN" run "$T/whole.yaml" >"$T/whole.log" 2>&1 &
sid=$!
for _ in $(seq 1 600); do grep -q "stage judge_sft: start" "$T/whole.log" && break; sleep 0.02; done
pkill -9 -s $sid; wait $sid 2>/dev/null
for _ in $(seq 1 100); do pgrep -s $sid >/dev/null || break; sleep 0.05; done
if [ -s "$T/whole/metrics.h5" ]; then
  truncate -s $(( $(stat -c %s "$T/whole/metrics.h5") / 2 )) "$T/whole/metrics.h5"
  mv "$T/whole" "$T/moved"
  deck_for "$T/moved" moved
  if tools/mpirun.sh -np $NP "$BIN" run "$T/moved.yaml" --resume >"$T/moved.log" 2>&1 &&
     grep -q "set aside as $T/moved/metrics.h5.damaged" "$T/moved.log" &&
     grep -q "resuming from checkpoint" "$T/moved.log" &&
     [ "$(digest "$T/moved" | grep '\.gguf$')" = "$(grep '\.gguf$' <<<"$want")" ]; then
    echo "ok - whole job killed, metrics.h5 cut mid-flush, run directory moved: --resume sets the file aside and ends with identical models"
  else
    echo "not ok - --resume after a whole-job kill with a damaged metrics.h5 in a moved directory"
    grep -E "ERROR|WARN|resuming" "$T/moved.log" | head -5 | sed 's/^/#   /'
  fi
else
  echo "not ok - the whole-job kill left no metrics.h5"
fi

if [ $landed -lt "$TRIALS" ]; then
  echo "not ok - only $landed of $TRIALS kills landed in $attempt attempts"
fi
printf '# measured: kill trials: %d kills, %d failed, %.0f s in all\n' "$landed" "$failures" \
  "$(echo "$(date +%s.%N) - $t_start" | bc)"
