#!/usr/bin/env bash
# `rlaif run` end to end on the smoke deck under mpirun: run directory, metrics.h5, one
# checkpoint, refusal to overwrite, --resume, --force, rank-count mismatch, deck errors printed
# once with exit status 2.
set -u
cd "$(dirname "$0")/../.."
BIN=${RLAIF_BIN:-build/rlaif}
PY=${PYTHON:-/usr/bin/python3}
T=${TEST_TMP:-/tmp}/smoke.$$
mkdir -p "$T"
MPI=(mpirun --oversubscribe -np 4)
[ "$(id -u)" -eq 0 ] && MPI=(mpirun --oversubscribe --allow-run-as-root -np 4)
sed "s|out_dir: runs/smoke|out_dir: $T/run|" input/smoke.yaml > "$T/smoke.yaml"
deck=$T/smoke.yaml
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; sed 's/^/#   /' "$T/log" | tail -15; fi; }

"${MPI[@]}" "$BIN" run "$deck" >"$T/log" 2>&1; rc=$?
check "smoke run exits 0" '[ $rc -eq 0 ]'
check "smoke run writes metrics.h5 and one checkpoint" \
  '[ -f $T/run/metrics.h5 ] && [ "$(cat $T/run/ckpt/latest)" = step_00000000 ] && [ -f $T/run/ckpt/step_00000000/coordinator.h5 ]'
"$PY" - "$T/run" > "$T/py" 2>&1 <<'PYEOF'
import sys, h5py
d = sys.argv[1]
with h5py.File(d + "/metrics.h5", "r") as f:
    assert f.attrs["status"] == "finished", f.attrs["status"]
    deck = f["config/deck_yaml"].asstr()[()]
    assert "name: \"smoke\"" in deck and "stages: []" in deck, deck
    assert "rlaif" in f["build/version"].asstr()[()]
    assert list(f.attrs["rank_layout"]) == [1, 1, 1, 1]
    assert f["summary/wall_seconds"][()] >= 0
with h5py.File(d + "/ckpt/step_00000000/coordinator.h5", "r") as f:
    assert f["deck_yaml"].asstr()[()] == deck
print("ok")
PYEOF
check "metrics.h5 holds the effective deck, build info, status; checkpoint holds the deck" 'grep -q "^ok" $T/py || { cat $T/py >> $T/log; false; }'
check "the log starts with the effective deck and build info" 'grep -q "effective deck:" $T/log && grep -q "git commit:" $T/log'

"${MPI[@]}" "$BIN" run "$deck" >"$T/log" 2>&1; rc=$?
check "a finished run is not overwritten without --force (exit 2, message names --force)" \
  '[ $rc -eq 2 ] && grep -q "holds a finished run" $T/log && grep -q -- "--force" $T/log'
"${MPI[@]}" "$BIN" run "$deck" --resume >"$T/log" 2>&1; rc=$?
check "--resume finds the checkpoint of the finished run and does nothing" \
  '[ $rc -eq 0 ] && grep -q "last checkpoint step_00000000" $T/log'
before=$(stat -c %Y "$T/run/metrics.h5")
"${MPI[@]}" "$BIN" run "$deck" --force >"$T/log" 2>&1; rc=$?
check "--force starts over" '[ $rc -eq 0 ] && grep -q "removing the earlier run" $T/log && [ -f $T/run/ckpt/latest ]'

# an unfinished run (killed before any checkpoint): refused without --resume, resumed with it
"$PY" -c "import h5py; f=h5py.File('$T/run/metrics.h5','a'); f.attrs['status']='running'"
rm -rf "$T/run/ckpt"
"${MPI[@]}" "$BIN" run "$deck" >"$T/log" 2>&1; rc=$?
check "an unfinished run is refused without --resume, naming --resume" '[ $rc -eq 2 ] && grep -q -- "--resume" $T/log'
"${MPI[@]}" "$BIN" run "$deck" --resume >"$T/log" 2>&1; rc=$?
check "--resume of an unfinished run without checkpoints starts over" \
  '[ $rc -eq 0 ] && grep -q "no checkpoint" $T/log && [ -f $T/run/ckpt/latest ]'

# rank count mismatch: message names both numbers, once, exit 2
MPI3=("${MPI[@]}"); MPI3[-1]=3
"${MPI3[@]}" "$BIN" run "$deck" --force >"$T/log" 2>&1; rc=$?
check "-np 3 for a 4-rank deck stops with both numbers, printed once, exit 2" \
  '[ $rc -eq 2 ] && [ $(grep -c "asks for 4 ranks.*mpirun started 3" $T/log) -eq 1 ]'

# a deck error under mpirun: printed once (rank 0), exit 2, no hang
printf 'run:\n  name: x\n  seed: -1\nstages: []\n' > "$T/bad.yaml"
timeout 60 "${MPI[@]}" "$BIN" run "$T/bad.yaml" >"$T/log" 2>&1; rc=$?
check "a bad deck under mpirun: one message with line and column, exit 2" \
  '[ $rc -eq 2 ] && [ $(grep -c "bad.yaml:3:9: .run.seed. = -1 is out of range" $T/log) -eq 1 ]'
"$BIN" run >"$T/log" 2>&1; rc=$?
check "run without a deck prints usage, exit 2" '[ $rc -eq 2 ] && grep -q "usage:" $T/log'
rm -rf "$T"
