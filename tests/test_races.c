/*
 * Races a review found in the scheduler and in groups, each forced by
 * holding a lock at the moment that matters (white-box, like test_sched.c).
 *
 * Lost wakeup in the scheduler (src/sched.c): a worker that leaves park()
 * because it saw work (not because it was woken) is not counted in
 * `searching`, so when it takes that work it never runs the pass-on rule
 * of stop_searching(). Outside pushes made while it still counted as
 * searching woke nobody, so the rest of the queue sits behind it with
 * every other worker parked. If the unit it took waits for that queued
 * work, the wait refuses foreign work ("idle first": a worker is idle)
 * and blocks, and nothing ever wakes the idle worker: a deadlock.
 *
 * The schedule is forced by holding sleep_lock from the test while one
 * worker is between its spin and park()'s lock: the same as that worker
 * being preempted there (or slow in fut__alloc_trim), a legal schedule.
 */
#include "../src/internal.h"
#include "helpers.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static int nop(void *arg, void **value)
{
    (void)arg;
    (void)value;
    return 0;
}

struct pair {
    fut_promise *p;
    fut_future *f;
};

/* A: waits for the promise that B keeps. */
static int await_promise_task(void *arg, void **value)
{
    return fut_await(((struct pair *)arg)->f, value);
}

/* B: keeps the promise. */
static int keep_promise_task(void *arg, void **value)
{
    (void)value;
    return fut_promise_resolve(((struct pair *)arg)->p, (void *)5);
}

struct spawner {
    fut_pool *pool;
    struct pair *pr;
    fut_future *a, *b;
    atomic_bool done;
};

/* Spawns A then B from an outside thread (a thread of its own, so that a
 * spawn that unexpectedly needs sleep_lock waits instead of deadlocking
 * the test thread, which holds it). */
static void *spawn_a_b(void *arg)
{
    struct spawner *sp = arg;
    sp->a = fut_spawn(sp->pool, await_promise_task, sp->pr);
    sp->b = fut_spawn(sp->pool, keep_promise_task, sp->pr);
    atomic_store(&sp->done, true);
    return NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ok = cond, polled for up to ms milliseconds. */
#define WAIT_FOR(ok, cond, ms)                                                 \
    do {                                                                       \
        (ok) = false;                                                          \
        for (long i_ = 0; i_ < (ms)*10 && !((ok) = (cond)); i_++) {            \
            struct timespec ts_ = {0, 100000L};                                \
            nanosleep(&ts_, NULL);                                             \
        }                                                                      \
    } while (0)

START_TEST(work_queued_behind_an_unwoken_parker_is_not_lost)
{
    fut_pool *pool = pool_new(2);
    fut_sched *s = &pool->sched;
    bool staged = false;
    int rc = 0;
    for (int attempt = 0; attempt < 20 && !staged; attempt++) {
        /* Both workers parked. */
        bool ok;
        WAIT_FOR(ok,
                 atomic_load(&s->idle_count) == 2 &&
                     atomic_load(&s->searching) == 0,
                 5000);
        ck_assert(ok);
        /* Wake one with a no-op; after it, that worker spins (searching)
         * for 0.2 ms and then parks; the other stays parked. */
        fut_future *n = fut_spawn(pool, nop, NULL);
        ck_assert_int_eq(fut_await(n, NULL), 0);
        fut_release(n);
        pthread_mutex_lock(&s->sleep_lock);
        /* It is searching (or about to be) and not on the idle list yet. */
        bool searching;
        WAIT_FOR(searching, atomic_load(&s->searching) == 1, 5);
        if (!searching || atomic_load(&s->idle_count) != 1) {
            pthread_mutex_unlock(&s->sleep_lock); /* it parked already */
            continue;
        }
        /* Its spin ends; it now blocks on sleep_lock in park(), still
         * counted as searching. */
        sleep_ms(20);
        if (atomic_load(&s->searching) != 1 ||
            atomic_load(&s->idle_count) != 1) {
            pthread_mutex_unlock(&s->sleep_lock);
            continue;
        }
        struct pair pr;
        ck_assert_int_eq(fut_promise_create(pool, &pr.p, &pr.f), 0);
        struct spawner sp = {.pool = pool, .pr = &pr, .done = false};
        pthread_t t;
        pthread_create(&t, NULL, spawn_a_b, &sp);
        /* searching == 1: neither spawn wakes anyone (nor takes the lock) */
        bool spawned;
        WAIT_FOR(spawned, atomic_load(&sp.done), 200);
        pthread_mutex_unlock(&s->sleep_lock);
        pthread_join(t, NULL);
        if (!spawned) { /* a spawn needed the lock: not the schedule */
            fut_await(sp.a, NULL);
            fut_await(sp.b, NULL);
            fut_release(sp.a);
            fut_release(sp.b);
            fut_release(pr.f);
            continue;
        }
        staged = true;
        /* The parker sees A and B, leaves park() uncounted, takes A; A
         * waits for the promise; B stays queued; the other worker stays
         * parked. A finishes in microseconds if B ever runs. */
        rc = fut_await_for(sp.a, 2000, NULL);
        if (rc == ETIMEDOUT) {
            fut_pool_stats st;
            fut_pool_stats_get(pool, &st);
            fprintf(stderr,
                    "deadlock: A waits 2 s for B; B still queued "
                    "(queued=%llu, promise kept=%d); idle=%d waiting=%d "
                    "searching=%d\n",
                    (unsigned long long)st.queued, fut_is_ready(pr.f),
                    atomic_load(&s->idle_count), atomic_load(&s->waiting_count),
                    atomic_load(&s->searching));
            /* Unstick it: any new outside spawn wakes the parked worker,
             * which then runs B, so destroy can finish. */
            fut_future *kick = fut_spawn(pool, nop, NULL);
            fut_await(kick, NULL);
            fut_release(kick);
            fut_await(sp.a, NULL);
        }
        fut_await(sp.b, NULL);
        fut_release(sp.a);
        fut_release(sp.b);
        fut_release(pr.f);
    }
    ck_assert_msg(staged, "could not stage the schedule");
    ck_assert_msg(rc == 0,
                  "lost wakeup: a queued unit was never run while a worker "
                  "stayed parked (rc %d)",
                  rc);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* ---- Groups: a waiter woken while a child is still pending -------------
 *
 * child_done (src/group.c): the last child moves pending 2 -> 1, then
 * takes the waiters under the lock and subtracts 1. A child spawned in
 * between (1 -> 3) leaves pending at 2, but the waiters taken are woken
 * anyway: fut_group_wait returns (and fut_group_destroy frees the group)
 * while that child is queued or running, which then writes to the freed
 * group. The schedule is forced by holding the group's lock (the layout
 * below is group.c's) while the last child is between its CAS and its
 * lock: as if it were preempted there. */
struct group_waiter;
struct fut_group { /* as in src/group.c */
    fut_pool *pool;
    atomic_size_t pending;
    atomic_int error;
    pthread_mutex_t lock;
    struct group_waiter *waiters;
};

struct late_child {
    gate g;
    atomic_bool finished;
};

static int late_child_task(void *arg, void **value)
{
    struct late_child *c = arg;
    task_gate(&c->g, value);
    atomic_store(&c->finished, true);
    return 0;
}

static void *open_later(void *arg)
{
    sleep_ms(300);
    gate_open(arg);
    return NULL;
}

START_TEST(group_wait_waits_for_a_child_spawned_before_it)
{
    fut_pool *pool = pool_new(2);
    bool early = false;
    for (int attempt = 0; attempt < 5 && !early; attempt++) {
        fut_group *g;
        ck_assert_int_eq(fut_group_create(pool, &g), 0);
        gate g1;
        gate_init(&g1);
        struct late_child c2 = {.finished = false};
        gate_init(&c2.g);
        ck_assert_int_eq(fut_group_spawn(g, task_gate, &g1), 0);
        gate_wait_arrived(&g1, 1);
        pthread_mutex_lock(&g->lock);
        gate_open(&g1); /* C1 returns: pending 2 -> 1, then it blocks */
        bool ok;
        WAIT_FOR(ok, atomic_load(&g->pending) == 1, 5000);
        ck_assert(ok);
        /* C2, spawned before the wait below begins: pending 1 -> 3 */
        ck_assert_int_eq(fut_group_spawn(g, late_child_task, &c2), 0);
        gate_wait_arrived(&c2.g, 1);
        sleep_ms(5); /* C1 sleeps on the lock */
        pthread_t opener;
        pthread_create(&opener, NULL, open_later, &c2.g);
        pthread_mutex_unlock(&g->lock);
        /* Must not return before C2 has finished (in 300 ms). */
        fut_group_wait(g);
        early = !atomic_load(&c2.finished);
        if (early)
            fprintf(stderr,
                    "fut_group_wait returned with a child spawned "
                    "before it still running (pending=%zu)\n",
                    atomic_load(&g->pending));
        pthread_join(opener, NULL);
        /* pending is consistent again once C2 ends: wait for it properly */
        WAIT_FOR(ok, atomic_load(&g->pending) == 0, 5000);
        ck_assert(ok);
        fut_group_destroy(g);
    }
    ck_assert_msg(!early, "fut_group_wait returned while a child spawned "
                          "before the call was still running");
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

static Suite *races_suite(void)
{
    Suite *s = suite_create("races");
    FUT_TCASE(s, "wakeups", work_queued_behind_an_unwoken_parker_is_not_lost);
    FUT_TCASE(s, "groups", group_wait_waits_for_a_child_spawned_before_it);
    return s;
}

FUT_TEST_MAIN(races_suite)
