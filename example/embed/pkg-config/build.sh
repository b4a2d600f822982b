#!/bin/sh
# A consumer built with a plain cc line, fut found through pkg-config:
#   PKG_CONFIG_PATH=/where/fut/is/installed/lib/pkgconfig ./build.sh OUT
set -eu
here=$(dirname "$0")
out=${1:-consumer}
libdir=$(pkg-config --variable=libdir fut)
cc -std=c11 -Wall -Wextra -Werror "$here/../consumer.c" -o "$out" \
   $(pkg-config --cflags --libs fut) -Wl,-rpath,"$libdir"
