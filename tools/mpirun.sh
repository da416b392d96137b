#!/usr/bin/env bash
# mpirun with the flags this project always wants: more ranks than cores are fine
# (--oversubscribe), and as root Open MPI has to be told that it may run.
extra=(--oversubscribe)
if [ "$(id -u)" -eq 0 ]; then extra+=(--allow-run-as-root); fi
exec mpirun "${extra[@]}" "$@"
