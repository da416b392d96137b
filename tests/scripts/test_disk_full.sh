#!/usr/bin/env bash
# Disk full during a checkpoint: the run's ckpt/ is a 3 MiB tmpfs; the sft checkpoints of a
# small policy fit in it (two kept plus the one being written), the first judge_sft checkpoint
# (a larger model) does not. The run must stop with a non-zero status and a message that names
# the file and says the file system is full; ckpt/latest must still name the previous, whole
# checkpoint (`rlaif ckpt verify`) and no partial file may be left behind; once the checkpoints
# are moved to a disk with room, `--resume` must finish the run with the same models as a run
# that never ran out of space. Needs root (mount); skips otherwise.
set -u
cd "$(dirname "$0")/../.."
BIN=${RLAIF_BIN:-build/rlaif}
T=${TEST_TMP:-/tmp}/disk_full.$$
NP=4
mkdir -p "$T/run/ckpt"
mounted=0
cleanup() {
  if [ $mounted -eq 1 ]; then umount "$T/run/ckpt" 2>/dev/null || umount -l "$T/run/ckpt"; fi
  rm -rf "$T"
}
trap cleanup EXIT

if [ "$(id -u)" -ne 0 ]; then
  echo "ok - disk full during a checkpoint # SKIP needs root to mount a small tmpfs"; exit 0
fi
if ! mount -t tmpfs -o size=3072k tmpfs "$T/run/ckpt" 2>"$T/mount.err"; then
  echo "ok - disk full during a checkpoint # SKIP mount -t tmpfs failed: $(head -1 "$T/mount.err")"
  exit 0
fi
mounted=1

deck_for() { # deck_for OUT_DIR NAME
  cat > "$T/$2.yaml" <<EOF
run:
  name: disk-full
  seed: 5
  out_dir: $1
  checkpoint_every: 3
  metrics_flush_seconds: 0.2
ranks: {judge: 1, reward: 1, policy: 1}
threads_per_rank: 1
stages: [sft, judge_sft]
task: {n_train: 200, n_val: 20, n_test: 40, judge_pairs: 8}
tokenizer: {vocab_size: 600}
policy: {dim: 32, layers: 1, heads: 2, kv_heads: 2, ffn: 64, max_seq: 160}
judge:
  model: {dim: 96, layers: 2, heads: 4, kv_heads: 4, ffn: 192, max_seq: 224}
  batch_pairs: 4
sft: {steps: 30, batch: 4, warmup: 2, train_ranks: 2, eval_docs: 8}
judge_sft:
  pretrain: {steps: 12, batch: 4, warmup: 2}
  finetune: {steps: 12, batch: 4, warmup: 2}
  train_ranks: 2
  eval_pairs: 8
label: {pairs: 80}
EOF
}

deck_for "$T/ref" ref
if ! tools/mpirun.sh -np $NP "$BIN" run "$T/ref.yaml" >"$T/ref.log" 2>&1; then
  echo "not ok - the run with room on disk failed"; tail -15 "$T/ref.log" | sed 's/^/#   /'; exit 0
fi
want=$(cd "$T/ref/models" && sha256sum ./*.gguf)

deck_for "$T/run" full
tools/mpirun.sh -np $NP "$BIN" run "$T/full.yaml" >"$T/full.log" 2>&1
rc=$?
msg=$(grep -m1 'r0/coord\] ERROR' "$T/full.log")
if [ $rc -ne 0 ]; then
  echo "ok - the run stops when the checkpoint file system fills (mpirun status $rc)"
else
  echo "not ok - the run ended with status 0 on a full file system"
fi
echo "# ${msg#*ERROR }"
if grep -q 'No space left on device' <<<"$msg" && grep -q 'file system is full' <<<"$msg" &&
   grep -Eq "$T/run/ckpt/step_[0-9]+/[a-z_]+\.h5\.tmp" <<<"$msg"; then
  echo "ok - the coordinator's message names the file and says the file system is full"
else
  echo "not ok - the message does not name the file and the cause: '${msg:-no ERROR line}'"
  tail -12 "$T/full.log" | sed 's/^/#   /'
fi

latest=$(cat "$T/run/ckpt/latest" 2>/dev/null)
vout=$("$BIN" ckpt verify "$T/run" 2>&1)
if [ $? -eq 0 ] && [ "$latest" = "step_10000000" ]; then
  echo "ok - ckpt/latest still names the last whole checkpoint ($latest): $("$BIN" ckpt verify "$T/run" | sed "s#$T/##")"
else
  echo "not ok - ckpt/latest is '$latest' (expected step_10000000, the end of sft): $vout"
fi
left=$(find "$T/run/ckpt" -name '*.tmp')
if [ -z "$left" ]; then
  echo "ok - no partial checkpoint file is left on the full file system"
else
  echo "not ok - partial files left: $left"
fi

# make room: the checkpoints move to the big disk (the directory the tmpfs covered)
cp -a "$T/run/ckpt" "$T/ckpt.saved"
umount "$T/run/ckpt" && mounted=0
rm -rf "$T/run/ckpt" && mv "$T/ckpt.saved" "$T/run/ckpt"
if tools/mpirun.sh -np $NP "$BIN" run "$T/full.yaml" --resume >"$T/resume.log" 2>&1 &&
   grep -q 'resuming from checkpoint step_10000000' "$T/resume.log"; then
  got=$(cd "$T/run/models" && sha256sum ./*.gguf)
  if [ "$got" = "$want" ]; then
    echo "ok - after making room, --resume from step_10000000 finishes with the same models"
  else
    echo "not ok - the resumed run's models differ from the run's with room"
    diff <(echo "$want") <(echo "$got") | sed 's/^/#   /'
  fi
else
  echo "not ok - --resume after making room failed"; tail -15 "$T/resume.log" | sed 's/^/#   /'
fi
