#!/usr/bin/env bash
# make bench, RL section: the scoring service the rl stage's policy ranks call (one reward rank
# serving requests of 64 quickstart-sized sequences from one and from two policy ranks), next to
# scoring the same sequences in-process on that rank. The ratio is what the service's messages
# cost (below 1) or what serving two clients gains by keeping the server busy.
# Environment: OBJDIR (build/release).
set -u
cd "$(dirname "$0")/.."
: "${OBJDIR:=build/release}"
T="$OBJDIR/tests/mpi/test_reward"
if [ ! -x "$T" ]; then echo "bench_rl: $T is missing (make test-build)"; exit 1; fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 RLAIF_BENCH_SCORE=1 CMOCKA_MESSAGE_OUTPUT=TAP
declare -A R
for np in 2 3; do
  out=$(tools/mpirun.sh -np $np "$T" 2>/dev/null | grep '^# bench ')
  echo "== scoring service, $((np - 1)) client(s):"; echo "$out" | sed 's/^# bench /  /'
  R[local$np]=$(echo "$out" | awk '$3 == "score_local_seqs_per_s:" { print $4 }')
  R[svc$np]=$(echo "$out" | awk '$3 == "score_service_seqs_per_s:" { print $4 }')
  R[busy$np]=$(echo "$out" | awk '$3 == "score_service_busy:" { print $4 }')
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
echo
echo "rlaif bench, RL: scoring service (reward model d128 L4 V1006, 56-token sequences, requests of 64)"
printf '%-34s %14s %16s %8s   %s\n' figure service reference ratio note
printf '%-34s %14s %16s %8s   %s\n' "score seq/s, 1 client" "${R[svc2]:--}" "${R[local2]:--} local" "$(ratio "${R[svc2]}" "${R[local2]}")" "server busy ${R[busy2]:--}"
printf '%-34s %14s %16s %8s   %s\n' "score seq/s, 2 clients" "${R[svc3]:--}" "${R[local3]:--} local" "$(ratio "${R[svc3]}" "${R[local3]}")" "server busy ${R[busy3]:--}"
