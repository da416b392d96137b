#!/usr/bin/env bash
# jobs/rlaif.sbatch under a real Slurm: a private one-node cluster on this machine
# (tools/slurm_local.sh, Debian's Slurm 22.05 and munge), `sbatch` on copies of the decks.
#
#   smoke deck, srun launch (PMIx) and mpirun launch: job completed with exit 0, the run
#     directory (metrics.h5 finished, the checkpoint), the log (srun line, BLAS threads from
#     --cpus-per-task);
#   the signal path with a stand-in for the program (tests/slurm/fake_rlaif.sh): --time with
#     --signal=B:USR1 reaches the job script, every rank gets USR1, the job requeues itself and
#     the next attempt runs; `scontrol requeue` (TERM to every rank) leaves the ranks the time
#     to stop cleanly and the job runs again;
#   the real thing when a deck with stages long enough to interrupt is in the tree
#     ($RLAIF_SLURM_LONG_DECK, else input/tiny.yaml): USR1 to the job in the middle of the run
#     -> checkpoint -> requeue -> resume -> finished. Skipped, saying so, while there is none.
#
# Needs root (slurmd starts jobs as their owner); skips only when not root or when the Slurm
# packages cannot be installed. A cluster that already runs (tools/slurm_local.sh start) is
# used and left running; one this test started is stopped at the end. Wall time: about 1.5 min
# without the long deck.
set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
BIN=${RLAIF_BIN:-$ROOT/build/rlaif}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
PY=${PYTHON:-/usr/bin/python3}
FAKE=$ROOT/tests/slurm/fake_rlaif.sh
mkdir -p "${TEST_TMP:-/tmp}"
T=$(mktemp -d "${TEST_TMP:-/tmp}/slurm.XXXXXX")
chmod 755 "$T"
# a job of our own, not one of an enclosing allocation (make test inside an sbatch job)
unset SLURM_JOB_ID SLURM_JOBID SLURM_NTASKS SLURM_CPUS_PER_TASK SLURM_RESTART_COUNT
eval "$(tools/slurm_local.sh env)"

check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; [ -n "${3:-}" ] && sed 's/^/#   /' "$3" | tail -25; fi; }
skip() { echo "ok - $1 # SKIP $2"; }

started_here=0
jobs_here=()
cleanup() {
  local j
  for j in "${jobs_here[@]}"; do scancel "$j" 2>/dev/null; done
  [ $started_here -eq 1 ] && tools/slurm_local.sh stop >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT

# ---------------------------------------------------------------- outside Slurm
bash jobs/rlaif.sbatch input/smoke.yaml >"$T/outside" 2>&1; rc=$?
check "outside Slurm the job script refuses with a clear message (exit 2)" \
  '[ $rc -eq 2 ] && grep -q "this script is for Slurm: submit it with .sbatch" $T/outside' "$T/outside"
n=$(grep '^#SBATCH' jobs/rlaif.sbatch | grep -vc '#SBATCH [^#]*  *# ')
check "every #SBATCH line of jobs/rlaif.sbatch carries a comment" '[ "$n" -eq 0 ]'

# ---------------------------------------------------------------- the cluster
if [ "$(id -u)" -ne 0 ]; then
  skip "jobs under a real Slurm" "needs root: slurmd must start the jobs (run make test-slurm as root)"
  exit 0
fi
if ! tools/deps.sh slurmctld slurmd slurm-client munge >"$T/deps" 2>&1; then
  skip "jobs under a real Slurm" "Debian's Slurm packages cannot be installed here: $(tail -1 "$T/deps")"
  exit 0
fi
# one test run at a time per cluster directory: another one would stop the cluster under us
exec 9>"${RLAIF_SLURM_DIR:-/tmp/rlaif-slurm}.lock"
if ! flock -w 600 9; then
  check "no other Slurm test holds ${RLAIF_SLURM_DIR:-/tmp/rlaif-slurm}.lock for 10 minutes" 'false'
  exit 1
fi
t0=$SECONDS
if tools/slurm_local.sh status >/dev/null 2>&1; then
  check "the local Slurm cluster is already running" 'true'
else
  tools/slurm_local.sh start >"$T/start" 2>&1; rc=$?
  [ $rc -eq 0 ] && started_here=1
  check "tools/slurm_local.sh start: one-node cluster, node idle ($((SECONDS - t0)) s)" '[ $rc -eq 0 ]' "$T/start"
  [ $rc -eq 0 ] || exit 1
fi

# job_field JOB KEY: a field of `scontrol show job`
job_field() { scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
# wait_job JOB SECONDS: until the job ends for good (not requeued); prints its state
wait_job() {
  local j=$1 end=$((SECONDS + $2)) st=""
  while [ $SECONDS -lt $end ]; do
    st=$(job_field "$j" JobState)
    case $st in
      COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)
        echo "$st"; return 0 ;;
    esac
    sleep 1
  done
  echo "TIMEOUT_WAITING($st)"
  return 1
}
# submit ARGS...: sbatch from the top of the tree; prints the job id
submit() {
  local j
  j=$(sbatch --parsable "$@" 2>"$T/sbatch.err") || { cat "$T/sbatch.err" >&2; return 1; }
  j=${j%%;*}
  jobs_here+=("$j")
  echo "$j"
}
# deck_copy SRC DST OUT_DIR: the deck with its run.out_dir replaced
deck_copy() { sed "s|^\(  out_dir:\).*|\1 $3|" "$1" >"$2"; }
# run_status DIR: the status attribute of DIR/metrics.h5
run_status() {
  "$PY" -c 'import sys,h5py; print(h5py.File(sys.argv[1]+"/metrics.h5","r").attrs["status"])' "$1" 2>/dev/null
}

# the machine may have fewer cores than the deck has ranks: --overcommit lets 4 ranks share them
SB=(--overcommit --time=5)

# ---------------------------------------------------------------- the smoke deck, srun
deck_copy input/smoke.yaml "$T/smoke.yaml" "$T/run"
t0=$SECONDS
j=$(RLAIF_BIN=$BIN submit "${SB[@]}" --cpus-per-task=2 --output="$T/smoke.log" \
    jobs/rlaif.sbatch "$T/smoke.yaml")
st=$(wait_job "$j" 120); ec=$(job_field "$j" ExitCode)
check "smoke deck under srun: job $j $st, exit code $ec ($((SECONDS - t0)) s)" \
  '[ "$st" = COMPLETED ] && [ "$ec" = 0:0 ]' "$T/smoke.log"
check "smoke run directory: metrics.h5 finished, checkpoint step_00000000" \
  '[ "$(run_status $T/run)" = finished ] && [ "$(cat $T/run/ckpt/latest 2>/dev/null)" = step_00000000 ] && [ -f $T/run/ckpt/step_00000000/coordinator.h5 ]' "$T/smoke.log"
check "the log shows srun with --cpus-per-task=2 and --mpi=pmix, 4 ranks" \
  'grep -q "rlaif.sbatch: srun --ntasks=4 --cpus-per-task=2 .*--mpi=pmix .* run $T/smoke.yaml --resume" $T/smoke.log && grep -q "4 ranks (1 coordinator, 1 judge, 1 reward, 1 policy)" $T/smoke.log' "$T/smoke.log"
check "BLAS threads per rank follow SLURM_CPUS_PER_TASK (2)" \
  'grep -q "2 BLAS threads per rank" $T/smoke.log' "$T/smoke.log"

# ---------------------------------------------------------------- the signal path (stand-in)
# Submitted now and checked last: Slurm sends the --signal warning at one of its periodic time
# checks, up to 60 s early; the next jobs (one core each) run meanwhile.
mkdir -p "$T/tl"
tl=$(FAKE_DIR=$T/tl FAKE_SECONDS=150 RLAIF_BIN=$FAKE submit --overcommit --time=1 \
     --signal=B:USR1@50 --output="$T/tl/job.log" jobs/rlaif.sbatch input/smoke.yaml)

# ---------------------------------------------------------------- the smoke deck, mpirun
deck_copy input/smoke.yaml "$T/smoke2.yaml" "$T/run2"
t0=$SECONDS
j=$(RLAIF_BIN=$BIN RLAIF_LAUNCHER=mpirun submit "${SB[@]}" --output="$T/smoke2.log" \
    jobs/rlaif.sbatch "$T/smoke2.yaml")
st=$(wait_job "$j" 120); ec=$(job_field "$j" ExitCode)
check "smoke deck with RLAIF_LAUNCHER=mpirun inside the allocation: $st, exit code $ec, run finished ($((SECONDS - t0)) s)" \
  '[ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] && [ "$(run_status $T/run2)" = finished ] && grep -q "rlaif.sbatch: mpirun -np 4" $T/smoke2.log' "$T/smoke2.log"

# ---------------------------------------------------------------- scontrol requeue (stand-in)
# An administrator's requeue (or a preemption): Slurm sends TERM to the script and to every
# rank at once; the ranks need a few seconds to checkpoint before they exit.
mkdir -p "$T/rq"
t0=$SECONDS
j=$(FAKE_DIR=$T/rq FAKE_STOP_SECONDS=8 RLAIF_BIN=$FAKE submit "${SB[@]}" --output="$T/rq/job.log" \
    jobs/rlaif.sbatch input/smoke.yaml)
for i in $(seq 1 60); do n=$(compgen -G "$T/rq/a0.r*" | wc -l); [ "$n" -eq 4 ] && break; sleep 1; done
scontrol requeue "$j"
st=$(wait_job "$j" 120); ec=$(job_field "$j" ExitCode); rs=$(job_field "$j" Restarts)
check "scontrol requeue: job $st after $rs restart(s), exit code $ec ($((SECONDS - t0)) s)" \
  '[ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] && [ "$rs" = 1 ]' "$T/rq/job.log"
check "scontrol requeue: every rank got TERM and had 8 s to stop cleanly; the next attempt ran" \
  '[ $(cat $T/rq/a0.r* | grep -c "^TERM") -eq 4 ] && [ $(cat $T/rq/a0.r* | grep -c "^stopped") -eq 4 ] && [ $(cat $T/rq/a1.r* | grep -c "^resumed") -eq 4 ]' "$T/rq/job.log"

# ---------------------------------------------------------------- --time + --signal=B:USR1 (stand-in)
st=$(wait_job "$tl" 180); ec=$(job_field "$tl" ExitCode); rs=$(job_field "$tl" Restarts)
check "--time=1 --signal=B:USR1@50: job $st after $rs restart(s), exit code $ec" \
  '[ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] && [ "$rs" = 1 ]' "$T/tl/job.log"
check "the job script got USR1 from Slurm and passed it on to every rank, which stopped cleanly" \
  'grep -q "SIGUSR1 received" $T/tl/job.log && [ $(cat $T/tl/a0.r* | grep -c "^USR1") -eq 4 ] && [ $(cat $T/tl/a0.r* | grep -c "^stopped") -eq 4 ] && ! grep -q "^TERM" $T/tl/a0.r*' "$T/tl/job.log"
check "the job requeued itself; the next attempt (restart count 1) ran and the log holds both" \
  'grep -q "requeued job $tl" $T/tl/job.log && grep -q "(restart count 1)" $T/tl/job.log && [ $(cat $T/tl/a1.r* | grep -c "^resumed") -eq 4 ] && [ $(grep -c "run ended with status 0" $T/tl/job.log) -eq 2 ]' "$T/tl/job.log"

# ---------------------------------------------------------------- the real program: stop, requeue, resume
long=${RLAIF_SLURM_LONG_DECK:-input/tiny.yaml}
if [ ! -f "$long" ]; then
  skip "real run stopped by USR1 mid-run, requeued, resumed to the end" \
    "no deck with stages to interrupt yet ($long is absent; input/smoke.yaml has no stages)"
  exit 0
fi
# the ranks the deck asks for
read -r nj nr np < <("$BIN" check "$long" 2>/dev/null |
  awk '/^ranks:/ {f=1; next} f && /^  judge:/ {j=$2} f && /^  reward:/ {r=$2} f && /^  policy:/ {p=$2} /^[a-z]/ {f=0} END {print j, r, p}')
if [ -z "${np:-}" ]; then
  check "rlaif check $long" 'false'
  exit 1
fi
ntasks=$((1 + nj + nr + np))
deck_copy "$long" "$T/long.yaml" "$T/runl"
t0=$SECONDS
j=$(RLAIF_BIN=$BIN submit --overcommit --time=${RLAIF_SLURM_LONG_MINUTES:-20} --ntasks=$ntasks \
    --output="$T/long.log" jobs/rlaif.sbatch "$T/long.yaml")
# signal as soon as the first stage runs (the ranks have their handlers by then), through the job
# script as --signal=B: would; no fixed delay: on a quiet machine the tiny deck's first stage
# lasts only seconds
for i in $(seq 1 1200); do grep -qE 'stage [a-z_]+: start' "$T/long.log" 2>/dev/null && break; sleep 0.25; done
scancel --batch --signal=USR1 "$j"
st=$(wait_job "$j" "${RLAIF_SLURM_LONG_WAIT:-480}"); ec=$(job_field "$j" ExitCode); rs=$(job_field "$j" Restarts)
check "$long: job $st after $rs restart(s), exit code $ec ($((SECONDS - t0)) s)" \
  '[ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] && [ "$rs" = 1 ]' "$T/long.log"
check "$long: the coordinator logged the stop request and the run stopped after a checkpoint" \
  'grep -q "stop requested (signal)\|run stopped by a signal" $T/long.log && grep -q "run stopped by a signal after a checkpoint" $T/long.log' "$T/long.log"
check "$long: the requeued attempt resumed from that checkpoint and finished" \
  'grep -q "resuming from checkpoint" $T/long.log && grep -q "run finished in" $T/long.log && [ "$(run_status $T/runl)" = finished ]' "$T/long.log"
