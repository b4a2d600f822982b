/* Futures: values, errors, ownership, continuations, fut_all. */
#define _GNU_SOURCE
#include "helpers.h"

#include <string.h>

START_TEST(spawn_value_and_error)
{
    fut_pool *pool = pool_new(2);
    fut_future *ok = fut_spawn(pool, task_value, (void *)42);
    fut_future *bad = fut_spawn(pool, task_fail, (void *)12345);
    void *v = (void *)1;
    ck_assert_int_eq(fut_await(ok, &v), 0);
    ck_assert_ptr_eq(v, (void *)42);
    ck_assert_int_eq(fut_await(ok, NULL), 0); /* many times */
    ck_assert(fut_is_ready(ok));
    /* A task's own code passes through; the value of a failure is NULL. */
    ck_assert_int_eq(fut_await(bad, &v), 12345);
    ck_assert_ptr_null(v);
    fut_release(ok);
    fut_release(bad);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(makers_never_return_null)
{
    fut_pool *pool = pool_new(1);
    fut_future *fs[] = {
        fut_spawn(NULL, task_value, NULL),
        fut_spawn(pool, NULL, NULL),
        fut_then(NULL, then_add, NULL),
        fut_then(fut_spawn(pool, task_value, NULL), NULL, NULL),
        fut_all(NULL, 3),
    };
    for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++) {
        ck_assert_ptr_nonnull(fs[i]);
        ck_assert(fut_is_ready(fs[i]));
        void *v = (void *)1;
        ck_assert_int_eq(fut_await(fs[i], &v), EINVAL);
        ck_assert_ptr_null(v);
        fut_release(fs[i]);
    }
    fut_future *one = fut_spawn(pool, task_value, NULL);
    fut_future *with_null[] = {one, NULL};
    fut_future *all = fut_all(with_null, 2);
    ck_assert_int_eq(fut_await(all, NULL), EINVAL);
    fut_release(all);
    fut_release(one);
    /* Chains on failed futures still work: the failure flows on. */
    fut_future *chained = fut_then(
        fut_then(fut_spawn(NULL, NULL, NULL), then_add, NULL), then_add, NULL);
    ck_assert_int_eq(fut_await(chained, NULL), EINVAL);
    fut_release(chained);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(bad_arguments_to_waits)
{
    fut_pool *pool = pool_new(1);
    fut_future *f = fut_spawn(pool, task_value, NULL);
    fut_future *with_null[] = {f, NULL};
    size_t index = 99;
    ck_assert_int_eq(fut_await(NULL, NULL), EINVAL);
    ck_assert_int_eq(fut_await_for(NULL, 10, NULL), EINVAL);
    ck_assert_int_eq(fut_join_all(NULL, 1), EINVAL);
    ck_assert_int_eq(fut_join_all(with_null, 2), EINVAL);
    ck_assert_int_eq(fut_join_all(NULL, 0), 0);
    ck_assert_int_eq(fut_await_any(NULL, 0, &index), EINVAL);
    ck_assert_int_eq(fut_await_any(with_null, 0, &index), EINVAL);
    ck_assert_int_eq(fut_await_any(NULL, 2, &index), EINVAL);
    ck_assert_int_eq(fut_await_any(with_null, 2, &index), EINVAL);
    ck_assert_uint_eq(index, 99);
    ck_assert(!fut_is_ready(NULL));
    ck_assert_ptr_null(fut_retain(NULL));
    fut_release(NULL);
    ck_assert_int_eq(fut_cancel(NULL), EINVAL);
    fut_release(f);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(await_for_times_out)
{
    fut_pool *pool = pool_new(1);
    gate g;
    gate_init(&g);
    fut_future *f = fut_spawn(pool, task_gate, &g);
    void *v = (void *)1;
    ck_assert_int_eq(fut_await_for(f, 0, &v), ETIMEDOUT);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(fut_await_for(f, 20, &v), ETIMEDOUT);
    ck_assert(!fut_is_ready(f));
    gate_open(&g);
    ck_assert_int_eq(fut_await_for(f, UINT64_MAX, &v), 0);
    ck_assert_ptr_eq(v, &g);
    ck_assert_int_eq(fut_await_for(f, 0, NULL), 0);
    fut_release(f);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(then_chains)
{
    fut_pool *pool = pool_new(2);
    fut_future *f = fut_spawn(pool, task_value, (void *)1);
    for (int i = 0; i < 100; i++)
        f = fut_then(f, then_add, (void *)2);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)201);
    /* Attaching to a completed future runs the continuation too. */
    f = fut_then(f, then_add, (void *)1);
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)202);
    fut_release(f);
    assert_stats_balanced(pool);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(failure_flows_forward)
{
    fut_pool *pool = pool_new(2);
    atomic_int runs = 0;
    fut_future *f = fut_spawn(pool, task_fail, (void *)EIO);
    for (int i = 0; i < 10; i++)
        f = fut_then(f, then_count, &runs);
    void *v = (void *)1;
    ck_assert_int_eq(fut_await(f, &v), EIO);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(atomic_load(&runs), 0);
    fut_release(f);
    fut_pool_stats st;
    fut_pool_stats_get(pool, &st);
    ck_assert_uint_eq(st.spawned, 11);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_uint_eq(st.cancelled, 10);
    fut_pool_destroy(pool);
}
END_TEST

/* A long chain failing at its root completes link by link without
 * recursing once per link (that would overflow the stack). */
START_TEST(long_failing_chain)
{
    fut_pool *pool = pool_new(2);
    fut_promise *p;
    fut_future *root;
    ck_assert_int_eq(fut_promise_create(pool, &p, &root), 0);
    atomic_int runs = 0;
    fut_future *f = root;
    for (int i = 0; i < 200000; i++)
        f = fut_then(f, then_count, &runs);
    ck_assert_int_eq(fut_promise_reject(p, EPIPE), 0);
    ck_assert_int_eq(fut_await(f, NULL), EPIPE);
    ck_assert_int_eq(atomic_load(&runs), 0);
    fut_release(f);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(long_chain_runs)
{
    fut_pool *pool = pool_new(2);
    fut_promise *p;
    fut_future *f;
    ck_assert_int_eq(fut_promise_create(pool, &p, &f), 0);
    for (int i = 0; i < 100000; i++)
        f = fut_then(f, then_add, (void *)1);
    fut_promise_resolve(p, (void *)5);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)100005);
    fut_release(f);
    assert_stats_balanced(pool);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(all_and_join_all)
{
    fut_pool *pool = pool_new(2);
    enum { N = 6 };
    fut_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = (i == 2 || i == 4)
                    ? fut_spawn(pool, task_fail, (void *)(intptr_t)(100 + i))
                    : fut_spawn(pool, task_value, (void *)(intptr_t)i);
    fut_future *all = fut_all(fs, N);
    void *v = (void *)1;
    /* The error of the lowest-index failed input, and a NULL value. */
    ck_assert_int_eq(fut_await(all, &v), 102);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(fut_join_all(fs, N), 102);
    for (int i = 0; i < N; i++)
        ck_assert(fut_is_ready(fs[i]));
    fut_release(all);
    all = fut_all(fs, 2); /* borrowed: the inputs are still ours */
    ck_assert_int_eq(fut_await(all, &v), 0);
    ck_assert_ptr_null(v);
    fut_release(all);
    for (int i = 0; i < N; i++)
        fut_release(fs[i]);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(all_of_nothing)
{
    fut_future *all = fut_all(NULL, 0);
    ck_assert(fut_is_ready(all));
    ck_assert_int_eq(fut_await(all, NULL), 0);
    /* No pool: its continuation runs inline, in this thread. */
    atomic_int runs = 0;
    fut_future *c = fut_then(all, then_count, &runs);
    ck_assert_int_eq(atomic_load(&runs), 1);
    ck_assert(fut_is_ready(c));
    ck_assert_int_eq(fut_cancel(c), EALREADY);
    fut_release(c);
}
END_TEST

START_TEST(all_releases_inputs_early)
{
    /* The caller may release inputs right after fut_all. */
    fut_pool *pool = pool_new(2);
    gate g;
    gate_init(&g);
    fut_future *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = fut_spawn(pool, task_gate, &g);
    fut_future *all = fut_all(fs, 3);
    for (int i = 0; i < 3; i++)
        fut_release(fs[i]);
    gate_open(&g);
    ck_assert_int_eq(fut_await(all, NULL), 0);
    fut_release(all);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(await_any_lowest_ready)
{
    fut_pool *pool = pool_new(2);
    fut_promise *ps[6];
    fut_future *fs[6];
    for (int i = 0; i < 6; i++)
        if (i == 3)
            fs[i] = fut_spawn(pool, task_fail, (void *)EIO);
        else
            ck_assert_int_eq(fut_promise_create(pool, &ps[i], &fs[i]), 0);
    size_t index = 99;
    ck_assert_int_eq(fut_await_any(fs, 6, &index), 0);
    ck_assert_uint_eq(index, 3); /* a failure counts as complete */
    ck_assert_int_eq(fut_await(fs[3], NULL), EIO);
    ck_assert_int_eq(fut_await_any(fs, 6, NULL), 0);
    ck_assert_int_eq(fut_promise_resolve(ps[5], NULL), 0);
    ck_assert_int_eq(fut_await_any(fs, 6, &index), 0);
    ck_assert_uint_eq(index, 3); /* the lowest complete index */
    for (int i = 0; i < 5; i++)
        if (i != 3)
            fut_promise_resolve(ps[i], NULL);
    ck_assert_int_eq(fut_join_all(fs, 6), EIO);
    ck_assert_int_eq(fut_await_any(fs, 6, &index), 0);
    ck_assert_uint_eq(index, 0);
    for (int i = 0; i < 6; i++)
        fut_release(fs[i]);
    fut_pool_destroy(pool);
}
END_TEST

static int then_thread_name(void *arg, void *input, void **value)
{
    (void)arg;
    (void)input;
    char *name = calloc(1, 16);
    pthread_getname_np(pthread_self(), name, 16);
    *value = name;
    return 0;
}

static void assert_ran_on(fut_future *f, const char *prefix)
{
    void *name;
    ck_assert_int_eq(fut_await(f, &name), 0);
    ck_assert_msg(strncmp(name, prefix, strlen(prefix)) == 0,
                  "ran on %s, not on %s*", (char *)name, prefix);
    free(name);
    fut_release(f);
}

static int task_then_on(void *arg, void **value)
{
    /* Attached from a worker of pool "aa" to a future of pool "bb". */
    *value = fut_then(fut_spawn(arg, task_value, NULL), then_thread_name, NULL);
    return 0;
}

/* A continuation runs on its input's pool, whoever attaches it; fut_all's
 * future belongs to the first input that has a pool. */
START_TEST(continuations_run_on_input_pool)
{
    fut_pool *a, *b;
    fut_pool_config ca = {.threads = 1, .name = "aa"};
    fut_pool_config cb = {.threads = 1, .name = "bb"};
    ck_assert_int_eq(fut_pool_create(&a, &ca), 0);
    ck_assert_int_eq(fut_pool_create(&b, &cb), 0);

    assert_ran_on(
        fut_then(fut_spawn(b, task_value, NULL), then_thread_name, NULL),
        "bb-");
    fut_future *outer = fut_spawn(a, task_then_on, b);
    void *inner;
    ck_assert_int_eq(fut_await(outer, &inner), 0);
    assert_ran_on(inner, "bb-");
    fut_release(outer);

    fut_promise *p;
    fut_future *ins[3];
    ins[0] = fut_all(NULL, 0); /* no pool */
    ck_assert_int_eq(fut_promise_create(b, &p, &ins[1]), 0);
    ins[2] = fut_spawn(a, task_value, NULL);
    fut_future *c = fut_then(fut_all(ins, 3), then_thread_name, NULL);
    fut_promise_resolve(p, NULL);
    assert_ran_on(c, "bb-");
    for (int i = 0; i < 3; i++)
        fut_release(ins[i]);
    fut_pool_destroy(a);
    fut_pool_destroy(b);
}
END_TEST

struct awaiter_arg {
    fut_future *f;
    void *value;
    int rc;
};

static void *awaiter_thread(void *p)
{
    struct awaiter_arg *a = p;
    a->rc = fut_await(a->f, &a->value);
    return NULL;
}

START_TEST(many_awaiters_see_the_same)
{
    fut_pool *pool = pool_new(2);
    gate g;
    gate_init(&g);
    fut_future *f = fut_spawn(pool, task_gate, &g);
    enum { T = 8 };
    pthread_t th[T];
    struct awaiter_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (struct awaiter_arg){.f = f, .rc = -1};
        pthread_create(&th[i], NULL, awaiter_thread, &args[i]);
    }
    gate_open(&g);
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].rc, 0);
        ck_assert_ptr_eq(args[i].value, &g);
    }
    fut_release(f);
    fut_pool_destroy(pool);
}
END_TEST

static void *release_thread(void *p)
{
    fut_release(p);
    return NULL;
}

/* The last reference dropped on another thread, while the task may still
 * be completing on a worker: no use after free (ASan, TSan watch). */
START_TEST(last_release_on_another_thread)
{
    fut_pool *pool = pool_new(2);
    for (int i = 0; i < 2000; i++) {
        fut_future *f = fut_spawn(pool, task_value, NULL);
        fut_future *c = fut_then(fut_retain(f), then_add, NULL);
        pthread_t a, b;
        pthread_create(&a, NULL, release_thread, f);
        pthread_create(&b, NULL, release_thread, c);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
    }
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* Units have ids: from 1 up, increasing on one thread, unique; futures
 * that run no code of the caller's have none (0). */
START_TEST(units_have_ids)
{
    fut_pool *pool = pool_new(2);
    ck_assert_uint_eq(fut_id(NULL), 0);
    ck_assert_uint_eq(fut_current_id(), 0);
    fut_future *a = fut_spawn(pool, task_value, (void *)1);
    fut_future *b = fut_spawn(pool, task_value, (void *)2);
    ck_assert_uint_gt(fut_id(a), 0);
    ck_assert_uint_gt(fut_id(b), fut_id(a));
    uint64_t ida = fut_id(a);
    fut_future *c = fut_then(a, then_add, (void *)1); /* consumes a */
    ck_assert_uint_gt(fut_id(c), fut_id(b));
    ck_assert_uint_ne(fut_id(c), ida);
    fut_promise *p;
    fut_future *pf;
    ck_assert_int_eq(fut_promise_create(pool, &p, &pf), 0);
    fut_future *s = fut_sleep(pool, 1);
    fut_future *bad = fut_spawn(NULL, task_value, NULL);
    ck_assert_uint_eq(fut_id(pf), 0);
    ck_assert_uint_eq(fut_id(s), 0);
    ck_assert_uint_eq(fut_id(bad), 0);
    ck_assert_int_eq(fut_promise_resolve(p, NULL), 0);
    fut_future *all[4] = {b, c, pf, s};
    ck_assert_int_eq(fut_join_all(all, 4), 0);
    for (int i = 0; i < 4; i++)
        fut_release(all[i]);
    fut_release(bad);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

struct keeper {
    fut_promise *p[6];
    const int *order;
};

static void *keep_in_order(void *arg)
{
    struct keeper *k = arg;
    for (int i = 0; i < 6; i++) {
        usleep(2000);
        fut_promise_resolve(k->p[k->order[i]], (void *)(intptr_t)k->order[i]);
    }
    return NULL;
}

/* fut_join_all waits for the last pending future first, then for the rest
 * at once: whatever order they complete in, it returns once all have. */
START_TEST(join_all_in_any_completion_order)
{
    static const int orders[4][6] = {{5, 4, 3, 2, 1, 0},
                                     {0, 1, 2, 3, 4, 5},
                                     {2, 5, 0, 4, 1, 3},
                                     {4, 3, 0, 1, 2, 5}};
    fut_pool *pool = pool_new(2);
    for (int o = 0; o < 4; o++) {
        struct keeper k = {.order = orders[o]};
        fut_future *fs[6];
        for (int i = 0; i < 6; i++)
            ck_assert_int_eq(fut_promise_create(pool, &k.p[i], &fs[i]), 0);
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, keep_in_order, &k), 0);
        ck_assert_int_eq(fut_join_all(fs, 6), 0);
        for (int i = 0; i < 6; i++) {
            ck_assert(fut_is_ready(fs[i]));
            void *v;
            ck_assert_int_eq(fut_await(fs[i], &v), 0);
            ck_assert_int_eq((intptr_t)v, i);
        }
        pthread_join(t, NULL);
        for (int i = 0; i < 6; i++)
            fut_release(fs[i]);
    }
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

START_TEST(retain_release)
{
    fut_pool *pool = pool_new(1);
    fut_future *f = fut_spawn(pool, task_value, (void *)3);
    ck_assert_ptr_eq(fut_retain(f), f);
    fut_release(f);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)3);
    fut_release(f);
    /* A released pending future still runs its task. */
    atomic_int runs = 0;
    fut_promise *p;
    fut_future *pf;
    fut_promise_create(pool, &p, &pf);
    fut_release(fut_then(pf, then_count, &runs));
    fut_promise_resolve(p, NULL);
    fut_pool_destroy(pool);
    ck_assert_int_eq(atomic_load(&runs), 1);
}
END_TEST

START_TEST(strerror_names_codes)
{
    int codes[] = {0,         EINVAL, ENOMEM, EAGAIN,   ECANCELED,
                   ETIMEDOUT, EPIPE,  EBUSY,  EALREADY, ESHUTDOWN,
                   EDEADLK,   EIO,    -5,     123456};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        ck_assert_ptr_nonnull(fut_strerror(codes[i]));
        ck_assert_int_gt((int)strlen(fut_strerror(codes[i])), 0);
    }
    ck_assert_str_eq(fut_strerror(ECANCELED), "cancelled");
    /* not one of fut's own codes: the C library's words, unchanged */
    ck_assert_str_eq(fut_strerror(EPIPE), strerror(EPIPE));
    ck_assert_str_eq(fut_strerror(123456), "unknown error");
}
END_TEST

/* ---- Recovery: fut_catch and fut_finally -------------------------------- */

static atomic_int recover_calls;
static atomic_int recover_error; /* the error the last call saw */

/* Recovers: the value is arg; records the error it saw. */
static int recover_with(void *arg, int error, void *input, void **value)
{
    atomic_fetch_add(&recover_calls, 1);
    atomic_store(&recover_error, error);
    *value = error ? arg : input;
    return 0;
}

/* Fails again with the error at arg (a finally keeping the outcome when
 * arg is NULL). */
static int fail_again(void *arg, int error, void *input, void **value)
{
    atomic_fetch_add(&recover_calls, 1);
    atomic_store(&recover_error, error);
    *value = input;
    return arg ? (int)(intptr_t)arg : error;
}

static void recover_reset(void)
{
    atomic_store(&recover_calls, 0);
    atomic_store(&recover_error, -1);
}

/* fut_catch runs on failure only: it recovers with a value or fails
 * again with its own error; a success passes through without calling it. */
START_TEST(catch_recovers_or_fails_again)
{
    fut_pool *pool = pool_new(2);
    void *v;
    recover_reset();
    fut_future *f = fut_catch(fut_spawn(pool, task_fail, (void *)EIO),
                              recover_with, (void *)42);
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)42);
    ck_assert_int_eq(atomic_load(&recover_error), EIO);
    fut_release(f);

    f = fut_catch(fut_spawn(pool, task_fail, (void *)EIO), fail_again,
                  (void *)ENOENT);
    ck_assert_int_eq(fut_await(f, &v), ENOENT);
    ck_assert_ptr_null(v);
    fut_release(f);
    ck_assert_int_eq(atomic_load(&recover_calls), 2);

    f = fut_catch(fut_spawn(pool, task_value, (void *)7), recover_with, NULL);
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)7);
    ck_assert_int_eq(atomic_load(&recover_calls), 2); /* not called */
    fut_release(f);
    assert_stats_balanced(pool);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* fut_finally runs on every outcome and its result is the outcome. */
START_TEST(finally_runs_on_any_outcome)
{
    fut_pool *pool = pool_new(2);
    void *v;
    recover_reset();
    fut_future *f = fut_finally(fut_spawn(pool, task_value, (void *)3),
                                fail_again, NULL); /* keeps the outcome */
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)3);
    ck_assert_int_eq(atomic_load(&recover_error), 0);
    fut_release(f);
    f = fut_finally(fut_spawn(pool, task_fail, (void *)EIO), fail_again, NULL);
    ck_assert_int_eq(fut_await(f, &v), EIO);
    ck_assert_int_eq(atomic_load(&recover_error), EIO);
    fut_release(f);
    f = fut_finally(fut_spawn(pool, task_fail, (void *)EIO), recover_with,
                    (void *)9);
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)9);
    fut_release(f);
    ck_assert_int_eq(atomic_load(&recover_calls), 3);
    assert_stats_balanced(pool);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* The errors fut itself gives are recoverable too: a timeout that fired,
 * a promise rejected, a cancelled input. A then after a failure is
 * skipped and a catch further down the chain still recovers. */
START_TEST(catch_sees_timeouts_cancels_and_chains)
{
    fut_pool *pool = pool_new(1);
    fut_promise *p;
    fut_future *pf;
    void *v;
    recover_reset();
    ck_assert_int_eq(fut_promise_create(pool, &p, &pf), 0);
    fut_future *f = fut_catch(fut_timeout(fut_retain(pf), 5), recover_with,
                              (void *)1);
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)1);
    ck_assert_int_eq(atomic_load(&recover_error), ETIMEDOUT);
    fut_release(f);
    ck_assert_int_eq(fut_promise_resolve(p, NULL), EALREADY); /* cancelled */
    fut_release(pf);

    ck_assert_int_eq(fut_promise_create(pool, &p, &pf), 0);
    f = fut_then(fut_catch(fut_then(pf, then_add, (void *)1), recover_with,
                           (void *)10),
                 then_add, (void *)5);
    ck_assert_int_eq(fut_promise_reject(p, EPIPE), 0);
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)15); /* recovered with 10, then + 5 */
    ck_assert_int_eq(atomic_load(&recover_error), EPIPE);
    fut_release(f);

    gate g; /* the only worker held: the next task stays queued */
    gate_init(&g);
    fut_future *blocker = fut_spawn(pool, task_gate, &g);
    gate_wait_arrived(&g, 1);
    fut_future *queued = fut_spawn(pool, task_value, NULL);
    f = fut_catch(fut_retain(queued), recover_with, (void *)2);
    ck_assert_int_eq(fut_cancel(queued), 0);
    gate_open(&g);
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)2);
    ck_assert_int_eq(atomic_load(&recover_error), ECANCELED);
    fut_release(f);
    fut_release(queued);
    fut_release(blocker);
    ck_assert_int_eq(atomic_load(&recover_calls), 3);
    assert_stats_balanced(pool);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* Cancelling a catch before its input completes cancels the input too,
 * like any continuation; one still waiting at destroy on an unkept
 * promise fails with ECANCELED; on a future with no pool it runs here;
 * one made after destroy that would have to run gives ESHUTDOWN. */
START_TEST(catch_cancel_destroy_and_no_pool)
{
    fut_pool *pool = pool_new(2);
    fut_promise *p, *q;
    fut_future *pf, *qf;
    recover_reset();
    ck_assert_int_eq(fut_promise_create(pool, &p, &pf), 0);
    fut_future *f = fut_catch(fut_retain(pf), recover_with, NULL);
    ck_assert_int_eq(fut_cancel(f), 0);
    ck_assert_int_eq(fut_await(f, NULL), ECANCELED);
    ck_assert_int_eq(fut_await(pf, NULL), ECANCELED);
    ck_assert_int_eq(fut_promise_reject(p, EIO), EALREADY);
    fut_release(f);
    fut_release(pf);

    ck_assert_int_eq(fut_promise_create(pool, &p, &pf), 0);
    ck_assert_int_eq(fut_promise_create(pool, &q, &qf), 0);
    f = fut_finally(fut_retain(pf), recover_with, NULL);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    ck_assert_int_eq(fut_await(f, NULL), ECANCELED);
    fut_release(f);
    /* after destroy: a catch that would have to run cannot (ESHUTDOWN);
     * a success passes through */
    f = fut_catch(fut_retain(qf), recover_with, NULL);
    ck_assert_int_eq(fut_promise_reject(q, EIO), 0);
    ck_assert_int_eq(fut_await(f, NULL), ESHUTDOWN);
    fut_release(f);
    f = fut_catch(fut_retain(pf), recover_with, NULL);
    ck_assert_int_eq(fut_promise_resolve(p, (void *)4), 0);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)4);
    fut_release(f);
    fut_release(pf);
    fut_release(qf);
    ck_assert_int_eq(atomic_load(&recover_calls), 0);

    /* a failed future with no pool: fn runs here, at once */
    f = fut_catch(fut_spawn(NULL, task_value, NULL), recover_with, (void *)8);
    ck_assert(fut_is_ready(f));
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)8);
    ck_assert_int_eq(atomic_load(&recover_error), EINVAL);
    fut_release(f);
}
END_TEST

/* ---- fut_any ------------------------------------------------------------ */

static size_t index_of_value(void *v)
{
    return (size_t)(uintptr_t)v;
}

/* The first input to complete wins, failed or not; its index is the
 * value; the others keep running unless asked to be cancelled. */
START_TEST(any_first_to_complete_wins)
{
    fut_pool *pool = pool_new(2);
    fut_promise *p[3];
    fut_future *in[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(fut_promise_create(pool, &p[i], &in[i]), 0);
    fut_future *first = fut_any(in, 3, false);
    ck_assert(!fut_is_ready(first));
    ck_assert_int_eq(fut_promise_reject(p[1], EIO), 0); /* a failure wins too */
    void *v;
    ck_assert_int_eq(fut_await(first, &v), 0);
    ck_assert_uint_eq(index_of_value(v), 1);
    ck_assert_int_eq(fut_await(in[1], NULL), EIO);
    ck_assert(!fut_is_ready(in[0]) && !fut_is_ready(in[2]));
    fut_release(first); /* the inputs stay held until they complete */
    ck_assert_int_eq(fut_promise_resolve(p[0], (void *)1), 0);
    ck_assert_int_eq(fut_promise_resolve(p[2], (void *)2), 0);
    for (int i = 0; i < 3; i++)
        fut_release(in[i]);

    /* complete already: the lowest such index wins at once */
    fut_future *done[3] = {fut_sleep(pool, 60000), fut_spawn(pool, task_value, NULL),
                           fut_spawn(pool, task_value, NULL)};
    ck_assert_int_eq(fut_await(done[2], NULL), 0);
    ck_assert_int_eq(fut_await(done[1], NULL), 0);
    first = fut_any(done, 3, true); /* and cancels the long sleep */
    ck_assert(fut_is_ready(first));
    ck_assert_int_eq(fut_await(first, &v), 0);
    ck_assert_uint_eq(index_of_value(v), 1);
    ck_assert_int_eq(fut_await(done[0], NULL), ECANCELED);
    fut_release(first);
    for (int i = 0; i < 3; i++)
        fut_release(done[i]);
    assert_stats_balanced(pool);
    ck_assert_int_eq(fut_pool_destroy(pool), 0); /* no sleep left to wait for */
}
END_TEST

static int wait_cancel(void *arg, void **value)
{
    gate *g = arg;
    task_gate(g, value);
    return fut_cancel_requested() ? ECANCELED : 0;
}

/* cancel_rest: queued losers never run, running ones see the cancel;
 * bad arguments; cancelling fut_any leaves the inputs alone; a
 * continuation on it gets the index. */
START_TEST(any_cancels_the_rest_and_arguments)
{
    fut_pool *pool = pool_new(1);
    gate g;
    gate_init(&g);
    fut_promise *p;
    fut_future *in[3];
    in[0] = fut_spawn(pool, wait_cancel, &g); /* runs, held at the gate */
    gate_wait_arrived(&g, 1);
    in[1] = fut_spawn(pool, task_value, NULL); /* queued behind it */
    ck_assert_int_eq(fut_promise_create(pool, &p, &in[2]), 0);
    fut_future *first = fut_then(fut_any(in, 3, true), then_add, (void *)10);
    ck_assert_int_eq(fut_promise_resolve(p, (void *)5), 0);
    gate_open(&g);
    void *v;
    ck_assert_int_eq(fut_await(first, &v), 0);
    ck_assert_uint_eq(index_of_value(v), 12); /* index 2, + 10 */
    ck_assert_int_eq(fut_await(in[0], NULL), ECANCELED); /* saw it */
    ck_assert_int_eq(fut_await(in[1], NULL), ECANCELED); /* never ran */
    fut_release(first);
    for (int i = 0; i < 3; i++)
        fut_release(in[i]);

    ck_assert_int_eq(await_rc(fut_any(NULL, 1, false)), EINVAL);
    ck_assert_int_eq(await_rc(fut_any(in, 0, false)), EINVAL);
    fut_future *none[1] = {NULL};
    ck_assert_int_eq(await_rc(fut_any(none, 1, false)), EINVAL);

    ck_assert_int_eq(fut_promise_create(pool, &p, &in[0]), 0);
    first = fut_any(in, 1, true);
    ck_assert_int_eq(fut_cancel(first), 0);
    ck_assert_int_eq(fut_await(first, NULL), ECANCELED);
    ck_assert(!fut_is_ready(in[0])); /* left alone */
    ck_assert_int_eq(fut_promise_resolve(p, NULL), 0);
    fut_release(first);
    fut_release(in[0]);
    assert_stats_balanced(pool);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* fut_join_settled waits for all, whatever their outcomes, and reports
 * each one's error; bad arguments store nothing. */
START_TEST(join_settled_reports_each)
{
    fut_pool *pool = pool_new(2);
    fut_promise *p;
    fut_future *fs[4];
    fs[0] = fut_spawn(pool, task_value, (void *)1);
    fs[1] = fut_spawn(pool, task_fail, (void *)EIO);
    ck_assert_int_eq(fut_promise_create(pool, &p, &fs[2]), 0);
    fs[3] = fut_sleep(pool, 5);
    ck_assert_int_eq(fut_promise_reject(p, EPIPE), 0);
    int errors[4] = {-1, -1, -1, -1};
    ck_assert_int_eq(fut_join_settled(fs, 4, errors), 0);
    ck_assert_int_eq(errors[0], 0);
    ck_assert_int_eq(errors[1], EIO);
    ck_assert_int_eq(errors[2], EPIPE);
    ck_assert_int_eq(errors[3], 0);
    for (int i = 0; i < 4; i++)
        ck_assert(fut_is_ready(fs[i]));
    int untouched[1] = {-1};
    ck_assert_int_eq(fut_join_settled(fs, 4, NULL), EINVAL);
    ck_assert_int_eq(fut_join_settled(NULL, 1, untouched), EINVAL);
    fut_future *with_null[2] = {fs[0], NULL};
    ck_assert_int_eq(fut_join_settled(with_null, 2, untouched), EINVAL);
    ck_assert_int_eq(untouched[0], -1);
    ck_assert_int_eq(fut_join_settled(NULL, 0, NULL), 0);
    for (int i = 0; i < 4; i++)
        fut_release(fs[i]);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* ---- fut_chain ------------------------------------------------------------ */

struct chainer {
    fut_pool *pool;
    _Atomic(fut_promise *) p; /* set: the step follows a promise's future
                                 and leaves the promise here */
    gate *hold;     /* when set: the step waits here first */
    int fail;       /* when set: the step returns it */
    bool no_next;   /* the step returns 0 and no future */
    atomic_int runs;
};

/* A step: the next future is input + 1 computed by a task, or a
 * promise's future. */
static int step(void *arg, void *input, fut_future **next)
{
    struct chainer *c = arg;
    atomic_fetch_add(&c->runs, 1);
    if (c->hold) {
        void *unused;
        task_gate(c->hold, &unused);
    }
    if (c->fail)
        return c->fail;
    if (c->no_next)
        return 0;
    if (c->p) {
        fut_promise *p;
        if (fut_promise_create(c->pool, &p, next) != 0)
            return ENOMEM;
        c->p = p;
        return 0;
    }
    *next = fut_then(fut_spawn(c->pool, task_value, input), then_add, (void *)1);
    return 0;
}

/* A chain follows the future its step makes: two steps in a row, each
 * making a task; a step that fails, or makes nothing; an input that
 * failed (the step never runs). */
START_TEST(chain_follows_what_the_step_makes)
{
    fut_pool *pool = pool_new(2);
    struct chainer a = {.pool = pool}, b = {.pool = pool};
    fut_future *f = fut_chain(fut_chain(fut_spawn(pool, task_value, (void *)3),
                                        step, &a),
                              step, &b);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)5);
    ck_assert_int_eq(atomic_load(&a.runs) + atomic_load(&b.runs), 2);
    fut_release(f);

    struct chainer bad = {.pool = pool, .fail = ENOENT};
    f = fut_chain(fut_spawn(pool, task_value, NULL), step, &bad);
    ck_assert_int_eq(fut_await(f, &v), ENOENT);
    fut_release(f);
    struct chainer empty = {.pool = pool, .no_next = true};
    f = fut_chain(fut_spawn(pool, task_value, NULL), step, &empty);
    ck_assert_int_eq(fut_await(f, &v), EINVAL);
    fut_release(f);
    struct chainer skipped = {.pool = pool};
    f = fut_chain(fut_spawn(pool, task_fail, (void *)EIO), step, &skipped);
    ck_assert_int_eq(fut_await(f, &v), EIO);
    ck_assert_int_eq(atomic_load(&skipped.runs), 0);
    fut_release(f);
    ck_assert_int_eq(await_rc(fut_chain(NULL, step, &a)), EINVAL);
    fut_future *done = fut_spawn(pool, task_value, NULL);
    ck_assert_int_eq(fut_await(done, NULL), 0); /* so the stats settle */
    ck_assert_int_eq(await_rc(fut_chain(done, NULL, NULL)), EINVAL);
    assert_stats_balanced(pool);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* While a chain follows a promise nobody has kept yet, it holds no
 * worker: the pool's only worker runs other tasks meanwhile. Cancelling
 * it then cancels the promise's future (keeping it gives EALREADY). */
START_TEST(chain_holds_no_worker_and_cancels_inward)
{
    fut_pool *pool = pool_new(1);
    struct chainer c = {.pool = pool, .p = (fut_promise *)1};
    fut_future *f = fut_chain(fut_spawn(pool, task_value, NULL), step, &c);
    for (int i = 0; i < 10 && atomic_load(&c.runs) == 0; i++) {
        fut_future *nap = fut_sleep(pool, 5);
        fut_await(nap, NULL);
        fut_release(nap);
    }
    ck_assert_int_eq(atomic_load(&c.runs), 1);
    fut_future *other = fut_spawn(pool, task_value, (void *)9);
    void *v;
    ck_assert_int_eq(fut_await(other, &v), 0); /* the worker is free */
    ck_assert_ptr_eq(v, (void *)9);
    fut_release(other);
    ck_assert(!fut_is_ready(f));
    ck_assert_int_eq(fut_promise_resolve(c.p, (void *)6), 0);
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)6);
    fut_release(f);

    struct chainer d = {.pool = pool, .p = (fut_promise *)1};
    f = fut_chain(fut_spawn(pool, task_value, NULL), step, &d);
    for (int i = 0; i < 100 && !(atomic_load(&d.runs) == 1 && d.p != (fut_promise *)1); i++) {
        fut_future *nap = fut_sleep(pool, 1);
        fut_await(nap, NULL);
        fut_release(nap);
    }
    ck_assert_int_eq(fut_cancel(f), 0); /* following: cancelled */
    ck_assert_int_eq(fut_await(f, NULL), ECANCELED);
    ck_assert_int_eq(fut_promise_resolve(d.p, NULL), EALREADY);
    fut_release(f);
    assert_stats_balanced(pool);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* Cancelled while its step runs: the step finishes, then what it made is
 * cancelled. Destroy does not wait for a chain that follows a promise:
 * kept later, the chain still completes with its value. */
START_TEST(chain_cancel_while_running_and_destroy)
{
    fut_pool *pool = pool_new(1);
    gate g;
    gate_init(&g);
    struct chainer c = {.pool = pool, .p = (fut_promise *)1, .hold = &g};
    fut_future *f = fut_chain(fut_spawn(pool, task_value, NULL), step, &c);
    gate_wait_arrived(&g, 1);
    ck_assert_int_eq(fut_cancel(f), EBUSY);
    gate_open(&g);
    ck_assert_int_eq(fut_await(f, NULL), ECANCELED);
    ck_assert_int_eq(fut_promise_resolve(c.p, NULL), EALREADY);
    fut_release(f);
    assert_stats_balanced(pool);

    struct chainer d = {.pool = pool, .p = (fut_promise *)1};
    f = fut_chain(fut_spawn(pool, task_value, NULL), step, &d);
    while (atomic_load(&d.runs) == 0 || fut_is_ready(f) ||
           d.p == (fut_promise *)1) {
        fut_future *nap = fut_sleep(pool, 1);
        fut_await(nap, NULL);
        fut_release(nap);
    }
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    ck_assert(!fut_is_ready(f));
    ck_assert_int_eq(fut_promise_resolve(d.p, (void *)7), 0);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)7);
    fut_release(f);
}
END_TEST

static int sum_values(void *arg, void *input, void **value)
{
    void **values = input; /* the all's own array, valid for this call */
    intptr_t sum = 0;
    for (intptr_t i = 0; i < (intptr_t)arg; i++)
        sum += (intptr_t)values[i];
    *value = (void *)sum;
    return 0;
}

/* fut_all_values gathers the inputs' values in input order, in an array
 * the future owns; a failure gives the lowest-index error and no array;
 * a continuation reads the array; n == 0 and bad arguments. */
START_TEST(all_values_gathers)
{
    fut_pool *pool = pool_new(2);
    fut_promise *p;
    fut_future *in[4];
    for (intptr_t i = 0; i < 3; i++)
        in[i] = fut_spawn(pool, task_value, (void *)(i + 1));
    ck_assert_int_eq(fut_promise_create(pool, &p, &in[3]), 0);
    fut_future *all = fut_all_values(in, 4);
    fut_future *sum = fut_then(fut_retain(all), sum_values, (void *)4);
    ck_assert(!fut_is_ready(all));
    ck_assert_int_eq(fut_promise_resolve(p, (void *)40), 0);
    void *v;
    ck_assert_int_eq(fut_await(all, &v), 0);
    void **values = v;
    ck_assert_ptr_eq(values[0], (void *)1);
    ck_assert_ptr_eq(values[2], (void *)3);
    ck_assert_ptr_eq(values[3], (void *)40);
    ck_assert_int_eq(fut_await(sum, &v), 0);
    ck_assert_ptr_eq(v, (void *)46);
    fut_release(sum);
    fut_release(all); /* frees the array */
    for (int i = 0; i < 4; i++)
        fut_release(in[i]);

    fut_future *mixed[3] = {fut_spawn(pool, task_value, (void *)1),
                            fut_spawn(pool, task_fail, (void *)EIO),
                            fut_spawn(pool, task_fail, (void *)ENOENT)};
    all = fut_all_values(mixed, 3);
    ck_assert_int_eq(fut_await(all, &v), EIO);
    ck_assert_ptr_null(v);
    fut_release(all);
    for (int i = 0; i < 3; i++)
        fut_release(mixed[i]);

    all = fut_all_values(NULL, 0);
    ck_assert_int_eq(fut_await(all, &v), 0);
    ck_assert_ptr_null(v);
    fut_release(all);
    ck_assert_int_eq(await_rc(fut_all_values(NULL, 2)), EINVAL);
    fut_future *none[1] = {NULL};
    ck_assert_int_eq(await_rc(fut_all_values(none, 1)), EINVAL);
    ck_assert_int_eq(await_rc(fut_all_values(in, SIZE_MAX)), ENOMEM);
    assert_stats_balanced(pool);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

static int step_task(void *arg, void *input, fut_future **next)
{
    *next = fut_spawn(arg, task_value, input);
    return 0;
}

struct canceller {
    fut_future *f;
    int delay_us;
    int rc;
};

static void *cancel_later(void *arg)
{
    struct canceller *c = arg;
    for (volatile int i = 0; i < c->delay_us * 50; i++)
        ;
    c->rc = fut_cancel(c->f);
    return NULL;
}

/* fut_cancel from another thread at every moment of a chain's life
 * (queued, its step running, following, done): the outcome is the value
 * or ECANCELED, a cancel that returned 0 always gives ECANCELED, nothing
 * leaks (ASan) or races (TSan), and the counts balance. */
START_TEST(chain_cancel_races)
{
    fut_pool *pool = pool_new(2);
    for (int i = 0; i < 2000; i++) {
        struct canceller c = {
            .f = fut_chain(fut_spawn(pool, task_value, (void *)5), step_task,
                           pool),
            .delay_us = i % 40};
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, cancel_later, &c), 0);
        void *v;
        int rc = fut_await(c.f, &v);
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        ck_assert_msg((rc == 0 && v == (void *)5) || rc == ECANCELED,
                      "round %d: %s", i, fut_strerror(rc));
        ck_assert(c.rc == 0 || c.rc == EBUSY || c.rc == EALREADY);
        if (c.rc == 0)
            ck_assert_int_eq(rc, ECANCELED);
        fut_release(c.f);
    }
    fut_future *nap = fut_sleep(pool, 20); /* tasks left by cancelled chains */
    fut_await(nap, NULL);
    fut_release(nap);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

static Suite *future_suite(void)
{
    Suite *s = suite_create("future");
    FUT_TCASE(s, "basics", spawn_value_and_error, makers_never_return_null,
              bad_arguments_to_waits, await_for_times_out, retain_release,
              units_have_ids,
              strerror_names_codes);
    FUT_TCASE(s, "then", then_chains, failure_flows_forward,
              continuations_run_on_input_pool, long_failing_chain,
              long_chain_runs);
    FUT_TCASE(s, "recovery", catch_recovers_or_fails_again,
              finally_runs_on_any_outcome,
              catch_sees_timeouts_cancels_and_chains,
              catch_cancel_destroy_and_no_pool);
    FUT_TCASE(s, "chain", chain_follows_what_the_step_makes,
              chain_holds_no_worker_and_cancels_inward,
              chain_cancel_while_running_and_destroy, chain_cancel_races);
    FUT_TCASE(s, "any", any_first_to_complete_wins,
              any_cancels_the_rest_and_arguments, join_settled_reports_each,
              all_values_gathers);
    FUT_TCASE(s, "all", all_and_join_all, all_of_nothing,
              join_all_in_any_completion_order,
              all_releases_inputs_early, await_any_lowest_ready);
    FUT_TCASE(s, "threads", many_awaiters_see_the_same,
              last_release_on_another_thread);
    return s;
}

FUT_TEST_MAIN(future_suite)
