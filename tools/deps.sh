#!/usr/bin/env bash
# Installs the Debian packages given as arguments when some are missing; quick when all are there.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -u
missing=()
for p in "$@"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "rlaif: missing Debian packages: ${missing[*]}" >&2
  echo "rlaif: install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "rlaif: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/rlaif-apt.log 2>&1; then
  apt-get update -q >>/tmp/rlaif-apt.log 2>&1
  apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/rlaif-apt.log 2>&1 || {
    echo "rlaif: apt-get install failed; see /tmp/rlaif-apt.log" >&2; tail -20 /tmp/rlaif-apt.log >&2; exit 1; }
fi
echo "rlaif: installed ${#missing[@]} packages" >&2
