#!/usr/bin/env bash
# A private one-node Slurm cluster on this machine, for testing the job scripts under a real
# Slurm (Debian's slurmctld/slurmd 22.05 and munge).
#
#   tools/slurm_local.sh start     install the packages if missing, write the configuration,
#                                  start munged, slurmctld and slurmd; wait until the node is idle
#   tools/slurm_local.sh stop      stop the three daemons (by the pids in their pid files)
#   tools/slurm_local.sh status    say whether the cluster runs; sinfo and squeue when it does
#   tools/slurm_local.sh env       print the line that points the Slurm commands at it:
#                                    eval "$(tools/slurm_local.sh env)"; sbatch ...
#
# Everything lives in one directory, $RLAIF_SLURM_DIR (default /tmp/rlaif-slurm): slurm.conf,
# the munge key and socket, state, spool, logs and pid files. Nothing is written to /etc and
# the system's munged (if any) is left alone: the commands find this cluster through
# SLURM_CONF, and Slurm finds this munged through AuthInfo=socket=... in slurm.conf.
# The node is this machine with the CPU count and memory that `slurmd -C` reports; there is
# no accounting database (completed jobs are logged to jobcomp.log in the directory).
#
# Needs root: slurmd starts jobs as their user. Ports: $RLAIF_SLURM_PORT (default 6817) for
# slurmctld and the next one for slurmd.
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
D=${RLAIF_SLURM_DIR:-/tmp/rlaif-slurm}
PORT=${RLAIF_SLURM_PORT:-6817}
START_TIMEOUT=${RLAIF_SLURM_START_TIMEOUT:-60}
CONF=$D/etc/slurm.conf
PKGS=(slurmctld slurmd slurm-client munge)

say() { echo "slurm_local: $*" >&2; }

# pid_alive FILE: the pid in FILE is a live process of the daemon the file is named after
# (a stale pid file from an earlier boot may name some other process now: leave that alone)
pid_alive() {
  local p name
  [ -s "$1" ] || return 1
  p=$(cat "$1" 2>/dev/null) || return 1
  name=$(basename "$1" .pid)
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$name" ]
}

node_state() { SLURM_CONF=$CONF timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -1; }

show_logs() {
  local f
  for f in munged slurmctld slurmd; do
    [ -f "$D/log/$f.log" ] || continue
    echo "---- $D/log/$f.log (last 25 lines)" >&2
    tail -n 25 "$D/log/$f.log" >&2
  done
}

# stop_one NAME: TERM, up to 15 s, then KILL; only the pid in NAME's pid file
stop_one() {
  local pf=$D/run/$1.pid p i
  pid_alive "$pf" || { rm -f "$pf"; return 0; }
  p=$(cat "$pf")
  kill -TERM "$p" 2>/dev/null
  for i in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then
    say "$1 (pid $p) did not stop in 15 s; killing it"
    kill -KILL "$p" 2>/dev/null
  fi
  rm -f "$pf"
}

write_conf() {
  local host cpus mem sockets cores threads c
  host=$(hostname -s)
  # slurmd -C: "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
  c=$(slurmd -C 2>/dev/null | head -1)
  cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$c")
  sockets=$(sed -n 's/.*SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$c")
  cores=$(sed -n 's/.*CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$c")
  threads=$(sed -n 's/.*ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$c")
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$c")
  if [ -z "$cpus" ] || [ -z "$mem" ]; then
    cpus=$(nproc); sockets=1; cores=$cpus; threads=1
    mem=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)
    say "slurmd -C said '$c'; using nproc=$cpus and MemTotal=${mem}M"
  fi
  # leave a little memory to the system, as a real node would
  mem=$((mem * 95 / 100))
  cat >"$CONF" <<EOF
# Written by tools/slurm_local.sh: a private one-node cluster for testing rlaif's job scripts.
ClusterName=rlaiflocal
MailProg=/bin/true
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# our own munged; cred_expire: a requeued job may start again 10 s after it ended (default 120)
AuthInfo=socket=$D/munge/munge.socket,cred_expire=10
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$D/etc/plugstack.conf
# no cgroups (there may be no systemd, and containers rarely delegate them)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
# look at the queue every 2 s (defaults: 60 and 30), so that tests do not wait on the scheduler
SchedulerParameters=sched_interval=2,bf_interval=2
# completed jobs stay visible to 'scontrol show job' for 10 minutes
MinJobAge=600
# the grace between SIGTERM and SIGKILL at the time limit, scancel and requeue
KillWait=30
JobRequeue=1
InactiveLimit=0
SlurmctldTimeout=60
SlurmdTimeout=120
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  : >"$D/etc/plugstack.conf"
}

start_munged() {
  pid_alive "$D/run/munged.pid" && return 0
  if [ ! -s "$D/munge/munge.key" ]; then
    # a fresh random key for this private cluster (mungekey writes 1024 random bytes)
    mungekey --create --keyfile="$D/munge/munge.key" 2>/dev/null ||
      dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 status=none
    chmod 0400 "$D/munge/munge.key"
  fi
  rm -f "$D/munge/munge.socket" "$D/munge/munge.socket.lock"
  # --force: munged is cautious about running as root and about /tmp being world-writable
  munged --force --socket="$D/munge/munge.socket" --key-file="$D/munge/munge.key" \
    --pid-file="$D/run/munged.pid" --log-file="$D/log/munged.log" \
    --seed-file="$D/munge/munged.seed" || return 1
  local i
  for i in $(seq 1 50); do [ -S "$D/munge/munge.socket" ] && return 0; sleep 0.1; done
  return 1
}

cmd_start() {
  if [ "$(id -u)" -ne 0 ]; then
    say "needs root: slurmd starts jobs as their owner. Run it as root (sudo $0 start)."
    exit 1
  fi
  "$ROOT/tools/deps.sh" "${PKGS[@]}" || exit 1
  if pid_alive "$D/run/slurmctld.pid" && pid_alive "$D/run/slurmd.pid" &&
     [[ "$(node_state)" == idle* || "$(node_state)" == mix* || "$(node_state)" == alloc* ]]; then
    say "already running (SLURM_CONF=$CONF)"
    return 0
  fi
  # whatever half of it runs: stop it, then start afresh
  cmd_stop quiet
  mkdir -p "$D/etc" "$D/state" "$D/spool/$(hostname -s)" "$D/log" "$D/run" "$D/munge"
  chmod 0755 "$D"
  chmod 0755 "$D/munge"
  write_conf
  start_munged || { say "munged did not start"; show_logs; exit 1; }
  export SLURM_CONF=$CONF
  # -c: a throwaway cluster, no jobs recovered from an earlier start
  slurmctld -c -f "$CONF" || { say "slurmctld did not start"; show_logs; exit 1; }
  slurmd -f "$CONF" || { say "slurmd did not start"; show_logs; exit 1; }
  local t0=$SECONDS st=""
  while [ $((SECONDS - t0)) -lt "$START_TIMEOUT" ]; do
    st=$(node_state)
    case "$st" in
      idle*) say "node $(hostname -s) idle after $((SECONDS - t0)) s (SLURM_CONF=$CONF)"; return 0 ;;
      down*|drain*|fail*)
        # a node that registered before slurmctld was ready can sit in 'down': resume it
        scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 ;;
    esac
    pid_alive "$D/run/slurmctld.pid" || { say "slurmctld exited"; show_logs; cmd_stop quiet; exit 1; }
    pid_alive "$D/run/slurmd.pid" || { say "slurmd exited"; show_logs; cmd_stop quiet; exit 1; }
    sleep 0.5
  done
  say "the node is not idle after $START_TIMEOUT s (sinfo says '${st:-nothing}')"
  SLURM_CONF=$CONF timeout 10 sinfo -N -l >&2 2>&1
  show_logs
  cmd_stop quiet
  exit 1
}

cmd_stop() {
  # slurmd first (it ends the job steps it runs), then the controller, then munge
  stop_one slurmd
  stop_one slurmctld
  stop_one munged
  [ "${1:-}" = quiet ] || say "stopped"
}

cmd_status() {
  local ok=0 n
  for n in munged slurmctld slurmd; do
    if pid_alive "$D/run/$n.pid"; then echo "$n: running (pid $(cat "$D/run/$n.pid"))"
    else echo "$n: not running"; ok=1; fi
  done
  if [ $ok -eq 0 ]; then
    echo "SLURM_CONF=$CONF"
    SLURM_CONF=$CONF timeout 10 sinfo
    SLURM_CONF=$CONF timeout 10 squeue
  fi
  return $ok
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
