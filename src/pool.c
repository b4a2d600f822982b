/*
 * The pool: worker threads, their queues, parking, and shutdown.
 *
 * One mutex (pool->lock) guards every queue and every scheduling field.
 * Each worker has a deque of its own: it pushes the units it makes and
 * pops them back newest first, so a waiting parent runs its own child
 * inline; an idle worker takes from the injection queue (units from
 * outside threads) oldest first, then steals the oldest unit of another
 * worker. A worker with nothing to do parks on its own condition
 * variable and sits on the idle list; whoever queues a unit takes one
 * parked worker off that list and signals it, under the same lock, so no
 * wakeup is lost and a spawn wakes at most one thread. A worker that
 * waits for a future parks the same way, so it wakes for either.
 *
 * Shutdown: destroy sets closing (outside threads are refused), waits on
 * quiet_cv until no unit is queued or running and no timer is pending
 * (timer.c), sets closed, cancels the
 * continuations still waiting on their inputs, then stops and joins the
 * workers. The pool's memory is reference counted: each future made on
 * it holds a reference, so a future that outlives the pool can still ask
 * whether the pool is closed.
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
}

static void wake_one(fut_pool *pool)
{
    fut_worker *w = pool->idle;
    if (w) {
        idle_remove(pool, w);
        pthread_cond_signal(&w->cv);
    }
}

/* Parks self until a spawn picks it, the pool stops, the waiter (if any)
 * has what it wants, or the deadline passes (ETIMEDOUT). */
static int park(fut_pool *pool, fut_worker *self, const fut_waiter *wt,
                const struct timespec *deadline)
{
    int rc = 0;
    idle_add(pool, self, wt != NULL);
    while (self->parked && !pool->stop && !(wt && wt->fired >= wt->want)) {
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
    return rc;
}

/* ---- Queues (pool->lock) ----------------------------------------------- */

/* Queues f, already counted in the queued stat by the caller: before f
 * became cancellable, so that a cancel never counts it out first. */
static void enqueue(fut_pool *pool, fut_future *f)
{
    fut_worker *w = fut__tl_worker;
    pool->active++;
    if (w && w->pool == pool)
        list_push_front(&w->deque, f);
    else
        list_push_back(&pool->inject, f);
    wake_one(pool);
}

static fut_future *dequeue(fut_pool *pool, fut_worker *self)
{
    fut_future *f = list_pop_front(&self->deque);
    if (!f)
        f = list_pop_front(&pool->inject);
    for (size_t i = 1; !f && i < pool->threads; i++) {
        fut_worker *victim = &pool->workers[(self->index + i) % pool->threads];
        f = list_pop_back(&victim->deque);
        if (f)
            atomic_fetch_add_explicit(&pool->stolen, 1, memory_order_relaxed);
    }
    return f;
}

static bool has_work(const fut_pool *pool)
{
    if (pool->inject.head)
        return true;
    for (size_t i = 0; i < pool->threads; i++)
        if (pool->workers[i].deque.head)
            return true;
    return false;
}

/* Runs a dequeued unit with the lock dropped. */
static void run_unit(fut_pool *pool, fut_future *f)
{
    pthread_mutex_unlock(&pool->lock);
    fut__run(f);
    pthread_mutex_lock(&pool->lock);
    pool->active--;
    fut__pool_check_quiet(pool);
}

/* ---- Entry points for futures ------------------------------------------ */

static bool own_worker(const fut_pool *pool)
{
    return fut__tl_worker && fut__tl_worker->pool == pool;
}

bool fut__pool_refuses(const fut_pool *pool)
{
    return pool->closed || (pool->closing && !own_worker(pool));
}

bool fut__pool_accepts(fut_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    bool accepts = !fut__pool_refuses(pool);
    pthread_mutex_unlock(&pool->lock);
    return accepts;
}

void fut__pool_check_quiet(fut_pool *pool)
{
    if (pool->closing && pool->active == 0 && pool->timers == 0)
        pthread_cond_broadcast(&pool->quiet_cv);
}

int fut__pool_submit(fut_pool *pool, fut_future *f)
{
    pthread_mutex_lock(&pool->lock);
    bool refused = fut__pool_refuses(pool);
    if (!refused) {
        if (!f->quiet) {
            atomic_fetch_add_explicit(&pool->spawned, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&pool->queued, 1, memory_order_relaxed);
        }
        enqueue(pool, f);
    }
    pthread_mutex_unlock(&pool->lock);
    return refused ? ESHUTDOWN : 0;
}

/* Admits a continuation and counts it active until fut__pool_attached:
 * destroy must not close the pool while c is between admission and its
 * listener (its input may complete in that window, and c must run). */
int fut__pool_admit_then(fut_pool *pool, fut_future *c)
{
    pthread_mutex_lock(&pool->lock);
    bool refused = fut__pool_refuses(pool);
    if (!refused) {
        atomic_fetch_add_explicit(&pool->spawned, 1, memory_order_relaxed);
        list_push_back(&pool->pending, c);
        c->on_pending = true;
        pool->active++;
    }
    pthread_mutex_unlock(&pool->lock);
    return refused ? ESHUTDOWN : 0;
}

void fut__pool_attached(fut_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->active--;
    fut__pool_check_quiet(pool);
    pthread_mutex_unlock(&pool->lock);
}

bool fut__pool_then_ready(fut_pool *pool, fut_future *c, bool input_failed)
{
    bool queued = false;
    pthread_mutex_lock(&pool->lock);
    if (c->on_pending) {
        list_unlink(&pool->pending, c);
        c->on_pending = false;
    }
    if (!input_failed && !pool->closed) {
        int waiting = PHASE_WAITING;
        atomic_fetch_add_explicit(&pool->queued, 1, memory_order_relaxed);
        queued =
            atomic_compare_exchange_strong(&c->phase, &waiting, PHASE_QUEUED);
        if (queued)
            enqueue(pool, c);
        else /* cancelled: it never was queued */
            atomic_fetch_sub_explicit(&pool->queued, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&pool->lock);
    return queued;
}

void fut__stat_cancelled(fut_pool *pool)
{
    if (pool)
        atomic_fetch_add_explicit(&pool->cancelled, 1, memory_order_relaxed);
}

void fut__stat_ran(fut_pool *pool, int error)
{
    if (!pool)
        return;
    atomic_fetch_add_explicit(&pool->completed, 1, memory_order_relaxed);
    if (error)
        atomic_fetch_add_explicit(&pool->failed, 1, memory_order_relaxed);
}

void fut__stat_spawned(fut_pool *pool, uint64_t n)
{
    atomic_fetch_add_explicit(&pool->spawned, n, memory_order_relaxed);
}

void fut__stat_dequeued(fut_pool *pool)
{
    atomic_fetch_sub_explicit(&pool->queued, 1, memory_order_relaxed);
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
    w->fired = 0;
    w->want = 1;
}

void fut__waiter_notify(fut_waiter *w)
{
    pthread_mutex_lock(w->lock);
    w->fired++;
    pthread_cond_signal(w->cv);
    pthread_mutex_unlock(w->lock); /* w may be gone from here on */
}

/* A worker waits: it runs its pool's units while the waiter lacks what it
 * wants, and parks when there are none. */
static bool past(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

static int worker_wait(fut_waiter *w, const struct timespec *deadline,
                       bool help)
{
    fut_worker *self = w->worker;
    fut_pool *pool = self->pool;
    int rc = 0;
    while (w->fired < w->want && rc == 0) {
        if (deadline && past(deadline)) {
            rc = ETIMEDOUT; /* stop helping once the time is up */
            break;
        }
        fut_future *f = help ? dequeue(pool, self) : NULL;
        if (f)
            run_unit(pool, f);
        else if (help)
            rc = park(pool, self, w, deadline);
        else
            pthread_cond_wait(&self->cv, &pool->lock);
    }
    /* A spawn may have picked this worker just as it stopped waiting:
     * hand that wakeup on rather than let the unit sit. */
    if (has_work(pool))
        wake_one(pool);
    return w->fired >= w->want ? 0 : rc;
}

int fut__waiter_block(fut_waiter *w, const struct timespec *deadline, bool help)
{
    int rc = 0;
    pthread_mutex_lock(w->lock);
    if (w->worker) {
        rc = worker_wait(w, deadline, help);
    } else {
        while (w->fired < w->want && rc == 0) {
            if (deadline)
                rc = pthread_cond_timedwait(w->cv, w->lock, deadline);
            else
                pthread_cond_wait(w->cv, w->lock);
        }
        if (w->fired >= w->want)
            rc = 0;
    }
    pthread_mutex_unlock(w->lock);
    return rc;
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

    pthread_mutex_lock(&pool->lock);
    for (;;) {
        fut_future *f = dequeue(pool, self);
        if (f)
            run_unit(pool, f);
        else if (pool->stop)
            break;
        else
            park(pool, self, NULL, NULL);
    }
    pthread_mutex_unlock(&pool->lock);
    fut__tl_worker = NULL;
    return NULL;
}

/* ---- Pool lifetime ----------------------------------------------------- */

void fut__pool_retain(fut_pool *pool)
{
    atomic_fetch_add_explicit(&pool->refs, 1, memory_order_relaxed);
}

static void pool_free(fut_pool *pool, size_t cvs)
{
    for (size_t i = 0; i < cvs; i++)
        pthread_cond_destroy(&pool->workers[i].cv);
    pthread_cond_destroy(&pool->quiet_cv);
    pthread_mutex_destroy(&pool->lock);
    free(pool->trace_path);
    free(pool->workers);
    free(pool);
}

void fut__pool_release(fut_pool *pool)
{
    if (atomic_fetch_sub_explicit(&pool->refs, 1, memory_order_acq_rel) == 1)
        pool_free(pool, pool->threads);
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
    size_t cvs = 0;
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
    rc = pthread_cond_init(&pool->quiet_cv, NULL);
    if (rc)
        goto destroy_lock;
    for (; cvs < threads; cvs++) {
        rc = fut__cond_init_monotonic(&pool->workers[cvs].cv);
        if (rc)
            goto destroy_cvs;
        pool->workers[cvs].pool = pool;
        pool->workers[cvs].index = cvs;
    }
    atomic_init(&pool->refs, 1);
    pool->threads = threads;
    snprintf(pool->name, sizeof(pool->name), "%s", name);
    rc = fut__timer_start(pool);
    if (rc)
        goto destroy_cvs;
    rc = start_workers(pool);
    if (rc)
        goto stop_timer;
    *out = pool;
    return 0;

stop_timer:
    fut__timer_stop(pool);

destroy_cvs:
    pool_free(pool, cvs); /* also destroys the mutex and quiet_cv */
    return rc;
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
    pool->closing = true;
    while (pool->active > 0 || pool->timers > 0)
        pthread_cond_wait(&pool->quiet_cv, &pool->lock);
    pool->closed = true;
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
    stats->spawned = atomic_load_explicit(&pool->spawned, memory_order_relaxed);
    stats->completed =
        atomic_load_explicit(&pool->completed, memory_order_relaxed);
    stats->failed = atomic_load_explicit(&pool->failed, memory_order_relaxed);
    stats->cancelled =
        atomic_load_explicit(&pool->cancelled, memory_order_relaxed);
    stats->stolen = atomic_load_explicit(&pool->stolen, memory_order_relaxed);
    stats->queued = atomic_load_explicit(&pool->queued, memory_order_relaxed);
    pthread_mutex_lock(&pool->lock);
    stats->timers_pending = pool->heap_len; /* firing ones are not */
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

int fut_worker_index(void)
{
    return fut__tl_worker ? (int)fut__tl_worker->index : -1;
}
