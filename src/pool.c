/*
 * The pool: worker threads, their queues, parking, and shutdown.
 *
 * Each worker has a deque of its own (a mutex each): it pushes the units
 * it makes and pops them back newest first, so a waiting parent runs its
 * own child inline (and fut_await takes a still-queued own child straight
 * back); an idle worker takes from the injection queue (units from
 * outside threads) oldest first, then steals the oldest unit of another
 * worker. A continuation readied by the unit a worker just finished goes
 * to that worker's private next slot. The pool lock guards only parking,
 * the idle list, the pending continuations and shutdown.
 *
 * Two seq_cst store-then-load handshakes keep it correct without a lock
 * around the queues: a spawner raises `ready` then reads `idle_count`,
 * a parking worker raises `idle_count` then reads `ready`, so no wakeup is
 * lost (see enqueue and park); a submitter raises `active` then reads
 * `closing`, destroy sets `closing` then reads `active`, so work is either
 * refused or waited for (see admit). A spawn wakes at most one worker, and
 * none while a worker it woke earlier has not resumed yet.
 *
 * Shutdown: destroy sets closing (outside threads are refused), waits on
 * quiet_cv until no unit is admitted and unfinished and no timer is
 * pending (timer.c), sets closed, cancels the continuations still waiting
 * on inputs that may never complete, then stops and joins the workers.
 * The pool's memory is reference counted: each future made on it holds a
 * reference, so a future that outlives the pool can still ask whether the
 * pool is closed.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 4096

_Thread_local fut_worker *fut__tl_worker;

/* ---- Intrusive lists (pool->lock) -------------------------------------- */

static void list_push_front(fut_list *l, fut_future *f)
{
    f->qprev = NULL;
    f->qnext = l->head;
    if (l->head)
        l->head->qprev = f;
    else
        l->tail = f;
    l->head = f;
}

static void list_push_back(fut_list *l, fut_future *f)
{
    f->qnext = NULL;
    f->qprev = l->tail;
    if (l->tail)
        l->tail->qnext = f;
    else
        l->head = f;
    l->tail = f;
}

static void list_unlink(fut_list *l, fut_future *f)
{
    if (f->qprev)
        f->qprev->qnext = f->qnext;
    else
        l->head = f->qnext;
    if (f->qnext)
        f->qnext->qprev = f->qprev;
    else
        l->tail = f->qprev;
    f->qnext = f->qprev = NULL;
}

static fut_future *list_pop_front(fut_list *l)
{
    fut_future *f = l->head;
    if (f)
        list_unlink(l, f);
    return f;
}

static fut_future *list_pop_back(fut_list *l)
{
    fut_future *f = l->tail;
    if (f)
        list_unlink(l, f);
    return f;
}

static void run_unit(fut_pool *pool, fut_future *f);

/* ---- Counters ------------------------------------------------------------ */

static void stat_add(fut_pool *pool, enum fut_stat k, long long delta)
{
    fut_worker *w = fut__tl_worker;
    if (w && w->pool == pool) { /* only this thread writes these */
        atomic_llong *c = &w->stats.n[k];
        atomic_store_explicit(
            c, atomic_load_explicit(c, memory_order_relaxed) + delta,
            memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&pool->outside_stats.n[k], delta,
                                  memory_order_relaxed);
    }
}

/* ---- Parking (pool->lock) ---------------------------------------------- */

static void idle_remove(fut_pool *pool, fut_worker *w)
{
    if (w->idle_prev)
        w->idle_prev->idle_next = w->idle_next;
    else
        pool->idle = w->idle_next;
    if (w->idle_next)
        w->idle_next->idle_prev = w->idle_prev;
    else
        pool->idle_tail = w->idle_prev;
    w->parked = false;
    atomic_fetch_sub(&pool->idle_count, 1);
}

/* A worker with nothing to do goes first in line for the next unit; one
 * that waits inside a task goes last, because whatever it runs sits on
 * top of the waiting task's stack frame and delays (or, if the unit
 * needs that task to go on, blocks) its return. */
static void idle_add(fut_pool *pool, fut_worker *w, bool waiting)
{
    w->parked = true;
    if (waiting) {
        w->idle_next = NULL;
        w->idle_prev = pool->idle_tail;
        if (pool->idle_tail)
            pool->idle_tail->idle_next = w;
        else
            pool->idle = w;
        pool->idle_tail = w;
    } else {
        w->idle_prev = NULL;
        w->idle_next = pool->idle;
        if (pool->idle)
            pool->idle->idle_prev = w;
        else
            pool->idle_tail = w;
        pool->idle = w;
    }
    atomic_fetch_add(&pool->idle_count, 1); /* seq_cst: see enqueue */
}

static void wake_one(fut_pool *pool)
{
    fut_worker *w = pool->idle;
    if (w) {
        idle_remove(pool, w);
        w->woken = true;
        atomic_fetch_add(&pool->waking, 1);
        pthread_cond_signal(&w->cv);
    }
}

/* Wakes a worker for queued work, unless one woken before has not resumed
 * yet: that one will pass the wakeup on (see dequeue). No lock held. */
static void wake_for_work(fut_pool *pool)
{
    if (atomic_load(&pool->idle_count) > 0 && atomic_load(&pool->waking) == 0) {
        pthread_mutex_lock(&pool->lock);
        wake_one(pool);
        pthread_mutex_unlock(&pool->lock);
    }
}

static bool satisfied(const fut_waiter *w)
{
    return atomic_load(&w->fired) >= atomic_load(&w->want);
}

/* Parks self until a spawn picks it, the pool stops, the waiter (if any)
 * has what it wants, or the deadline passes (ETIMEDOUT). Returns at once
 * when work is queued: the check follows the idle_count increment, so a
 * unit queued concurrently is either seen here or its spawner sees this
 * worker idle and wakes it. */
static int park(fut_pool *pool, fut_worker *self, const fut_waiter *wt,
                const struct timespec *deadline)
{
    int rc = 0;
    idle_add(pool, self, wt != NULL);
    while (self->parked && !pool->stop && atomic_load(&pool->ready) <= 0 &&
           !(wt && satisfied(wt))) {
        if (!deadline)
            pthread_cond_wait(&self->cv, &pool->lock);
        else if (pthread_cond_timedwait(&self->cv, &pool->lock, deadline) ==
                 ETIMEDOUT) {
            rc = ETIMEDOUT;
            break;
        }
    }
    if (self->parked)
        idle_remove(pool, self);
    if (self->woken) { /* resumed: before this worker looks for work */
        self->woken = false;
        atomic_fetch_sub(&pool->waking, 1);
    }
    return rc;
}

/* ---- Queues ------------------------------------------------------------- */

/* Queues an admitted unit f (counted in the queued stat by the caller,
 * before f became cancellable, so that a cancel never counts it out first)
 * and wakes an idle worker if there is one. No lock held.
 *
 * The handshake with park(): this side stores to ready, then loads
 * idle_count; park() stores to idle_count, then loads ready; all seq_cst.
 * In any interleaving one side sees the other's store. */
static void enqueue(fut_pool *pool, fut_future *f)
{
    fut_worker *w = fut__tl_worker;
    if (w && w->pool == pool && !w->next && !fut__in_unit()) {
        /* A continuation of what this worker just finished: run it next,
         * here, without waking anyone (a chain stays on one worker). It
         * is counted active, so destroy waits for it; outside a unit's
         * code, nothing delays the worker's return to its loop. */
        w->next = f;
        return;
    }
    if (w && w->pool == pool) {
        pthread_mutex_lock(&w->qlock);
        list_push_front(&w->deque, f);
        atomic_store_explicit(&f->deque_owner, w, memory_order_relaxed);
        pthread_mutex_unlock(&w->qlock);
    } else {
        pthread_mutex_lock(&pool->inject_lock);
        list_push_back(&pool->inject, f);
        pthread_mutex_unlock(&pool->inject_lock);
    }
    atomic_fetch_add(&pool->ready, 1);
    wake_for_work(pool);
}

static fut_future *pop_locked(pthread_mutex_t *lock, fut_list *l, bool back)
{
    pthread_mutex_lock(lock);
    fut_future *f = back ? list_pop_back(l) : list_pop_front(l);
    if (f)
        atomic_store_explicit(&f->deque_owner, NULL, memory_order_relaxed);
    pthread_mutex_unlock(lock);
    return f;
}

/* Reserves one unit of ready, if any is free. */
static bool reserve(fut_pool *pool)
{
    long r = atomic_load(&pool->ready);
    do {
        if (r <= 0)
            return false;
    } while (!atomic_compare_exchange_weak(&pool->ready, &r, r - 1));
    return true;
}

/* A worker about to wait for f, which it queued itself and nobody has
 * taken yet: take it back and run it here, with no listener and no
 * wakeup. Returns whether f ran (or was dropped, cancelled) here. */
bool fut__run_own_child(fut_future *f)
{
    fut_worker *self = fut__tl_worker;
    if (!self || f->pool != self->pool ||
        atomic_load_explicit(&f->phase, memory_order_relaxed) != PHASE_QUEUED)
        return false;
    fut_pool *pool = self->pool;
    if (!reserve(pool)) /* every queued unit is promised to a searcher */
        return false;
    pthread_mutex_lock(&self->qlock);
    bool mine =
        atomic_load_explicit(&f->deque_owner, memory_order_relaxed) == self;
    if (mine) {
        list_unlink(&self->deque, f);
        atomic_store_explicit(&f->deque_owner, NULL, memory_order_relaxed);
    }
    pthread_mutex_unlock(&self->qlock);
    if (!mine) { /* stolen meanwhile: give the reservation back */
        atomic_fetch_add(&pool->ready, 1);
        wake_for_work(pool);
        return false;
    }
    run_unit(pool, f);
    return true;
}

/* Takes a unit: own deque newest first, then the injection queue, then
 * the oldest unit of another worker. A worker first reserves one unit of
 * `ready` (never below 0); as ready is raised only after a push, a
 * reservation means a unit sits in some queue for it, and only reserved
 * workers pop, so the search ends. No lock held. */
static fut_future *dequeue(fut_pool *pool, fut_worker *self)
{
    fut_future *next = self->next;
    if (next) {
        self->next = NULL;
        return next;
    }
    if (!reserve(pool))
        return NULL;
    for (;;) {
        fut_future *f = pop_locked(&self->qlock, &self->deque, false);
        if (!f)
            f = pop_locked(&pool->inject_lock, &pool->inject, false);
        for (size_t i = 1; !f && i < pool->threads; i++) {
            fut_worker *v = &pool->workers[(self->index + i) % pool->threads];
            f = pop_locked(&v->qlock, &v->deque, true);
            if (f)
                stat_add(pool, STAT_STOLEN, 1);
        }
        if (f) {
            /* More queued and nobody on the way: bring a worker in. A
             * spawner that skipped its wake because one was on the way
             * stored to ready before that worker resumed, so this load,
             * after the resume, sees it. */
            if (atomic_load(&pool->ready) > 0)
                wake_for_work(pool);
            return f;
        }
    }
}

/* ---- Admission and shutdown ---------------------------------------------
 *
 * The handshake with destroy: a unit is admitted by storing to active and
 * then loading closing; destroy stores closing and then loads active (under
 * the lock, waiting on quiet_cv while it is not 0). So either the unit is
 * refused, or destroy waits for it. */

static bool own_worker(const fut_pool *pool)
{
    return fut__tl_worker && fut__tl_worker->pool == pool;
}

bool fut__pool_refuses(const fut_pool *pool)
{
    return atomic_load(&pool->closed) ||
           (atomic_load(&pool->closing) && !own_worker(pool));
}

bool fut__pool_accepts(fut_pool *pool)
{
    return !fut__pool_refuses(pool);
}

/* pool->lock held. */
void fut__pool_check_quiet(fut_pool *pool)
{
    if (atomic_load(&pool->closing) && atomic_load(&pool->active) == 0 &&
        pool->timers == 0)
        pthread_cond_broadcast(&pool->quiet_cv);
}

/* One admitted unit is finished (run, dropped or refused after all). */
static void unit_done(fut_pool *pool)
{
    if (atomic_fetch_sub(&pool->active, 1) == 1 &&
        atomic_load(&pool->closing)) {
        pthread_mutex_lock(&pool->lock);
        fut__pool_check_quiet(pool);
        pthread_mutex_unlock(&pool->lock);
    }
}

static bool admit(fut_pool *pool)
{
    atomic_fetch_add(&pool->active, 1);
    if (fut__pool_refuses(pool)) {
        unit_done(pool);
        return false;
    }
    return true;
}

/* Runs a dequeued unit. No lock held. */
static void run_unit(fut_pool *pool, fut_future *f)
{
    fut__run(f);
    unit_done(pool);
}

/* ---- Entry points for futures ------------------------------------------ */

int fut__pool_submit(fut_pool *pool, fut_future *f)
{
    if (!admit(pool))
        return ESHUTDOWN;
    if (!f->quiet) {
        stat_add(pool, STAT_SPAWNED, 1);
        stat_add(pool, STAT_QUEUED, 1);
    }
    enqueue(pool, f);
    return 0;
}

/* Admits a continuation and keeps it counted active until
 * fut__pool_attached: destroy must not close the pool while c is between
 * admission and its listener (its input may complete in that window, and
 * c must run). A listed continuation goes on the pending list, for
 * destroy to cancel if its input never completes. */
int fut__pool_admit_then(fut_pool *pool, fut_future *c)
{
    if (!admit(pool))
        return ESHUTDOWN;
    stat_add(pool, STAT_SPAWNED, 1);
    if (c->listed) {
        pthread_mutex_lock(&pool->lock);
        list_push_back(&pool->pending, c);
        c->on_pending = true;
        pthread_mutex_unlock(&pool->lock);
    }
    return 0;
}

void fut__pool_attached(fut_pool *pool)
{
    unit_done(pool);
}

/* c's input has completed: queue c if it can still run. An unlisted c's
 * input was a task, a continuation or a sleep of this pool, which
 * completes either by failing (nothing to queue) or while its runner or
 * timer keeps the pool from closing (active or timers above 0), so no
 * lock is needed to count c in; a listed one's input may complete at any
 * time, so it is counted in under the lock destroy takes to close. */
bool fut__pool_then_ready(fut_pool *pool, fut_future *c, bool input_failed)
{
    bool open;
    if (c->listed) {
        pthread_mutex_lock(&pool->lock);
        if (c->on_pending) {
            list_unlink(&pool->pending, c);
            c->on_pending = false;
        }
        open = !atomic_load(&pool->closed);
        if (open && !input_failed)
            atomic_fetch_add(&pool->active, 1);
        pthread_mutex_unlock(&pool->lock);
    } else {
        open = !atomic_load(&pool->closed);
        if (open && !input_failed)
            atomic_fetch_add(&pool->active, 1);
    }
    if (!open || input_failed)
        return false;
    stat_add(pool, STAT_QUEUED, 1);
    int waiting = PHASE_WAITING;
    if (atomic_compare_exchange_strong(&c->phase, &waiting, PHASE_QUEUED)) {
        enqueue(pool, c);
        return true;
    }
    /* cancelled meanwhile: it never was queued */
    stat_add(pool, STAT_QUEUED, -1);
    unit_done(pool);
    return false;
}

void fut__stat_cancelled(fut_pool *pool)
{
    if (pool)
        stat_add(pool, STAT_CANCELLED, 1);
}

void fut__stat_ran(fut_pool *pool, int error)
{
    if (!pool)
        return;
    stat_add(pool, STAT_COMPLETED, 1);
    if (error)
        stat_add(pool, STAT_FAILED, 1);
}

void fut__stat_spawned(fut_pool *pool, uint64_t n)
{
    stat_add(pool, STAT_SPAWNED, (long long)n);
}

void fut__stat_dequeued(fut_pool *pool)
{
    stat_add(pool, STAT_QUEUED, -1);
}

/* ---- Waiters ----------------------------------------------------------- */

fut_worker *fut__current_worker(void)
{
    return fut__tl_worker;
}

void fut__waiter_init_worker(fut_waiter *w, fut_worker *worker)
{
    w->lock = &worker->pool->lock;
    w->cv = &worker->cv;
    w->worker = worker;
    atomic_init(&w->fired, 0);
    atomic_init(&w->want, 1);
}

void fut__waiter_notify(fut_waiter *w)
{
    /* A waiting worker checks fired without the lock and may return (its
     * stack frame, and w, gone) the moment fired is raised: so the raise
     * is the last touch of *w. lock and cv outlive it: the pool lock and
     * the worker's cv, or an outside waiter's own pair, which it only
     * leaves after taking that lock. */
    pthread_mutex_t *lock = w->lock;
    pthread_cond_t *cv = w->cv;
    pthread_mutex_lock(lock);
    size_t want = atomic_load(&w->want);
    /* Wake the waiter only when it has what it wants: joining n futures
     * costs one wakeup, not n. */
    if (atomic_fetch_add(&w->fired, 1) + 1 >= want)
        pthread_cond_signal(cv);
    pthread_mutex_unlock(lock);
}

static bool past(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* A worker waits: it runs its pool's units while the waiter lacks what it
 * wants, and parks when there are none (help == false: it only parks,
 * for fires that are on their way). No lock held. */
static int worker_wait(fut_waiter *w, const struct timespec *deadline,
                       bool help)
{
    fut_worker *self = w->worker;
    fut_pool *pool = self->pool;
    int rc = 0;
    while (!satisfied(w) && rc == 0) {
        if (deadline && past(deadline)) {
            rc = ETIMEDOUT; /* stop helping once the time is up */
            break;
        }
        fut_future *f = help ? dequeue(pool, self) : NULL;
        if (f) {
            run_unit(pool, f);
            continue;
        }
        pthread_mutex_lock(&pool->lock);
        if (help)
            rc = park(pool, self, w, deadline);
        else
            while (!satisfied(w))
                pthread_cond_wait(&self->cv, &pool->lock);
        pthread_mutex_unlock(&pool->lock);
    }
    /* A spawn may have picked this worker just as it stopped waiting:
     * hand that wakeup on rather than let the unit sit. */
    if (atomic_load(&pool->ready) > 0)
        wake_for_work(pool);
    return satisfied(w) ? 0 : rc;
}

int fut__waiter_block(fut_waiter *w, const struct timespec *deadline, bool help)
{
    if (w->worker)
        return worker_wait(w, deadline, help);
    int rc = 0;
    pthread_mutex_lock(w->lock);
    while (!satisfied(w) && rc == 0) {
        if (deadline)
            rc = pthread_cond_clockwait(w->cv, w->lock, CLOCK_MONOTONIC,
                                        deadline);
        else
            pthread_cond_wait(w->cv, w->lock);
    }
    pthread_mutex_unlock(w->lock);
    return satisfied(w) ? 0 : rc;
}

/* ---- Workers ----------------------------------------------------------- */

static void *worker_main(void *arg)
{
    fut_worker *self = arg;
    fut_pool *pool = self->pool;
    /* "<name>-<index>", the name cut so the index fits in 15 chars. */
    char name[16], index[8];
    int len = snprintf(index, sizeof(index), "-%zu", self->index);
    size_t keep = strnlen(pool->name, sizeof(name) - 1 - (size_t)len);
    memcpy(name, pool->name, keep);
    memcpy(name + keep, index, (size_t)len + 1);
    pthread_setname_np(pthread_self(), name);
    fut__tl_worker = self;

    for (;;) {
        fut_future *f = dequeue(pool, self);
        if (f) {
            run_unit(pool, f);
            continue;
        }
        pthread_mutex_lock(&pool->lock);
        bool stop = pool->stop && atomic_load(&pool->ready) <= 0;
        if (!stop)
            park(pool, self, NULL, NULL);
        pthread_mutex_unlock(&pool->lock);
        if (stop)
            break;
    }
    fut__tl_worker = NULL;
    return NULL;
}

/* ---- Pool lifetime ----------------------------------------------------- */

void fut__pool_retain(fut_pool *pool)
{
    atomic_fetch_add_explicit(&pool->refs, 1, memory_order_relaxed);
}

/* Frees a pool whose first `workers` workers were initialised. */
static void pool_free(fut_pool *pool, size_t workers)
{
    FUT_FORGET(&pool->refs);
    FUT_UNRACY(&pool->outside_stats, sizeof(pool->outside_stats));
    for (size_t i = 0; i < workers; i++) {
        FUT_UNRACY(&pool->workers[i].stats, sizeof(pool->workers[i].stats));
        pthread_cond_destroy(&pool->workers[i].cv);
        pthread_mutex_destroy(&pool->workers[i].qlock);
    }
    pthread_cond_destroy(&pool->quiet_cv);
    pthread_mutex_destroy(&pool->inject_lock);
    pthread_mutex_destroy(&pool->lock);
    free(pool->trace_path);
    free(pool->workers);
    free(pool);
}

static int worker_init(fut_pool *pool, size_t index)
{
    fut_worker *w = &pool->workers[index];
    int rc = fut__cond_init_monotonic(&w->cv);
    if (rc)
        return rc;
    rc = pthread_mutex_init(&w->qlock, NULL);
    if (rc)
        pthread_cond_destroy(&w->cv);
    w->pool = pool;
    w->index = index;
    FUT_RACY(&w->stats, sizeof(w->stats)); /* relaxed by design */
    return rc;
}

void fut__pool_release(fut_pool *pool)
{
    FUT_HAPPENS_BEFORE(&pool->refs);
    if (atomic_fetch_sub_explicit(&pool->refs, 1, memory_order_acq_rel) == 1) {
        FUT_HAPPENS_AFTER(&pool->refs);
        pool_free(pool, pool->threads);
    }
}

static size_t cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (size_t)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

static void stop_and_join(fut_pool *pool, size_t started)
{
    pthread_mutex_lock(&pool->lock);
    pool->stop = true;
    for (size_t i = 0; i < started; i++)
        pthread_cond_signal(&pool->workers[i].cv);
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < started; i++)
        pthread_join(pool->workers[i].thread, NULL);
}

static int start_workers(fut_pool *pool)
{
    for (size_t i = 0; i < pool->threads; i++) {
        fut_worker *w = &pool->workers[i];
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc) {
            stop_and_join(pool, i);
            return rc;
        }
    }
    return 0;
}

int fut_pool_create(fut_pool **out, const fut_pool_config *config)
{
    if (!out)
        return EINVAL;
    size_t threads = config && config->threads ? config->threads : cpu_count();
    if (threads > MAX_THREADS)
        return EINVAL;
    const char *name = config && config->name ? config->name : "fut";
    const char *trace =
        config && config->trace_path ? config->trace_path : getenv("FUT_TRACE");

    int rc = ENOMEM;
    size_t inited = 0;
    fut_pool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return ENOMEM;
    pool->workers = calloc(threads, sizeof(*pool->workers));
    if (!pool->workers)
        goto free_pool;
    if (trace && *trace && !(pool->trace_path = strdup(trace)))
        goto free_workers;
    rc = pthread_mutex_init(&pool->lock, NULL);
    if (rc)
        goto free_workers;
    rc = pthread_mutex_init(&pool->inject_lock, NULL);
    if (rc)
        goto destroy_lock;
    rc = pthread_cond_init(&pool->quiet_cv, NULL);
    if (rc)
        goto destroy_inject_lock;
    for (; inited < threads; inited++) {
        rc = worker_init(pool, inited);
        if (rc)
            goto free_all;
    }
    atomic_init(&pool->refs, 1);
    FUT_RACY(&pool->outside_stats, sizeof(pool->outside_stats));
    atomic_init(&pool->ready, 0);
    atomic_init(&pool->idle_count, 0);
    atomic_init(&pool->waking, 0);
    atomic_init(&pool->active, 0);
    atomic_init(&pool->closing, false);
    atomic_init(&pool->closed, false);
    pool->threads = threads;
    snprintf(pool->name, sizeof(pool->name), "%s", name);
    rc = fut__timer_start(pool);
    if (rc)
        goto free_all;
    rc = start_workers(pool);
    if (rc)
        goto stop_timer;
    *out = pool;
    return 0;

stop_timer:
    fut__timer_stop(pool);
free_all:
    pool_free(pool, inited); /* also the pool's own mutexes and quiet_cv */
    return rc;
destroy_inject_lock:
    pthread_mutex_destroy(&pool->inject_lock);
destroy_lock:
    pthread_mutex_destroy(&pool->lock);
free_workers:
    free(pool->trace_path);
    free(pool->workers);
free_pool:
    free(pool);
    return rc;
}

int fut_pool_destroy(fut_pool *pool)
{
    if (!pool)
        return EINVAL;
    if (own_worker(pool))
        return EDEADLK;

    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->closing, true); /* then load active: see admit() */
    while (atomic_load(&pool->active) > 0 || pool->timers > 0)
        pthread_cond_wait(&pool->quiet_cv, &pool->lock);
    atomic_store(&pool->closed, true);
    /* Nothing can run any more: whatever still waits on an input is a
     * continuation of a promise nobody kept (yet). */
    fut_future *c;
    while ((c = list_pop_front(&pool->pending))) {
        c->on_pending = false;
        fut_retain(c);
        pthread_mutex_unlock(&pool->lock);
        fut__then_cancel_pending(c);
        fut_release(c);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);

    stop_and_join(pool, pool->threads);
    fut__timer_stop(pool);
    if (pool->trace_path)
        fut__trace_write(pool);
    fut__pool_release(pool);
    return 0;
}

size_t fut_pool_threads(const fut_pool *pool)
{
    return pool ? pool->threads : 0;
}

int fut_pool_stats_get(fut_pool *pool, fut_pool_stats *stats)
{
    if (!pool || !stats)
        return EINVAL;
    memset(stats, 0, sizeof(*stats));
    stats->threads = pool->threads;
    long long sum[STAT_COUNT] = {0};
    for (size_t w = 0; w <= pool->threads; w++) {
        fut_counters *c =
            w < pool->threads ? &pool->workers[w].stats : &pool->outside_stats;
        for (int k = 0; k < STAT_COUNT; k++)
            sum[k] += atomic_load_explicit(&c->n[k], memory_order_relaxed);
    }
    stats->spawned = (uint64_t)sum[STAT_SPAWNED];
    stats->completed = (uint64_t)sum[STAT_COMPLETED];
    stats->failed = (uint64_t)sum[STAT_FAILED];
    stats->cancelled = (uint64_t)sum[STAT_CANCELLED];
    stats->stolen = (uint64_t)sum[STAT_STOLEN];
    stats->queued = sum[STAT_QUEUED] > 0 ? (uint64_t)sum[STAT_QUEUED] : 0;
    pthread_mutex_lock(&pool->lock);
    stats->timers_pending = pool->heap_len; /* firing ones are not */
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

int fut_worker_index(void)
{
    return fut__tl_worker ? (int)fut__tl_worker->index : -1;
}
