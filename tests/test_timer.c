/* Timers: fut_sleep and fut_timeout. */
#include "helpers.h"

#include <time.h>

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t timers_pending(fut_pool *pool)
{
    fut_pool_stats st;
    ck_assert_int_eq(fut_pool_stats_get(pool, &st), 0);
    return st.timers_pending;
}

/* The same on virtual time: exactly its time, not a millisecond less. */
START_TEST(virtual_sleep_completes_at_its_time)
{
    fut_pool *pool = NULL;
    fut_pool_config cfg = {.threads = 1, .virtual_time = true};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    fut_future *f = fut_sleep(pool, 30);
    ck_assert_int_eq(fut_clock_advance(pool, 29), 0);
    ck_assert(!fut_is_ready(f));
    ck_assert_int_eq(fut_clock_advance(pool, 1), 0);
    ck_assert(fut_is_ready(f));
    ck_assert_uint_eq(fut_clock_now(pool), 30);
    ck_assert_int_eq(await_rc(f), 0);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

START_TEST(sleep_completes_after_its_time)
{
    fut_pool *pool = pool_new(1);
    uint64_t start = now_ms();
    fut_future *f = fut_sleep(pool, 30);
    void *v = (void *)1;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_uint_ge(now_ms() - start, 30);
    ck_assert_ptr_null(v);
    fut_release(f);
    f = fut_sleep(pool, 0);
    ck_assert_int_eq(fut_await(f, NULL), 0);
    fut_release(f);
    f = fut_sleep(NULL, 1);
    ck_assert_int_eq(fut_await(f, NULL), EINVAL);
    fut_release(f);
    fut_pool_destroy(pool);
}
END_TEST

/* A sleep holds no worker: a one-thread pool runs tasks while a sleep of
 * an hour is pending. */
START_TEST(sleep_holds_no_worker)
{
    fut_pool *pool = pool_new(1);
    fut_future *hour = fut_sleep(pool, 3600 * 1000);
    fut_future *f = fut_spawn(pool, task_value, (void *)5);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)5);
    ck_assert(!fut_is_ready(hour));
    ck_assert_uint_eq(timers_pending(pool), 1);
    ck_assert_int_eq(fut_cancel(hour), 0);
    ck_assert_uint_eq(timers_pending(pool), 0); /* removed at once */
    ck_assert_int_eq(fut_await(hour, NULL), ECANCELED);
    ck_assert_int_eq(fut_cancel(hour), EALREADY);
    fut_release(hour);
    fut_release(f);
    fut_pool_destroy(pool); /* returns: no timer is left */
}
END_TEST

/* Ten thousand sleeps on two threads finish together: far sooner than
 * the 250 s they would take if each held a worker. */
START_TEST(ten_thousand_sleeps)
{
    enum { N = 10000 };
    fut_pool *pool = pool_new(2);
    static fut_future *fs[N];
    uint64_t start = now_ms();
    for (int i = 0; i < N; i++)
        fs[i] = fut_sleep(pool, 50);
    ck_assert_int_eq(fut_join_all(fs, N), 0);
    ck_assert_uint_lt(now_ms() - start, 60 * 1000);
    ck_assert_uint_eq(timers_pending(pool), 0);
    for (int i = 0; i < N; i++)
        fut_release(fs[i]);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(timers_pending_is_exact)
{
    fut_pool *pool = pool_new(1);
    fut_future *fs[5];
    for (int i = 0; i < 5; i++)
        fs[i] = fut_sleep(pool, 1000000 + (uint64_t)i);
    ck_assert_uint_eq(timers_pending(pool), 5);
    fut_cancel(fs[0]);
    fut_cancel(fs[3]);
    ck_assert_uint_eq(timers_pending(pool), 3);
    fut_future *t = fut_timeout(fut_retain(fs[1]), 1000000);
    ck_assert_uint_eq(timers_pending(pool), 4);
    for (int i = 0; i < 5; i++)
        fut_cancel(fs[i]);
    /* The timeout's input completed (cancelled): its timer went too. */
    ck_assert_int_eq(fut_await(t, NULL), ECANCELED);
    ck_assert_uint_eq(timers_pending(pool), 0);
    fut_release(t);
    for (int i = 0; i < 5; i++)
        fut_release(fs[i]);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(then_after_sleep)
{
    fut_pool *pool = pool_new(2);
    fut_future *f = fut_then(fut_sleep(pool, 10), then_add, (void *)3);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)3);
    fut_release(f);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(timeout_carries_outcome)
{
    /* On virtual time, with no margin: the clock does not move unless
     * told, so a timeout of 1 ms cannot fire before the task is done,
     * however slow the machine. */
    fut_pool *pool = NULL;
    fut_pool_config cfg = {.threads = 2, .virtual_time = true};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    void *v;
    /* Completes in time. */
    fut_future *t = fut_timeout(fut_spawn(pool, task_value, (void *)8), 1);
    ck_assert_int_eq(fut_await(t, &v), 0);
    ck_assert_ptr_eq(v, (void *)8);
    fut_release(t);
    t = fut_timeout(fut_spawn(pool, task_fail, (void *)EIO), 1);
    ck_assert_int_eq(fut_await(t, &v), EIO);
    ck_assert_ptr_null(v);
    fut_release(t);
    /* Already complete, or without a pool: no timer needed. */
    fut_future *done = fut_spawn(pool, task_value, (void *)4);
    fut_await(done, NULL);
    t = fut_timeout(done, 0);
    ck_assert_int_eq(fut_await(t, &v), 0);
    ck_assert_ptr_eq(v, (void *)4);
    fut_release(t);
    t = fut_timeout(fut_all(NULL, 0), 0);
    ck_assert_int_eq(fut_await(t, NULL), 0);
    fut_release(t);
    t = fut_timeout(NULL, 5);
    ck_assert_int_eq(fut_await(t, NULL), EINVAL);
    fut_release(t);
    ck_assert_uint_eq(timers_pending(pool), 0);
    fut_pool_destroy(pool);
}
END_TEST

struct slow {
    gate g;
    atomic_int saw_cancel;
};

static int task_slow(void *arg, void **value)
{
    struct slow *s = arg;
    task_gate(&s->g, value);
    atomic_store(&s->saw_cancel, fut_cancel_requested());
    return 0;
}

START_TEST(timeout_fires_and_cancels_input)
{
    fut_pool *pool = pool_new(1);
    /* A promise nobody keeps in time: its future is cancelled. */
    fut_promise *p;
    fut_future *pf;
    fut_promise_create(pool, &p, &pf);
    fut_future *t = fut_timeout(fut_retain(pf), 20);
    void *v = (void *)1;
    ck_assert_int_eq(fut_await(t, &v), ETIMEDOUT);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(fut_await(pf, NULL), ECANCELED);
    ck_assert_int_eq(fut_promise_resolve(p, NULL), EALREADY);
    fut_release(t);
    fut_release(pf);

    /* A running task is asked to stop; its own outcome stays its own. */
    struct slow s;
    gate_init(&s.g);
    atomic_init(&s.saw_cancel, 0);
    fut_future *task = fut_spawn(pool, task_slow, &s);
    gate_wait_arrived(&s.g, 1);
    t = fut_timeout(fut_retain(task), 10);
    ck_assert_int_eq(fut_await(t, NULL), ETIMEDOUT);
    gate_open(&s.g);
    ck_assert_int_eq(fut_await(task, NULL), 0);
    ck_assert_int_eq(atomic_load(&s.saw_cancel), 1);
    fut_release(t);
    fut_release(task);
    ck_assert_uint_eq(timers_pending(pool), 0);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(cancel_timeout_cancels_input)
{
    fut_pool *pool = pool_new(1);
    fut_promise *p;
    fut_future *pf;
    fut_promise_create(pool, &p, &pf);
    fut_future *t = fut_timeout(fut_retain(pf), 3600 * 1000);
    ck_assert_uint_eq(timers_pending(pool), 1);
    ck_assert_int_eq(fut_cancel(t), 0);
    ck_assert_uint_eq(timers_pending(pool), 0);
    ck_assert_int_eq(fut_await(t, NULL), ECANCELED);
    ck_assert_int_eq(fut_await(pf, NULL), ECANCELED);
    ck_assert_int_eq(fut_promise_reject(p, EPIPE), EALREADY);
    fut_release(t);
    fut_release(pf);
    fut_pool_destroy(pool);
}
END_TEST

/* The timer and the input race to complete a timeout: the timeout
 * carries the input's value or fails with ETIMEDOUT, never anything else
 * (the timer claims the timeout before it cancels the input, so the
 * input's ECANCELED cannot reach it). Sleeps are cancelled as they fire. */
START_TEST(timer_races)
{
    fut_pool *pool = pool_new(2);
    for (int i = 0; i < 2000; i++) {
        fut_future *t = fut_timeout(fut_spawn(pool, task_value, (void *)1),
                                    (uint64_t)(i % 2));
        void *v;
        int rc = fut_await(t, &v);
        ck_assert_msg(rc == ETIMEDOUT || (rc == 0 && v == (void *)1),
                      "rc %d v %p", rc, v);
        fut_release(t);
        fut_future *s = fut_sleep(pool, (uint64_t)(i % 2));
        rc = fut_cancel(s);
        ck_assert(rc == 0 || rc == EALREADY);
        ck_assert_int_eq(fut_await(s, NULL), rc == 0 ? ECANCELED : 0);
        fut_release(s);
    }
    fut_pool_destroy(pool);
}
END_TEST

/* Destroy lets pending timers fire, and the work they start runs. */
START_TEST(destroy_waits_for_timers)
{
    fut_pool *pool = pool_new(2);
    fut_future *f = fut_then(fut_sleep(pool, 30), then_add, (void *)6);
    fut_future *t = fut_timeout(fut_sleep(pool, 3600 * 1000), 20);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    void *v;
    ck_assert(fut_is_ready(f));
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)6);
    ck_assert_int_eq(fut_await(t, NULL), ETIMEDOUT);
    fut_release(f);
    fut_release(t);
}
END_TEST

START_TEST(refused_while_closing)
{
    closing c;
    closing_start(&c, NULL, NULL);
    fut_promise *p;
    fut_future *pf;
    fut_promise_create(c.pool, &p, &pf);
    fut_future *s;
    for (;;) { /* until destroy has begun */
        s = fut_sleep(c.pool, 0);
        if (fut_is_ready(s) && fut_await(s, NULL) == ESHUTDOWN)
            break;
        ck_assert_int_eq(fut_await(s, NULL), 0); /* accepted: it fires */
        fut_release(s);
    }
    fut_release(s);
    fut_future *t = fut_timeout(fut_retain(pf), 10);
    ck_assert_int_eq(fut_await(t, NULL), ESHUTDOWN);
    fut_release(t);
    /* the refused timeout let go of its input, untouched */
    ck_assert(!fut_is_ready(pf));
    ck_assert_int_eq(fut_promise_reject(p, EPIPE), 0);
    ck_assert_int_eq(fut_await(pf, NULL), EPIPE);
    closing_finish(&c);
    fut_release(c.held);
    fut_release(pf);
}
END_TEST

static Suite *timer_suite(void)
{
    Suite *s = suite_create("timer");
    FUT_TCASE(s, "sleep", sleep_completes_after_its_time, virtual_sleep_completes_at_its_time, sleep_holds_no_worker,
              ten_thousand_sleeps, timers_pending_is_exact, then_after_sleep);
    FUT_TCASE(s, "timeout", timeout_carries_outcome,
              timeout_fires_and_cancels_input, cancel_timeout_cancels_input);
    FUT_TCASE(s, "races", timer_races, destroy_waits_for_timers,
              refused_while_closing);
    return s;
}

FUT_TEST_MAIN(timer_suite)
