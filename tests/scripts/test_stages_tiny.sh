#!/usr/bin/env bash
# The stages sft, judge_sft and label end to end on input/tiny.yaml under mpirun: the files they
# hand on (tokenizer, policy and judge GGUF, labels.h5), the figures the issues name, labels.h5's
# invariants; then kill -9 of every rank in the middle of sft and in the middle of label, and
# --resume: the models come out bit-identical to the uninterrupted run's, and the labelling
# keeps the rows the dead attempt finished, labels exactly the others, and ends with the same
# labels.
set -u
cd "$(dirname "$0")/../.."
BIN=${RLAIF_BIN:-build/rlaif}
PY=${PYTHON:-/usr/bin/python3}
T=${TEST_TMP:-/tmp}/stages.$$
mkdir -p "$T"
MPI=(mpirun --oversubscribe -np 4)
[ "$(id -u)" -eq 0 ] && MPI=(mpirun --oversubscribe --allow-run-as-root -np 4)
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; [ -f "${3:-$T/log}" ] && sed 's/^/#   /' "${3:-$T/log}" | tail -20; fi; }

deck() { # deck NAME [sed expressions...]: input/tiny.yaml with out_dir T/NAME
  local name=$1; shift
  sed "s|out_dir: runs/tiny|out_dir: $T/$name|" input/tiny.yaml > "$T/$name.yaml"
  for ex in "$@"; do sed -i "$ex" "$T/$name.yaml"; done
}

# ---------------------------------------------------------------- the whole run
deck full
t0=$(date +%s.%N)
"${MPI[@]}" "$BIN" run "$T/full.yaml" >"$T/log" 2>&1; rc=$?
secs=$(echo "$(date +%s.%N) - $t0" | bc)
check "tiny deck (every stage: sft, judge_sft, label, reward, rl, eval) exits 0" '[ $rc -eq 0 ]'
echo "# measured: tiny deck, six stages: ${secs%.*} s wall"
check "models/tokenizer.gguf, policy_sft.gguf, judge.gguf and labels.h5 are written" \
  '[ -s $T/full/models/tokenizer.gguf ] && [ -s $T/full/models/policy_sft.gguf ] && [ -s $T/full/models/judge.gguf ] && [ -s $T/full/labels.h5 ]'
"$PY" - "$T/full" > "$T/py" 2>&1 <<'PYEOF'
import sys, math, h5py, numpy as np
d = sys.argv[1]
with h5py.File(d + "/metrics.h5", "r") as f:
    s = f["summary"]
    for k in ["sft_gold_score_mean", "judge_alignment_gold", "judge_alignment_gold_noswap",
              "same_position_rate", "gold_labels_used", "ai_labels_produced", "label_pairs_per_s",
              "label_alignment_gold", "label_judge_busy_min", "label_judge_busy_avg",
              "label_judge_busy_max", "label_judge0_pairs_per_s"]:
        assert k in s, "summary/%s missing" % k
    assert s["gold_labels_used"][()] == 20
    assert s["judge_sft_policy_pairs"][()] == 10  # judge_sft.policy_pairs 0.5 of 20
    assert s["ai_labels_produced"][()] == 200
    assert s["gold_labels_used"][()] * 10 <= s["ai_labels_produced"][()]
    assert 0 <= s["judge_alignment_gold"][()] <= 1 and 0 <= s["same_position_rate"][()] <= 1
    assert -5.05 <= s["sft_gold_score_mean"][()] <= 1
    assert "sft_samples" in f["samples"] and "label_confidence_hist" in f["samples"]
    assert len(f["metrics/sft/loss"]) == 200 and len(f["metrics/judge_sft/finetune_loss"]) == 60
    h = f["samples/label_confidence_hist"].asstr()[:]
    assert sum(int(r[2]) for r in h) == 200
with h5py.File(d + "/labels.h5", "r") as f:
    p = f["pairs"]
    n = len(p["p"])
    assert n == 200 and f.attrs["format"] == "rlaif-labels 1" and f.attrs["n_rows"] == 200
    assert p["done"][:].all()
    pab, pba, pp = p["p_ab"][:], p["p_ba"][:], p["p"][:]
    assert np.all((pab > 0) & (pab < 1) & (pba > 0) & (pba < 1))
    assert np.allclose(pp, (pab + pba) / 2, atol=1e-12)
    assert all(len(x) > 0 for x in p["context"].asstr()[:])
    assert (p["prompt_id"][:] == np.arange(200) % 400).all()
    assert all(r == "" for r in p["rationale_ab"].asstr()[:])
print("ok")
PYEOF
check "metrics.h5 has the issue's figures; labels.h5 is whole (p = mean of both orders)" 'grep -q "^ok" $T/py' "$T/py"

# ---------------------------------------------------------------- kill -9 in sft, resume
# The run is started with setsid: mpirun and its ranks (each in its own process group) share
# one session, whose id is mpirun's pid; kill_all sends SIGKILL to every process of it at once.
kill_all() {
  pkill -9 -s "$SID" 2>/dev/null; wait "$SID" 2>/dev/null
  for _ in $(seq 1 100); do pgrep -s "$SID" >/dev/null || return 0; sleep 0.05; done
}
# wait for ckpt/latest to match REGEX, then kill every rank at once
kill_when() { # kill_when RUN REGEX TIMEOUT
  local run=$1 re=$2 limit=$3 i=0
  while [ $i -lt $((limit * 20)) ]; do
    if [ -f "$T/$run/ckpt/latest" ] && grep -qE "$re" "$T/$run/ckpt/latest"; then
      kill_all; return 0
    fi
    sleep 0.05; i=$((i + 1))
  done
  kill_all; return 1
}
deck k1
setsid "${MPI[@]}" "$BIN" run "$T/k1.yaml" >"$T/log" 2>&1 &
SID=$!
kill_when k1 'step_000000[5-9][0-9]' 60; killed=$?
check "kill -9 of every rank in the middle of sft" '[ $killed -eq 0 ] && [ ! -f $T/k1/models/policy_sft.gguf ]'
"${MPI[@]}" "$BIN" run "$T/k1.yaml" --resume >"$T/log" 2>&1; rc=$?
check "--resume continues sft from its checkpoint and finishes" \
  '[ $rc -eq 0 ] && grep -q "resuming from checkpoint step_000000[5-9]0 (sft" $T/log'
check "the resumed policy, judge and labels are bit-identical to the uninterrupted run" \
  'cmp -s $T/k1/models/policy_sft.gguf $T/full/models/policy_sft.gguf && cmp -s $T/k1/models/judge.gguf $T/full/models/judge.gguf'

# ---------------------------------------------------------------- kill -9 in judge_sft, resume
deck k2
setsid "${MPI[@]}" "$BIN" run "$T/k2.yaml" >"$T/log" 2>&1 &
SID=$!
kill_when k2 'step_100000[2-9][0-9]' 60; killed=$?
"${MPI[@]}" "$BIN" run "$T/k2.yaml" --resume >"$T/log" 2>&1; rc=$?
check "kill -9 in judge_sft, --resume: the judge is bit-identical to the uninterrupted run's" \
  '[ $killed -eq 0 ] && [ $rc -eq 0 ] && grep -q "resuming from checkpoint step_100000[2-9]" $T/log && cmp -s $T/k2/models/judge.gguf $T/full/models/judge.gguf'

# ---------------------------------------------------------------- kill -9 in label, resume
# On a loaded machine the label stage (under a second) can end between two polls; then the
# run is started over, up to three times, so that the kill does land in the middle of label.
for try in 1 2 3; do
  rm -rf "$T/k3"
  deck k3 's/label: {pairs: 200,/label: {pairs: 200,/' 's/metrics_flush_seconds: 0.5/metrics_flush_seconds: 0.1/'
  setsid "${MPI[@]}" "$BIN" run "$T/k3.yaml" >"$T/log" 2>&1 &
  SID=$!
  # wait until labels.h5 holds some labelled rows, then kill every rank
  killed=1
  for i in $(seq 1 1200); do
    if [ -f "$T/k3/labels.h5" ] && "$PY" -c "
import sys, h5py
f = h5py.File('$T/k3/labels.h5', 'r'); d = int(f['pairs/done'][:].sum())
sys.exit(0 if 40 <= d < 200 else 1)" 2>/dev/null; then
      kill_all; killed=0; break
    fi
    if [ -f "$T/k3/models/judge.gguf" ] && grep -q "stage label: done" "$T/log"; then break; fi
    sleep 0.05
  done
  [ $killed -ne 0 ] && kill_all
  [ $killed -eq 0 ] && break
  echo "# try $try: the label stage ended before the kill; starting over"
done
before=$("$PY" -c "import h5py; print(int(h5py.File('$T/k3/labels.h5','r')['pairs/done'][:].sum()))" 2>/dev/null)
"${MPI[@]}" "$BIN" run "$T/k3.yaml" --resume >"$T/log" 2>&1; rc=$?
check "kill -9 in the middle of label (${before:-?} of 200 rows on disk), --resume exits 0" \
  '[ $killed -eq 0 ] && [ $rc -eq 0 ]'
"$PY" - "$T/k3" "$T/full" "${before:-0}" "$T/log" > "$T/py" 2>&1 <<'PYEOF'
import sys, re, h5py, numpy as np
k3, full, before, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), open(sys.argv[4]).read()
kept = re.search(r"(\d+) of 200 pairs were labelled by an earlier attempt", log)
kept = int(kept.group(1)) if kept else 0
rec = re.search(r"(\d+) labelled pairs recovered from", log)
rec = int(rec.group(1)) if rec else 0
with h5py.File(k3 + "/metrics.h5", "r") as f:
    s = f["summary"]
    # the resumed attempt labelled exactly the rows that were neither in the file nor in the
    # journal, and lost none that the file held when the run was killed
    this = int(s["label_pairs_this_attempt"][()])
    assert this + kept + rec == 200, (this, kept, rec)
    assert kept + rec >= before > 0, (kept, rec, before)
    assert s["ai_labels_produced"][()] == 200
a, b = h5py.File(k3 + "/labels.h5", "r")["pairs"], h5py.File(full + "/labels.h5", "r")["pairs"]
assert a["done"][:].all()
for k in ["a", "b", "context"]:
    assert list(a[k].asstr()[:]) == list(b[k].asstr()[:]), k
assert np.allclose(a["p"][:], b["p"][:], atol=1e-5), np.abs(a["p"][:] - b["p"][:]).max()
print("ok")
PYEOF
check "the resumed labelling labelled only the missing rows; pairs and labels match the uninterrupted run" \
  'grep -q "^ok" $T/py && [ ! -e $T/k3/labels.h5.journal ]' "$T/py"
# ---------------------------------------------------------------- the likelihood judge
# judge.mode: likelihood on the full run's judge and SFT policy: the same pairs (the label
# stage's streams), labels from the judge's log-probabilities (no positions: p_ab = p_ba = p),
# recorded in labels.h5's attributes; the eval judges with the same mode.
deck lik 's|stages: \[sft, judge_sft, label, reward, rl, eval\]|stages: [label]|' \
  "s|  batch_pairs: 4|  batch_pairs: 4\n  mode: likelihood\n  likelihood: {temperature: 2.0}\n  model: {gguf: $T/full/models/judge.gguf}|" \
  "s|^policy: .*|policy: {gguf: $T/full/models/policy_sft.gguf}|" \
  's|^  model: {dim: 64.*||'
"${MPI[@]}" "$BIN" run "$T/lik.yaml" >"$T/log.lik" 2>&1; rc=$?
"$PY" - "$T/lik" "$T/full" > "$T/py" 2>&1 <<'PYEOF'
import sys, h5py, numpy as np
lik, full = sys.argv[1], sys.argv[2]
with h5py.File(lik + "/labels.h5", "r") as f, h5py.File(full + "/labels.h5", "r") as g:
    assert f.attrs["judge_mode"] == "likelihood", f.attrs["judge_mode"]
    assert f.attrs["likelihood_temperature"] == "2", f.attrs["likelihood_temperature"]
    assert g.attrs["judge_mode"] == "preference"
    a, b = f["pairs"], g["pairs"]
    for k in ["a", "b", "context"]:
        assert list(a[k].asstr()[:]) == list(b[k].asstr()[:]), k
    p, pab, pba = a["p"][:], a["p_ab"][:], a["p_ba"][:]
    assert a["done"][:].all() and np.array_equal(p, pab) and np.array_equal(p, pba)
    assert np.all((p >= 0) & (p <= 1)) and np.std(p) > 0.01
    # identical responses have no preference
    same = np.array([x == y for x, y in zip(a["a"].asstr()[:], a["b"].asstr()[:])])
    assert np.all(np.abs(p[same] - 0.5) < 1e-9)
with h5py.File(lik + "/metrics.h5", "r") as f:
    s = f["summary"]
    assert "same_position_rate" not in s and 0 <= s["label_alignment_gold"][()] <= 1
print("ok")
PYEOF
check "judge.mode likelihood labels the same pairs: p_ab = p_ba = p, attributes say the mode" \
  '[ $rc -eq 0 ] && grep -q "^ok" $T/py' "$T/py"
[ -n "${KEEP:-}" ] || rm -rf "$T"
