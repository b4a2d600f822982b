/* Groups and fut_parallel_for. */
#include "helpers.h"

#include <string.h>

static int child_count(void *arg, void **value)
{
    (void)value;
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

START_TEST(group_joins_children)
{
    fut_pool *pool = pool_new(2);
    fut_group *g;
    ck_assert_int_eq(fut_group_create(pool, &g), 0);
    ck_assert_int_eq(fut_group_wait(g), 0); /* empty */
    atomic_int runs = 0;
    for (int i = 0; i < 500; i++)
        ck_assert_int_eq(fut_group_spawn(g, child_count, &runs), 0);
    ck_assert_int_eq(fut_group_wait(g), 0);
    ck_assert_int_eq(atomic_load(&runs), 500);
    /* Used again after a wait. */
    for (int i = 0; i < 10; i++)
        fut_group_spawn(g, child_count, &runs);
    ck_assert_int_eq(fut_group_wait(g), 0);
    ck_assert_int_eq(atomic_load(&runs), 510);
    assert_stats_balanced(pool);
    fut_pool_stats st;
    fut_pool_stats_get(pool, &st);
    ck_assert_uint_eq(st.spawned, 510);
    fut_group_destroy(g);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(group_bad_arguments)
{
    fut_pool *pool = pool_new(1);
    fut_group *g = NULL;
    ck_assert_int_eq(fut_group_create(NULL, &g), EINVAL);
    ck_assert_int_eq(fut_group_create(pool, NULL), EINVAL);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(fut_group_spawn(NULL, task_value, NULL), EINVAL);
    ck_assert_int_eq(fut_group_create(pool, &g), 0);
    ck_assert_int_eq(fut_group_spawn(g, NULL, NULL), EINVAL);
    ck_assert_int_eq(fut_group_wait(NULL), EINVAL);
    fut_group_destroy(NULL);
    fut_group_destroy(g);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(group_first_error)
{
    fut_pool *pool = pool_new(1); /* one worker: children run in order */
    fut_group *g;
    fut_group_create(pool, &g);
    atomic_int runs = 0;
    fut_group_spawn(g, child_count, &runs);
    fut_group_spawn(g, task_fail, (void *)102);
    fut_group_spawn(g, child_count, &runs);
    fut_group_spawn(g, task_fail, (void *)105);
    ck_assert_int_eq(fut_group_wait(g), 102);
    ck_assert_int_eq(atomic_load(&runs), 2); /* every child ran */
    fut_pool_stats st;
    fut_pool_stats_get(pool, &st);
    ck_assert_uint_eq(st.failed, 2);
    fut_group_destroy(g);
    fut_pool_destroy(pool);
}
END_TEST

struct tree {
    fut_group *g;
    atomic_int *leaves;
    int depth;
};

static int tree_child(void *arg, void **value)
{
    (void)value;
    struct tree *t = arg;
    if (t->depth == 0) {
        atomic_fetch_add(t->leaves, 1);
    } else {
        for (int i = 0; i < 2; i++) {
            struct tree *c = malloc(sizeof(*c));
            *c = (struct tree){t->g, t->leaves, t->depth - 1};
            if (fut_group_spawn(t->g, tree_child, c))
                free(c);
        }
    }
    free(t);
    return 0;
}

START_TEST(children_spawn_children)
{
    for (size_t threads = 1; threads <= 3; threads++) {
        fut_pool *pool = pool_new(threads);
        fut_group *g;
        fut_group_create(pool, &g);
        atomic_int leaves = 0;
        struct tree *root = malloc(sizeof(*root));
        *root = (struct tree){g, &leaves, 12};
        fut_group_spawn(g, tree_child, root);
        ck_assert_int_eq(fut_group_wait(g), 0);
        ck_assert_int_eq(atomic_load(&leaves), 1 << 12);
        fut_group_destroy(g);
        fut_pool_destroy(pool);
    }
}
END_TEST

struct fib {
    fut_pool *pool;
    unsigned n;
    uintptr_t result;
};

static int fib_group(void *arg, void **value)
{
    (void)value;
    struct fib *f = arg;
    if (f->n < 2) {
        f->result = f->n;
        return 0;
    }
    struct fib a = {f->pool, f->n - 1, 0}, b = {f->pool, f->n - 2, 0};
    fut_group *g;
    if (fut_group_create(f->pool, &g))
        return ENOMEM;
    fut_group_spawn(g, fib_group, &a);
    fib_group(&b, NULL);
    int rc = fut_group_wait(g); /* on a worker: runs a meanwhile */
    fut_group_destroy(g);
    f->result = a.result + b.result;
    return rc;
}

START_TEST(group_wait_inside_task_one_thread)
{
    fut_pool *pool = pool_new(1);
    struct fib root = {pool, 18, 0};
    fut_future *f = fut_spawn(pool, fib_group, &root);
    ck_assert_int_eq(fut_await(f, NULL), 0);
    ck_assert_uint_eq(root.result, 2584);
    fut_release(f);
    assert_stats_balanced(pool);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(group_destroy_waits)
{
    fut_pool *pool = pool_new(2);
    fut_group *g;
    fut_group_create(pool, &g);
    atomic_int runs = 0;
    for (int i = 0; i < 100; i++)
        fut_group_spawn(g, child_count, &runs);
    fut_group_destroy(g);
    ck_assert_int_eq(atomic_load(&runs), 100);
    fut_pool_destroy(pool);
}
END_TEST

/* ---- fut_parallel_for --------------------------------------------------- */

enum { N = 10007 };

struct visit {
    atomic_int seen[N];
    size_t grain;
    atomic_int bad_chunk;
    atomic_int calls;
};

static int visit_range(void *arg, size_t lo, size_t hi)
{
    struct visit *v = arg;
    atomic_fetch_add(&v->calls, 1);
    if (lo % v->grain != 0 || (hi - lo != v->grain && hi != N))
        atomic_store(&v->bad_chunk, 1);
    for (size_t i = lo; i < hi; i++)
        atomic_fetch_add(&v->seen[i], 1);
    return 0;
}

static void check_visits(fut_pool *pool, size_t grain)
{
    static struct visit v;
    memset(&v, 0, sizeof(v));
    v.grain = grain ? grain : 1;
    ck_assert_int_eq(fut_parallel_for(pool, 0, N, grain, visit_range, &v), 0);
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(atomic_load(&v.seen[i]), 1);
    ck_assert_int_eq(atomic_load(&v.bad_chunk), 0);
    ck_assert_int_eq(atomic_load(&v.calls),
                     (int)(N / v.grain + (N % v.grain != 0)));
}

START_TEST(parallel_for_covers_range)
{
    size_t grains[] = {0, 1, 7, 100, 5000, N, N * 2};
    for (size_t threads = 1; threads <= 3; threads++) {
        fut_pool *pool = pool_new(threads);
        for (size_t i = 0; i < sizeof(grains) / sizeof(grains[0]); i++)
            check_visits(pool, grains[i]);
        assert_stats_balanced(pool);
        fut_pool_destroy(pool);
    }
}
END_TEST

struct scope {
    gate g;
    atomic_int ran, saw_cancel;
};

/* The first child holds the only worker at the gate, then reports whether
 * it saw its group's cancel; the others count their runs. */
static int scope_child(void *arg, void **value)
{
    struct scope *sc = arg;
    atomic_fetch_add(&sc->ran, 1);
    thread_check(!fut_cancel_requested());
    task_gate(&sc->g, value);
    if (fut_cancel_requested()) {
        atomic_fetch_add(&sc->saw_cancel, 1);
        return ECANCELED;
    }
    return 0;
}

static int scope_other(void *arg, void **value)
{
    (void)value;
    atomic_fetch_add(&((struct scope *)arg)->ran, 1);
    return 0;
}

/* fut_group_cancel: the running child sees fut_cancel_requested(), the
 * queued ones never run (counted as cancelled units), later spawns are
 * refused with ECANCELED, and the wait reports ECANCELED. A group whose
 * child failed first keeps that error. */
START_TEST(group_cancel_as_a_scope)
{
    fut_pool *pool = pool_new(1);
    struct scope sc = {.ran = 0, .saw_cancel = 0};
    gate_init(&sc.g);
    fut_group *g;
    ck_assert_int_eq(fut_group_create(pool, &g), 0);
    ck_assert_int_eq(fut_group_spawn(g, scope_child, &sc), 0);
    gate_wait_arrived(&sc.g, 1);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(fut_group_spawn(g, scope_other, &sc), 0);
    ck_assert_int_eq(fut_group_cancel(g), 0);
    ck_assert_int_eq(fut_group_spawn(g, scope_other, &sc), ECANCELED);
    gate_open(&sc.g);
    ck_assert_int_eq(fut_group_wait(g), ECANCELED);
    ck_assert_int_eq(atomic_load(&sc.ran), 1);
    ck_assert_int_eq(atomic_load(&sc.saw_cancel), 1);
    fut_pool_stats st;
    ck_assert_int_eq(fut_pool_stats_get(pool, &st), 0);
    ck_assert_uint_eq(st.cancelled, 5);
    assert_stats_balanced(pool);
    fut_group_destroy(g);

    ck_assert_int_eq(fut_group_create(pool, &g), 0);
    ck_assert_int_eq(fut_group_spawn(g, task_fail, (void *)EIO), 0);
    ck_assert_int_eq(fut_group_wait(g), EIO);
    ck_assert_int_eq(fut_group_cancel(g), 0);
    ck_assert_int_eq(fut_group_wait(g), EIO); /* the first error stays */
    fut_group_destroy(g);
    ck_assert_int_eq(fut_group_cancel(NULL), EINVAL);
    ck_assert(!fut_cancel_requested());
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

struct self_wait {
    fut_group *g;
    atomic_int rc;
};

static int wait_own_group(void *arg, void **value)
{
    (void)value;
    struct self_wait *w = arg;
    atomic_store(&w->rc, fut_group_wait(w->g));
    return 0;
}

/* A child that waits for its own group would wait for itself: EDEADLK at
 * once; the group's own wait still works. */
START_TEST(group_wait_from_own_child_is_edeadlk)
{
    fut_pool *pool = pool_new(2);
    struct self_wait w = {.rc = -1};
    ck_assert_int_eq(fut_group_create(pool, &w.g), 0);
    ck_assert_int_eq(fut_group_spawn(w.g, wait_own_group, &w), 0);
    ck_assert_int_eq(fut_group_wait(w.g), 0);
    ck_assert_int_eq(atomic_load(&w.rc), EDEADLK);
    fut_group_destroy(w.g);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

static atomic_int empty_calls;

static int count_call(void *arg, size_t lo, size_t hi)
{
    (void)arg;
    (void)lo;
    (void)hi;
    atomic_fetch_add(&empty_calls, 1);
    return 0;
}

static int empty_loop_task(void *arg, void **value)
{
    (void)value;
    return fut_parallel_for(arg, 4, 4, 1, count_call, NULL);
}

/* An empty range returns 0 at once on a worker too, calling nothing.
 * (Before, a worker queued helpers for a range of no chunks and waited
 * forever for a last chunk.) */
START_TEST(parallel_for_empty_range_on_a_worker)
{
    for (size_t threads = 1; threads <= 2; threads++) {
        fut_pool *pool = pool_new(threads);
        atomic_store(&empty_calls, 0);
        fut_future *f = fut_spawn(pool, empty_loop_task, pool);
        ck_assert_int_eq(fut_await(f, NULL), 0);
        fut_release(f);
        ck_assert_int_eq(atomic_load(&empty_calls), 0);
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    }
}
END_TEST

START_TEST(parallel_for_bad_arguments)
{
    fut_pool *pool = pool_new(1);
    atomic_int calls = 0;
    ck_assert_int_eq(fut_parallel_for(NULL, 0, 1, 1, visit_range, NULL),
                     EINVAL);
    ck_assert_int_eq(fut_parallel_for(pool, 0, 1, 1, NULL, NULL), EINVAL);
    ck_assert_int_eq(fut_parallel_for(pool, 5, 4, 1, visit_range, NULL),
                     EINVAL);
    ck_assert_int_eq(fut_parallel_for(pool, 4, 4, 1, visit_range, &calls), 0);
    ck_assert_int_eq(atomic_load(&calls), 0);
    fut_pool_destroy(pool);
}
END_TEST

struct failing {
    size_t fail_at;
    atomic_int ran;
};

static int fail_range(void *arg, size_t lo, size_t hi)
{
    struct failing *f = arg;
    atomic_fetch_add(&f->ran, 1);
    return f->fail_at >= lo && f->fail_at < hi ? EDOM : 0;
}

START_TEST(parallel_for_first_error_skips_rest)
{
    fut_pool *pool = pool_new(2);
    struct failing f = {.fail_at = 0};
    ck_assert_int_eq(fut_parallel_for(pool, 0, 100000, 1, fail_range, &f),
                     EDOM);
    ck_assert_int_lt(atomic_load(&f.ran), 100000);
    fut_pool_stats st;
    fut_pool_stats_get(pool, &st);
    ck_assert_uint_eq(st.spawned, 100000);
    ck_assert_uint_eq(st.completed, (uint64_t)atomic_load(&f.ran));
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_uint_gt(st.cancelled, 0);
    assert_stats_balanced(pool);
    fut_pool_destroy(pool);
}
END_TEST

struct big {
    atomic_size_t covered;
};

static int big_range(void *arg, size_t lo, size_t hi)
{
    atomic_fetch_add(&((struct big *)arg)->covered, hi - lo);
    return 0;
}

START_TEST(parallel_for_huge_indices)
{
    fut_pool *pool = pool_new(2);
    struct big b = {0};
    size_t begin = SIZE_MAX - 1000, grain = SIZE_MAX / 2;
    ck_assert_int_eq(
        fut_parallel_for(pool, begin, SIZE_MAX, grain, big_range, &b), 0);
    ck_assert_uint_eq(atomic_load(&b.covered), 1000);
    atomic_store(&b.covered, 0);
    ck_assert_int_eq(
        fut_parallel_for(pool, 0, SIZE_MAX, SIZE_MAX / 3, big_range, &b), 0);
    ck_assert_uint_eq(atomic_load(&b.covered), SIZE_MAX);
    fut_pool_destroy(pool);
}
END_TEST

struct nested {
    fut_pool *pool;
    atomic_int inner;
};

static int inner_range(void *arg, size_t lo, size_t hi)
{
    atomic_fetch_add(&((struct nested *)arg)->inner, (int)(hi - lo));
    return 0;
}

static int outer_range(void *arg, size_t lo, size_t hi)
{
    struct nested *n = arg;
    for (size_t i = lo; i < hi; i++) {
        int rc = fut_parallel_for(n->pool, 0, 100, 3, inner_range, n);
        if (rc)
            return rc;
    }
    return 0;
}

static int task_parallel_for(void *arg, void **value)
{
    (void)value;
    return fut_parallel_for(((struct nested *)arg)->pool, 0, 50, 1, outer_range,
                            arg);
}

START_TEST(parallel_for_nested_and_inside_tasks)
{
    for (size_t threads = 1; threads <= 2; threads++) {
        fut_pool *pool = pool_new(threads);
        struct nested n = {pool, 0};
        fut_future *f = fut_spawn(pool, task_parallel_for, &n);
        ck_assert_int_eq(fut_await(f, NULL), 0);
        ck_assert_int_eq(atomic_load(&n.inner), 50 * 100);
        fut_release(f);
        atomic_store(&n.inner, 0);
        ck_assert_int_eq(fut_parallel_for(pool, 0, 50, 1, outer_range, &n), 0);
        ck_assert_int_eq(atomic_load(&n.inner), 50 * 100);
        assert_stats_balanced(pool);
        fut_pool_destroy(pool);
    }
}
END_TEST

START_TEST(refused_while_closing)
{
    closing c;
    closing_start(&c, NULL, NULL);
    fut_group *g;
    fut_group_create(c.pool, &g);
    atomic_int runs = 0;
    int rc, accepted = 0;
    while ((rc = fut_group_spawn(g, child_count, &runs)) == 0)
        accepted++; /* until destroy has begun; accepted children still run */
    ck_assert_int_eq(rc, ESHUTDOWN);
    ck_assert_int_eq(fut_parallel_for(c.pool, 0, 10, 1, inner_range, NULL),
                     ESHUTDOWN);
    gate_open(&c.g);
    ck_assert_int_eq(fut_group_wait(g), 0);
    /* every accepted child ran, exactly once; the refused ones never */
    ck_assert_int_eq(atomic_load(&runs), accepted);
    fut_group_destroy(g);
    closing_finish(&c);
    fut_release(c.held);
}
END_TEST

/* A task waits for a group whose child awaits the task: a cycle through
 * the group, EDEADLK (to the task, or to the child, whose error becomes
 * the group's) instead of a hang; on one worker and on two. */
static int child_awaits(void *slot, void **value)
{
    (void)value;
    void *parent;
    thread_check(fut_await(slot, &parent) == 0);
    return fut_await(parent, NULL);
}

typedef struct group_cycle {
    fut_pool *pool;
    fut_group *group;
    fut_future *slot; /* its value: the parent's own future */
} group_cycle;

static int parent_waits_group(void *arg, void **value)
{
    group_cycle *gc = arg;
    *value = (void *)(intptr_t)fut_group_wait(gc->group);
    return 0;
}

/* The child is spawned first, from outside the pool: on two workers it
 * runs beside the parent (the cycle is found through the frames), on one
 * the parent runs on top of the child's wait (through the marks). */
START_TEST(cycle_through_a_group_is_edeadlk)
{
    for (size_t threads = 1; threads <= 2; threads++) {
        fut_pool *pool = pool_new(threads);
        for (int round = 0; round < 20; round++) {
            fut_promise *p;
            group_cycle gc = {pool, NULL, NULL};
            ck_assert_int_eq(fut_promise_create(pool, &p, &gc.slot), 0);
            ck_assert_int_eq(fut_group_create(pool, &gc.group), 0);
            ck_assert_int_eq(fut_group_spawn(gc.group, child_awaits, gc.slot),
                             0);
            fut_future *parent = fut_spawn(pool, parent_waits_group, &gc);
            ck_assert_int_eq(fut_promise_resolve(p, parent), 0);
            void *v;
            ck_assert_int_eq(fut_await(parent, &v), 0);
            ck_assert_int_eq((int)(intptr_t)v, EDEADLK);
            /* the child may still be on its way to await the parent (when
             * the parent was the one told EDEADLK): it ends before the
             * parent's last reference goes */
            (void)fut_group_wait(gc.group);
            fut_release(parent);
            fut_group_destroy(gc.group);
            fut_release(gc.slot);
        }
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    }
}
END_TEST

static Suite *group_suite(void)
{
    Suite *s = suite_create("group");
    FUT_TCASE(s, "group", group_joins_children, group_bad_arguments,
              group_cancel_as_a_scope, group_wait_from_own_child_is_edeadlk,
              group_first_error, children_spawn_children,
              group_wait_inside_task_one_thread, group_destroy_waits,
              cycle_through_a_group_is_edeadlk);
    FUT_TCASE(s, "parallel_for", parallel_for_covers_range, parallel_for_empty_range_on_a_worker,
              parallel_for_bad_arguments, parallel_for_first_error_skips_rest,
              parallel_for_huge_indices, parallel_for_nested_and_inside_tasks,
              refused_while_closing);
    return s;
}

FUT_TEST_MAIN(group_suite)
