#!/bin/sh
# One side-by-side run of every workload: fut-bench (fut, OpenMP, oneTBB,
# GLib) and, when built, fut-bench-rust (tokio, rayon), back to back, with
# each peer's ratio to fut, then the ratios of the pairs below (the first
# runtime's time over the second's, same workload, same run). Each workload
# runs in a process of its own, so that the threads a peer leaves spinning
# (OpenMP's, oneTBB's) do not slow the next workload. The output is the
# table in BENCHMARKS.md.
#   bench/run-all.sh BUILD_DIR [--threads N] [--runs R]
set -eu
pairs="fut-join/rayon-join fut-group/openmp"
build=$1
shift
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for w in "spawn 200000" "fib 25" "map 20000 20000" "for 50000000" \
         "chain 1000000" "sleep 10000 50" "rss 1000000" "idle 1000"; do
    # shellcheck disable=SC2086 # the workload's words are its arguments
    "$build/bench/fut-bench" "$@" $w | tee /dev/stderr |
        grep '^| [a-z]' | grep -v '^| workload' >>"$rows"
done
if [ -x "$build/bench/fut-bench-rust" ]; then
    for w in "spawn 200000" "fib 25" "map 20000 20000" "for 50000000" \
             "sleep 10000 50"; do
        # shellcheck disable=SC2086
        "$build/bench/fut-bench-rust" "$@" $w | tee /dev/stderr >>"$rows"
    done
else
    echo "(fut-bench-rust not built: no tokio/rayon rows)" >&2
fi
echo
echo "| workload | runtime | median ms | per task / result | fut / peer |"
echo "| --- | --- | --- | --- | --- |"
awk -F' [|] ' -v pairs="$pairs" '
    { title = substr($1, 3); rt = $2; ms[NR] = $3; t[NR] = title; r[NR] = rt; x[NR] = $4
      if (rt == "fut") fut[title] = $3
      msof[title, rt] = $3; if (!(title in seen)) { seen[title]; order[++nt] = title } }
    END {
        for (i = 1; i <= NR; i++) {
            ratio = (r[i] != "fut" && (t[i] in fut) && ms[i] > 0) ? sprintf("%.2f", fut[t[i]] / ms[i]) : ""
            printf "| %s | %s | %s | %s | %s |\n", t[i], r[i], ms[i], x[i], ratio
        }
        print ""
        np = split(pairs, p, " ")
        for (k = 1; k <= np; k++) {
            split(p[k], ab, "/")
            for (j = 1; j <= nt; j++) {
                w = order[j]
                if (((w, ab[1]) in msof) && ((w, ab[2]) in msof) && msof[w, ab[2]] > 0)
                    printf "%s: %s / %s = %.2f\n", w, ab[1], ab[2],
                        msof[w, ab[1]] / msof[w, ab[2]]
            }
        }
    }' "$rows"
