#!/bin/sh
# Builds and runs one of the embedding examples against this build:
#   tests/embed.sh find_package|add_subdirectory|fetchcontent|pkg-config SRC BUILD WORK
# or checks that fut on its own, with no build type given, builds Release:
#   tests/embed.sh default_build_type SRC BUILD WORK
# or that libfut.a built with link-time optimization on links with another
# compiler (CC builds fut, OTHER_CC builds the consumer):
#   tests/embed.sh lto_static SRC BUILD WORK CC OTHER_CC
set -eu
mode=$1 src=$2 build=$3 work=$4
rm -rf "$work"
mkdir -p "$work"
case $mode in
find_package)
    cmake --install "$build" --prefix "$work/prefix" >/dev/null
    cmake -S "$src/example/embed/find_package" -B "$work/b" \
          -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
    cmake --build "$work/b" >/dev/null
    "$work/b/consumer"
    ;;
add_subdirectory|fetchcontent)
    fetch=OFF
    [ "$mode" = fetchcontent ] && fetch=ON
    cmake -S "$src/example/embed/add_subdirectory" -B "$work/b" \
          -DFUT_SOURCE_DIR="$src" -DUSE_FETCHCONTENT=$fetch >/dev/null
    cmake --build "$work/b" >/dev/null
    # fut's own tests and demo must be off when it is a subproject.
    if find "$work/b" -name fut-demo -o -name 'test_*' | grep -q .; then
        echo "fut built its tests or demo as a subproject" >&2
        exit 1
    fi
    # nor may it choose the parent's build type (none was given)
    if ! grep -q '^CMAKE_BUILD_TYPE:STRING=$' "$work/b/CMakeCache.txt"; then
        echo "fut set its parent project's build type" >&2
        exit 1
    fi
    "$work/b/consumer"
    ;;
default_build_type)
    cmake -S "$src" -B "$work/b" -DFUT_BUILD_TESTS=OFF \
          -DFUT_BUILD_EXAMPLES=OFF -DFUT_BUILD_BENCH=OFF >/dev/null
    grep '^CMAKE_BUILD_TYPE:' "$work/b/CMakeCache.txt"
    ;;
pkg-config)
    cmake --install "$build" --prefix "$work/prefix" >/dev/null
    PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" \
        "$src/example/embed/pkg-config/build.sh" "$work/consumer"
    "$work/consumer"
    ;;
lto_static)
    CC=$5 cmake -S "$src" -B "$work/b" -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=ON \
          -DFUT_BUILD_TESTS=OFF -DFUT_BUILD_EXAMPLES=OFF -DFUT_BUILD_BENCH=OFF >/dev/null
    cmake --build "$work/b" --target fut_static >/dev/null
    "$6" -std=c11 "$src/example/embed/consumer.c" -I"$src/include" \
         "$work/b/libfut.a" -pthread -ldl -o "$work/consumer"
    "$work/consumer"
    ;;
*)
    echo "usage: $0 find_package|add_subdirectory|fetchcontent|pkg-config|default_build_type|lto_static SRC BUILD WORK" >&2
    exit 2
    ;;
esac
