/* OpenMP tasks as a peer (gcc's libgomp). */
#include "bench.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>

static int omp_setup(size_t threads)
{
    omp_set_dynamic(0);
    omp_set_num_threads((int)threads);
#pragma omp parallel
    {
    } /* start the team before anything is timed */
    return 0;
}

static void omp_teardown(void)
{
}

static double omp_spawn(long n, uint64_t *sum)
{
    atomic_uint_fast64_t count = 0;
    double t0 = bench_now();
#pragma omp parallel
#pragma omp single
    for (long i = 0; i < n; i++) {
#pragma omp task shared(count)
        atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    }
    double t = bench_now() - t0;
    *sum = atomic_load(&count);
    return t;
}

static uint64_t fib(long n)
{
    if (n < 2)
        return (uint64_t)n;
    uint64_t a, b;
#pragma omp task shared(a)
    a = fib(n - 1);
#pragma omp task shared(b)
    b = fib(n - 2);
#pragma omp taskwait
    return a + b;
}

static double omp_fib(long n, uint64_t *sum)
{
    uint64_t r = 0;
    double t0 = bench_now();
#pragma omp parallel
#pragma omp single
    r = fib(n);
    double t = bench_now() - t0;
    *sum = r;
    return t;
}

static double omp_map(long n, long w, uint64_t *sum)
{
    uint64_t *out = malloc((size_t)n * sizeof(*out));
    double t0 = bench_now();
#pragma omp parallel
#pragma omp single
    for (long i = 0; i < n; i++) {
#pragma omp task
        out[i] = bench_work((uint64_t)i, w);
    }
    uint64_t s = 0;
    for (long i = 0; i < n; i++)
        s += out[i];
    double t = bench_now() - t0;
    free(out);
    *sum = s;
    return t;
}

static double omp_pfor(long n, uint64_t *sum)
{
    uint64_t s = 0;
    double t0 = bench_now();
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (long i = 0; i < n; i++)
        s += bench_term((uint64_t)i);
    double t = bench_now() - t0;
    *sum = s;
    return t;
}

const bench_peer bench_omp = {
    .name = "openmp",
    .setup = omp_setup,
    .teardown = omp_teardown,
    .spawn = omp_spawn,
    .fib = omp_fib,
    .map = omp_map,
    .pfor = omp_pfor,
};
