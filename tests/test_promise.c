/* Promises: keeping, rejecting, cancelling, and outliving the pool. */
#include "helpers.h"

START_TEST(resolve_and_reject)
{
    fut_pool *pool = pool_new(1);
    fut_promise *p;
    fut_future *f;
    ck_assert_int_eq(fut_promise_create(pool, &p, &f), 0);
    ck_assert(!fut_is_ready(f));
    ck_assert_int_eq(fut_promise_resolve(p, (void *)5), 0);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)5);
    fut_release(f);

    ck_assert_int_eq(fut_promise_create(pool, &p, &f), 0);
    /* Rejecting with 0 is refused and leaves the promise usable. */
    ck_assert_int_eq(fut_promise_reject(p, 0), EINVAL);
    ck_assert(!fut_is_ready(f));
    ck_assert_int_eq(fut_promise_reject(p, EPIPE), 0);
    ck_assert_int_eq(fut_await(f, &v), EPIPE);
    ck_assert_ptr_null(v);
    fut_release(f);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(bad_arguments)
{
    fut_pool *pool = pool_new(1);
    fut_promise *p = NULL;
    fut_future *f = NULL;
    ck_assert_int_eq(fut_promise_create(NULL, &p, &f), EINVAL);
    ck_assert_int_eq(fut_promise_create(pool, NULL, &f), EINVAL);
    ck_assert_int_eq(fut_promise_create(pool, &p, NULL), EINVAL);
    ck_assert_ptr_null(p);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(fut_promise_resolve(NULL, NULL), EINVAL);
    ck_assert_int_eq(fut_promise_reject(NULL, EIO), EINVAL);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(cancelled_before_kept)
{
    fut_pool *pool = pool_new(1);
    fut_promise *p;
    fut_future *f;
    fut_promise_create(pool, &p, &f);
    ck_assert_int_eq(fut_cancel(f), 0);
    ck_assert_int_eq(fut_promise_resolve(p, (void *)1), EALREADY);
    ck_assert_int_eq(fut_await(f, NULL), ECANCELED);
    fut_release(f);
    fut_promise_create(pool, &p, &f);
    fut_cancel(f);
    ck_assert_int_eq(fut_promise_reject(p, EIO), EALREADY);
    fut_release(f);
    fut_pool_destroy(pool);
}
END_TEST

static void *resolver(void *p)
{
    fut_promise_resolve(p, (void *)77);
    return NULL;
}

START_TEST(kept_from_another_thread)
{
    fut_pool *pool = pool_new(2);
    for (int i = 0; i < 200; i++) {
        fut_promise *p;
        fut_future *f;
        fut_promise_create(pool, &p, &f);
        fut_future *c = fut_then(fut_retain(f), then_add, (void *)1);
        pthread_t th;
        pthread_create(&th, NULL, resolver, p);
        void *v;
        ck_assert_int_eq(fut_await(c, &v), 0);
        ck_assert_ptr_eq(v, (void *)78);
        ck_assert_int_eq(fut_await(f, &v), 0);
        ck_assert_ptr_eq(v, (void *)77);
        pthread_join(th, NULL);
        fut_release(c);
        fut_release(f);
    }
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(kept_after_pool_is_gone)
{
    fut_pool *pool = pool_new(2);
    fut_promise *p, *q;
    fut_future *f, *g;
    fut_promise_create(pool, &p, &f);
    fut_promise_create(pool, &q, &g);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    /* The pool is gone; the promises still complete their futures. */
    ck_assert_int_eq(fut_promise_resolve(p, (void *)3), 0);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)3);
    /* A continuation on a future of a gone pool: failure flows on,
     * success cannot run (ESHUTDOWN). */
    fut_future *c = fut_then(fut_retain(f), then_add, NULL);
    ck_assert_int_eq(fut_await(c, NULL), ESHUTDOWN);
    fut_release(c);
    fut_future *pending_c = fut_then(fut_retain(g), then_add, NULL);
    ck_assert_int_eq(fut_promise_reject(q, EIO), 0);
    ck_assert_int_eq(fut_await(pending_c, NULL), EIO);
    fut_release(pending_c);
    fut_release(f);
    fut_release(g);
}
END_TEST

START_TEST(unkept_promise_at_destroy)
{
    fut_pool *pool = pool_new(2);
    atomic_int runs = 0;
    fut_promise *p;
    fut_future *f;
    fut_promise_create(pool, &p, &f);
    fut_future *c = fut_then(fut_retain(f), then_count, &runs);
    fut_future *cc = fut_then(fut_retain(c), then_count, &runs);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    /* Continuations that can no longer run completed with ECANCELED. */
    ck_assert(fut_is_ready(c));
    ck_assert_int_eq(fut_await(c, NULL), ECANCELED);
    ck_assert_int_eq(fut_await(cc, NULL), ECANCELED);
    ck_assert(!fut_is_ready(f));
    ck_assert_int_eq(fut_promise_resolve(p, NULL), 0);
    ck_assert_int_eq(fut_await(f, NULL), 0);
    ck_assert_int_eq(atomic_load(&runs), 0);
    fut_release(c);
    fut_release(cc);
    fut_release(f);
}
END_TEST

/* One rejection fans out to 40 continuations, each with a continuation of
 * its own: every failure passes on inline, the fires queued behind the
 * one in progress (more than the queue's first 16 slots), and all 80 fail
 * with the promise's error without running. */
START_TEST(failure_fans_out_to_many)
{
    enum { N = 40 };
    fut_pool *pool = pool_new(2);
    atomic_int runs = 0;
    fut_promise *p;
    fut_future *f, *c[N], *cc[N];
    ck_assert_int_eq(fut_promise_create(pool, &p, &f), 0);
    for (int i = 0; i < N; i++) {
        c[i] = fut_then(fut_retain(f), then_count, &runs);
        cc[i] = fut_then(fut_retain(c[i]), then_count, &runs);
    }
    ck_assert_int_eq(fut_promise_reject(p, EPIPE), 0);
    for (int i = 0; i < N; i++) {
        ck_assert(fut_is_ready(cc[i])); /* all inline, before reject returned */
        ck_assert_int_eq(fut_await(c[i], NULL), EPIPE);
        ck_assert_int_eq(fut_await(cc[i], NULL), EPIPE);
        fut_release(c[i]);
        fut_release(cc[i]);
    }
    ck_assert_int_eq(atomic_load(&runs), 0);
    fut_release(f);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

static int keep_promise(void *arg, void **value)
{
    *value = NULL;
    return fut_promise_resolve(arg, (void *)4);
}

/* A task keeps a promise whose future has a continuation: the
 * continuation is queued from inside the task and runs with the value. */
START_TEST(kept_inside_a_task)
{
    for (size_t threads = 1; threads <= 2; threads++) {
        fut_pool *pool = pool_new(threads);
        fut_promise *p;
        fut_future *f;
        ck_assert_int_eq(fut_promise_create(pool, &p, &f), 0);
        fut_future *c = fut_then(f, then_add, (void *)1);
        fut_future *t = fut_spawn(pool, keep_promise, p);
        void *v;
        ck_assert_int_eq(fut_await(t, NULL), 0);
        ck_assert_int_eq(fut_await(c, &v), 0);
        ck_assert_ptr_eq(v, (void *)5);
        fut_release(t);
        fut_release(c);
        assert_stats_balanced(pool);
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    }
}
END_TEST

static Suite *promise_suite(void)
{
    Suite *s = suite_create("promise");
    FUT_TCASE(s, "promise", resolve_and_reject, bad_arguments,
              cancelled_before_kept, kept_from_another_thread,
              kept_after_pool_is_gone, unkept_promise_at_destroy,
              failure_fans_out_to_many, kept_inside_a_task);
    return s;
}

FUT_TEST_MAIN(promise_suite)
