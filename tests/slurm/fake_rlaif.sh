#!/usr/bin/env bash
# Stand-in for build/rlaif in tests/scripts/test_slurm.sh, to test what jobs/rlaif.sbatch and
# Slurm do with signals whatever the program's stages are. Called as `fake_rlaif.sh run DECK
# --resume` on every rank, like rlaif it notes SIGUSR1/SIGTERM and stops cleanly:
#   first attempt (SLURM_RESTART_COUNT 0): waits up to FAKE_SECONDS (default 150) for a signal,
#     then "checkpoints" for FAKE_STOP_SECONDS (default 3) and exits 0 (3 when no signal came);
#   a requeued attempt: notes "resumed" and exits 0 at once.
# Each rank writes what happened, one line per event with the time, to $FAKE_DIR/a<attempt>.r<rank>.
set -u
a=${SLURM_RESTART_COUNT:-0} r=${OMPI_COMM_WORLD_RANK:-${SLURM_PROCID:-x}}
f=${FAKE_DIR:?}/a$a.r$r
echo "start $(date +%s) args: $*" >>"$f"
if [ "$a" -gt 0 ]; then echo "resumed" >>"$f"; echo "fake rank $r: resumed, done"; exit 0; fi
sig=""
trap 'echo "USR1 $(date +%s)" >>"$f"; sig=${sig:-USR1}' USR1
trap 'echo "TERM $(date +%s)" >>"$f"; sig=${sig:-TERM}' TERM
# sleep in the background: `wait` returns as soon as a signal comes, and no child dies loudly
end=$((SECONDS + ${FAKE_SECONDS:-150}))
while [ -z "$sig" ] && [ $SECONDS -lt $end ]; do sleep 0.2 & wait $!; done
[ -n "$sig" ] || { echo "timeout" >>"$f"; exit 3; }
echo "fake rank $r: got SIG$sig, checkpointing"
end=$((SECONDS + ${FAKE_STOP_SECONDS:-3}))
while [ $SECONDS -lt $end ]; do sleep 0.2 & wait $!; done
echo "stopped $(date +%s)" >>"$f"
exit 0
