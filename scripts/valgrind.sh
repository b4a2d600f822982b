#!/bin/sh
# Runs every Check suite and the soak under valgrind, each test in-process
# (CK_FORK=no), in a plain debug build (build-valgrind/).
#   scripts/valgrind.sh            memcheck: errors and definite leaks fail
#   scripts/valgrind.sh helgrind   helgrind: prints what it reports
# helgrind does not model C11 atomics: the build (FUT_VALGRIND) annotates
# the release/acquire pairs the library relies on, so that it can see them;
# scripts/helgrind.supp silences one report made inside glibc itself.
# ThreadSanitizer, which models atomics, is the race check CI runs
# (scripts/test.sh thread).
set -eu
cd "$(dirname "$0")/.."
tool=${1:-memcheck}
dir=build-valgrind
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DFUT_BUILD_TESTS=ON \
      -DFUT_BUILD_BENCH=OFF -DFUT_BUILD_EXAMPLES=OFF -DFUT_VALGRIND=ON >/dev/null
cmake --build "$dir" -j "$(nproc)" >/dev/null
export CK_FORK=no
status=0
for t in "$dir"/tests/test_*; do
    case $t in *test_faults) continue ;; esac # its own allocator hooks
    log="$dir/$(basename "$t").$tool.log"
    if [ "$tool" = memcheck ]; then
        valgrind --tool=memcheck --error-exitcode=9 --leak-check=full \
            --errors-for-leak-kinds=definite "$t" >"$log" 2>&1 || status=1
    else
        valgrind --tool="$tool" --error-exitcode=9 \
            --suppressions=scripts/helgrind.supp "$t" >"$log" 2>&1 || status=1
    fi
    printf '%-28s %s\n' "$(basename "$t")" \
        "$(grep -E 'ERROR SUMMARY' "$log" | tail -1 | sed 's/==[0-9]*== //')"
done
log="$dir/fut-soak.$tool.log"
supp=""
[ "$tool" = memcheck ] || supp=--suppressions=scripts/helgrind.supp
valgrind --tool="$tool" --error-exitcode=9 $supp "$dir/tests/fut-soak" 3000 5 2 \
    >"$log" 2>&1 || status=1
printf '%-28s %s\n' fut-soak "$(grep -E 'ERROR SUMMARY' "$log" | tail -1 | sed 's/==[0-9]*== //')"
exit $status
