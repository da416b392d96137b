#!/usr/bin/env bash
# bench: the three benchmarks run on tiny shapes, take the documented flags, print key: value
# lines with their headline last, and refuse bad flags. Speed is `make bench`'s business.
cd "${ROOT:-.}" || exit 1
BIN=${RLAIF_BIN:-build/rlaif}
M=(--dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 --vocab 100)
check() { # name expected-last-key cmd...
  local name=$1 key=$2; shift 2
  local out; out=$("$@" 2>&1); local rc=$?
  local last; last=$(printf '%s\n' "$out" | tail -1)
  if [ $rc -eq 0 ] && [[ "$last" == "$key: "* ]] && printf '%s\n' "$out" | grep -q '^blas_core: '; then
    echo "ok - $name ($last)"
  else
    echo "not ok - $name (exit $rc, last line '$last')"; printf '%s\n' "$out" | sed 's/^/# /' | tail -5
  fi
}
check "bench sgemm" GFLOPS "$BIN" bench sgemm --n 128 --reps 2
check "bench train" tokens/s "$BIN" bench train "${M[@]}" --seq 16 --batch 2 --seconds 0.2
check "bench decode B=1" tokens/s "$BIN" bench decode "${M[@]}" --batch 1 --prompt 5 --new 7 --reps 1
check "bench decode B=4" tokens/s "$BIN" bench decode "${M[@]}" --batch 4 --prompt 5 --new 7 --reps 1
if "$BIN" bench train --bogus 1 >/dev/null 2>&1; then echo "not ok - unknown flag refused"; else echo "ok - unknown flag refused"; fi
if "$BIN" bench train --heads 5 --dim 32 >/dev/null 2>&1; then echo "not ok - bad shape refused"; else echo "ok - bad shape refused"; fi
