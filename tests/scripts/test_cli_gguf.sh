#!/usr/bin/env bash
# The model-file commands as other tools call them: `rlaif inspect` and `rlaif tokenize` (every
# case of llama.cpp's vocabulary tests through standard input, --bos, the trailing newline),
# and their refusals (exit status 2 with the file and byte offset).
set -u
: "${RLAIF_BIN:=build/rlaif}" "${PYTHON:=/usr/bin/python3}" "${TEST_TMP:=/tmp}"
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; }
check() { if eval "$2"; then ok "$1"; else nok "$1"; fi; }

if [ -z "${RLAIF_SHARED:-}" ] || [ ! -d "$RLAIF_SHARED/vocab" ]; then
  echo "ok - cli gguf # SKIP ../shared is absent"
  exit 0
fi
REF=$RLAIF_SHARED/reference/tiny-llama-f32.gguf
SPM=$RLAIF_SHARED/vocab/ggml-vocab-llama-spm.gguf

out=$("$RLAIF_BIN" inspect "$REF"); rc=$?
check "inspect exits 0" '[ $rc -eq 0 ]'
check "inspect: dimensions" 'grep -q "C 64, L 2, NH 4, NKV 2, HS 16, FF 172, V 32000" <<<"$out"'
check "inspect: tensor table" 'grep -qE "^  blk.1.ffn_down.weight +f32 +64 x 172" <<<"$out"'
check "inspect: tokenizer summary" 'grep -qE "^  tokens +32000" <<<"$out" && grep -qE "^  bos +1 .<s>." <<<"$out"'

head -c 100 "$REF" > "$TEST_TMP/cut.gguf"
msg=$("$RLAIF_BIN" inspect "$TEST_TMP/cut.gguf" 2>&1 >/dev/null); rc=$?
check "inspect of a truncated file: exit 2 with file and byte" \
  '[ $rc -eq 2 ] && grep -q "cut.gguf: byte " <<<"$msg"'
"$RLAIF_BIN" inspect "$TEST_TMP/none.gguf" >/dev/null 2>&1; rc=$?
check "inspect of a missing file: exit 1" '[ $rc -eq 1 ]'
"$RLAIF_BIN" tokenize </dev/null >/dev/null 2>&1; rc=$?
check "tokenize without --model: exit 2" '[ $rc -eq 2 ]'

ids=$(printf 'Hello world' | "$RLAIF_BIN" tokenize --model "$SPM" --bos)
check "tokenize --bos: BOS first" '[ "$ids" = "1 15043 3186" ]'
ids=$(echo 'Hello world' | "$RLAIF_BIN" tokenize --model "$SPM")
check "tokenize: the trailing newline is part of the text" '[ "$ids" = "15043 3186 13" ]'

# every case of every vocabulary through the command line
"$PYTHON" - "$RLAIF_BIN" "$RLAIF_SHARED/vocab" <<'PY'
import glob, os, subprocess, sys
binp, vdir = sys.argv[1], sys.argv[2]
for path in sorted(glob.glob(os.path.join(vdir, "*.gguf"))):
    raw = open(path + ".inp", "rb").read()
    sep = b"\n__ggml_vocab_test__\n"
    cases, pos = [], 0
    while pos < len(raw):
        nx = raw.find(sep, pos)
        if nx < 0:
            cases.append(raw[pos:])
            break
        cases.append(raw[pos:nx])
        pos = nx + len(sep)
    want = open(path + ".out").read().split("\n")
    good = 0
    for i, c in enumerate(cases):
        r = subprocess.run([binp, "tokenize", "--model", path], input=c, capture_output=True)
        if r.returncode == 0 and r.stdout.decode().split() == want[i].split():
            good += 1
    name = os.path.basename(path)
    print("%s - rlaif tokenize: %d/%d cases of %s" % ("ok" if good == len(cases) else "not ok",
                                                    good, len(cases), name))
PY
