/*
 * Injected faults, by call site: each scenario runs once to find the
 * library's call sites it reaches (every allocation, thread, mutex and
 * condition variable creation, tests/fault.c), then again and again with
 * the next call at one site failing, until every site it has reached
 * (those found on the way included) has failed once. Every run must give
 * a documented error (or a future failed with ENOMEM), leak nothing (the
 * library's live allocation count is back to where it was, in every
 * build; LeakSanitizer too in the address build), hang nowhere (the test
 * timeout), and leave the pool working.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

void fut__fault_arm(int site, int skip);
bool fut__fault_fired(void);
int fut__fault_sites(void);
const char *fut__fault_site(int site, int *line);
long fut__fault_live(void);
/* src/base.h's test hooks, by number (enum fut_hook there) */
enum { HOOK_THEN_READY, HOOK_CANCEL_CLAIM, HOOK_POOL_CLOSED, HOOK_FIRE,
       HOOK_SHOW };
void fut__hook_set(int hook, void (*fn)(void *arg));
#ifdef FUT_CHECKED
int fut__checked(int rc, int allowed, const char *call, const char *file,
                 int line);
#endif

typedef void (*scenario)(fut_pool *pool);

static bool allowed(int rc)
{
    return rc == 0 || rc == ENOMEM || rc == EAGAIN;
}

static void check_future(fut_future *f, void *want)
{
    void *v;
    int rc = fut_await(f, &v);
    ck_assert_msg(rc == 0 || rc == ENOMEM, "got %s", fut_strerror(rc));
    if (rc == 0)
        ck_assert_ptr_eq(v, want);
    fut_release(f);
}

static void s_spawn(fut_pool *pool)
{
    check_future(fut_spawn(pool, task_value, (void *)7), (void *)7);
}

/* Options: the block for them can fail too; the argument's destructor
 * runs once whatever fails, and the value's frees what the task made. */
static atomic_int opt_args;
static void opt_arg_free(void *p)
{
    ck_assert_int_eq(*(int *)p, 5);
    atomic_fetch_add(&opt_args, 1);
}

static int task_malloc(void *arg, void **value)
{
    (void)arg;
    *value = malloc(16);
    return *value ? 0 : ENOMEM;
}

static int then_pass(void *arg, void *input, void **value)
{
    (void)arg;
    *value = input;
    return 0;
}

static void s_options(fut_pool *pool)
{
    atomic_store(&opt_args, 0);
    fut_task_opts o = {.name = "named",
                       .value_free = free,
                       .arg_free = opt_arg_free,
                       .arg_size = sizeof(int)};
    int x = 5;
    fut_future *f = fut_spawn_with(pool, &o, task_malloc, &x);
    fut_future *c = fut_then_with(fut_retain(f), &o, then_pass, &x);
    int rc = fut_await(c, NULL);
    ck_assert_msg(rc == 0 || rc == ENOMEM, "got %s", fut_strerror(rc));
    fut_await(f, NULL); /* its argument goes before it completes */
    fut_release(c);
    fut_release(f);
    ck_assert_int_eq(atomic_load(&opt_args), 2);
}

static void s_then(fut_pool *pool)
{
    check_future(
        fut_then(fut_spawn(pool, task_value, (void *)1), then_add, (void *)2),
        (void *)3);
}

/* The error of the lowest-index failed future of fs (all complete), as
 * fut_join_all must report it; 0 when none failed. */
static int first_error(fut_future *const fs[], int n)
{
    for (int i = 0; i < n; i++) {
        ck_assert(fut_is_ready(fs[i]));
        int rc = fut_await(fs[i], NULL);
        ck_assert_msg(rc == 0 || rc == ENOMEM, "got %s", fut_strerror(rc));
        if (rc)
            return rc;
    }
    return 0;
}

static void s_all_any_join(fut_pool *pool)
{
    fut_future *fs[6];
    for (int i = 0; i < 6; i++)
        fs[i] = fut_spawn(pool, task_value, NULL);
    size_t index;
    ck_assert(allowed(fut_await_any(fs, 6, &index)));
    /* join_all has no error of its own (with no memory to listen to all,
     * it awaits one at a time): it reports the first failed input's */
    int first = 0;
    for (int i = 0; i < 6 && !first; i++)
        first = fut_await(fs[i], NULL);
    ck_assert_int_eq(fut_join_all(fs, 6), first);
    fut_future *all = fut_all(fs, 6);
    check_future(all, NULL);
    /* pending ones, more than a wait keeps on its stack */
    for (int i = 0; i < 6; i++) {
        fut_release(fs[i]);
        fs[i] = fut_sleep(pool, 1);
    }
    int joined = fut_join_all(fs, 6); /* then the inputs, all complete */
    ck_assert_int_eq(joined, first_error(fs, 6));
    for (int i = 0; i < 6; i++)
        fut_release(fs[i]);
}

static void s_timers(fut_pool *pool)
{
    check_future(fut_sleep(pool, 1), NULL);
    check_future(fut_timeout(fut_spawn(pool, task_value, (void *)5), 60000),
                 (void *)5);
    fut_future *t = fut_timeout(fut_sleep(pool, 60000), 1);
    int rc = fut_await(t, NULL);
    ck_assert_msg(rc == ETIMEDOUT || rc == ENOMEM, "%s", fut_strerror(rc));
    fut_release(t);
}

/* A timeout that cannot be armed (its future or its timer has no memory)
 * must still stop its input: nothing else could reach it any more. */
static void s_timeout_input(fut_pool *pool)
{
    fut_promise *p;
    fut_future *f;
    int rc = fut_promise_create(pool, &p, &f);
    ck_assert(allowed(rc));
    if (rc)
        return;
    fut_future *t = fut_timeout(fut_retain(f), 60000);
    rc = fut_await_for(t, 1, NULL);
    if (rc == ETIMEDOUT) { /* armed: the input is still running */
        ck_assert_int_eq(fut_promise_resolve(p, (void *)4), 0);
        check_future(t, (void *)4);
    } else {
        ck_assert_msg(rc == ENOMEM, "%s", fut_strerror(rc));
        ck_assert(fut_is_ready(f)); /* cancelled, not left waiting */
        ck_assert_int_eq(fut_await(f, NULL), ECANCELED);
        ck_assert_int_eq(fut_promise_resolve(p, NULL), EALREADY);
        fut_release(t);
    }
    fut_release(f);
}

static void s_promise(fut_pool *pool)
{
    fut_promise *p;
    fut_future *f;
    int rc = fut_promise_create(pool, &p, &f);
    ck_assert(allowed(rc));
    if (rc == 0) {
        fut_future *c = fut_then(f, then_add, (void *)1);
        ck_assert_int_eq(fut_promise_resolve(p, (void *)1), 0);
        check_future(c, (void *)2);
    }
}

/* A rejected promise with a chain of continuations and an all over it:
 * the failure passes on inline, each fire deferred behind the one in
 * progress (a queue that needs memory), one completion fanning out to
 * several listeners. */
static void s_failure_chain(fut_pool *pool)
{
    fut_promise *p;
    fut_future *f;
    int rc = fut_promise_create(pool, &p, &f);
    ck_assert(allowed(rc));
    if (rc)
        return;
    fut_future *fan[3], *chain = fut_retain(f);
    for (int i = 0; i < 3; i++) {
        fan[i] = fut_then(fut_retain(f), then_add, (void *)1);
        chain = fut_then(chain, then_add, (void *)1);
    }
    fut_future *all = fut_all(fan, 3);
    ck_assert_int_eq(fut_promise_reject(p, EPIPE), 0);
    fut_future *outs[] = {chain, all, fan[0], fan[1], fan[2], f};
    for (int i = 0; i < 6; i++) {
        rc = fut_await(outs[i], NULL);
        ck_assert_msg(rc == EPIPE || rc == ENOMEM, "got %s", fut_strerror(rc));
        fut_release(outs[i]);
    }
}

/* join_all of futures still pending, more than a wait keeps on its stack
 * (with no memory to listen to all, it awaits them one at a time). The
 * last one is done first, so that, once join_all has waited for it, five
 * are left to listen to at once. */
static void s_join_pending(fut_pool *pool)
{
    fut_future *fs[6];
    for (int i = 0; i < 6; i++)
        fs[i] = fut_sleep(pool, i < 5 ? 20 : 1);
    /* join_all has no error of its own, even with no memory to listen */
    int joined = fut_join_all(fs, 6); /* then the inputs, all complete */
    ck_assert_int_eq(joined, first_error(fs, 6));
    for (int i = 0; i < 6; i++)
        fut_release(fs[i]);
}

struct depth {
    fut_pool *pool;
    int n;
};

static int leaf(void *arg)
{
    (void)arg;
    return 0;
}

static int deep_join(void *arg)
{
    struct depth *d = arg;
    if (d->n == 0)
        return 0;
    struct depth next = {d->pool, d->n - 1};
    return fut_join(d->pool, deep_join, &next, leaf, NULL);
}

/* A pool of one worker, for scenarios that need their own; NULL when
 * making it failed (with a documented error). */
static fut_pool *one_thread_pool(void)
{
    fut_pool *pool;
    fut_pool_config cfg = {.threads = 1};
    int rc = fut_pool_create(&pool, &cfg);
    ck_assert(allowed(rc));
    return rc ? NULL : pool;
}

/* 300 nested joins on one thread: the worker's queue must grow past 256
 * (with no memory for that, both branches run inline). Its own pool. */
static void s_deep_join(fut_pool *unused)
{
    (void)unused;
    fut_pool *pool = one_thread_pool();
    if (!pool)
        return;
    struct depth d = {pool, 300};
    ck_assert_int_eq(fut_join(pool, deep_join, &d, leaf, NULL), 0);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}

static int spawn_wide(void *arg, void **value)
{
    (void)value;
    enum { N = 300 };
    fut_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = fut_spawn(arg, task_value, (void *)(intptr_t)i);
    int rc = 0;
    for (int i = 0; i < N; i++) {
        void *v;
        int e = fut_await(fs[i], &v);
        if (e == 0 && v != (void *)(intptr_t)i)
            e = EIO;
        if (e && !rc)
            rc = e;
        fut_release(fs[i]);
    }
    return rc;
}

/* A task on one thread spawns 300 children: its queue must grow past 256
 * (with no memory for that, a child goes to the pool's shared queue). */
static void s_wide_spawn(fut_pool *unused)
{
    (void)unused;
    fut_pool *pool = one_thread_pool();
    if (!pool)
        return;
    fut_future *f = fut_spawn(pool, spawn_wide, pool);
    int rc = fut_await(f, NULL);
    ck_assert_msg(rc == 0 || rc == ENOMEM, "got %s", fut_strerror(rc));
    fut_release(f);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}

static int count_child(void *arg, void **value)
{
    (void)value;
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

static void s_group(fut_pool *pool)
{
    fut_group *g;
    int rc = fut_group_create(pool, &g);
    ck_assert(allowed(rc));
    if (rc)
        return;
    atomic_int ran = 0;
    int accepted = 0;
    for (int i = 0; i < 5; i++) {
        rc = fut_group_spawn(g, count_child, &ran);
        ck_assert(allowed(rc));
        accepted += rc == 0;
    }
    ck_assert_int_eq(fut_group_wait(g), 0);
    ck_assert_int_eq(atomic_load(&ran), accepted); /* none lost */
    fut_group_destroy(g);
}

static int cover(void *arg, size_t lo, size_t hi)
{
    atomic_fetch_add((atomic_int *)arg, (int)(hi - lo));
    return 0;
}

static void s_parallel_for(fut_pool *pool)
{
    atomic_int covered = 0;
    int rc = fut_parallel_for(pool, 0, 1000, 10, cover, &covered);
    ck_assert(allowed(rc));
    if (rc == 0)
        ck_assert_int_eq(atomic_load(&covered), 1000);
}

/* Pool creation itself, traced, with a little work (trace buffers and
 * the timer heap grow). The pool argument is not used. */
static void s_pool(fut_pool *unused)
{
    (void)unused;
    char path[] = "/tmp/fut-faults-XXXXXX";
    temp_file(path);
    fut_pool *pool = NULL;
    fut_pool_config cfg = {.threads = 3, .trace_path = path};
    int rc = fut_pool_create(&pool, &cfg);
    ck_assert_msg(allowed(rc), "%s", fut_strerror(rc));
    if (rc == 0) {
        for (int i = 0; i < 3; i++)
            s_spawn(pool);
        fut_task_opts named = {.name = "traced"}; /* the trace copies it */
        check_future(fut_spawn_with(pool, &named, task_value, (void *)7),
                     (void *)7);
        check_future(fut_sleep(pool, 1), NULL);
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    } else {
        ck_assert_ptr_null(pool);
    }
    /* and one whose trace path comes from $FUT_TRACE: the file is path or
     * path.N, N counting the pools made so before in this process */
    setenv("FUT_TRACE", path, 1);
    cfg.trace_path = NULL;
    rc = fut_pool_create(&pool, &cfg);
    unsetenv("FUT_TRACE");
    ck_assert_msg(allowed(rc), "%s", fut_strerror(rc));
    if (rc == 0)
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    unlink(path);
    for (int n = 1; n < 300; n++) {
        char name[64];
        snprintf(name, sizeof(name), "%s.%d", path, n);
        unlink(name);
    }
}

/* Runs s once with one call failing (the one after `skip` more calls at
 * site; site -1: none), then checks the pool still works and nothing
 * leaked. Returns whether the fault fired. */
static bool run_with_fault(scenario s, bool own_pool, int site, int skip)
{
    long live = fut__fault_live();
    fut_pool *pool = own_pool ? pool_new(2) : NULL;
    fut__fault_arm(site, skip);
    s(pool);
    bool fired = fut__fault_fired();
    fut__fault_arm(-1, 0);
    if (pool) { /* still works */
        check_future(fut_spawn(pool, task_value, (void *)9), (void *)9);
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    }
    int line = 0;
    const char *file = site >= 0 ? fut__fault_site(site, &line) : "none";
    ck_assert_msg(fut__fault_live() == live,
                  "%ld allocations leaked with call %d at %s:%d failing",
                  fut__fault_live() - live, skip + 1, file, line);
    return fired;
}

/* Fails every call s makes at every call site it reaches, one per run:
 * the first call at a site, then the second, and so on until a run makes
 * no more calls there (at most MAX_CALLS). A site reached only on some
 * runs (thread timing) is tried again while others make progress. Returns
 * the number of sites; *calls, the number of calls failed. */
static int inject_all(scenario s, bool own_pool, int *calls)
{
    enum { MAX = 256, MAX_CALLS = 64 };
    bool done[MAX] = {false};
    run_with_fault(s, own_pool, -1, 0); /* find the sites */
    int sites = 0;
    *calls = 0;
    for (bool progress = true; progress;) {
        progress = false;
        for (int site = 0; site < fut__fault_sites() && site < MAX; site++) {
            if (done[site])
                continue;
            int k = 0;
            while (k < MAX_CALLS && run_with_fault(s, own_pool, site, k))
                k++;
            if (k == 0)
                continue;
            done[site] = progress = true;
            sites++;
            *calls += k;
            if (getenv("FAULT_VERBOSE")) {
                int line;
                const char *file = fut__fault_site(site, &line);
                printf("  failed %s:%d, %d call(s)\n", file, line, k);
            }
        }
    }
    return sites;
}

#define FAULT_TEST(name, fn, own)                                              \
    START_TEST(name)                                                           \
    {                                                                          \
        int calls;                                                             \
        int n = inject_all(fn, own, &calls);                                   \
        ck_assert_int_gt(n, 0);                                                \
        printf("failed: %-16s %2d call sites, %3d calls\n", #fn, n, calls);     \
        fflush(stdout);                                                        \
    }                                                                          \
    END_TEST

FAULT_TEST(faults_pool, s_pool, false)
FAULT_TEST(faults_spawn, s_spawn, true)
FAULT_TEST(faults_then, s_then, true)
FAULT_TEST(faults_options, s_options, true)
FAULT_TEST(faults_all_any_join, s_all_any_join, true)
FAULT_TEST(faults_timers, s_timers, true)
FAULT_TEST(faults_timeout_input, s_timeout_input, true)
FAULT_TEST(faults_promise, s_promise, true)
FAULT_TEST(faults_group, s_group, true)
FAULT_TEST(faults_parallel_for, s_parallel_for, true)
FAULT_TEST(faults_failure_chain, s_failure_chain, true)
FAULT_TEST(faults_join_pending, s_join_pending, true)
FAULT_TEST(faults_deep_join, s_deep_join, false)
FAULT_TEST(faults_wide_spawn, s_wide_spawn, false)

/* ---- Races put on their losing side every time, through test hooks ---- */

static fut_promise *hook_promise;
static fut_future *hook_future;
static atomic_int hook_runs, hook_rc;

static void resolve_in_hook(void *arg)
{
    (void)arg;
    fut__hook_set(HOOK_CANCEL_CLAIM, NULL);
    fut__hook_set(HOOK_POOL_CLOSED, NULL);
    atomic_fetch_add(&hook_runs, 1);
    atomic_store(&hook_rc, fut_promise_resolve(hook_promise, (void *)5));
}

static void cancel_in_hook(void *c)
{
    fut__hook_set(HOOK_THEN_READY, NULL);
    atomic_fetch_add(&hook_runs, 1);
    ck_assert_ptr_eq(c, hook_future);
    atomic_store(&hook_rc, fut_cancel(hook_future));
}

/* fut_cancel finds a pending promise, and the promise is kept before the
 * cancel's claim: the claim fails, the cancel looks again and reports
 * EALREADY, and the kept value stands. */
START_TEST(cancel_loses_claim_to_resolve)
{
    fut_pool *pool = pool_new(2);
    fut_future *f;
    ck_assert_int_eq(fut_promise_create(pool, &hook_promise, &f), 0);
    atomic_store(&hook_runs, 0);
    fut__hook_set(HOOK_CANCEL_CLAIM, resolve_in_hook);
    ck_assert_int_eq(fut_cancel(f), EALREADY);
    ck_assert_int_eq(atomic_load(&hook_runs), 1);
    ck_assert_int_eq(atomic_load(&hook_rc), 0);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)5);
    fut_release(f);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* A continuation is cancelled after its input succeeded and before it is
 * queued: it is not queued, its function never runs, it fails with
 * ECANCELED, and the counts balance. */
START_TEST(then_cancelled_before_queued)
{
    fut_pool *pool = pool_new(2);
    fut_promise *p;
    fut_future *in;
    atomic_int ran = 0;
    ck_assert_int_eq(fut_promise_create(pool, &p, &in), 0);
    hook_future = fut_then(fut_retain(in), then_count, &ran);
    atomic_store(&hook_runs, 0);
    fut__hook_set(HOOK_THEN_READY, cancel_in_hook);
    ck_assert_int_eq(fut_promise_resolve(p, (void *)3), 0);
    ck_assert_int_eq(atomic_load(&hook_runs), 1);
    ck_assert_int_eq(atomic_load(&hook_rc), 0); /* the cancel won */
    ck_assert_int_eq(fut_await(hook_future, NULL), ECANCELED);
    ck_assert_int_eq(fut_await(in, NULL), 0);
    ck_assert_int_eq(atomic_load(&ran), 0);
    assert_stats_balanced(pool);
    fut_release(hook_future);
    fut_release(in);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    ck_assert_int_eq(atomic_load(&ran), 0);
}
END_TEST

/* Destroy has closed the pool when a promise is kept from outside: its
 * waiting continuation can no longer be queued and fails with ECANCELED,
 * its function never runs, and destroy still returns. */
START_TEST(then_refused_once_closed)
{
    fut_pool *pool = pool_new(2);
    fut_future *in;
    atomic_int ran = 0;
    ck_assert_int_eq(fut_promise_create(pool, &hook_promise, &in), 0);
    fut_future *c = fut_then(fut_retain(in), then_count, &ran);
    atomic_store(&hook_runs, 0);
    fut__hook_set(HOOK_POOL_CLOSED, resolve_in_hook);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    ck_assert_int_eq(atomic_load(&hook_runs), 1);
    ck_assert_int_eq(atomic_load(&hook_rc), 0);
    void *v;
    ck_assert_int_eq(fut_await(in, &v), 0);
    ck_assert_ptr_eq(v, (void *)5);
    ck_assert_int_eq(fut_await(c, NULL), ECANCELED);
    ck_assert_int_eq(atomic_load(&ran), 0);
    fut_release(c);
    fut_release(in);
}
END_TEST

/* A hook that holds a completion between "complete, listeners detached"
 * and "fired" for 200 ms, once. */
static gate fire_reached;
static void slow_fire(void *f)
{
    (void)f;
    fut__hook_set(HOOK_FIRE, NULL);
    pthread_mutex_lock(&fire_reached.lock);
    fire_reached.arrived++;
    pthread_cond_broadcast(&fire_reached.cv);
    pthread_mutex_unlock(&fire_reached.lock);
    usleep(200 * 1000);
}

struct timed_waiter {
    fut_future *f;
    gate arrived;
};

static int await_for_100ms(void *arg, void **value)
{
    struct timed_waiter *t = arg;
    pthread_mutex_lock(&t->arrived.lock);
    t->arrived.arrived++;
    pthread_cond_broadcast(&t->arrived.cv);
    pthread_mutex_unlock(&t->arrived.lock);
    return fut_await_for(t->f, 100, value);
}

/* A worker's timed wait runs out while the completion it listens to is
 * on its way (complete, listeners detached, not fired yet): it cannot
 * take its listener back, so it waits for that fire before it returns
 * (its listener lives in its stack frame), and reports the value. */
START_TEST(timed_wait_outlasts_a_fire_on_its_way)
{
    fut_pool *pool = pool_new(1);
    fut_promise *p;
    struct timed_waiter t;
    gate_init(&t.arrived);
    gate_init(&fire_reached);
    ck_assert_int_eq(fut_promise_create(pool, &p, &t.f), 0);
    fut_future *task = fut_spawn(pool, await_for_100ms, &t);
    gate_wait_arrived(&t.arrived, 1);
    usleep(30 * 1000); /* the task listens by now; its limit is 70 ms off */
    fut__hook_set(HOOK_FIRE, slow_fire);
    ck_assert_int_eq(fut_promise_resolve(p, (void *)6), 0);
    void *v;
    ck_assert_int_eq(fut_await(task, &v), 0);
    ck_assert_ptr_eq(v, (void *)6);
    ck_assert_int_eq(fire_reached.arrived, 1);
    fut_release(task);
    fut_release(t.f);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* A dump taken while a worker shows a new unit (its start stored, its id
 * and function not yet) never pairs that unit with the start of an
 * older one: the worker was idle 150 ms, and no dump may say a unit has
 * run that long. */
static fut_pool *show_pool;
static atomic_int show_dumps, show_stale;

static void dump_in_show(void *arg)
{
    (void)arg;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return;
    fut_pool_dump(show_pool, out, FUT_DUMP_JSON);
    fclose(out);
    const char *at = strstr(text, "\"running_ms\":");
    if (at && atoi(at + strlen("\"running_ms\":")) >= 100)
        atomic_store(&show_stale, 1);
    atomic_fetch_add(&show_dumps, 1);
    free(text);
}

START_TEST(dump_never_pairs_a_unit_with_an_older_start)
{
    show_pool = pool_new(1);
    fut_future *f = fut_spawn(show_pool, task_value, NULL);
    ck_assert_int_eq(await_rc(f), 0);
    usleep(150 * 1000); /* idle: its last start is 150 ms old */
    fut__hook_set(HOOK_SHOW, dump_in_show);
    for (int i = 0; i < 5; i++) {
        f = fut_spawn(show_pool, task_value, NULL);
        ck_assert_int_eq(await_rc(f), 0);
    }
    fut__hook_set(HOOK_SHOW, NULL);
    ck_assert_int_ge(atomic_load(&show_dumps), 5);
    ck_assert_int_eq(atomic_load(&show_stale), 0);
    ck_assert_int_eq(fut_pool_destroy(show_pool), 0);
}
END_TEST

static fut_promise *late_promise;
static void *resolve_late(void *arg)
{
    (void)arg;
    fut_promise_resolve(late_promise, (void *)8);
    return NULL;
}

/* Destroy finds a continuation still listening to its input, but the
 * input is completing on another thread at that moment (listeners
 * detached, not fired): destroy cannot take the listener back and leaves
 * it to the fire, which finds the pool closed and cancels the
 * continuation. Its function never runs; destroy returns. */
START_TEST(destroy_meets_a_fire_on_its_way)
{
    fut_pool *pool = pool_new(2);
    fut_future *in;
    atomic_int ran = 0;
    gate_init(&fire_reached);
    ck_assert_int_eq(fut_promise_create(pool, &late_promise, &in), 0);
    fut_future *c = fut_then(fut_retain(in), then_count, &ran);
    fut__hook_set(HOOK_FIRE, slow_fire);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, resolve_late, NULL), 0);
    gate_wait_arrived(&fire_reached, 1); /* held in the hook for 200 ms */
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(fut_await(c, NULL), ECANCELED);
    ck_assert_int_eq(atomic_load(&ran), 0);
    void *v;
    ck_assert_int_eq(fut_await(in, &v), 0);
    ck_assert_ptr_eq(v, (void *)8);
    fut_release(c);
    fut_release(in);
}
END_TEST

#ifdef FUT_CHECKED
/* The checked build: a pthread call's failure (EINVAL from a lock, as
 * corrupted memory would give) stops the program, with a message on
 * stderr naming the call and where; an allowed result passes through. */
START_TEST(checked_pthread_failure_aborts)
{
    ck_assert_int_eq(fut__checked(0, 0, "pthread_mutex_lock", "x.c", 1), 0);
    ck_assert_int_eq(fut__checked(ETIMEDOUT, ETIMEDOUT,
                                  "pthread_cond_timedwait", "x.c", 2),
                     ETIMEDOUT);
    fut__checked(EINVAL, 0, "pthread_mutex_lock", "x.c", 3);
    ck_abort_msg("not reached");
}
END_TEST
#endif

static Suite *faults_suite(void)
{
    Suite *s = suite_create("faults");
    FUT_TCASE(s, "faults", faults_pool, faults_spawn, faults_then, faults_options,
              faults_all_any_join, faults_timers, faults_timeout_input,
              faults_promise, faults_group, faults_parallel_for,
              faults_failure_chain, faults_join_pending, faults_deep_join,
              faults_wide_spawn);
#ifdef FUT_CHECKED
    TCase *checked = tcase_create("checked");
    tcase_add_test_raise_signal(checked, checked_pthread_failure_aborts, SIGABRT);
    suite_add_tcase(s, checked);
#endif
    FUT_TCASE(s, "hooks", cancel_loses_claim_to_resolve,
              then_cancelled_before_queued, then_refused_once_closed,
              timed_wait_outlasts_a_fire_on_its_way,
              dump_never_pairs_a_unit_with_an_older_start,
              destroy_meets_a_fire_on_its_way);
    return s;
}

FUT_TEST_MAIN(faults_suite)
