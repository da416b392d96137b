#!/usr/bin/env bash
# The label stage deals work on demand: with two judge ranks, one of them slowed down
# (RLAIF_TEST_SLOW_JUDGE), the slow one labels far fewer pairs and every pair is labelled once;
# without the slowdown both share the work. Pairs come from a JSONL file (label.source: file),
# so only rank 0 and the judges work; the judge is a briefly trained tiny one.
set -u
cd "$(dirname "$0")/../.."
BIN=${RLAIF_BIN:-build/rlaif}
PY=${PYTHON:-/usr/bin/python3}
T=${TEST_TMP:-/tmp}/deal.$$
mkdir -p "$T"
MPI=(mpirun --oversubscribe -np 3)
[ "$(id -u)" -eq 0 ] && MPI=(mpirun --oversubscribe --allow-run-as-root -np 3)
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; sed 's/^/#   /' "$T/log" | tail -15; fi; }

"$BIN" bench judge --write-pairs "$T/pairs.jsonl" --pairs 240 > "$T/log" 2>&1
check "bench judge --write-pairs writes 240 JSONL pairs" '[ $(wc -l < $T/pairs.jsonl) -eq 240 ]'
write_deck() { # write_deck NAME
  cat > "$T/$1.yaml" <<DECK
run: {name: deal, seed: 5, out_dir: $T/$1, metrics_flush_seconds: 0.2}
ranks: {judge: 2, reward: 0, policy: 0}
stages: [judge_sft, label]
task: {n_train: 200, n_val: 20, n_test: 50, judge_pairs: 4}
tokenizer: {vocab_size: 400}
judge:
  model: {dim: 32, layers: 1, heads: 2, kv_heads: 2, ffn: 64, max_seq: 200}
  batch_pairs: 4
judge_sft: {pretrain: {steps: 2, batch: 4}, finetune: {steps: 2, batch: 4}, eval_pairs: 0}
label: {source: file, pairs_file: "$T/pairs.jsonl", pairs: 0}
DECK
}
write_deck even
"${MPI[@]}" "$BIN" run "$T/even.yaml" >"$T/log" 2>&1; rc=$?
check "two judges, same speed: the run labels every pair" '[ $rc -eq 0 ]'
write_deck slow
# the sanitizer build slows the fast judge too (several times): the slow one sleeps longer there
slow_ms=60
[ "${VARIANT:-}" = san ] && slow_ms=300
RLAIF_TEST_SLOW_JUDGE=1:$slow_ms "${MPI[@]}" -x RLAIF_TEST_SLOW_JUDGE "$BIN" run "$T/slow.yaml" >"$T/log" 2>&1; rc=$?
check "two judges, one slowed by $slow_ms ms per batch: the run labels every pair" '[ $rc -eq 0 ]'
"$PY" - "$T" > "$T/py" 2>&1 <<'PYEOF'
import sys, h5py, numpy as np
t = sys.argv[1]
def counts(name):
    s = h5py.File(t + "/" + name + "/metrics.h5", "r")["summary"]
    return int(s["label_judge0_pairs"][()]), int(s["label_judge1_pairs"][()]), int(s["ai_labels_produced"][()])
e0, e1, en = counts("even")
s0, s1, sn = counts("slow")
print("# measured: pairs per judge, even %d/%d, one slowed %d/%d" % (e0, e1, s0, s1))
assert en == 240 and e0 + e1 == 240 and sn == 240 and s0 + s1 == 240
assert min(e0, e1) >= 40, (e0, e1)          # both work when they are equally fast
assert s1 * 3 <= s0, (s0, s1)               # the slow one gets much less
for name in ["even", "slow"]:
    p = h5py.File(t + "/" + name + "/labels.h5", "r")["pairs"]
    assert p["done"][:].all() and len(p["p"]) == 240
    assert (p["prompt_id"][:] == np.arange(240)).all()
print("ok")
PYEOF
grep "^# measured" "$T/py"
check "on demand: the slow judge labels at most a third of what the fast one does; each pair once" 'grep -q "^ok" $T/py || { cat $T/py >> $T/log; false; }'
rm -rf "$T"
