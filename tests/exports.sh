#!/bin/sh
# libfut.so exports fut_* names and nothing else.
set -eu
others=$(nm -D --defined-only "$1" | awk '{print $3}' | grep -v '^fut_' || true)
if [ -n "$others" ]; then
    echo "libfut.so exports names outside fut_*:" >&2
    echo "$others" >&2
    exit 1
fi
echo "$(nm -D --defined-only "$1" | wc -l) symbols, all fut_*"
