#!/usr/bin/env bash
# analysis/report.py on a synthetic metrics.h5 (the layout of docs/RUNFILES.md): it writes the
# plots and a report.md with the summary table, stage times and the samples; --compare adds a
# column. Skips without Debian's h5py/matplotlib.
set -u
cd "$(dirname "$0")/../.."
PY=${PYTHON:-/usr/bin/python3}
if ! "$PY" -c 'import h5py, matplotlib' 2>/dev/null; then
  echo "ok - report # SKIP $PY has no h5py or matplotlib"; exit 0
fi
T=${TEST_TMP:-/tmp}/report.$$
mkdir -p "$T/a" "$T/b"
"$PY" - "$T" <<'PYEOF'
import sys, h5py, numpy as np
t = sys.argv[1]
dt = np.dtype([("step", "<i8"), ("value", "<f8")])
for run, win in (("a", 0.74), ("b", 0.71)):
    with h5py.File("%s/%s/metrics.h5" % (t, run), "w") as f:
        f.attrs["status"] = "finished"
        f["config/deck_yaml"] = "run:\n  name: x\n"
        for name in ("reward", "rm_score", "reward_minus_kl", "kl", "kl_coef", "entropy",
                     "approx_kl", "clipfrac", "value_loss", "explained_variance", "grad_norm",
                     "response_length", "eos_rate", "time_generate", "time_score_wait",
                     "time_train"):
            f["metrics/rl/" + name] = np.array([(i, 0.1 * i) for i in range(1, 11)], dtype=dt)
        for name in ("val_accuracy_judge", "val_accuracy_gold", "accuracy"):
            f["metrics/reward/" + name] = np.array([(i, 0.6 + 0.01 * i) for i in range(1, 6)], dtype=dt)
        for k, v in (("win_rate_gold_vs_sft", win), ("win_rate_judge_vs_sft", 0.8),
                     ("kl_to_sft", 3.2), ("rm_accuracy_gold", 0.72), ("time/sft_seconds", 200.0),
                     ("time/rl_seconds", 250.0), ("wall_seconds", 600.0)):
            f["summary/" + k] = v
        d = f.create_dataset("samples/eval_samples", data=np.array(
            [["doc | one", "sft a", "rl a"], ["doc two", "sft b", "rl b"]], dtype=object),
            dtype=h5py.string_dtype())
        d.attrs["columns"] = ["document", "sft", "rl"]
PYEOF
if out=$("$PY" analysis/report.py "$T/a" --compare "$T/b" 2>&1); then
  echo "ok - report.py runs: $out"
else
  echo "not ok - report.py failed: $out"
fi
n=$(ls "$T/a/report/"*.png 2>/dev/null | wc -l)
[ "$n" -ge 6 ] && echo "ok - $n plots written" || echo "not ok - only $n plots"
md="$T/a/report/report.md"
grep -q '| win_rate_gold_vs_sft | 0.74 | 0.71 |' "$md" && echo "ok - summary table compares the runs" \
  || { echo "not ok - summary table"; sed 's/^/#   /' "$md" | head -20; }
grep -q '| rl | 250.0 |' "$md" && echo "ok - wall time per stage" || echo "not ok - stage times"
grep -q 'doc \\| one' "$md" && echo "ok - samples side by side (cells escaped)" || echo "not ok - samples"
"$PY" analysis/report.py "$T/nonexistent" >/dev/null 2>"$T/err"; rc=$?
[ $rc -ne 0 ] && grep -q "metrics.h5 does not exist" "$T/err" && echo "ok - a missing run is named" \
  || echo "not ok - missing run: rc=$rc $(cat "$T/err")"
rm -rf "$T"
