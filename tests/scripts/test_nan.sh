#!/usr/bin/env bash
# NaN/Inf: a deck may ask for a learning rate and weight decay whose product is far above 1 (both
# in range: lr <= 10, weight_decay <= 10), which makes the training diverge within a few steps.
# For each stage that trains (sft, judge_sft, reward, the rl policy and the rl value model) the
# run must stop with a non-zero status and one message naming the stage, the step and what is
# not finite; metrics.h5 must say "failed"; ckpt/latest must name a whole checkpoint of that
# stage from before the failing step, with finite parameters; a resume with the same deck must
# stop again at the same step, and (sft) a resume with a sane learning rate must finish.
set -u
cd "$(dirname "$0")/../.."
BIN=${RLAIF_BIN:-build/rlaif}
T=${TEST_TMP:-/tmp}/nan.$$
NP=4
mkdir -p "$T"
trap 'rm -rf "$T"' EXIT

deck() { # deck NAME SFT_OPTS PRETRAIN_OPTS REWARD_OPTS RL_OPTS
  cat > "$T/$1.yaml" <<EOF
run:
  name: nan
  seed: 5
  out_dir: $T/$1
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
sft: {steps: 30, batch: 4, train_ranks: 2, eval_docs: 8$2}
judge_sft:
  pretrain: {steps: 12, batch: 4$3}
  finetune: {steps: 12, batch: 4, warmup: 2}
  train_ranks: 2
  eval_pairs: 8
label: {pairs: 80, max_new_tokens: 12}
reward: {batch: 8, epochs: 3, eval_every: 5, norm_samples: 16, train_ranks: 2$4}
rl: {steps: 8, rollouts: 8, minibatch: 4, epochs: 1, max_new_tokens: 10, sample_every: 4, train_ranks: 2$5}
eval: {prompts: 8, samples: 2}
EOF
}
BAD=", lr: 10, weight_decay: 10, warmup: 0"
deck sft "$BAD" ", warmup: 2" "" ""
deck judge_sft ", warmup: 2" "$BAD" "" ""
deck reward ", warmup: 2" ", warmup: 2" "$BAD" ""
deck rl_policy ", warmup: 2" ", warmup: 2" "" ", policy: {lr: 10, weight_decay: 10, warmup: 0}"
deck rl_value ", warmup: 2" ", warmup: 2" "" ", value: {lr: 10, weight_decay: 10, warmup: 0}"

finite_ckpt() { # finite_ckpt RUN_DIR: every float dataset of the latest checkpoint is finite
  /usr/bin/python3 - "$1" <<'PYEOF'
import sys, glob, h5py, numpy as np
run = sys.argv[1]
step = open(run + "/ckpt/latest").read().strip()
bad = []
for path in glob.glob("%s/ckpt/%s/*.h5" % (run, step)):
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f":
                if not np.all(np.isfinite(obj[()])):
                    bad.append(path.rsplit("/", 1)[1] + ":" + name)
        f.visititems(visit)
print(" ".join(bad) if bad else "finite")
PYEOF
}

for name in sft judge_sft reward rl_policy rl_value; do
  stage=${name%_policy}; stage=${stage%_value}
  tools/mpirun.sh -np $NP "$BIN" run "$T/$name.yaml" >"$T/$name.log" 2>&1
  rc=$?
  msg=$(grep -m1 'r0/coord\] ERROR' "$T/$name.log"); msg=${msg#*ERROR }
  echo "# $name: $msg"
  step=$(sed -n "s/.*stage $stage[ (a-z)]*, step \([0-9]*\): .*not finite.*/\1/p" <<<"$msg")
  if [ $rc -ne 0 ] && [ -n "$step" ]; then
    echo "ok - $name diverges: exit status $rc, the message names stage $stage, step $step"
  else
    echo "not ok - $name: exit status $rc, message '$msg' (expected 'stage $stage, step N: ... not finite')"
    tail -8 "$T/$name.log" | sed 's/^/#   /'
    continue
  fi
  status=$(/usr/bin/python3 -c "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs['status'])" \
           "$T/$name/metrics.h5" 2>&1)
  latest=$(cat "$T/$name/ckpt/latest" 2>/dev/null)
  sid=$(/usr/bin/python3 -c "print({'sft':0,'judge_sft':1,'reward':3,'rl':4}['$stage'])")
  lstage=$((10#${latest#step_} / 10000000)); lstep=$((10#${latest#step_} % 10000000))
  vrc=0; "$BIN" ckpt verify "$T/$name" >"$T/$name.verify" 2>&1 || vrc=$?
  fin=$(finite_ckpt "$T/$name")
  if [ "$status" = failed ] && [ $vrc -eq 0 ] && [ "$lstage" -eq "$sid" ] && [ "$lstep" -lt "$step" ] &&
     [ "$fin" = finite ] && grep -q "newest committed checkpoint is $T/$name/ckpt/$latest" "$T/$name.log"; then
    echo "ok - $name: metrics.h5 says failed, ckpt/latest ($latest, $stage step $lstep) is whole and finite, and the log points to it"
  else
    echo "not ok - $name: status '$status', latest '$latest' (stage $lstage step $lstep), verify $vrc: $(cat "$T/$name.verify"), parameters: $fin"
  fi
  # the same deck again: the same failure at the same step, from that checkpoint
  tools/mpirun.sh -np $NP "$BIN" run "$T/$name.yaml" --resume >"$T/$name.resume.log" 2>&1
  rc2=$?
  msg2=$(grep -m1 'r0/coord\] ERROR' "$T/$name.resume.log"); msg2=${msg2#*ERROR }
  # every rank of the training group finds it; whichever reports first is named
  if [ $rc2 -ne 0 ] && [ "${msg2#rank * (*): }" = "${msg#rank * (*): }" ] && grep -q "resuming from checkpoint $latest" "$T/$name.resume.log"; then
    echo "ok - $name: --resume with the same deck stops again with the same message"
  else
    echo "not ok - $name: --resume with the same deck: status $rc2, '$msg2'"
  fi
done

# the way out: a sane learning rate, --resume --force (the deck changed) from the last good step
deck sft_fixed ", warmup: 2" ", warmup: 2" "" ""
sed -i "s#out_dir: .*#out_dir: $T/sft#" "$T/sft_fixed.yaml"
if tools/mpirun.sh -np $NP "$BIN" run "$T/sft_fixed.yaml" --resume --force >"$T/fixed.log" 2>&1 &&
   grep -q "resuming from checkpoint step_0" "$T/fixed.log" && [ -e "$T/sft/models/policy_rl.gguf" ]; then
  echo "ok - sft: with a sane learning rate, --resume --force continues from the last good checkpoint to the end"
else
  echo "not ok - sft: --resume --force with a sane deck did not finish"; tail -8 "$T/fixed.log" | sed 's/^/#   /'
fi
