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

# logits: one causal pass against llama.cpp's reference
IDS=$RLAIF_SHARED/reference/tiny-llama-f32.ids.txt
"$RLAIF_BIN" logits --model "$REF" --ids-file "$IDS" --out "$TEST_TMP/l.f32"; rc=$?
check "logits exits 0" '[ $rc -eq 0 ]'
diff=$("$PYTHON" -c "
import sys, numpy as np
a = np.fromfile('$TEST_TMP/l.f32', dtype='<f4'); b = np.fromfile('$RLAIF_SHARED/reference/tiny-llama-f32.logits.f32', dtype='<f4')
print(float(np.abs(a - b).max()) if a.shape == b.shape else 'shape %s vs %s' % (a.shape, b.shape))")
check "logits match llama.cpp's (max |diff| $diff <= 1e-4)" '"$PYTHON" -c "import sys; sys.exit(0 if float(\"$diff\") <= 1e-4 else 1)" 2>/dev/null'
printf '1, 2\n 31999,32000' > "$TEST_TMP/bad.ids"
msg=$("$RLAIF_BIN" logits --model "$REF" --ids-file "$TEST_TMP/bad.ids" --out "$TEST_TMP/x.f32" 2>&1); rc=$?
check "logits: an id outside the vocabulary is refused with its byte offset" \
  '[ $rc -eq 2 ] && grep -q "bad.ids: byte 12: token id 32000" <<<"$msg"'

# export -> import: identical logits for f32
"$RLAIF_BIN" export --model "$REF" --out "$TEST_TMP/e32.gguf" --type f32 && \
  "$RLAIF_BIN" logits --model "$TEST_TMP/e32.gguf" --ids-file "$IDS" --out "$TEST_TMP/l32.f32"
check "export f32 then logits: byte-identical" 'cmp -s "$TEST_TMP/l.f32" "$TEST_TMP/l32.f32"'
"$RLAIF_BIN" export --model "$REF" --out "$TEST_TMP/e16.gguf" --type f16; rc=$?
check "export f16: weight matrices stored as f16" \
  '[ $rc -eq 0 ] && "$RLAIF_BIN" inspect "$TEST_TMP/e16.gguf" | grep -qE "^  blk.0.attn_q.weight +f16"'

# generate: deterministic for a seed
g1=$("$RLAIF_BIN" generate --model "$REF" --prompt "Once upon a time" --max-tokens 12 --seed 7); rc=$?
g2=$("$RLAIF_BIN" generate --model "$REF" --prompt "Once upon a time" --max-tokens 12 --seed 7)
g3=$("$RLAIF_BIN" generate --model "$REF" --prompt "Once upon a time" --max-tokens 12 --seed 8)
check "generate: exit 0 and some text" '[ $rc -eq 0 ] && [ -n "$g1" ]'
check "generate: the same seed gives the same text, another seed another" '[ "$g1" = "$g2" ] && [ "$g1" != "$g3" ]'
"$RLAIF_BIN" generate --model "$REF" --prompt x --temperature -1 >/dev/null 2>&1; rc=$?
check "generate: a negative temperature is refused" '[ $rc -eq 2 ]'
