/*
 * fut-bench: what every runtime under test provides, and the kernels all
 * of them run, so that the same work gives the same checksum everywhere.
 */
#ifndef FUT_BENCH_H
#define FUT_BENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One runtime. Each workload function runs the whole workload once and
 * returns its time in seconds (setup excluded), storing a checksum; NULL
 * where the runtime has no such workload. */
typedef struct bench_peer {
    const char *name;
    int (*setup)(size_t threads); /* 0 on success */
    void (*teardown)(void);
    double (*spawn)(long n, uint64_t *sum);       /* n empty tasks, joined */
    double (*fib)(long n, uint64_t *sum);         /* a task per call      */
    double (*map)(long n, long w, uint64_t *sum); /* n tasks of work w */
    double (*pfor)(long n, uint64_t *sum);        /* parallel reduce      */
    double (*chain)(long n, uint64_t *sum);       /* n continuations      */
    double (*sleep)(long n, long ms, uint64_t *sum, double *p50,
                    double *p99); /* n timers of ms       */
    double (*rss)(long n, uint64_t *sum,
                  double *bytes); /* memory of n pending futures */
    double (*idle)(long ms, uint64_t *sum,
                   double *cpu); /* CPU seconds of ms idle */
} bench_peer;

double bench_now(void); /* seconds, CLOCK_MONOTONIC */

/* The CPU work of one map task: w rounds of xorshift from seed. */
static inline uint64_t bench_work(uint64_t seed, long w)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (long i = 0; i < w; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

/* The term of index i in the parallel reduce. */
static inline uint64_t bench_term(uint64_t i)
{
    return (i * 2654435761u) >> 7 & 0xffff;
}

static inline uint64_t bench_fib(long n)
{
    return n < 2 ? (uint64_t)n : bench_fib(n - 1) + bench_fib(n - 2);
}

extern const bench_peer bench_fut, bench_fut_named, bench_fut_group,
    bench_fut_join;
extern const bench_peer bench_omp, bench_tbb, bench_glib;

#ifdef __cplusplus
}
#endif

#endif
