/* Cancellation: outcomes, chains, fut_all, and the race with a start. */
#include "helpers.h"

static int task_count(void *arg, void **value)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    *value = arg;
    return 0;
}

START_TEST(cancel_queued_task)
{
    fut_pool *pool = pool_new(1);
    gate g;
    gate_init(&g);
    atomic_int runs = 0;
    fut_future *blocker = fut_spawn(pool, task_gate, &g);
    gate_wait_arrived(&g, 1);
    fut_future *f = fut_spawn(pool, task_count, &runs);
    ck_assert_int_eq(fut_cancel(f), 0);
    ck_assert(fut_is_ready(f));
    void *v = (void *)1;
    ck_assert_int_eq(fut_await(f, &v), ECANCELED);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(fut_cancel(f), EALREADY);
    gate_open(&g);
    fut_await(blocker, NULL);
    fut_release(blocker);
    fut_release(f);
    fut_pool_destroy(pool);
    ck_assert_int_eq(atomic_load(&runs), 0);
}
END_TEST

struct polite {
    gate g;
    int result;
    atomic_int saw;
    fut_pool *pool; /* for the tasks that spawn */
};

static int task_polite(void *arg, void **value)
{
    struct polite *p = arg;
    thread_check(!fut_cancel_requested());
    task_gate(&p->g, value);
    /* The gate opens after fut_cancel returned EBUSY. */
    atomic_store(&p->saw, fut_cancel_requested());
    return p->result;
}

START_TEST(cancel_running_task)
{
    fut_pool *pool = pool_new(1);
    for (int result = 0; result <= ECANCELED; result += ECANCELED) {
        struct polite p = {.result = result};
        gate_init(&p.g);
        fut_future *f = fut_spawn(pool, task_polite, &p);
        gate_wait_arrived(&p.g, 1);
        ck_assert_int_eq(fut_cancel(f), EBUSY);
        gate_open(&p.g);
        /* The task decides its own outcome, 0 included. */
        ck_assert_int_eq(fut_await(f, NULL), result);
        ck_assert_int_eq(atomic_load(&p.saw), 1);
        ck_assert_int_eq(fut_cancel(f), EALREADY);
        fut_release(f);
    }
    ck_assert(!fut_cancel_requested());
    fut_pool_destroy(pool);
}
END_TEST

static atomic_int body_saw_cancel, body_calls;

static int note_cancel(void *arg, size_t lo, size_t hi)
{
    (void)arg;
    (void)lo;
    (void)hi;
    atomic_fetch_add(&body_calls, 1);
    if (fut_cancel_requested())
        atomic_fetch_add(&body_saw_cancel, 1);
    return 0;
}

/* Cancelled while it runs, then runs a parallel_for: the chunks are not
 * the task, and fut_cancel_requested() is false inside every one of them,
 * wherever it runs; after the loop the task sees its cancel again. */
static int cancelled_loop(void *arg, void **value)
{
    struct polite *p = arg;
    task_polite(p, value); /* arrives, waits for the gate: cancelled then */
    int rc = fut_parallel_for(p->pool, 0, 8, 1, note_cancel, NULL);
    if (rc == 0 && !fut_cancel_requested())
        rc = EIO;
    return rc;
}

START_TEST(cancel_requested_false_in_loop_body)
{
    for (size_t threads = 1; threads <= 2; threads++) {
        fut_pool *pool = pool_new(threads);
        struct polite p = {.result = 0, .pool = pool};
        gate_init(&p.g);
        atomic_store(&body_saw_cancel, 0);
        atomic_store(&body_calls, 0);
        fut_future *f = fut_spawn(pool, cancelled_loop, &p);
        gate_wait_arrived(&p.g, 1);
        ck_assert_int_eq(fut_cancel(f), EBUSY);
        gate_open(&p.g);
        ck_assert_int_eq(fut_await(f, NULL), 0);
        ck_assert_int_eq(atomic_load(&body_calls), 8);
        ck_assert_int_eq(atomic_load(&body_saw_cancel), 0);
        fut_release(f);
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    }
}
END_TEST

START_TEST(continuation_of_cancelled_input)
{
    fut_pool *pool = pool_new(1);
    gate g;
    gate_init(&g);
    atomic_int runs = 0;
    fut_future *blocker = fut_spawn(pool, task_gate, &g);
    gate_wait_arrived(&g, 1);
    fut_future *in = fut_spawn(pool, task_value, NULL);
    fut_future *c = fut_then(fut_retain(in), then_count, &runs);
    ck_assert_int_eq(fut_cancel(in), 0);
    ck_assert_int_eq(fut_await(c, NULL), ECANCELED);
    gate_open(&g);
    fut_release(blocker);
    fut_release(in);
    fut_release(c);
    fut_pool_destroy(pool);
    ck_assert_int_eq(atomic_load(&runs), 0);
}
END_TEST

START_TEST(cancel_then_cancels_its_input)
{
    fut_pool *pool = pool_new(1);
    atomic_int runs = 0;
    /* Input is a promise. */
    fut_promise *p;
    fut_future *pf;
    fut_promise_create(pool, &p, &pf);
    fut_future *watch = fut_retain(pf);
    fut_future *c = fut_then(pf, then_count, &runs);
    ck_assert_int_eq(fut_cancel(c), 0);
    ck_assert_int_eq(fut_await(c, NULL), ECANCELED);
    ck_assert_int_eq(fut_await(watch, NULL), ECANCELED);
    ck_assert_int_eq(fut_promise_resolve(p, NULL), EALREADY);
    fut_release(watch);
    fut_release(c);

    /* Input is a queued task behind a blocker. */
    gate g;
    gate_init(&g);
    fut_future *blocker = fut_spawn(pool, task_gate, &g);
    gate_wait_arrived(&g, 1);
    fut_future *t = fut_spawn(pool, task_count, &runs);
    c = fut_then(fut_then(fut_retain(t), then_count, &runs), then_count, &runs);
    ck_assert_int_eq(fut_cancel(c), 0);
    ck_assert_int_eq(fut_await(t, NULL), ECANCELED);
    gate_open(&g);
    fut_release(blocker);
    fut_release(t);
    fut_release(c);
    fut_pool_destroy(pool);
    ck_assert_int_eq(atomic_load(&runs), 0);
}
END_TEST

START_TEST(cancel_long_chain)
{
    fut_pool *pool = pool_new(2);
    fut_promise *p;
    fut_future *f;
    fut_promise_create(pool, &p, &f);
    atomic_int runs = 0;
    for (int i = 0; i < 200000; i++)
        f = fut_then(f, then_count, &runs);
    ck_assert_int_eq(fut_cancel(f), 0);
    ck_assert_int_eq(fut_promise_resolve(p, NULL), EALREADY);
    ck_assert_int_eq(fut_await(f, NULL), ECANCELED);
    fut_release(f);
    fut_pool_destroy(pool);
    ck_assert_int_eq(atomic_load(&runs), 0);
}
END_TEST

START_TEST(cancel_all_leaves_inputs)
{
    fut_pool *pool = pool_new(1);
    fut_promise *p[2];
    fut_future *f[2];
    for (int i = 0; i < 2; i++)
        fut_promise_create(pool, &p[i], &f[i]);
    fut_future *all = fut_all(f, 2);
    ck_assert_int_eq(fut_cancel(all), 0);
    ck_assert_int_eq(fut_await(all, NULL), ECANCELED);
    ck_assert(!fut_is_ready(f[0]));
    ck_assert(!fut_is_ready(f[1]));
    ck_assert_int_eq(fut_promise_resolve(p[0], (void *)1), 0);
    ck_assert_int_eq(fut_promise_reject(p[1], EIO), 0);
    ck_assert_int_eq(fut_join_all(f, 2), EIO);
    ck_assert_int_eq(fut_await(all, NULL), ECANCELED);
    fut_release(all);
    fut_release(f[0]);
    fut_release(f[1]);
    fut_pool_destroy(pool);
}
END_TEST

/* fut_cancel races the start of the task: 0 means it never ran, EBUSY or
 * EALREADY that it ran, and it never runs twice. */
START_TEST(cancel_races_start)
{
    enum { N = 4000 };
    fut_pool *pool = pool_new(2);
    static atomic_int runs[N];
    int rcs[N];
    for (int i = 0; i < N; i++) {
        fut_future *f = fut_spawn(pool, task_count, &runs[i]);
        rcs[i] = fut_cancel(f);
        fut_release(f);
    }
    fut_pool_destroy(pool);
    for (int i = 0; i < N; i++) {
        ck_assert(rcs[i] == 0 || rcs[i] == EBUSY || rcs[i] == EALREADY);
        ck_assert_int_eq(atomic_load(&runs[i]), rcs[i] == 0 ? 0 : 1);
    }
}
END_TEST

START_TEST(cancel_stats)
{
    fut_pool *pool = pool_new(1);
    gate g;
    gate_init(&g);
    fut_future *blocker = fut_spawn(pool, task_gate, &g);
    gate_wait_arrived(&g, 1);
    fut_future *t = fut_spawn(pool, task_value, NULL);
    fut_future *c = fut_then(fut_retain(t), then_add, NULL);
    ck_assert_int_eq(fut_cancel(c), 0); /* cancels both */
    gate_open(&g);
    fut_await(blocker, NULL);
    fut_pool_stats st;
    fut_pool_stats_get(pool, &st);
    ck_assert_uint_eq(st.spawned, 3);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.cancelled, 2);
    ck_assert_uint_eq(st.queued, 0);
    fut_release(blocker);
    fut_release(t);
    fut_release(c);
    fut_pool_destroy(pool);
}
END_TEST

static Suite *cancel_suite(void)
{
    Suite *s = suite_create("cancel");
    FUT_TCASE(s, "outcomes", cancel_queued_task, cancel_running_task,
              continuation_of_cancelled_input, cancel_then_cancels_its_input,
              cancel_long_chain, cancel_all_leaves_inputs, cancel_stats,
              cancel_requested_false_in_loop_body);
    FUT_TCASE(s, "races", cancel_races_start);
    return s;
}

FUT_TEST_MAIN(cancel_suite)
