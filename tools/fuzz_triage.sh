#!/usr/bin/env bash
# fuzz_triage.sh TARGET ARTIFACT...: re-runs each crash, hang or out-of-memory input a fuzz
# target left (build/fuzz/crash-NAME-*) and sorts it: "ours" when the innermost frame that is
# neither a sanitizer's, libFuzzer's nor libc's is in our sources (src/, tests/), "libhdf5"
# when it is inside libhdf5 (which we cannot fix; see tests/fuzz/hdf5-crashes/README.md).
# Prints one line per input; exits 1 when any input is ours.
set -u
target=$1; shift
status=0
for f in "$@"; do
  [ -e "$f" ] || continue
  out=$(ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(dirname "$0")/../tests/lsan.supp \
        timeout 60 "$target" -timeout=5 -rss_limit_mb=2048 -malloc_limit_mb=1024 "$f" 2>&1)
  what=$(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-z-]+|runtime error: .*|one was not closed' <<<"$out")
  frame=$(grep -E '^    #[0-9]+ ' <<<"$out" |
          grep -vE '__sanitizer|__asan|__lsan|__ubsan|interceptor|fuzzer::|libFuzzer|libc\.so|libc-|abort|raise|malloc|calloc|realloc|H5FL_|H5MM_' |
          head -1)
  if [ -z "$what" ]; then
    echo "clean     $f (no longer fails)"
  elif grep -q 'libhdf5' <<<"$frame"; then
    echo "libhdf5   $f: $what $(grep -oE 'in [A-Za-z0-9_]+' <<<"$frame" | head -1)"
  else
    echo "OURS      $f: $what ${frame:+at $(grep -oE '(src|tests)/[^ ]+' <<<"$frame" | head -1)}"
    status=1
  fi
done
exit $status
