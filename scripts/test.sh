#!/bin/sh
# Builds fut with warnings as errors, checked (FUT_CHECKED), and runs every
# test suite.
#   scripts/test.sh            plain build, in build-test/
#   scripts/test.sh address    AddressSanitizer + UBSan, in build-address/
#   scripts/test.sh thread     ThreadSanitizer, in build-thread/
#   scripts/test.sh clang      built with clang instead, in build-clang/
# Installs Debian's check and pkg-config first when they are missing.
set -eu
cd "$(dirname "$0")/.."
mode=${1:-}
case $mode in
"" | address | thread) sanitize=$mode ;;
clang) sanitize="" CC=clang && export CC ;;
*) echo "usage: $0 [address|thread|clang]" >&2 && exit 2 ;;
esac

if ! pkg-config --exists check 2>/dev/null; then
    echo "Check is missing: installing check and pkg-config" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq check pkg-config
fi

dir=build-${mode:-test}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUT_WERROR=ON \
      -DFUT_CHECKED=ON -DFUT_BUILD_TESTS=ON -DFUT_SANITIZE="$sanitize"
cmake --build "$dir" -j "$(nproc)"
# Make any sanitizer report fail the test that caused it.
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$(nproc)"
