/*
 * The pool's memory: reference counted, because a future keeps its pool
 * alive (it may still ask, after destroy, whether the pool accepts work).
 * The count is the handle, one per future made outside the pool's
 * workers, and the budgets of references that threads hold (see pool.c
 * and fut__pool_ref_take). The last reference frees what create made and
 * the scheduler's locks.
 *
 * A thread that is not one of the pool's workers keeps a budget too, for
 * one pool at a time: OUT_BATCH references taken at once, handed to the
 * futures it makes and taken back from those it frees, so that making
 * and freeing a future costs it no locked instruction on the pool's count.
 * The budget goes back when the thread turns to another pool, when it
 * destroys that pool, and when it exits (a key destructor); until then, a
 * pool that another thread destroyed keeps its memory (not its threads).
 * Builds that cache no memory (ASan, fault injection) keep no budget.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OUT_BATCH 256

void fut__pool_retain(fut_pool *pool)
{
    atomic_fetch_add_explicit(&pool->refs, 1, memory_order_relaxed);
}

static void pool_free(fut_pool *pool)
{
    if (fut__inherited(pool))
        return; /* the parent's: its locks may be held by threads that do
                   not exist here; its memory stays */
    FUT_FORGET(&pool->refs);
    fut__sched_fini(&pool->sched);
    pthread_mutex_destroy(&pool->pending_lock);
    for (size_t i = 0; i < pool->sched.threads; i++)
        fut__trace_lane_fini(&pool->local[i].trace);
    fut__trace_lane_fini(&pool->timer_trace);
    fut__trace_lane_fini(&pool->outside_trace);
    free(pool->trace_path);
    free(pool->local);
    free(pool);
}

void fut__pool_release(fut_pool *pool)
{
    FUT_HAPPENS_BEFORE(&pool->refs);
    if (atomic_fetch_sub_explicit(&pool->refs, 1, memory_order_acq_rel) == 1) {
        FUT_HAPPENS_AFTER(&pool->refs);
        pool_free(pool);
    }
}

#if FUT_CACHE_MAX
static void release_n(fut_pool *pool, size_t n)
{
    FUT_HAPPENS_BEFORE(&pool->refs);
    if (atomic_fetch_sub_explicit(&pool->refs, n, memory_order_acq_rel) == n) {
        FUT_HAPPENS_AFTER(&pool->refs);
        pool_free(pool);
    }
}

typedef struct outside_refs {
    fut_pool *pool; /* whose references; stale (never used) when n == 0 */
    size_t n;
    bool registered, exited; /* with the key; its destructor ran */
} outside_refs;

static FUT_TLS outside_refs tl_refs;
static void give_back(outside_refs *t)
{
    size_t n = t->n;
    t->n = 0;
    if (n)
        release_n(t->pool, n);
}

static void on_thread_exit(void *arg)
{
    outside_refs *t = arg;
    give_back(t);
    t->registered = false;
    t->exited = true;
}

static bool usable(outside_refs *t)
{
    if (!t->registered && !t->exited)
        t->registered = fut__at_thread_exit(on_thread_exit, t);
    return t->registered;
}

void fut__pool_ref_take_outside(fut_pool *pool)
{
    outside_refs *t = &tl_refs;
    if (t->n && t->pool == pool) {
        t->n--;
        return;
    }
    if (!usable(t)) {
        fut__pool_retain(pool);
        return;
    }
    give_back(t); /* another pool's (or none) */
    atomic_fetch_add_explicit(&pool->refs, OUT_BATCH, memory_order_relaxed);
    t->pool = pool;
    t->n = OUT_BATCH - 1;
}

void fut__pool_ref_drop_outside(fut_pool *pool)
{
    outside_refs *t = &tl_refs;
    if (t->n && t->pool == pool && t->n < 2 * OUT_BATCH) {
        t->n++;
        return;
    }
    fut__pool_release(pool);
}

void fut__pool_ref_flush_outside(fut_pool *pool)
{
    if (tl_refs.n && tl_refs.pool == pool)
        give_back(&tl_refs);
}
#else
void fut__pool_ref_flush_outside(fut_pool *pool)
{
    (void)pool;
}

void fut__pool_ref_take_outside(fut_pool *pool)
{
    fut__pool_retain(pool);
}

void fut__pool_ref_drop_outside(fut_pool *pool)
{
    fut__pool_release(pool);
}
#endif

/* The counters (below pool.c: the dump and the monitor read them). */
int fut_pool_stats_get(fut_pool *pool, fut_pool_stats *stats)
{
    if (!pool || !stats)
        return EINVAL;
    if (fut__inherited(pool))
        return EOWNERDEAD;
    memset(stats, 0, sizeof(*stats));
    size_t threads = pool->sched.threads;
    stats->threads = threads;
    long long sum[STAT_COUNT] = {0};
    uint64_t stolen = 0;
    for (int k = 0; k < STAT_COUNT; k++)
        sum[k] =
            atomic_load_explicit(&pool->outside_stat[k], memory_order_relaxed);
    for (size_t w = 0; w < threads; w++) {
        for (int k = 0; k < STAT_COUNT; k++)
            sum[k] += atomic_load_explicit(&pool->local[w].stat[k],
                                           memory_order_relaxed);
        stolen += atomic_load_explicit(&pool->sched.workers[w].stolen,
                                       memory_order_relaxed);
    }
    stats->spawned = (uint64_t)sum[STAT_SPAWNED];
    stats->completed = (uint64_t)sum[STAT_COMPLETED];
    stats->failed = (uint64_t)sum[STAT_FAILED];
    stats->cancelled = (uint64_t)sum[STAT_CANCELLED];
    stats->stolen = stolen;
    stats->queued = sum[STAT_QUEUED] > 0 ? (uint64_t)sum[STAT_QUEUED] : 0;
    stats->timers_pending = fut__timer_pending(&pool->sched);
    return 0;
}
