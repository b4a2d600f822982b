/* Shutdown: nothing accepted is lost, nothing is left pending. */
#include "helpers.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

START_TEST(destroy_runs_accepted_work)
{
    fut_pool *pool = pool_new(2);
    enum { N = 2000 };
    fut_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = fut_then(fut_spawn(pool, task_value, (void *)(intptr_t)i),
                         then_add, (void *)1);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    /* Futures outlive their pool. */
    for (int i = 0; i < N; i++) {
        void *v;
        ck_assert(fut_is_ready(fs[i]));
        ck_assert_int_eq(fut_await(fs[i], &v), 0);
        ck_assert_ptr_eq(v, (void *)(intptr_t)(i + 1));
        fut_release(fs[i]);
    }
}
END_TEST

struct tree {
    fut_pool *pool;
    atomic_int *leaves;
    int depth;
};

/* Spawns two children per level and does not wait for them. */
static int tree_task(void *arg, void **value)
{
    struct tree *t = arg;
    (void)value;
    if (t->depth == 0) {
        atomic_fetch_add(t->leaves, 1);
    } else {
        for (int i = 0; i < 2; i++) {
            struct tree *child = malloc(sizeof(*child));
            *child = (struct tree){t->pool, t->leaves, t->depth - 1};
            fut_future *f = fut_spawn(t->pool, tree_task, child);
            thread_check_ne(fut_await_for(f, 0, NULL), ESHUTDOWN);
            fut_release(f);
        }
    }
    free(t);
    return 0;
}

START_TEST(destroy_while_tasks_spawn_children)
{
    for (int round = 0; round < 20; round++) {
        atomic_int leaves = 0;
        fut_pool *pool = pool_new((size_t)(round % 3) + 1);
        struct tree *root = malloc(sizeof(*root));
        *root = (struct tree){pool, &leaves, 10};
        fut_release(fut_spawn(pool, tree_task, root));
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
        ck_assert_int_eq(atomic_load(&leaves), 1 << 10);
    }
}
END_TEST

static int task_spawns_after_gate(void *arg, void **value)
{
    closing *c = arg;
    task_gate(&c->g, value);
    /* Destroy has begun: its own workers may still add work. */
    fut_future *child = fut_spawn(c->pool, task_value, (void *)11);
    int rc = fut_await(child, value);
    fut_release(child);
    return rc;
}

START_TEST(outside_threads_refused_while_closing)
{
    closing c;
    fut_promise *p;
    fut_future *pf;
    closing_start(&c, task_spawns_after_gate, &c);
    ck_assert_int_eq(fut_promise_create(c.pool, &p, &pf), 0);
    /* Spawn until destroy has begun; every accepted spawn still runs. */
    enum { MAX = 1 << 20 };
    static fut_future *accepted[MAX];
    size_t n = 0;
    fut_future *refused;
    for (;;) {
        fut_future *f = fut_spawn(c.pool, task_value, (void *)2);
        if (fut_is_ready(f) && fut_await(f, NULL) == ESHUTDOWN) {
            refused = f;
            break;
        }
        ck_assert_uint_lt(n, MAX);
        accepted[n++] = f;
    }
    ck_assert_int_eq(fut_await(fut_retain(refused), NULL), ESHUTDOWN);
    fut_release(refused);
    fut_release(refused);
    /* fut_then from outside is refused too (its input is still pending),
     * but failure still flows. */
    fut_future *refused_then = fut_then(fut_retain(pf), then_add, NULL);
    fut_future *t = fut_then(fut_spawn(NULL, NULL, NULL), then_add, NULL);
    ck_assert_int_eq(fut_await(t, NULL), EINVAL);
    fut_release(t);

    fut_promise_resolve(p, NULL);
    ck_assert_int_eq(fut_await(refused_then, NULL), ESHUTDOWN);
    fut_release(refused_then);
    closing_finish(&c);
    void *v;
    ck_assert_int_eq(fut_await(c.held, &v), 0);
    ck_assert_ptr_eq(v, (void *)11);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(fut_await(accepted[i], &v), 0);
        ck_assert_ptr_eq(v, (void *)2);
        fut_release(accepted[i]);
    }
    fut_release(c.held);
    fut_release(pf);
}
END_TEST

struct racer {
    fut_pool *pool;
    fut_future *anchor; /* a future of the pool keeps the handle usable */
    atomic_int *go;
    size_t ok, refused;
};

static void *race_spawner(void *p)
{
    struct racer *r = p;
    while (!atomic_load(r->go))
        sched_yield();
    for (;;) {
        fut_future *f = fut_spawn(r->pool, task_value, (void *)1);
        fut_future *c = fut_then(f, then_add, (void *)1);
        void *v;
        int rc = fut_await(c, &v); /* never pending forever */
        fut_release(c);
        if (rc == ESHUTDOWN) {
            r->refused++;
            fut_release(r->anchor);
            return NULL;
        }
        thread_check_eq(rc, 0);
        thread_check_eq(v, (void *)2);
        r->ok++;
    }
}

/* Destroy while outside threads keep spawning: each of their futures
 * either completes normally or fails with ESHUTDOWN; none hangs. Each
 * spawner holds a future of the pool, so its calls made after destroy
 * returned are still defined (see fut_pool_destroy). */
START_TEST(destroy_races_spawns)
{
    for (int round = 0; round < 10; round++) {
        fut_pool *pool = pool_new(2);
        atomic_int go = 0;
        enum { T = 4 };
        pthread_t th[T];
        struct racer r[T];
        for (int i = 0; i < T; i++) {
            r[i] = (struct racer){pool, fut_spawn(pool, task_value, NULL), &go,
                                  0, 0};
            pthread_create(&th[i], NULL, race_spawner, &r[i]);
        }
        atomic_store(&go, 1);
        /* Let the spawners get going before destroy starts. */
        fut_future *warm = fut_spawn(pool, task_value, NULL);
        fut_await(warm, NULL);
        fut_release(warm);
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
        for (int i = 0; i < T; i++) {
            pthread_join(th[i], NULL);
            ck_assert_uint_eq(r[i].refused, 1);
        }
    }
}
END_TEST

/* An outside thread inside fut_parallel_for while another destroys the
 * pool: the caller's own chunks are accepted work too, so destroy returns
 * only after every chunk has finished, and (traced) each is in the
 * trace. (Before, destroy returned while the caller still ran one.) */
struct pfor_race {
    fut_pool *pool;
    gate started;
    atomic_int finished;
    int rc;
};

enum { RACE_CHUNKS = 40 };

static int slow_chunk(void *arg, size_t lo, size_t hi)
{
    struct pfor_race *r = arg;
    (void)hi;
    if (lo == 0) { /* the caller's first chunk: let destroy begin */
        pthread_mutex_lock(&r->started.lock);
        r->started.arrived = 1;
        pthread_cond_broadcast(&r->started.cv);
        pthread_mutex_unlock(&r->started.lock);
    }
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    atomic_fetch_add(&r->finished, 1);
    return 0;
}

static void *pfor_caller(void *arg)
{
    struct pfor_race *r = arg;
    r->rc = fut_parallel_for(r->pool, 0, RACE_CHUNKS, 1, slow_chunk, r);
    return NULL;
}

START_TEST(destroy_waits_for_outside_parallel_for)
{
    char path[] = "/tmp/fut-pfor-XXXXXX";
    temp_file(path);
    for (int round = 0; round < 5; round++) {
        struct pfor_race r = {.finished = 0};
        fut_pool_config cfg = {.threads = 2, .trace_path = path};
        ck_assert_int_eq(fut_pool_create(&r.pool, &cfg), 0);
        gate_init(&r.started);
        /* the caller holds a future, so the handle stays valid for it */
        fut_future *hold = fut_spawn(r.pool, task_value, NULL);
        pthread_t t;
        pthread_create(&t, NULL, pfor_caller, &r);
        gate_wait_arrived(&r.started, 1);
        ck_assert_int_eq(fut_pool_destroy(r.pool), 0);
        ck_assert_int_eq(atomic_load(&r.finished), RACE_CHUNKS);
        pthread_join(t, NULL);
        ck_assert_int_eq(r.rc, 0);
        fut_release(hold);
        /* every chunk is in the trace: count the loop body's events */
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        int events = 0;
        char line[512];
        while (fgets(line, sizeof(line), f))
            events += strstr(line, "\"cat\":\"task\"") != NULL;
        fclose(f);
        ck_assert_int_eq(events, RACE_CHUNKS + 1); /* + the held task */
    }
    unlink(path);
}
END_TEST

/* After destroy, with a future of the pool still held (which keeps its
 * memory): a promise can be made and kept, a group made (its spawns
 * refused), and fut_parallel_for refused even for an empty range. */
static int inner_nop(void *arg, size_t lo, size_t hi)
{
    (void)arg;
    (void)lo;
    (void)hi;
    return 0;
}

START_TEST(handle_after_destroy)
{
    fut_pool *pool = pool_new(2);
    fut_future *held = fut_spawn(pool, task_value, (void *)1);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    fut_promise *p;
    fut_future *f;
    ck_assert_int_eq(fut_promise_create(pool, &p, &f), 0);
    fut_future *c = fut_then(fut_retain(f), then_add, (void *)1);
    ck_assert_int_eq(fut_promise_resolve(p, (void *)5), 0);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)5);
    ck_assert_int_eq(fut_await(c, NULL), ESHUTDOWN); /* it would have run */
    fut_group *g;
    ck_assert_int_eq(fut_group_create(pool, &g), 0);
    ck_assert_int_eq(fut_group_spawn(g, task_value, NULL), ESHUTDOWN);
    ck_assert_int_eq(fut_group_wait(g), 0);
    fut_group_destroy(g);
    ck_assert_int_eq(fut_parallel_for(pool, 3, 3, 1, inner_nop, NULL),
                     ESHUTDOWN);
    fut_release(c);
    fut_release(f);
    fut_release(held);
}
END_TEST

/* fut_all of futures from two pools belongs to the first input's pool; a
 * continuation on it is cancelled when that pool is destroyed first. */
START_TEST(all_across_pools_cancelled_with_its_pool)
{
    fut_pool *a = pool_new(1), *b = pool_new(1);
    fut_promise *p;
    fut_future *pb;
    ck_assert_int_eq(fut_promise_create(b, &p, &pb), 0);
    fut_future *fa = fut_spawn(a, task_value, (void *)1);
    fut_future *in[] = {fa, pb};
    fut_future *c = fut_then(fut_all(in, 2), then_add, (void *)1);
    ck_assert_int_eq(fut_pool_destroy(a), 0);
    ck_assert_int_eq(fut_await(c, NULL), ECANCELED);
    ck_assert_int_eq(fut_promise_resolve(p, (void *)2), 0);
    ck_assert_int_eq(fut_await(pb, NULL), 0);
    ck_assert_int_eq(fut_pool_destroy(b), 0);
    fut_release(c);
    fut_release(fa);
    fut_release(pb);
}
END_TEST

/* A cancel and a promise's resolve race: the first decides, the loser
 * gets EALREADY, and the outcome is the winner's. */
struct race {
    fut_future *f;
    fut_promise *p;
    atomic_int go;
    int resolve_rc;
};

static void *resolver(void *arg)
{
    struct race *r = arg;
    while (!atomic_load(&r->go))
        ;
    r->resolve_rc = fut_promise_resolve(r->p, (void *)9);
    return NULL;
}

START_TEST(cancel_races_resolve)
{
    fut_pool *pool = pool_new(1);
    int cancels = 0, resolves = 0;
    for (int i = 0; i < 2000; i++) {
        struct race r = {.go = 0};
        ck_assert_int_eq(fut_promise_create(pool, &r.p, &r.f), 0);
        pthread_t t;
        pthread_create(&t, NULL, resolver, &r);
        atomic_store(&r.go, 1);
        int cancel_rc = fut_cancel(r.f);
        pthread_join(t, NULL);
        void *v;
        int outcome = fut_await(r.f, &v);
        if (cancel_rc == 0) {
            ck_assert_int_eq(r.resolve_rc, EALREADY);
            ck_assert_int_eq(outcome, ECANCELED);
            cancels++;
        } else {
            ck_assert_int_eq(cancel_rc, EALREADY);
            ck_assert_int_eq(r.resolve_rc, 0);
            ck_assert_int_eq(outcome, 0);
            ck_assert_ptr_eq(v, (void *)9);
            resolves++;
        }
        fut_release(r.f);
    }
    ck_assert_int_eq(cancels + resolves, 2000);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* ---- fut_pool_shutdown: a deadline and a report ------------------------ */

static atomic_int stuck_started;

/* A task that runs until it is asked to stop. */
static int stuck(void *arg, void **value)
{
    (void)arg;
    atomic_fetch_add(&stuck_started, 1);
    while (!fut_cancel_requested()) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    *value = (void *)1;
    return 0;
}

/* Two stuck tasks hold both workers; behind them 10,000 queued units, a
 * one-hour sleep, a one-hour timeout and a continuation of a promise
 * nobody keeps. Past the deadline, everything not started is cancelled,
 * the stuck tasks are asked to stop, and every future completes. */
START_TEST(shutdown_past_its_deadline)
{
    enum { QUEUED = 10000 };
    fut_pool *pool = pool_new(2);
    atomic_store(&stuck_started, 0);
    fut_future *s1 = fut_spawn(pool, stuck, NULL);
    fut_future *s2 = fut_spawn(pool, stuck, NULL);
    while (atomic_load(&stuck_started) < 2) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    fut_future **queued = malloc(QUEUED * sizeof(*queued));
    for (int i = 0; i < QUEUED; i++)
        queued[i] = fut_spawn(pool, task_value, NULL);
    fut_future *nap = fut_sleep(pool, 3600000);
    fut_promise *p1, *p2;
    fut_future *f1, *f2;
    ck_assert_int_eq(fut_promise_create(pool, &p1, &f1), 0);
    ck_assert_int_eq(fut_promise_create(pool, &p2, &f2), 0);
    fut_future *bounded = fut_timeout(f1, 3600000);
    fut_future *after = fut_then(f2, then_add, NULL);

    fut_shutdown_report r;
    uint64_t t0 = (uint64_t)time(NULL);
    ck_assert_int_eq(fut_pool_shutdown(pool, 100, &r), 0);
    ck_assert_uint_lt((uint64_t)time(NULL) - t0, 30); /* not an hour */
    ck_assert(!r.in_time);
    ck_assert_uint_eq(r.overran, 2);
    ck_assert_uint_eq(r.ran, 2);
    ck_assert_uint_eq(r.cancelled_units, QUEUED);
    ck_assert_uint_eq(r.cancelled_timers, 2);
    ck_assert_uint_eq(r.cancelled_continuations, 1);
    ck_assert_uint_lt(r.overrun_ms, 10000);
    /* every future is complete */
    ck_assert_int_eq(await_rc(s1), 0);
    ck_assert_int_eq(await_rc(s2), 0);
    for (int i = 0; i < QUEUED; i++) {
        ck_assert(fut_is_ready(queued[i]));
        ck_assert_int_eq(await_rc(queued[i]), ECANCELED);
    }
    free(queued);
    ck_assert_int_eq(await_rc(nap), ECANCELED);
    ck_assert_int_eq(await_rc(bounded), ECANCELED);
    ck_assert_int_eq(await_rc(after), ECANCELED);
    /* the timeout cancelled its input; the other promise is still there
     * to keep (nothing runs on it any more) */
    ck_assert_int_eq(fut_promise_resolve(p1, NULL), EALREADY);
    ck_assert_int_eq(fut_promise_resolve(p2, NULL), 0);
}
END_TEST

/* Work that ends in time: nothing cancelled, the report says so. */
START_TEST(shutdown_in_time)
{
    fut_pool *pool = pool_new(2);
    fut_future *fs[100];
    for (int i = 0; i < 100; i++)
        fs[i] = fut_spawn(pool, task_value, NULL);
    fut_future *nap = fut_sleep(pool, 20);
    fut_shutdown_report r;
    ck_assert_int_eq(fut_pool_shutdown(pool, 60000, &r), 0);
    ck_assert(r.in_time);
    ck_assert_uint_le(r.ran, 100); /* some may have run before the call */
    ck_assert_uint_eq(r.cancelled_units + r.cancelled_timers +
                          r.cancelled_continuations + r.overran +
                          r.overrun_ms,
                      0);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(await_rc(fs[i]), 0);
    ck_assert_int_eq(await_rc(nap), 0);
    ck_assert_int_eq(fut_pool_shutdown(NULL, 0, &r), EINVAL);
}
END_TEST

/* A loop caught by the deadline: its skipped chunks make it ECANCELED. */
static int napping_chunk(void *arg, size_t lo, size_t hi)
{
    (void)arg;
    (void)lo;
    (void)hi;
    struct timespec ms = {0, 2000000};
    nanosleep(&ms, NULL);
    return 0;
}

static int loop_task(void *arg, void **value)
{
    *value = (void *)(intptr_t)fut_parallel_for(arg, 0, 100000, 1, napping_chunk,
                                                 NULL);
    return 0;
}

START_TEST(shutdown_cuts_a_loop)
{
    fut_pool *pool = pool_new(2);
    fut_future *f = fut_spawn(pool, loop_task, pool);
    struct timespec ms = {0, 20000000};
    nanosleep(&ms, NULL);
    fut_shutdown_report r;
    ck_assert_int_eq(fut_pool_shutdown(pool, 50, &r), 0);
    ck_assert(!r.in_time);
    ck_assert_uint_gt(r.cancelled_units, 0);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_int_eq((int)(intptr_t)v, ECANCELED);
    fut_release(f);
}
END_TEST

/* Outside threads spawn while a shutdown passes its deadline: each spawn
 * is refused (ESHUTDOWN) or accepted, and every accepted future completes
 * (run, or cancelled), none is left pending. */
typedef struct spawner {
    fut_pool *pool;
    fut_future **fs;
    size_t n;
    fut_future *keep; /* holds the pool's memory for the handle */
} spawner;

static void *spawn_until_refused(void *arg)
{
    spawner *sp = arg;
    for (;;) {
        fut_future *f = fut_spawn(sp->pool, task_value, NULL);
        if (fut_is_ready(f) && fut_await(f, NULL) == ESHUTDOWN) {
            fut_release(f);
            return NULL;
        }
        if (sp->n < 100000)
            sp->fs[sp->n++] = f;
        else
            fut_release(f);
    }
}

START_TEST(shutdown_races_outside_spawns)
{
    fut_pool *pool = pool_new(2);
    atomic_store(&stuck_started, 0);
    fut_future *s1 = fut_spawn(pool, stuck, NULL);
    spawner sp[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        sp[i] = (spawner){pool, malloc(100000 * sizeof(fut_future *)), 0,
                          fut_spawn(pool, task_value, NULL)};
        pthread_create(&t[i], NULL, spawn_until_refused, &sp[i]);
    }
    fut_shutdown_report r;
    ck_assert_int_eq(fut_pool_shutdown(pool, 20, &r), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        for (size_t j = 0; j < sp[i].n; j++) {
            ck_assert(fut_is_ready(sp[i].fs[j]));
            int rc = await_rc(sp[i].fs[j]);
            ck_assert_msg(rc == 0 || rc == ECANCELED, "%s", fut_strerror(rc));
        }
        free(sp[i].fs);
        fut_release(sp[i].keep);
    }
    ck_assert_int_eq(await_rc(s1), 0);
}
END_TEST

static Suite *shutdown_suite(void)
{
    Suite *s = suite_create("shutdown");
    FUT_TCASE(s, "shutdown", destroy_runs_accepted_work,
              destroy_while_tasks_spawn_children,
              outside_threads_refused_while_closing, destroy_races_spawns,
              destroy_waits_for_outside_parallel_for);
    FUT_TCASE(s, "deadline", shutdown_past_its_deadline, shutdown_in_time,
              shutdown_cuts_a_loop, shutdown_races_outside_spawns);
    FUT_TCASE(s, "silent points", handle_after_destroy,
              all_across_pools_cancelled_with_its_pool, cancel_races_resolve);
    return s;
}

FUT_TEST_MAIN(shutdown_suite)
