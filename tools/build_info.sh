#!/usr/bin/env bash
# Writes build_info.h: version, git commit, compiler and flags, for `rlaif --version`.
cc="$1"; flags="$2"
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && ! git diff --quiet HEAD -- src include Makefile 2>/dev/null; then commit="$commit-dirty"; fi
ccver=$($cc --version 2>/dev/null | head -1)
esc() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
echo "#define RLAIF_GIT_COMMIT \"$(esc "$commit")\""
echo "#define RLAIF_CC_VERSION \"$(esc "$ccver")\""
echo "#define RLAIF_CFLAGS \"$(esc "$flags")\""
