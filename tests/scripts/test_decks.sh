#!/usr/bin/env bash
# Deck validation: every deck in input/ and tests/decks/good passes `rlaif check` and its
# effective deck loads back to the same text; every deck in tests/decks/bad fails with exit
# status 2 and the message, line and column written in its "# expect: LINE:COL: text" header.
set -u
cd "$(dirname "$0")/../.."
BIN=${RLAIF_BIN:-build/rlaif}
TMP=${TEST_TMP:-/tmp}/decks.$$
mkdir -p "$TMP"
for deck in input/*.yaml tests/decks/good/*.yaml; do
  [ -e "$deck" ] || continue
  if out=$("$BIN" check "$deck" 2>"$TMP/err"); then
    printf '%s\n' "$out" > "$TMP/effective.yaml"
    if again=$("$BIN" check "$TMP/effective.yaml" 2>&1) && [ "$again" = "$out" ]; then
      echo "ok - $deck passes check and its effective deck round-trips"
    else
      echo "not ok - $deck: effective deck does not load back to itself"; echo "$again" | head -5
    fi
  else
    echo "not ok - $deck fails check: $(head -3 "$TMP/err")"
  fi
done
for deck in tests/decks/bad/*.yaml; do
  want=$(sed -n '1s/^# expect: //p' "$deck")
  if [ -z "$want" ]; then echo "not ok - $deck has no '# expect:' header"; continue; fi
  "$BIN" check "$deck" >"$TMP/out" 2>"$TMP/err"; rc=$?
  if [ $rc -ne 2 ]; then
    echo "not ok - $deck: exit status $rc, expected 2"; continue
  fi
  if grep -qF -- "$deck:$want" "$TMP/err"; then
    echo "ok - $(basename "$deck"): $want"
  else
    echo "not ok - $(basename "$deck"): expected '$deck:$want', got:"; sed 's/^/#   /' "$TMP/err"
  fi
  if [ -s "$TMP/out" ]; then echo "not ok - $(basename "$deck") printed a deck on stdout despite the error"; fi
done
# a deck that does not exist, and one that is a directory
"$BIN" check /nonexistent/deck.yaml 2>"$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "/nonexistent/deck.yaml: cannot open the deck: No such file" "$TMP/err"; then
  echo "ok - a missing deck is named with the reason"
else echo "not ok - missing deck: rc=$rc $(cat "$TMP/err")"; fi
"$BIN" check --schema > "$TMP/schema"
if grep -q '^run.seed ' "$TMP/schema" && grep -q '^stages ' "$TMP/schema"; then
  echo "ok - check --schema lists the keys"
else echo "not ok - check --schema"; fi
rm -rf "$TMP"
