/*
 * Pools: the public fut_pool on top of a scheduler (sched.c), with what
 * the future layer keeps per pool: counters, trace lanes, the list of
 * continuations waiting on inputs that may never complete, and the
 * pool's reference count.
 *
 * References. A future keeps its pool's memory alive (it may ask, after
 * destroy, whether the pool still accepts work). So that a worker making
 * and freeing futures does no read-modify-write on the pool-wide count,
 * each worker holds a budget of references, taken from the count FUT_REF_BATCH
 * at a time: a future made on a worker takes one from the budget, a
 * future freed on a worker of its pool gives one back to it (plain
 * stores: only that worker touches its budget). Other threads use the
 * count directly. destroy, after joining the workers, returns their
 * budgets to the count, so it never drops below the references really
 * held.
 *
 * Shutdown: destroy drains the scheduler (outside threads are refused,
 * and it waits until every accepted unit has run and every timer has
 * fired), cancels the continuations still waiting on inputs that nothing
 * in the pool will complete (promises nobody kept), stops the threads,
 * writes the trace, and drops the handle's reference.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 4096

/* ---- Pool lifetime ----------------------------------------------------- */

/* A 64-byte aligned, zeroed block of n * size bytes. */
static void *zalloc_aligned(size_t n, size_t size)
{
    size_t bytes = (n * size + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

/* The pool size when the config leaves it 0: $FUT_THREADS when set (a
 * decimal 1..MAX_THREADS, else EINVAL), else the CPUs. 0 or EINVAL. */
static int default_threads(size_t *threads)
{
    const char *env = secure_getenv("FUT_THREADS");
    if (!env || !*env) {
        *threads = fut__cpu_count();
        return 0;
    }
    size_t n = 0;
    for (const char *c = env; *c; c++) {
        if (*c < '0' || *c > '9' || n > MAX_THREADS)
            return EINVAL;
        n = n * 10 + (size_t)(*c - '0');
    }
    if (n == 0 || n > MAX_THREADS)
        return EINVAL;
    *threads = n;
    return 0;
}

/* $FUT_TRACE: the first pool of the process to take its path from there
 * writes PATH, the next ones PATH.1, PATH.2, ... in the order they were
 * made, so that no pool's trace replaces another's. */
static char *env_trace_path(const char *env)
{
    static atomic_uint pools;
    unsigned n = atomic_fetch_add(&pools, 1);
    size_t size = strlen(env) + 12;
    char *path = malloc(size);
    if (path && n == 0)
        snprintf(path, size, "%s", env);
    else if (path)
        snprintf(path, size, "%s.%u", env, n);
    return path;
}

/* ---- fork ---------------------------------------------------------------
 * A child of fork has one thread: the pools its parent made have none
 * of theirs, so every call on them fails with EOWNERDEAD instead of
 * waiting for workers that do not exist (fut__inherited). The library's
 * global locks (the allocator's, the monitor's, the checked build's
 * quarantine) are taken around fork by the forking thread, and the
 * futures' stripes made new in the child, so the child finds them all
 * free, and a pool it makes works. */
static void fork_prepare(void)
{
    fut__monitor_fork(false);
    fut__futures_fork(false, false);
    fut__alloc_fork(false);
}

static void fork_parent(void)
{
    fut__alloc_fork(true);
    fut__futures_fork(true, false);
    fut__monitor_fork(true);
}

static void fork_child(void)
{
    fut__alloc_fork(true);
    fut__futures_fork(true, true);
    fut__monitor_fork(true);
    fut__sched_forked();
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void fork_handlers(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* The auto clock found the pool settled with no timer to move to while
 * units wait: nothing inside can go on; say so, with a dump. */
static void clock_stuck(fut_sched *s)
{
    fut_pool *pool = (fut_pool *)(void *)s; /* sched is its first member */
    fprintf(stderr,
            "fut: pool %s: virtual time cannot move on: every unit waits "
            "and no timer is pending; only a thread outside the pool can "
            "go on (keep a promise)\n",
            pool->name);
    fut_pool_dump(pool, stderr, FUT_DUMP_TEXT);
}

int fut_pool_create(fut_pool **out, const fut_pool_config *config)
{
    if (!out)
        return EINVAL;
    size_t threads = config ? config->threads : 0;
    if (threads == 0 && default_threads(&threads))
        return EINVAL;
    if (threads > MAX_THREADS)
        return EINVAL;
    int sig = config ? config->dump_signal : 0;
    if (sig < 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP)
        return EINVAL;
    const char *name = config && config->name ? config->name : "fut";
    const char *trace = config ? config->trace_path : NULL;
    const char *env = trace ? NULL : secure_getenv("FUT_TRACE");

    int rc = ENOMEM;
    fut_pool *pool = zalloc_aligned(1, sizeof(*pool));
    if (!pool)
        return ENOMEM;
    pool->local = zalloc_aligned(threads, sizeof(*pool->local));
    if (!pool->local)
        goto free_pool;
    if (trace && *trace && !(pool->trace_path = strdup(trace)))
        goto free_pool;
    if (env && *env && !(pool->trace_path = env_trace_path(env)))
        goto free_pool;
    if ((rc = pthread_mutex_init(&pool->pending_lock, NULL)))
        goto free_pool;
    size_t keep = config ? config->trace_events : 0;
    for (size_t i = 0; i < threads; i++)
        fut__trace_lane_init(&pool->local[i].trace, keep);
    fut__trace_lane_init(&pool->timer_trace, keep);
    fut__trace_lane_init(&pool->outside_trace, keep);
    fut__io_init(&pool->io, name, fut__io_fired);
    atomic_init(&pool->refs, 1);
    pthread_once(&fork_once, fork_handlers);
    pool->sched.virt = config && config->virtual_time;
    fut__thread_name(pool->name, name, "");
    rc = fut__sched_start(&pool->sched, threads, name, fut__timer_fired,
                          (char *)pool->local, sizeof(*pool->local));
    if (rc)
        goto destroy_pending;
    if (config && config->virtual_time && config->auto_advance &&
        (rc = fut__sched_clock_start(&pool->sched, clock_stuck))) {
        fut_pool_destroy(pool);
        return rc;
    }
    uint64_t stall = config ? config->stall_ms : 0;
    if ((stall || sig) && (rc = fut__monitor_start(pool, stall, sig))) {
        fut_pool_destroy(pool); /* nothing was accepted yet */
        return rc;
    }
    *out = pool;
    return 0;

destroy_pending:
    pthread_mutex_destroy(&pool->pending_lock);
free_pool:
    free(pool->trace_path);
    free(pool->local);
    free(pool);
    return rc;
}

/* What destroy and shutdown check first: EINVAL, EOWNERDEAD, EDEADLK. */
static int refuse_to_end(fut_pool *pool)
{
    if (!pool)
        return EINVAL;
    if (fut__inherited(pool))
        return EOWNERDEAD; /* nothing to join here; its memory stays */
    if (fut__sched_self(&pool->sched))
        return EDEADLK;
    return 0;
}

static void end(fut_pool *pool);

int fut_pool_destroy(fut_pool *pool)
{
    int rc = refuse_to_end(pool);
    if (rc)
        return rc;
    if (pool->sched.virt) /* its sleeps fire: the clock runs to each */
        fut__sched_advance(&pool->sched, UINT64_MAX);
    fut__sched_drain(&pool->sched);
    end(pool);
    return 0;
}

int fut_clock_advance(fut_pool *pool, uint64_t ms)
{
    if (!pool || !pool->sched.virt)
        return EINVAL;
    if (fut__inherited(pool))
        return EOWNERDEAD;
    if (fut__sched_self(&pool->sched))
        return EDEADLK; /* it would wait for its own worker to settle */
    uint64_t ns = ms < UINT64_MAX / 1000000u ? ms * 1000000u : UINT64_MAX;
    fut__sched_advance(&pool->sched, ns);
    return 0;
}

uint64_t fut_clock_now(const fut_pool *pool)
{
    return pool ? fut__sched_now(&pool->sched) / 1000000u : 0;
}

static unsigned busy_workers(fut_pool *pool)
{
    unsigned n = 0;
    for (size_t i = 0; i < pool->sched.threads; i++)
        n += atomic_load_explicit(&pool->local[i].running,
                                  memory_order_relaxed) != NULL;
    return n;
}

int fut_pool_shutdown(fut_pool *pool, uint64_t deadline_ms,
                      fut_shutdown_report *report)
{
    int rc = refuse_to_end(pool);
    if (rc)
        return rc;
    fut_shutdown_report r;
    memset(&r, 0, sizeof(r));
    fut_pool_stats before, after;
    fut_pool_stats_get(pool, &before);
    uint64_t start = fut__now_ns();
    uint64_t limit = deadline_ms < UINT64_MAX / 1000000u - start / 1000000u
                         ? start + deadline_ms * 1000000u
                         : UINT64_MAX / 2;
    struct timespec at = {.tv_sec = (time_t)(limit / 1000000000u),
                          .tv_nsec = (long)(limit % 1000000000u)};
    r.in_time = fut__sched_close_until(&pool->sched, &at);
    if (!r.in_time) { /* past the deadline: cancel what has not started */
        r.overran = busy_workers(pool);
        atomic_store(&pool->cancel_all, true);
        fut__timer_expire_all(&pool->sched);
        r.cancelled_continuations = fut__cancel_pending(pool);
    }
    fut__sched_drain(&pool->sched); /* the running units return */
    r.cancelled_fd_waits = fut__cancel_fd_waits(pool); /* in time or not */
    if (!r.in_time) {
        uint64_t now = fut__now_ns();
        r.overrun_ms = now > limit ? (now - limit) / 1000000u : 0;
    }
    fut_pool_stats_get(pool, &after);
    r.ran = after.completed - before.completed;
    r.cancelled_units =
        after.cancelled - before.cancelled - r.cancelled_continuations;
    r.cancelled_timers = atomic_load(&pool->timers_cancelled);
    end(pool);
    if (report)
        *report = r;
    return 0;
}

/* Both ways to end a pool, once it is drained: cancels the continuations
 * left waiting, joins the threads, writes the trace, frees the pool. */
static void end(fut_pool *pool)
{
    fut__sched_clock_stop(&pool->sched);
    FUT_HOOK(FUT_HOOK_POOL_CLOSED, pool);
    fut__cancel_fd_waits(pool); /* nothing else would end them */
    fut__cancel_pending(pool);
    fut__monitor_stop(pool); /* it watched the drain too */
    fut__sched_stop(&pool->sched);
    fut__io_fini(&pool->io);
    if (pool->trace_path)
        fut__trace_write(pool);
    unsigned long long budgets = 0; /* the workers are joined */
    for (size_t i = 0; i < pool->sched.threads; i++)
        budgets += pool->local[i].ref_budget;
    atomic_fetch_sub_explicit(&pool->refs, budgets, memory_order_relaxed);
    fut__pool_ref_flush_outside(pool); /* the caller's own budget */
    fut__pool_release(pool);
}

size_t fut_pool_threads(const fut_pool *pool)
{
    return pool ? pool->sched.threads : 0;
}


int fut_worker_index(void)
{
    fut_sched_worker *w = fut__sched_any_self();
    return w ? (int)w->index : -1;
}
