/*
 * Timers: each pool has one timer thread and a binary min-heap of
 * deadlines (CLOCK_MONOTONIC nanoseconds), both under the pool lock.
 * Sleeping never holds a worker: a sleep is a heap entry, and ten thousand
 * of them cost ten thousand entries. The timer thread sleeps on timer_cv
 * until the earliest deadline (or until an earlier one is added), pops
 * everything due in one go and fires it with the lock dropped.
 *
 * A timer's entry holds a reference on its future. Whoever takes the
 * entry out of the heap owns that reference: the timer thread when it
 * pops a due entry, or fut__timer_remove when a sleep is cancelled or a
 * timeout's input completes first. pool->timers counts entries in the
 * heap plus those being fired, so destroy, which waits for it to reach 0,
 * never stops the thread while a fire may still queue work.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fut__cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!rc)
        rc = pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

uint64_t fut__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- The heap (pool->lock) --------------------------------------------- */

static void heap_set(fut_pool *pool, size_t i, fut_future *f)
{
    pool->heap[i] = f;
    f->heap_index = i + 1;
}

static void sift_up(fut_pool *pool, size_t i)
{
    fut_future *f = pool->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (pool->heap[parent]->deadline <= f->deadline)
            break;
        heap_set(pool, i, pool->heap[parent]);
        i = parent;
    }
    heap_set(pool, i, f);
}

static void sift_down(fut_pool *pool, size_t i)
{
    fut_future *f = pool->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= pool->heap_len)
            break;
        if (child + 1 < pool->heap_len &&
            pool->heap[child + 1]->deadline < pool->heap[child]->deadline)
            child++;
        if (f->deadline <= pool->heap[child]->deadline)
            break;
        heap_set(pool, i, pool->heap[child]);
        i = child;
    }
    heap_set(pool, i, f);
}

static void heap_remove(fut_pool *pool, fut_future *f)
{
    size_t i = f->heap_index - 1;
    fut_future *last = pool->heap[--pool->heap_len];
    f->heap_index = 0;
    if (last != f) {
        heap_set(pool, i, last);
        sift_up(pool, i);
        sift_down(pool, last->heap_index - 1);
    }
}

/* ---- Adding and removing ----------------------------------------------- */

int fut__timer_add(fut_pool *pool, fut_future *f, uint64_t ms)
{
    uint64_t now = fut__now_ns();
    uint64_t limit = (UINT64_MAX - now) / 1000000u;
    f->armed = now;
    f->deadline = ms < limit ? now + ms * 1000000u : UINT64_MAX;

    int rc = 0;
    pthread_mutex_lock(&pool->lock);
    if (fut__pool_refuses(pool)) {
        rc = ESHUTDOWN;
    } else if (pool->heap_len == pool->heap_cap) {
        size_t cap = pool->heap_cap ? 2 * pool->heap_cap : 64;
        fut_future **heap = realloc(pool->heap, cap * sizeof(*heap));
        if (heap) {
            pool->heap = heap;
            pool->heap_cap = cap;
        } else {
            rc = ENOMEM;
        }
    }
    if (!rc) {
        pool->heap[pool->heap_len++] = f;
        sift_up(pool, pool->heap_len - 1);
        pool->timers++;
        if (f->heap_index == 1) /* a new earliest deadline */
            pthread_cond_signal(&pool->timer_cv);
    }
    pthread_mutex_unlock(&pool->lock);
    return rc;
}

bool fut__timer_remove(fut_pool *pool, fut_future *f)
{
    pthread_mutex_lock(&pool->lock);
    bool found = f->heap_index != 0;
    if (found) {
        heap_remove(pool, f);
        pool->timers--;
        fut__pool_check_quiet(pool);
    }
    pthread_mutex_unlock(&pool->lock);
    return found;
}

/* ---- The timer thread -------------------------------------------------- */

static void wait_until(fut_pool *pool, uint64_t deadline)
{
    struct timespec ts = {
        .tv_sec = (time_t)(deadline / 1000000000u),
        .tv_nsec = (long)(deadline % 1000000000u),
    };
    pthread_cond_timedwait(&pool->timer_cv, &pool->lock, &ts);
}

/* Pops every entry due by now, linked through qnext (a timer's future is
 * never in a queue), and returns how many. */
static size_t pop_due(fut_pool *pool, fut_future **due)
{
    uint64_t now = fut__now_ns();
    size_t n = 0;
    fut_future **tail = due;
    while (pool->heap_len && pool->heap[0]->deadline <= now) {
        fut_future *f = pool->heap[0];
        heap_remove(pool, f);
        *tail = f;
        tail = &f->qnext;
        n++;
    }
    *tail = NULL;
    return n;
}

static void *timer_main(void *arg)
{
    fut_pool *pool = arg;
    char name[16];
    snprintf(name, sizeof(name), "%.9s-timer", pool->name);
    pthread_setname_np(pthread_self(), name);

    pthread_mutex_lock(&pool->lock);
    while (!pool->timer_stop) {
        fut_future *due;
        size_t n = pop_due(pool, &due); /* still counted in timers */
        if (n == 0) {
            if (pool->heap_len == 0)
                pthread_cond_wait(&pool->timer_cv, &pool->lock);
            else
                wait_until(pool, pool->heap[0]->deadline);
            continue;
        }
        pthread_mutex_unlock(&pool->lock);
        while (due) {
            fut_future *f = due;
            due = f->qnext; /* read first: the fire may free f */
            if (pool->trace_path)
                fut__trace_record(&pool->timer_trace, NULL, f->kind, f->armed,
                                  fut__now_ns());
            fut__timer_fire(f);
        }
        pthread_mutex_lock(&pool->lock);
        pool->timers -= n;
        fut__pool_check_quiet(pool);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

int fut__timer_start(fut_pool *pool)
{
    int rc = fut__cond_init_monotonic(&pool->timer_cv);
    if (rc)
        return rc;
    rc = pthread_create(&pool->timer_thread, NULL, timer_main, pool);
    if (rc)
        pthread_cond_destroy(&pool->timer_cv);
    return rc;
}

/* Stops the timer thread; the heap is empty by then (destroy waited). */
void fut__timer_stop(fut_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->timer_stop = true;
    pthread_cond_signal(&pool->timer_cv);
    pthread_mutex_unlock(&pool->lock);
    pthread_join(pool->timer_thread, NULL);
    pthread_cond_destroy(&pool->timer_cv);
    free(pool->heap);
}
