#!/usr/bin/env bash
# make bench: the engine's throughput figures, each next to its reference measured in the same
# run: sgemm peak of this machine (OpenBLAS core as rlaif picks it), training step against the
# same step in PyTorch (same model, batch, thread count and OpenBLAS core), decode at batch 1
# and 32. Prints every benchmark's key: value lines, then a table.
# Environment: BIN (build/rlaif), PYTHON (/usr/bin/python3), THREADS (1), SECONDS_TRAIN (20).
set -u
cd "$(dirname "$0")/.."
: "${BIN:=build/rlaif}" "${PYTHON:=/usr/bin/python3}" "${THREADS:=1}" "${SECONDS_TRAIN:=20}"
MODEL=(--dim 288 --layers 6 --heads 6 --kv-heads 6 --ffn 768 --vocab 32000)
TMP=$(mktemp -d /tmp/rlaif-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

run() { # name cmd...
  local name=$1; shift
  echo "== $name: $*"
  if ! "$@" >"$TMP/$name.txt" 2>"$TMP/$name.err"; then
    echo "FAILED (exit status $?):"; cat "$TMP/$name.err"; return 1
  fi
  cat "$TMP/$name.txt"
}
get() { awk -v k="$2:" '$1 == k { v = $2 } END { print v }' "$TMP/$1.txt" 2>/dev/null; }

export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
run sgemm "$BIN" bench sgemm --threads "$THREADS"
CORE=$(get sgemm blas_core)
run train "$BIN" bench train "${MODEL[@]}" --seq 256 --batch 8 --seconds "$SECONDS_TRAIN" --threads "$THREADS"
# PyTorch loads the same OpenBLAS through libblas.so.3: give it the core rlaif uses
if "$PYTHON" -c 'import torch' 2>/dev/null; then
  OPENBLAS_CORETYPE=$CORE run torch "$PYTHON" tools/bench_torch.py "${MODEL[@]}" --seq 256 --batch 8 \
    --seconds "$SECONDS_TRAIN" --threads "$THREADS"
else
  echo "== torch: $PYTHON has no torch (apt-get install python3-torch); no reference"
fi
run decode1 "$BIN" bench decode "${MODEL[@]}" --batch 1 --prompt 64 --new 128 --threads "$THREADS"
run decode32 "$BIN" bench decode "${MODEL[@]}" --batch 32 --prompt 64 --new 128 --threads "$THREADS"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
SG=$(get sgemm GFLOPS); TR=$(get train tokens/s); TG=$(get train GFLOPS); PT=$(get torch tokens/s)
D1=$(get decode1 tokens/s); D32=$(get decode32 tokens/s)
RSS=$(get train peak_rss_MiB); THEO=$(get train memory_theoretical_MiB); PRSS=$(get torch peak_rss_MiB)
echo
echo "rlaif bench (OpenBLAS core $CORE, $THREADS thread(s) per process; best of repetitions)"
printf '%-34s %14s %16s %8s   %s\n' figure rlaif reference ratio target
printf '%-34s %14s %16s %8s   %s\n' "sgemm 2048^3 GFLOPS" "${SG:--}" "" "" ""
printf '%-34s %14s %16s %8s   %s\n' "train tokens/s (d288 L6 B8x256)" "${TR:--}" "${PT:-n/a} torch" "$(ratio "$TR" "$PT")" ">= 1.3"
printf '%-34s %14s %16s %8s   %s\n' "train GFLOPS" "${TG:--}" "${SG:--} sgemm" "$(ratio "$TG" "$SG")" ">= 0.70"
printf '%-34s %14s %16s %8s   %s\n' "train peak RSS MiB" "${RSS:--}" "${PRSS:-n/a} torch" "$(ratio "$RSS" "$PRSS")" "(theory ${THEO:--})"
printf '%-34s %14s %16s %8s   %s\n' "decode B=1 tokens/s" "${D1:--}" "150 llama.cpp" "$(ratio "$D1" 150)" ">= 1.0"
printf '%-34s %14s %16s %8s   %s\n' "decode B=32 tokens/s" "${D32:--}" "900 target" "$(ratio "$D32" 900)" ">= 1.0"
echo "(llama.cpp figures are the issue's measurements on this machine, F32, not re-measured here)"
