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

static Suite *promise_suite(void)
{
    Suite *s = suite_create("promise");
    FUT_TCASE(s, "promise", resolve_and_reject, bad_arguments,
              cancelled_before_kept, kept_from_another_thread,
              kept_after_pool_is_gone, unkept_promise_at_destroy);
    return s;
}

FUT_TEST_MAIN(promise_suite)
