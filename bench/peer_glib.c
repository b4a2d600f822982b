/* GLib's GThreadPool as a peer: a plain queue of jobs, no fork-join. */
#include "bench.h"

#include <glib.h>

static GThreadPool *pool;
static GMutex lock;
static GCond all_done;
static long remaining; /* lock */
static long map_w;
static uint64_t *map_out;

static void finish_one(void)
{
    g_mutex_lock(&lock);
    if (--remaining == 0)
        g_cond_signal(&all_done);
    g_mutex_unlock(&lock);
}

static void job(gpointer data, gpointer user)
{
    (void)user;
    long i = GPOINTER_TO_SIZE(data) - 1;
    if (map_out)
        map_out[i] = bench_work((uint64_t)i, map_w);
    finish_one();
}

static int glib_setup(size_t threads)
{
    pool = g_thread_pool_new(job, NULL, (gint)threads, TRUE, NULL);
    return pool ? 0 : -1;
}

static void glib_teardown(void)
{
    g_thread_pool_free(pool, FALSE, TRUE);
}

static void run_jobs(long n)
{
    remaining = n;
    for (long i = 0; i < n; i++)
        g_thread_pool_push(pool, GSIZE_TO_POINTER(i + 1), NULL);
    g_mutex_lock(&lock);
    while (remaining > 0)
        g_cond_wait(&all_done, &lock);
    g_mutex_unlock(&lock);
}

static double glib_spawn(long n, uint64_t *sum)
{
    map_out = NULL;
    double t0 = bench_now();
    run_jobs(n);
    double t = bench_now() - t0;
    *sum = (uint64_t)n; /* each job counted itself out of remaining */
    return t;
}

static double glib_map(long n, long w, uint64_t *sum)
{
    map_w = w;
    map_out = g_new(uint64_t, n);
    double t0 = bench_now();
    run_jobs(n);
    uint64_t s = 0;
    for (long i = 0; i < n; i++)
        s += map_out[i];
    double t = bench_now() - t0;
    g_free(map_out);
    map_out = NULL;
    *sum = s;
    return t;
}

const bench_peer bench_glib = {
    .name = "glib",
    .setup = glib_setup,
    .teardown = glib_teardown,
    .spawn = glib_spawn,
    .map = glib_map,
};
