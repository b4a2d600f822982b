/*
 * The scheduler's rules, seen from the public API (and, for memory
 * layout, from src/ headers): aligned memory, waits that cannot blow the
 * stack, new work to idle workers first, fairness to outside spawns,
 * fut_join, and pushes that no worker misses.
 */
#include "../src/internal.h"
#include "helpers.h"

#include <unistd.h>

/* ---- Point 7: over-aligned memory --------------------------------------- */

START_TEST(pool_memory_is_aligned)
{
    for (size_t threads = 1; threads <= 5; threads++) {
        fut_pool *pool = pool_new(threads);
        ck_assert_uint_eq((uintptr_t)pool % 64, 0);
        ck_assert_uint_eq((uintptr_t)pool->local % 64, 0);
        ck_assert_uint_eq((uintptr_t)pool->sched.workers % 64, 0);
        for (size_t i = 0; i < threads; i++) {
            ck_assert_uint_eq((uintptr_t)&pool->sched.workers[i] % 64, 0);
            ck_assert_uint_eq((uintptr_t)&pool->local[i] % 64, 0);
            ck_assert_uint_eq(
                (uintptr_t)&pool->sched.workers[i].deque.bottom % 64, 0);
        }
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    }
}
END_TEST

/* ---- Point 6: waits that cannot blow the stack -------------------------- */

struct gate_wait {
    fut_future *gate;
    atomic_int done;
};

static int await_gate(void *arg, void **value)
{
    struct gate_wait *g = arg;
    int rc = fut_await(g->gate, value);
    atomic_fetch_add(&g->done, 1);
    return rc;
}

/* 200,000 tasks on 2 threads each await one gate, kept after all are
 * spawned: a wait on a worker runs queued work on top of the waiting
 * task only FUT_HELP_DEPTH_MAX deep, then blocks. (Before the bound, the
 * help nesting crashed with a stack overflow.) */
START_TEST(waits_do_not_overflow_the_stack)
{
    enum { N = 200000 };
    fut_pool *pool = pool_new(2);
    fut_promise *p;
    struct gate_wait g = {.done = 0};
    ck_assert_int_eq(fut_promise_create(pool, &p, &g.gate), 0);
    fut_future **fs = malloc(N * sizeof(*fs));
    for (int i = 0; i < N; i++)
        fs[i] = fut_spawn(pool, await_gate, &g);
    ck_assert_int_eq(fut_promise_resolve(p, (void *)7), 0);
    ck_assert_int_eq(fut_join_all(fs, N), 0);
    for (int i = 0; i < N; i++) {
        void *v;
        ck_assert_int_eq(fut_await(fs[i], &v), 0);
        ck_assert_ptr_eq(v, (void *)7);
        fut_release(fs[i]);
    }
    free(fs);
    ck_assert_int_eq(atomic_load(&g.done), N);
    fut_release(g.gate);
    assert_stats_balanced(pool);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* ---- New work to idle workers first ------------------------------------ */

struct idle_first {
    fut_future *wait_for; /* the promise's future the task awaits */
    atomic_int worker;    /* where the task ran                  */
    gate started;
};

static int await_promise(void *arg, void **value)
{
    struct idle_first *t = arg;
    atomic_store(&t->worker, fut_worker_index());
    pthread_mutex_lock(&t->started.lock);
    t->started.arrived++;
    pthread_cond_broadcast(&t->started.cv);
    pthread_mutex_unlock(&t->started.lock);
    return fut_await(t->wait_for, value);
}

/* On a 3-thread pool, task A awaits promise P1 on a worker; then B, which
 * awaits P2, is spawned from outside: it must run on another worker, not
 * on top of A (two are idle), so keeping P1 lets A finish while P2 is
 * still pending. (Before, the help loop took B over A.) */
START_TEST(new_work_goes_to_idle_workers_first)
{
    for (int round = 0; round < 50; round++) {
        fut_pool *pool = pool_new(3);
        fut_promise *p1, *p2;
        struct idle_first a, b;
        ck_assert_int_eq(fut_promise_create(pool, &p1, &a.wait_for), 0);
        ck_assert_int_eq(fut_promise_create(pool, &p2, &b.wait_for), 0);
        gate_init(&a.started);
        gate_init(&b.started);
        fut_future *fa = fut_spawn(pool, await_promise, &a);
        gate_wait_arrived(&a.started, 1);
        fut_future *fb = fut_spawn(pool, await_promise, &b);
        gate_wait_arrived(&b.started, 1);
        ck_assert_int_ne(atomic_load(&a.worker), atomic_load(&b.worker));
        ck_assert_int_eq(fut_promise_resolve(p1, (void *)1), 0);
        ck_assert_int_eq(fut_await(fa, NULL), 0); /* P2 is not kept yet */
        ck_assert(!fut_is_ready(fb));
        ck_assert_int_eq(fut_promise_resolve(p2, (void *)2), 0);
        ck_assert_int_eq(fut_await(fb, NULL), 0);
        fut_release(fa);
        fut_release(fb);
        fut_release(a.wait_for);
        fut_release(b.wait_for);
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    }
}
END_TEST

/* ---- Fairness ---------------------------------------------------------- */

struct spinner {
    fut_pool *pool;
    atomic_bool seen;     /* set by the outside task */
    atomic_long rounds;   /* spawn + await rounds so far */
    atomic_long rounds_seen; /* rounds when the outside task ran */
};

static int set_seen(void *arg, void **value)
{
    (void)value;
    struct spinner *s = arg;
    atomic_store(&s->rounds_seen, atomic_load(&s->rounds));
    atomic_store(&s->seen, true);
    return 0;
}

/* Spawns and awaits a child in a loop (each await runs the child inline)
 * until the outside task has run. */
static int spawn_await_loop(void *arg, void **value)
{
    struct spinner *s = arg;
    (void)value;
    for (; !atomic_load(&s->seen) && atomic_load(&s->rounds) < 10000000;
         atomic_fetch_add(&s->rounds, 1)) {
        fut_future *f = fut_spawn(s->pool, task_value, NULL);
        fut_await(f, NULL);
        fut_release(f);
    }
    return 0;
}

/* On a one-thread pool, a task that loops on spawn + await must let an
 * outside spawn run within a bounded number of units: the worker takes
 * the injection queue first every 64 units it runs or takes back. The
 * loop's rounds (two units each) from the outside spawn until the outside
 * task runs measure the bound. */
START_TEST(outside_spawn_starts_within_a_bound)
{
    for (int round = 0; round < 20; round++) {
        fut_pool *pool = pool_new(1);
        struct spinner s = {.pool = pool, .seen = false};
        fut_future *loop = fut_spawn(pool, spawn_await_loop, &s);
        /* counted from the moment the outside task is queued */
        long at_spawn = atomic_load(&s.rounds);
        fut_future *outside = fut_spawn(pool, set_seen, &s);
        ck_assert_int_eq(fut_await(loop, NULL), 0);
        ck_assert_int_eq(fut_await(outside, NULL), 0);
        ck_assert(atomic_load(&s.seen));
        ck_assert_int_le(atomic_load(&s.rounds_seen) - at_spawn, 64);
        fut_release(loop);
        fut_release(outside);
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    }
}
END_TEST

/* ---- fut_join ------------------------------------------------------------ */

struct fib {
    fut_pool *pool;
    long n;
    long result;
};

static int fib_join(void *arg)
{
    struct fib *f = arg;
    if (f->n < 2) {
        f->result = f->n;
        return 0;
    }
    struct fib a = {f->pool, f->n - 1, 0}, b = {f->pool, f->n - 2, 0};
    int rc = fut_join(f->pool, fib_join, &a, fib_join, &b);
    f->result = a.result + b.result;
    return rc;
}

static int fib_join_task(void *arg, void **value)
{
    (void)value;
    return fib_join(arg);
}

static long fib_serial(long n)
{
    return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

/* Nested fork-join completes on one thread and on many, from a task and
 * from an outside thread. */
START_TEST(join_fib)
{
    for (size_t threads = 1; threads <= 4; threads += 3) {
        fut_pool *pool = pool_new(threads);
        struct fib in = {pool, 22, 0}, out_a = {pool, 20, 0},
                   out_b = {pool, 19, 0};
        fut_future *f = fut_spawn(pool, fib_join_task, &in);
        ck_assert_int_eq(fut_join(pool, fib_join, &out_a, fib_join, &out_b), 0);
        ck_assert_int_eq(fut_await(f, NULL), 0);
        ck_assert_int_eq(in.result, fib_serial(22));
        ck_assert_int_eq(out_a.result + out_b.result, fib_serial(21));
        fut_release(f);
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    }
}
END_TEST

static int ret_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

static atomic_int ran_count;
static int count_run(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran_count, 1);
    return 0;
}

START_TEST(join_errors)
{
    fut_pool *pool = pool_new(2);
    ck_assert_int_eq(fut_join(NULL, ret_arg, NULL, ret_arg, NULL), EINVAL);
    ck_assert_int_eq(fut_join(pool, NULL, NULL, ret_arg, NULL), EINVAL);
    ck_assert_int_eq(fut_join(pool, ret_arg, NULL, NULL, NULL), EINVAL);
    /* a's error first, else b's; both always run */
    ck_assert_int_eq(fut_join(pool, ret_arg, (void *)5, ret_arg, (void *)6), 5);
    ck_assert_int_eq(fut_join(pool, ret_arg, NULL, ret_arg, (void *)6), 6);
    atomic_store(&ran_count, 0);
    ck_assert_int_eq(fut_join(pool, ret_arg, (void *)5, count_run, NULL), 5);
    ck_assert_int_eq(atomic_load(&ran_count), 1);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* Outside threads are refused once destroy has begun; nothing runs. */
START_TEST(join_refused_while_closing)
{
    closing c;
    closing_start(&c, NULL, NULL);
    fut_future *probe;
    while (fut_await_for(probe = fut_spawn(c.pool, task_value, NULL), 0,
                         NULL) != ESHUTDOWN)
        fut_release(probe); /* accepted: destroy has not begun yet */
    fut_release(probe);
    atomic_store(&ran_count, 0);
    ck_assert_int_eq(fut_join(c.pool, count_run, NULL, count_run, NULL),
                     ESHUTDOWN);
    ck_assert_int_eq(atomic_load(&ran_count), 0);
    fut_future *held = c.held;
    closing_finish(&c);
    fut_release(held);
}
END_TEST

struct blocker {
    gate *g;
    atomic_int worker_b;
};

static int wait_gate(void *arg)
{
    struct blocker *b = arg;
    void *v;
    return task_gate(b->g, &v);
}

static int note_worker(void *arg)
{
    struct blocker *b = arg;
    atomic_store(&b->worker_b, fut_worker_index());
    gate_open(b->g);
    return 0;
}

/* a blocks until b has run: b must be taken by another worker (its
 * record is on a's stack, pushed on a's deque), and the worker that
 * blocks wakes a parked one for it even though it blocks in user code. */
struct join_pair {
    fut_pool *pool;
    gate g;
    struct blocker b;
};

static int join_needs_thief(void *arg, void **value)
{
    (void)value;
    struct join_pair *p = arg;
    return fut_join(p->pool, wait_gate, &p->b, note_worker, &p->b);
}

START_TEST(join_stolen_branch_runs_elsewhere)
{
    for (int round = 0; round < 50; round++) {
        struct join_pair p;
        p.pool = pool_new(2);
        gate_init(&p.g);
        p.b.g = &p.g;
        atomic_init(&p.b.worker_b, -1);
        usleep(round % 5 * 200); /* let the other worker park, sometimes */
        fut_future *f = fut_spawn(p.pool, join_needs_thief, &p);
        ck_assert_int_eq(fut_await(f, NULL), 0);
        ck_assert_int_ge(atomic_load(&p.b.worker_b), 0);
        fut_release(f);
        ck_assert_int_eq(fut_pool_destroy(p.pool), 0);
    }
}
END_TEST

/* ---- After destroy ------------------------------------------------------ */

/* A timeout that fired stays listening to its input; when that input (a
 * promise) is kept after the pool is gone, the timeout's listener still
 * takes its (long gone) timer out: the scheduler's locks must outlive
 * destroy as long as a future holds the pool's memory. */
START_TEST(late_events_after_destroy)
{
    fut_pool *pool = pool_new(2);
    fut_promise *p;
    fut_future *in;
    ck_assert_int_eq(fut_promise_create(pool, &p, &in), 0);
    fut_future *t = fut_timeout(fut_retain(in), 1);
    ck_assert_int_eq(fut_await(t, NULL), ETIMEDOUT);
    fut_future *c = fut_then(fut_retain(in), then_add, (void *)1);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    ck_assert_int_eq(fut_await(c, NULL), ECANCELED);
    /* the timeout cancelled its input */
    ck_assert_int_eq(fut_promise_resolve(p, (void *)3), EALREADY);
    ck_assert_int_eq(fut_await(in, NULL), ECANCELED);
    /* work refused after destroy, through the same locks */
    fut_future *late = fut_then(fut_retain(t), then_add, (void *)1);
    ck_assert_int_eq(fut_await(late, NULL), ETIMEDOUT);
    fut_release(late);
    fut_release(c);
    fut_release(t);
    fut_release(in);
}
END_TEST

/* A thread that made futures on a pool keeps a budget of the pool's
 * references; the pool is destroyed by another thread, and the budget's
 * last reference goes when the first thread turns to another pool. */
struct budget_thread {
    fut_pool *first, *second;
    gate destroyed;
};

static void *use_two_pools(void *arg)
{
    struct budget_thread *b = arg;
    for (int i = 0; i < 10; i++) {
        fut_future *f = fut_spawn(b->first, task_value, (void *)1);
        thread_check_eq(fut_await(f, NULL), 0);
        fut_release(f);
    }
    void *v;
    task_gate(&b->destroyed, &v); /* until main has destroyed `first` */
    fut_future *f = fut_spawn(b->second, task_value, (void *)2);
    thread_check_eq(fut_await(f, &v), 0);
    thread_check_eq(v, (void *)2);
    fut_release(f);
    return NULL;
}

START_TEST(reference_budget_outlives_destroy)
{
    struct budget_thread b;
    b.first = pool_new(2);
    b.second = pool_new(1);
    gate_init(&b.destroyed);
    pthread_t t;
    pthread_create(&t, NULL, use_two_pools, &b);
    gate_wait_arrived(&b.destroyed, 1);
    ck_assert_int_eq(fut_pool_destroy(b.first), 0);
    gate_open(&b.destroyed);
    pthread_join(t, NULL);
    ck_assert_int_eq(fut_pool_destroy(b.second), 0);
}
END_TEST

/* ---- Queues and waits on one thread ------------------------------------ */

static int spawn_many(void *arg, void **value)
{
    (void)value;
    fut_pool *pool = arg;
    enum { N = 1000 };
    fut_future *fs[N];
    for (intptr_t i = 0; i < N; i++)
        fs[i] = fut_spawn(pool, task_value, (void *)i);
    int bad = 0;
    for (intptr_t i = 0; i < N; i++) { /* oldest first: helping runs the rest */
        void *v;
        bad += fut_await(fs[i], &v) != 0 || v != (void *)i;
        fut_release(fs[i]);
    }
    return bad ? EIO : 0;
}

/* A worker's queue grows past its first 256 slots: a task on one thread
 * queues 1000 children (nobody steals them), and each runs once. */
START_TEST(queue_grows_on_one_thread)
{
    fut_pool *pool = pool_new(1);
    fut_future *f = fut_spawn(pool, spawn_many, pool);
    ck_assert_int_eq(fut_await(f, NULL), 0);
    fut_release(f);
    assert_stats_balanced(pool);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

struct nest {
    fut_pool *pool;
    int depth;
};

/* Spawns a child nest one level shallower, then a leaf, and awaits the
 * child: it is not the newest item queued, so the wait runs the leaf and
 * then the child on top of itself, one level deeper each time. */
static int nest_task(void *arg, void **value)
{
    struct nest *n = arg;
    if (n->depth == 0) {
        *value = (void *)1;
        return 0;
    }
    struct nest child = {n->pool, n->depth - 1};
    fut_future *c = fut_spawn(n->pool, nest_task, &child);
    fut_future *leaf = fut_spawn(n->pool, task_value, (void *)1);
    void *a = NULL, *b = NULL;
    int rc = fut_await(c, &a);
    if (rc == 0)
        rc = fut_await(leaf, &b);
    fut_release(c);
    fut_release(leaf);
    *value = (void *)((intptr_t)a + (intptr_t)b);
    return rc;
}

/* Waits nested past the helping bound (64) on a pool of one thread: with
 * no other worker to hand its queue to, the deepest waits still run their
 * own queued items, so the nest completes instead of hanging. */
START_TEST(waits_beyond_the_bound_on_one_thread)
{
    fut_pool *pool = pool_new(1);
    struct nest top = {pool, 150};
    fut_future *f = fut_spawn(pool, nest_task, &top);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)151);
    fut_release(f);
    assert_stats_balanced(pool);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

struct cross_join {
    fut_pool *other;
    struct fib a, b;
};

static int join_on_other_pool(void *arg, void **value)
{
    (void)value;
    struct cross_join *c = arg;
    return fut_join(c->other, fib_join, &c->a, fib_join, &c->b);
}

/* fut_join from a worker of another pool: the join runs on the pool it
 * names while the calling worker waits (helping its own pool). */
START_TEST(join_from_a_worker_of_another_pool)
{
    fut_pool *home = pool_new(1), *other = pool_new(2);
    struct cross_join c = {other, {other, 18, 0}, {other, 17, 0}};
    fut_future *f = fut_spawn(home, join_on_other_pool, &c);
    ck_assert_int_eq(fut_await(f, NULL), 0);
    ck_assert_int_eq(c.a.result + c.b.result, fib_serial(19));
    fut_release(f);
    ck_assert_int_eq(fut_pool_destroy(other), 0);
    ck_assert_int_eq(fut_pool_destroy(home), 0);
}
END_TEST

static Suite *sched_suite(void)
{
    Suite *s = suite_create("sched");
    FUT_TCASE(s, "memory", pool_memory_is_aligned);
    FUT_TCASE(s, "waits", waits_do_not_overflow_the_stack,
              new_work_goes_to_idle_workers_first,
              outside_spawn_starts_within_a_bound, queue_grows_on_one_thread,
              waits_beyond_the_bound_on_one_thread);
    FUT_TCASE(s, "after", late_events_after_destroy,
              reference_budget_outlives_destroy);
    FUT_TCASE(s, "join", join_fib, join_errors, join_refused_while_closing,
              join_stolen_branch_runs_elsewhere,
              join_from_a_worker_of_another_pool);
    return s;
}

FUT_TEST_MAIN(sched_suite)
