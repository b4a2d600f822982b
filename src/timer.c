/*
 * Timers: each scheduler has one timer thread and a binary min-heap of
 * timer items ordered by deadline (CLOCK_MONOTONIC nanoseconds), both
 * under timer_lock. Sleeping never holds a worker: a pending timer is a
 * heap entry. The timer thread sleeps on timer_cv until the earliest
 * deadline (or until an earlier one is added), then pops each due item
 * and fires it with the lock dropped.
 *
 * Whoever takes an item out of the heap owns its firing: the timer thread
 * when it pops a due item, or fut__timer_remove (which then returns true,
 * and the item never fires). `timers` counts items in the heap plus those
 * being fired, so drain, which waits for it to reach 0, never stops the
 * thread while a fire may still queue work; when it drops to 0, the
 * timers_done hook tells the scheduler. This module calls nothing of
 * sched.c: refusing outside timers is fut__sched_timer_add's job.
 */
#define _GNU_SOURCE
#include "sched.h"

#include <errno.h>
#include <stdlib.h>

/* ---- The heap (timer_lock) ---------------------------------------------- */

static void heap_set(fut_sched *s, size_t i, fut_timer *t)
{
    s->heap[i] = t;
    t->index = (uint32_t)(i + 1);
}

static void sift_up(fut_sched *s, size_t i)
{
    fut_timer *t = s->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent]->deadline <= t->deadline)
            break;
        heap_set(s, i, s->heap[parent]);
        i = parent;
    }
    heap_set(s, i, t);
}

static void sift_down(fut_sched *s, size_t i)
{
    fut_timer *t = s->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= s->heap_len)
            break;
        if (child + 1 < s->heap_len &&
            s->heap[child + 1]->deadline < s->heap[child]->deadline)
            child++;
        if (t->deadline <= s->heap[child]->deadline)
            break;
        heap_set(s, i, s->heap[child]);
        i = child;
    }
    heap_set(s, i, t);
}

static void heap_remove(fut_sched *s, fut_timer *t)
{
    size_t i = t->index - 1;
    fut_timer *last = s->heap[--s->heap_len];
    t->index = 0;
    if (last != t) {
        heap_set(s, i, last);
        sift_up(s, i);
        sift_down(s, last->index - 1);
    }
}

/* ---- Adding and removing ------------------------------------------------ */

#define HEAP_MAX ((size_t)UINT32_MAX - 1) /* index is 1 + position */

int fut__timer_add(fut_sched *s, fut_timer *t)
{
    int rc = 0;
    pthread_mutex_lock(&s->timer_lock);
    if (s->heap_len == s->heap_cap) {
        size_t cap = s->heap_cap ? 2 * s->heap_cap : 64;
        fut_timer **heap =
            cap <= HEAP_MAX ? realloc(s->heap, cap * sizeof(*heap)) : NULL;
        if (heap) {
            s->heap = heap;
            s->heap_cap = cap;
        } else {
            rc = ENOMEM;
        }
    }
    if (!rc) {
        s->heap[s->heap_len++] = t;
        sift_up(s, s->heap_len - 1);
        atomic_fetch_add(&s->timers, 1);
        if (t->index == 1) /* a new earliest deadline */
            pthread_cond_signal(&s->timer_cv);
    }
    pthread_mutex_unlock(&s->timer_lock);
    if (!rc && atomic_load(&s->watchers))
        s->timers_done(s); /* a virtual clock may move to it */
    return rc;
}

bool fut__timer_remove(fut_sched *s, fut_timer *t)
{
    pthread_mutex_lock(&s->timer_lock);
    bool found = t->index != 0;
    if (found)
        heap_remove(s, t);
    bool last = found && atomic_fetch_sub(&s->timers, 1) == 1;
    pthread_mutex_unlock(&s->timer_lock);
    if (last)
        s->timers_done(s);
    return found;
}

size_t fut__timer_pending(fut_sched *s)
{
    pthread_mutex_lock(&s->timer_lock);
    size_t n = s->heap_len; /* firing ones are not pending */
    pthread_mutex_unlock(&s->timer_lock);
    return n;
}

void fut__timer_expire_all(fut_sched *s)
{
    pthread_mutex_lock(&s->timer_lock);
    s->expire_all = true;
    pthread_cond_signal(&s->timer_cv);
    pthread_mutex_unlock(&s->timer_lock);
}

int fut__timer_visit(fut_sched *s, void (*visit)(void *ctx, fut_timer *t),
                    void *ctx)
{
    if (pthread_mutex_trylock(&s->timer_lock) != 0)
        return EBUSY; /* held: perhaps by a thread a debugger stopped */
    for (size_t i = 0; i < s->heap_len; i++)
        visit(ctx, s->heap[i]);
    pthread_mutex_unlock(&s->timer_lock);
    return 0;
}

/* ---- The timer thread ---------------------------------------------------- */

static void *timer_main(void *arg)
{
    fut_sched *s = arg;
    fut__tl_timer_sched = s;
    pthread_mutex_lock(&s->timer_lock);
    while (!s->timer_stop) {
        if (s->heap_len == 0) {
            pthread_cond_wait(&s->timer_cv, &s->timer_lock);
            continue;
        }
        uint64_t d = s->heap[0]->deadline;
        if (s->virt && d > atomic_load(&s->vnow) && !s->expire_all) {
            pthread_cond_wait(&s->timer_cv, &s->timer_lock); /* advance */
            continue;
        }
        if (d > fut__now_ns() && !s->expire_all && !s->virt) {
            struct timespec ts = {.tv_sec = (time_t)(d / 1000000000u),
                                  .tv_nsec = (long)(d % 1000000000u)};
            pthread_cond_timedwait(&s->timer_cv, &s->timer_lock, &ts);
            continue;
        }
        fut_timer *t = s->heap[0];
        heap_remove(s, t); /* still counted in timers while it fires */
        pthread_mutex_unlock(&s->timer_lock);
        s->timer_fire(t);
        pthread_mutex_lock(&s->timer_lock);
        if (atomic_fetch_sub(&s->timers, 1) == 1 ||
            atomic_load(&s->watchers)) {
            pthread_mutex_unlock(&s->timer_lock);
            s->timers_done(s);
            pthread_mutex_lock(&s->timer_lock);
        }
    }
    pthread_mutex_unlock(&s->timer_lock);
    return NULL;
}

int fut__timer_start(fut_sched *s, const char *name)
{
    int rc = pthread_mutex_init(&s->timer_lock, NULL);
    if (rc)
        return rc;
    rc = fut__cond_init_monotonic(&s->timer_cv);
    if (rc)
        goto destroy_lock;
    s->heap = NULL;
    s->heap_len = s->heap_cap = 0;
    atomic_init(&s->timers, 0);
    s->timer_stop = false;
    s->expire_all = false;
    rc = pthread_create(&s->timer_thread, NULL, timer_main, s);
    if (rc)
        goto destroy_cv;
    char tname[16];
    fut__thread_name(tname, name, "-timer");
    pthread_setname_np(s->timer_thread, tname);
    return 0;

destroy_cv:
    pthread_cond_destroy(&s->timer_cv);
destroy_lock:
    pthread_mutex_destroy(&s->timer_lock);
    return rc;
}

/* Stops the timer thread; the heap is empty by then (drain waited). */
void fut__timer_stop(fut_sched *s)
{
    pthread_mutex_lock(&s->timer_lock);
    s->timer_stop = true;
    pthread_cond_signal(&s->timer_cv);
    pthread_mutex_unlock(&s->timer_lock);
    pthread_join(s->timer_thread, NULL);
    free(s->heap);
    s->heap = NULL;
}

void fut__timer_fini(fut_sched *s)
{
    pthread_cond_destroy(&s->timer_cv);
    pthread_mutex_destroy(&s->timer_lock);
}
