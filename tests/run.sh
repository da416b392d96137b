#!/usr/bin/env bash
# Runs every test of the project and prints, last, "N passed, N failed".
#
#   tests/unit/test_*.c    cmocka programs, run as they are
#   tests/mpi/test_*.c     cmocka programs run under mpirun for each count in their
#                          "mpi-np: 2 4" comment (rank 0 reports, every rank's exit status counts)
#   tests/scripts/*.sh     shell tests that print TAP lines ("ok - ...", "not ok - ...",
#                          "ok - ... # SKIP reason")
# A case is one TAP line; a program that dies without reporting counts as one failure.
# Environment: BIN, OBJDIR, PYTHON, VARIANT (set by make); TESTS=pattern runs a subset.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
: "${BIN:=build/rlaif}" "${OBJDIR:=build/release}" "${PYTHON:=/usr/bin/python3}" "${VARIANT:=release}"
export BIN OBJDIR PYTHON VARIANT ROOT
export RLAIF_BIN="$ROOT/$BIN"
if [ -z "${RLAIF_SHARED+x}" ]; then
  if [ -d "$ROOT/../shared" ]; then RLAIF_SHARED=$(cd "$ROOT/../shared" && pwd); else RLAIF_SHARED=""; fi
fi
export RLAIF_SHARED
export CMOCKA_MESSAGE_OUTPUT=TAP
export OMPI_MCA_rmaps_base_oversubscribe=1
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
if [ "$VARIANT" = san ]; then
  # leaks are checked; tests/lsan.supp names the third-party libraries whose start-up
  # allocations live until exit (Open MPI, HDF5, OpenBLAS). Their MCA plugins are unloaded by
  # then, so the stacks must be unwound fully at malloc time to reach a frame in libmpi & co.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0"
  export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
TMPD=$(mktemp -d /tmp/rlaif-tests.XXXXXX)
export TEST_TMP="$TMPD"
trap 'rm -rf "$TMPD"' EXIT
pattern="${TESTS:-}"

pass=0 fail=0 skip=0
failed_names=()

# run_one NAME CMD... : runs a command, counts its TAP lines
run_one() {
  local name=$1; shift
  local out="$TMPD/out.txt" t0 t1 rc
  t0=$(date +%s.%N)
  timeout --kill-after=10 "${TEST_TIMEOUT:-900}" "$@" >"$out" 2>"$TMPD/err.txt"; rc=$?
  t1=$(date +%s.%N)
  local p f s
  # a skipped case is "ok ... # SKIP" (ours) or "not ok ... # SKIP" (cmocka's skip())
  s=$(grep -E '^(not )?ok ' "$out" | grep -c '# SKIP' | tr -d ' ')
  p=$(grep -E '^ok ' "$out" | grep -vc '# SKIP' | tr -d ' ')
  f=$(grep -E '^not ok ' "$out" | grep -vc '# SKIP' | tr -d ' ')
  local extra=""
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; extra=" (exit status $rc without a failed case)"; fi
  if [ $((p + f + s)) -eq 0 ]; then f=1; extra=" (reported no cases)"; fi
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
  local dt; dt=$(printf '%.1f' "$(echo "$t1 - $t0" | bc)")
  if [ "$f" -gt 0 ]; then
    failed_names+=("$name")
    printf 'FAIL %-44s %3d passed, %d failed%s  (%ss)\n' "$name" "$p" "$f" "$extra" "$dt"
    grep -E '^not ok ' "$out" | grep -v '# SKIP' | sed 's/^/     /'
    tail -n 25 "$TMPD/err.txt" | sed 's/^/     | /'
  else
    printf 'ok   %-44s %3d passed%s  (%ss)\n' "$name" "$p" "$([ "$s" -gt 0 ] && echo ", $s skipped")" "$dt"
    grep -E '^# measured:' "$out" | sed 's/^# /     /'
    grep -E '# SKIP' "$out" | sed 's/^/     /' | head -5
  fi
}

echo "rlaif tests ($VARIANT build, shared data: ${RLAIF_SHARED:-absent})"
for src in tests/unit/test_*.c; do
  [ -e "$src" ] || continue
  name=${src#tests/}; name=${name%.c}
  [ -n "$pattern" ] && [[ "$name" != *$pattern* ]] && continue
  run_one "$name" "$OBJDIR/tests/$name"
done
for src in tests/mpi/test_*.c; do
  [ -e "$src" ] || continue
  name=${src#tests/}; name=${name%.c}
  [ -n "$pattern" ] && [[ "$name" != *$pattern* ]] && continue
  nps=$(sed -n 's/.*mpi-np:\([0-9 ]*\).*/\1/p' "$src" | head -1)
  for np in ${nps:-2}; do
    run_one "$name -np $np" mpirun --oversubscribe -np "$np" "$OBJDIR/tests/$name"
  done
done
for sh in tests/scripts/*.sh; do
  [ -e "$sh" ] || continue
  name=${sh#tests/}
  [ -n "$pattern" ] && [[ "$name" != *$pattern* ]] && continue
  run_one "$name" bash "$sh"
done

echo
[ "$skip" -gt 0 ] && echo "$skip skipped"
[ "$fail" -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
