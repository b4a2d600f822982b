/* Waiting and scheduling: helping waits, nested fork-join, wakeups. */
#include "helpers.h"

#include <sched.h>
#include <time.h>
#include <unistd.h>

struct fib {
    fut_pool *pool;
    unsigned n;
};

static uintptr_t fib_serial(unsigned n)
{
    return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

static int fib_task(void *arg, void **value)
{
    struct fib *in = arg;
    if (in->n < 2) {
        *value = (void *)(uintptr_t)in->n;
        return 0;
    }
    struct fib a = {in->pool, in->n - 1}, b = {in->pool, in->n - 2};
    fut_future *fa = fut_spawn(in->pool, fib_task, &a);
    fut_future *fb = fut_spawn(in->pool, fib_task, &b);
    void *va, *vb;
    int rc = fut_await(fa, &va);
    int rc2 = fut_await(fb, &vb);
    fut_release(fa);
    fut_release(fb);
    if (rc || rc2)
        return rc ? rc : rc2;
    *value = (void *)((uintptr_t)va + (uintptr_t)vb);
    return 0;
}

static void check_fib(size_t threads, unsigned n)
{
    fut_pool *pool = pool_new(threads);
    struct fib root = {pool, n};
    fut_future *f = fut_spawn(pool, fib_task, &root);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_uint_eq((uintptr_t)v, fib_serial(n));
    fut_release(f);
    assert_stats_balanced(pool);
    fut_pool_destroy(pool);
}

START_TEST(fib_on_one_thread)
{
    check_fib(1, 20);
}
END_TEST

START_TEST(fib_on_many_threads)
{
    check_fib(2, 20);
    check_fib(4, 18);
    check_fib(7, 16);
}
END_TEST

/* A task that awaits a promise which a task queued behind it keeps: the
 * waiting worker runs the keeper itself, on a pool of one thread. */
struct keeper {
    fut_promise *promise;
};

static int keep_task(void *arg, void **value)
{
    (void)value;
    return fut_promise_resolve(((struct keeper *)arg)->promise, (void *)9);
}

struct waits_for_keeper {
    fut_pool *pool;
    fut_future *promised;
    struct keeper k;
};

static int wait_keeper_task(void *arg, void **value)
{
    struct waits_for_keeper *w = arg;
    fut_future *keeper = fut_spawn(w->pool, keep_task, &w->k);
    int rc = fut_await(w->promised, value);
    fut_release(keeper);
    return rc;
}

START_TEST(waiting_worker_runs_queued_work)
{
    fut_pool *pool = pool_new(1);
    struct waits_for_keeper w = {.pool = pool};
    ck_assert_int_eq(fut_promise_create(pool, &w.k.promise, &w.promised), 0);
    fut_future *f = fut_spawn(pool, wait_keeper_task, &w);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)9);
    fut_release(f);
    fut_release(w.promised);
    fut_pool_destroy(pool);
}
END_TEST

/* A worker of pool A waits on pool B, whose task waits on pool A: each
 * waiting worker runs its own pool's work, so both complete. */
struct cross {
    fut_pool *a, *b;
    int depth;
};

static int cross_task(void *arg, void **value)
{
    struct cross *c = arg;
    if (c->depth == 0) {
        *value = (void *)1;
        return 0;
    }
    struct cross next = {c->b, c->a, c->depth - 1};
    fut_future *f = fut_spawn(c->b, cross_task, &next);
    fut_future *local = fut_spawn(c->a, task_value, (void *)1);
    void *v, *lv;
    int rc = fut_await(f, &v);
    if (!rc)
        rc = fut_await(local, &lv);
    fut_release(f);
    fut_release(local);
    *value = (void *)((uintptr_t)v + 1);
    return rc;
}

START_TEST(waits_across_pools)
{
    fut_pool *a = pool_new(1), *b = pool_new(1);
    struct cross root = {a, b, 10};
    fut_future *f = fut_spawn(a, cross_task, &root);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_uint_eq((uintptr_t)v, 11);
    fut_release(f);
    fut_pool_destroy(a);
    fut_pool_destroy(b);
}
END_TEST

static int any_task(void *arg, void **value)
{
    fut_pool *pool = arg;
    fut_future *fs[8];
    for (int i = 0; i < 8; i++)
        fs[i] = fut_spawn(pool, task_value, (void *)(intptr_t)i);
    size_t index;
    int rc = fut_await_any(fs, 8, &index);
    if (!rc)
        rc = fut_join_all(fs, 8);
    if (!rc)
        rc = fut_await_for(fs[7], 1000000, value);
    for (int i = 0; i < 8; i++)
        fut_release(fs[i]);
    return rc;
}

START_TEST(any_and_all_inside_tasks)
{
    fut_pool *pool = pool_new(1);
    fut_future *f = fut_spawn(pool, any_task, pool);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)7);
    fut_release(f);
    fut_pool_destroy(pool);
}
END_TEST

/* Two tasks that only finish together need two workers at once: an idle
 * worker must wake for the second spawn. */
START_TEST(spawn_wakes_an_idle_worker)
{
    for (int round = 0; round < 50; round++) {
        fut_pool *pool = pool_new(2);
        gate g;
        gate_init(&g);
        fut_future *a = fut_spawn(pool, task_gate, &g);
        fut_future *b = fut_spawn(pool, task_gate, &g);
        gate_wait_arrived(&g, 2);
        gate_open(&g);
        ck_assert_int_eq(fut_await(a, NULL), 0);
        ck_assert_int_eq(fut_await(b, NULL), 0);
        fut_release(a);
        fut_release(b);
        fut_pool_destroy(pool);
    }
}
END_TEST

struct spammer {
    fut_pool *pool;
    int count;
    uintptr_t sum;
};

static void *spam_thread(void *p)
{
    struct spammer *s = p;
    for (int i = 0; i < s->count; i++) {
        fut_future *f = fut_spawn(s->pool, task_value, (void *)(uintptr_t)i);
        void *v;
        if (fut_await(f, &v) == 0)
            s->sum += (uintptr_t)v;
        fut_release(f);
    }
    return NULL;
}

/* Spawns from many threads, one at a time each, so workers park and wake
 * constantly: a lost wakeup shows as a hang (and the test times out). */
static void spam(size_t threads)
{
    fut_pool *pool = pool_new(threads);
    enum { T = 6, N = 3000 };
    pthread_t th[T];
    struct spammer s[T];
    for (int i = 0; i < T; i++) {
        s[i] = (struct spammer){pool, N, 0};
        pthread_create(&th[i], NULL, spam_thread, &s[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        ck_assert_uint_eq(s[i].sum, (uintptr_t)N * (N - 1) / 2);
    }
    fut_pool_stats st;
    fut_pool_stats_get(pool, &st);
    ck_assert_uint_eq(st.spawned, T * N);
    ck_assert_uint_eq(st.completed, T * N);
    fut_pool_destroy(pool);
}

START_TEST(no_lost_wakeup_one_thread)
{
    spam(1);
}
END_TEST

START_TEST(no_lost_wakeup_many_threads)
{
    spam(2);
    spam(5);
}
END_TEST

static void *release_after_await(void *p)
{
    fut_await(p, NULL);
    return NULL;
}

/* Waiters that time out race with completion: a late fire must never
 * touch a waiter that has returned. */
START_TEST(timed_waits_race_completion)
{
    fut_pool *pool = pool_new(2);
    for (int i = 0; i < 500; i++) {
        fut_promise *p;
        fut_future *f;
        fut_promise_create(pool, &p, &f);
        pthread_t th;
        pthread_create(&th, NULL, release_after_await, f);
        fut_future *keeper = fut_spawn(pool, keep_task, &(struct keeper){p});
        int rc = fut_await_for(f, (uint64_t)(i % 3), NULL);
        ck_assert(rc == 0 || rc == ETIMEDOUT);
        fut_future *pair[] = {keeper, f};
        ck_assert_int_eq(fut_join_all(pair, 2), 0);
        pthread_join(th, NULL);
        fut_release(keeper);
        fut_release(f);
    }
    fut_pool_destroy(pool);
}
END_TEST

/* A limit whose milliseconds carry into the next second when added to
 * the clock's nanoseconds (999 ms: nearly always): the deadline is still
 * right, and a future that completes in time is awaited whole. */
START_TEST(timed_wait_deadline_carries_a_second)
{
    fut_pool *pool = pool_new(1);
    for (int i = 0; i < 3; i++) {
        fut_future *f = fut_sleep(pool, 2);
        ck_assert_int_eq(fut_await_for(f, 999, NULL), 0);
        fut_release(f);
        fut_promise *p;
        ck_assert_int_eq(fut_promise_create(pool, &p, &f), 0);
        ck_assert_int_eq(fut_await_for(f, 1, NULL), ETIMEDOUT);
        ck_assert_int_eq(fut_promise_resolve(p, NULL), 0);
        fut_release(f);
    }
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

static fut_future *_Atomic self_future;
static gate self_gate;
static atomic_int self_rc[4];

static int await_myself(void *arg, void **value)
{
    (void)arg;
    task_gate(&self_gate, value);
    fut_future *me = atomic_load(&self_future);
    atomic_store(&self_rc[0], fut_await(me, NULL));
    atomic_store(&self_rc[1], fut_await_for(me, 1000, NULL));
    fut_future *both[2] = {me, me};
    atomic_store(&self_rc[2], fut_join_all(both, 2));
    int errors[1];
    atomic_store(&self_rc[3], fut_join_settled(&me, 1, errors));
    return 0;
}

/* A task that waits for its own future would wait forever: every wait
 * says EDEADLK at once instead. */
START_TEST(waiting_for_yourself_is_edeadlk)
{
    fut_pool *pool = pool_new(1);
    gate_init(&self_gate);
    fut_future *f = fut_spawn(pool, await_myself, NULL);
    atomic_store(&self_future, f);
    gate_open(&self_gate);
    ck_assert_int_eq(fut_await(f, NULL), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(atomic_load(&self_rc[i]), EDEADLK);
    fut_release(f);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* ---- Cycles of waits among tasks -------------------------------------- */

/* A task that awaits the future handed to it through its slot (a
 * promise's future, whose value is that other future) and returns the
 * await's result as its value. */
static int await_other(void *slot, void **value)
{
    void *other;
    thread_check(fut_await(slot, &other) == 0);
    *value = (void *)(intptr_t)fut_await(other, NULL);
    return 0;
}

/* The same, waiting with fut_join_all (with a future always complete
 * beside it, so that the join has two inputs). */
static int join_other(void *slot, void **value)
{
    void *other;
    thread_check(fut_await(slot, &other) == 0);
    fut_future *both[2] = {other, slot};
    *value = (void *)(intptr_t)fut_join_all(both, 2);
    return 0;
}

/* Awaits the n tasks of a cycle (each gives its own wait's result as its
 * value): every wait ended, with 0 or EDEADLK, and at least one was told
 * EDEADLK. Then releases them and their slots, and destroys the pool. */
static void await_cycle_told(fut_pool *pool, fut_future *t[],
                             fut_future *slot[], int n)
{
    int deadlocks = 0;
    for (int i = 0; i < n; i++) {
        void *v;
        ck_assert_int_eq(fut_await(t[i], &v), 0);
        int rc = (int)(intptr_t)v;
        ck_assert_msg(rc == 0 || rc == EDEADLK, "task %d: %s", i,
                      fut_strerror(rc));
        deadlocks += rc == EDEADLK;
    }
    ck_assert_int_ge(deadlocks, 1);
    for (int i = 0; i < n; i++) {
        fut_release(t[i]);
        fut_release(slot[i]);
    }
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}

static fut_task_fn cycle_task = await_other;

/* n tasks, each awaiting the next (the last awaits the first): a cycle,
 * on a pool of `threads`. At least one of them gets EDEADLK at once; the
 * others then complete. */
static void run_cycle(size_t threads, int n)
{
    fut_pool *pool = pool_new(threads);
    fut_promise *p[4];
    fut_future *slot[4], *t[4];
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(fut_promise_create(pool, &p[i], &slot[i]), 0);
        t[i] = fut_spawn(pool, i % 2 ? cycle_task : await_other, slot[i]);
    }
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(fut_promise_resolve(p[i], t[(i + 1) % n]), 0);
    await_cycle_told(pool, t, slot, n);
}

/* A awaits B while B awaits A: on two workers (each blocked in its
 * wait), and on one (B runs on top of A's wait, so A cannot resume until
 * B returns); and a cycle of three. */
START_TEST(wait_cycles_are_edeadlk)
{
    for (int round = 0; round < 20; round++) {
        run_cycle(2, 2);
        run_cycle(1, 2);
        run_cycle(3, 3);
        run_cycle(2, 3);
    }
    run_cycle(20, 2); /* a pool too large for the walk in the stack */
    cycle_task = join_other; /* every other one joins instead */
    for (int round = 0; round < 10; round++) {
        run_cycle(2, 2);
        run_cycle(1, 2);
        run_cycle(3, 3);
    }
    cycle_task = await_other;
}
END_TEST

/* ---- Cycles through fut_await_any -------------------------------------- */

/* A task that waits for any of the two futures its slot's value holds,
 * and returns that wait's result as its value. */
static int await_any_other(void *slot, void **value)
{
    void *pair;
    thread_check(fut_await(slot, &pair) == 0);
    size_t i;
    *value = (void *)(intptr_t)fut_await_any(pair, 2, &i);
    return 0;
}

/* A waits for any of B and C, while B and C each await A: whichever
 * closes the cycle last is told EDEADLK (every other wait then ends). On
 * one worker the others run on top of the first one's wait; on three,
 * each blocks on a worker of its own. */
static void run_any_cycle(size_t threads)
{
    fut_pool *pool = pool_new(threads);
    fut_promise *p[3];
    fut_future *slot[3], *t[3];
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(fut_promise_create(pool, &p[i], &slot[i]), 0);
        t[i] = fut_spawn(pool, i ? await_other : await_any_other, slot[i]);
    }
    fut_future *pair[2] = {t[1], t[2]};
    ck_assert_int_eq(fut_promise_resolve(p[0], pair), 0);
    ck_assert_int_eq(fut_promise_resolve(p[1], t[0]), 0);
    ck_assert_int_eq(fut_promise_resolve(p[2], t[0]), 0);
    await_cycle_told(pool, t, slot, 3);
}

START_TEST(any_of_cycles_are_edeadlk)
{
    for (int round = 0; round < 10; round++)
        for (size_t threads = 1; threads <= 3; threads++)
            run_any_cycle(threads);
}
END_TEST

static fut_future *_Atomic any_self;
static fut_future *any_kept; /* a promise's future, kept by the test */
static atomic_int any_rc[2];
static atomic_size_t any_index;

static int await_any_with_myself(void *arg, void **value)
{
    task_gate(arg, value);
    fut_future *me = atomic_load(&any_self);
    fut_future *both[2] = {me, me};
    size_t i = 9;
    atomic_store(&any_rc[0], fut_await_any(both, 2, &i));
    /* its own future, or a promise: the promise may still be kept, so
     * this wait is no cycle, and ends when the test keeps it */
    fut_future *mine_or_kept[2] = {me, any_kept};
    atomic_store(&any_rc[1], fut_await_any(mine_or_kept, 2, &i));
    atomic_store(&any_index, i);
    return 0;
}

/* fut_await_any is EDEADLK only when every one of its futures waits for
 * the caller. */
START_TEST(any_of_itself_is_edeadlk_only_when_all_are)
{
    fut_pool *pool = pool_new(2);
    fut_promise *p;
    ck_assert_int_eq(fut_promise_create(pool, &p, &any_kept), 0);
    gate g;
    gate_init(&g);
    fut_future *f = fut_spawn(pool, await_any_with_myself, &g);
    atomic_store(&any_self, f);
    gate_open(&g);
    while (atomic_load(&any_rc[0]) == 0)
        usleep(1000);
    usleep(20 * 1000); /* in the second wait, which must not end yet */
    ck_assert_int_eq(atomic_load(&any_rc[1]), 0);
    ck_assert(!fut_is_ready(f));
    ck_assert_int_eq(fut_promise_resolve(p, NULL), 0);
    ck_assert_int_eq(fut_await(f, NULL), 0);
    ck_assert_int_eq(atomic_load(&any_rc[0]), EDEADLK);
    ck_assert_int_eq(atomic_load(&any_rc[1]), 0);
    ck_assert_uint_eq(atomic_load(&any_index), 1);
    fut_release(f);
    fut_release(any_kept);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* A parent spawns two children that await each other and awaits the
 * first: on one worker it takes the first back and runs it in place,
 * which takes the second back in turn; the second's wait for the first,
 * below it on the same thread, is the cycle. */
static int parent_of_a_cycle(void *arg, void **value)
{
    fut_pool *pool = arg;
    fut_promise *p[2];
    fut_future *slot[2], *t[2];
    for (int i = 0; i < 2; i++) {
        thread_check(fut_promise_create(pool, &p[i], &slot[i]) == 0);
        t[i] = fut_spawn(pool, await_other, slot[i]);
    }
    fut_promise_resolve(p[0], t[1]);
    fut_promise_resolve(p[1], t[0]);
    void *a, *b;
    thread_check(fut_await(t[0], &a) == 0 && fut_await(t[1], &b) == 0);
    int deadlocks = ((int)(intptr_t)a == EDEADLK) + ((int)(intptr_t)b == EDEADLK);
    for (int i = 0; i < 2; i++) {
        fut_release(t[i]);
        fut_release(slot[i]);
    }
    *value = (void *)(intptr_t)deadlocks;
    return 0;
}

START_TEST(cycle_between_children_taken_back)
{
    for (size_t threads = 1; threads <= 2; threads++) {
        fut_pool *pool = pool_new(threads);
        for (int round = 0; round < 20; round++) {
            void *v;
            fut_future *f = fut_spawn(pool, parent_of_a_cycle, pool);
            ck_assert_int_eq(fut_await(f, &v), 0);
            ck_assert_int_ge((int)(intptr_t)v, 1);
            fut_release(f);
        }
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    }
}
END_TEST

/* A task that waits on one worker runs queued work meanwhile; a unit run
 * that way which waits for the task below it would wait forever. */
static fut_future *below_slot; /* a promise's future: its value is below */
static atomic_int above_rc;

static int await_below(void *arg, void **value)
{
    (void)arg;
    (void)value;
    void *below = NULL;
    thread_check(fut_await(below_slot, &below) == 0);
    atomic_store(&above_rc, fut_await(below, NULL));
    return 0;
}

static int wait_and_help(void *arg, void **value)
{
    fut_pool *pool = arg;
    fut_future *above = fut_spawn(pool, await_below, NULL);
    /* a sleep: this worker helps meanwhile, and runs `above` on top */
    fut_future *nap = fut_sleep(pool, 50);
    fut_await(nap, NULL);
    fut_release(nap);
    *value = (void *)(intptr_t)fut_await(above, NULL);
    fut_release(above);
    return 0;
}

START_TEST(waiting_for_the_unit_below_is_edeadlk)
{
    fut_pool *pool = pool_new(1);
    fut_promise *p;
    ck_assert_int_eq(fut_promise_create(pool, &p, &below_slot), 0);
    fut_future *f = fut_spawn(pool, wait_and_help, pool);
    ck_assert_int_eq(fut_promise_resolve(p, f), 0); /* above learns it */
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_int_eq((int)(intptr_t)v, 0);
    ck_assert_int_eq(atomic_load(&above_rc), EDEADLK);
    fut_release(f);
    fut_release(below_slot);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* No false alarm: nested awaits on several workers form no cycle. */
static fut_pool *fib_pool;

static int fib_awaits(void *arg, void **value)
{
    intptr_t n = (intptr_t)arg;
    if (n < 2) {
        *value = (void *)n;
        return 0;
    }
    fut_future *a = fut_spawn(fib_pool, fib_awaits, (void *)(n - 1));
    fut_future *b = fut_spawn(fib_pool, fib_awaits, (void *)(n - 2));
    void *va, *vb;
    int ra = fut_await(a, &va), rb = fut_await(b, &vb); /* the older first */
    fut_release(a);
    fut_release(b);
    if (ra || rb)
        return ra ? ra : rb; /* EDEADLK here would be a false alarm */
    *value = (void *)((intptr_t)va + (intptr_t)vb);
    return 0;
}

START_TEST(no_false_cycles)
{
    for (size_t threads = 1; threads <= 4; threads++) {
        fib_pool = pool_new(threads);
        for (int round = 0; round < 5; round++) {
            fut_future *f = fut_spawn(fib_pool, fib_awaits, (void *)18);
            void *v;
            ck_assert_int_eq(fut_await(f, &v), 0);
            ck_assert_int_eq((intptr_t)v, 2584);
            fut_release(f);
        }
        ck_assert_int_eq(fut_pool_destroy(fib_pool), 0);
    }
}
END_TEST

static fut_promise *hand_p2;
static fut_future *hand_f1, *hand_f2;
static atomic_int a_waiting;

static int task_waits_then_hands_on(void *arg, void **value)
{
    (void)arg;
    atomic_store(&a_waiting, 1);
    int rc = fut_await(hand_f1, value);
    fut_promise_resolve(hand_p2, (void *)2);
    return rc;
}

static int task_waits_for_hand(void *arg, void **value)
{
    (void)arg;
    return fut_await(hand_f2, value);
}

/* Task A waits for p1, then keeps p2; task B, spawned while A waits,
 * waits for p2. With an idle worker about, B must go to it: if it ran on
 * top of A's wait, A could never go on to keep p2. */
START_TEST(spawn_prefers_idle_worker_over_waiting_one)
{
    for (int round = 0; round < 20; round++) {
        fut_pool *pool = pool_new(2);
        fut_promise *p1;
        ck_assert_int_eq(fut_promise_create(pool, &p1, &hand_f1), 0);
        ck_assert_int_eq(fut_promise_create(pool, &hand_p2, &hand_f2), 0);
        atomic_store(&a_waiting, 0);
        fut_future *a = fut_spawn(pool, task_waits_then_hands_on, NULL);
        while (!atomic_load(&a_waiting))
            sched_yield();
        /* Give A time to park in its wait: without it the test only
         * checks less, it cannot fail wrongly. */
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
        fut_future *b = fut_spawn(pool, task_waits_for_hand, NULL);
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
        fut_promise_resolve(p1, (void *)1);
        int rc = fut_await_for(a, 20000, NULL);
        ck_assert_msg(rc == 0, "A did not finish: %s", fut_strerror(rc));
        ck_assert_int_eq(fut_await(b, NULL), 0);
        fut_release(a);
        fut_release(b);
        fut_release(hand_f1);
        fut_release(hand_f2);
        fut_pool_destroy(pool);
    }
}
END_TEST

static int slow_child(void *arg, void **value)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    *value = NULL;
    usleep(30000);
    return 0;
}

enum { SLOW_CHILDREN = 4 };

struct await_for_arg {
    fut_pool *pool;
    fut_future *never;
    atomic_int ran;
    int ran_by_then; /* children run when the timed wait returned */
};

static int await_for_inside(void *arg, void **value)
{
    struct await_for_arg *a = arg;
    *value = NULL;
    /* queued on this worker: the wait runs one, and is past its time */
    fut_future *children[SLOW_CHILDREN];
    for (int i = 0; i < SLOW_CHILDREN; i++)
        children[i] = fut_spawn(a->pool, slow_child, &a->ran);
    int rc = fut_await_for(a->never, 10, NULL);
    a->ran_by_then = atomic_load(&a->ran);
    fut_join_all(children, SLOW_CHILDREN);
    for (int i = 0; i < SLOW_CHILDREN; i++)
        fut_release(children[i]);
    return rc;
}

/* A timed wait on a worker stops helping once its time is up: with other
 * work queued behind it (which it runs meanwhile), it returns ETIMEDOUT
 * after the unit that took it past its time, not after them all. */
START_TEST(timed_wait_on_worker_times_out)
{
    fut_pool *pool = pool_new(1);
    fut_promise *p;
    fut_future *never;
    fut_promise_create(pool, &p, &never);
    struct await_for_arg a = {.pool = pool, .never = never};
    fut_future *f = fut_spawn(pool, await_for_inside, &a);
    ck_assert_int_eq(fut_await(f, NULL), ETIMEDOUT);
    ck_assert_int_le(a.ran_by_then, 1); /* 0 if it started late */
    ck_assert_int_eq(atomic_load(&a.ran), SLOW_CHILDREN);
    fut_release(f);
    fut_promise_reject(p, EPIPE);
    fut_release(never);
    fut_pool_destroy(pool);
}
END_TEST

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int await_for_alone(void *arg, void **value)
{
    *value = NULL;
    return fut_await_for(arg, 10, NULL);
}

/* With nothing to help with, a timed wait on a worker parks with a
 * deadline, and that park expires: ETIMEDOUT, not before its time. */
START_TEST(timed_park_on_worker_expires)
{
    fut_pool *pool = pool_new(1);
    fut_promise *p;
    fut_future *never;
    fut_promise_create(pool, &p, &never);
    uint64_t t0 = now_ms();
    fut_future *f = fut_spawn(pool, await_for_alone, never);
    ck_assert_int_eq(fut_await(f, NULL), ETIMEDOUT);
    ck_assert_uint_ge(now_ms() - t0, 10);
    fut_release(f);
    fut_promise_reject(p, EPIPE);
    fut_release(never);
    fut_pool_destroy(pool);
}
END_TEST

static int sleeper_waits(void *arg, void **value)
{
    fut_pool *pool = arg;
    fut_future *fs[2] = {fut_sleep(pool, 1),
                         fut_spawn(pool, task_value, (void *)1)};
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        size_t k;
        rc = fut_await_any(fs, 2, &k);
        int r2 = fut_await_for(fs[0], 0, NULL);
        if (r2 != 0 && r2 != ETIMEDOUT)
            rc = r2;
    }
    if (!rc)
        rc = fut_join_all(fs, 2);
    fut_release(fs[0]);
    fut_release(fs[1]);
    *value = NULL;
    return rc;
}

static atomic_long mix_sum;

static int add_arg(void *arg, void **value)
{
    (void)value;
    atomic_fetch_add(&mix_sum, (long)(intptr_t)arg);
    return 0;
}

static int add_range(void *arg, size_t lo, size_t hi)
{
    (void)arg;
    atomic_fetch_add(&mix_sum, (long)(hi - lo));
    return 0;
}

/* Groups and loops around waiting tasks, from several threads: workers
 * help inside waits and run a waiting task on top of another, reusing the
 * stack frame of a waiter that just returned. */
static void *wait_mix(void *pool)
{
    for (int i = 0; i < 1000; i++) {
        fut_group *g;
        thread_check_eq(fut_group_create(pool, &g), 0);
        for (int j = 0; j < 4; j++)
            fut_group_spawn(g, add_arg, (void *)1);
        fut_group_destroy(g);
        thread_check_eq(fut_parallel_for(pool, 0, 64, 8, add_range, NULL), 0);
        if (i % 10 == 0) {
            fut_future *f = fut_spawn(pool, sleeper_waits, pool);
            thread_check_eq(fut_await(f, NULL), 0);
            fut_release(f);
        }
    }
    return NULL;
}

/* Workers wait (any, for, all) on futures that the timer thread and other
 * workers complete: a waiter that sees its future complete returns at
 * once, and the completer must not touch the waiter's stack frame after
 * that (TSan and ASan watch). */
START_TEST(worker_waits_race_completions)
{
    fut_pool *pool = pool_new(2);
    atomic_store(&mix_sum, 0);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, wait_mix, pool);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    fut_pool_destroy(pool);
    ck_assert_int_eq(atomic_load(&mix_sum), 3L * 1000 * (4 + 64));
}
END_TEST

static Suite *wait_suite(void)
{
    Suite *s = suite_create("wait");
    FUT_TCASE(s, "fork-join", fib_on_one_thread, fib_on_many_threads,
              waiting_worker_runs_queued_work, waits_across_pools,
              any_and_all_inside_tasks);
    FUT_TCASE(s, "wakeups", spawn_wakes_an_idle_worker,
              no_lost_wakeup_one_thread, no_lost_wakeup_many_threads,
              timed_waits_race_completion, timed_wait_deadline_carries_a_second,
              waiting_for_yourself_is_edeadlk, wait_cycles_are_edeadlk,
              any_of_cycles_are_edeadlk,
              any_of_itself_is_edeadlk_only_when_all_are,
              waiting_for_the_unit_below_is_edeadlk, no_false_cycles,
              cycle_between_children_taken_back,
              spawn_prefers_idle_worker_over_waiting_one,
              timed_wait_on_worker_times_out, timed_park_on_worker_expires,
              worker_waits_race_completions);
    return s;
}

FUT_TEST_MAIN(wait_suite)
