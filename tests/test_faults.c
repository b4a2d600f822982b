/*
 * Injected faults, by call site: each scenario runs once to find the
 * library's call sites it reaches (every allocation, thread, mutex and
 * condition variable creation, src/fault.c), then again and again with
 * the next call at one site failing, until every site it has reached
 * (those found on the way included) has failed once. Every run must give
 * a documented error (or a future failed with ENOMEM), leak nothing (the
 * library's live allocation count is back to where it was, in every
 * build; LeakSanitizer too in the address build), hang nowhere (the test
 * timeout), and leave the pool working.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <stdio.h>
#include <unistd.h>

void fut__fault_arm(int site);
bool fut__fault_fired(void);
int fut__fault_sites(void);
const char *fut__fault_site(int site, int *line);
long fut__fault_live(void);

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

static void s_then(fut_pool *pool)
{
    check_future(
        fut_then(fut_spawn(pool, task_value, (void *)1), then_add, (void *)2),
        (void *)3);
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
        check_future(fut_sleep(pool, 1), NULL);
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    } else {
        ck_assert_ptr_null(pool);
    }
    unlink(path);
}

/* Runs s once with the armed site (or none: -1) failing, then checks the
 * pool still works and nothing leaked. Returns whether the fault fired. */
static bool run_with_fault(scenario s, bool own_pool, int site)
{
    long live = fut__fault_live();
    fut_pool *pool = own_pool ? pool_new(2) : NULL;
    fut__fault_arm(site);
    s(pool);
    bool fired = fut__fault_fired();
    fut__fault_arm(-1);
    if (pool) { /* still works */
        check_future(fut_spawn(pool, task_value, (void *)9), (void *)9);
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    }
    int line = 0;
    const char *file = site >= 0 ? fut__fault_site(site, &line) : "none";
    ck_assert_msg(fut__fault_live() == live,
                  "%ld allocations leaked with the fault at %s:%d",
                  fut__fault_live() - live, file, line);
    return fired;
}

/* Fails every call site s reaches at least once; returns how many. */
static int inject_all(scenario s, bool own_pool)
{
    enum { MAX = 256 };
    bool done[MAX] = {false};
    run_with_fault(s, own_pool, -1); /* find the sites */
    int failed = 0;
    for (bool progress = true; progress;) {
        progress = false;
        for (int site = 0; site < fut__fault_sites() && site < MAX; site++) {
            if (done[site])
                continue;
            /* A site reached only on some runs (thread timing) may not
             * fire this time: try again while others make progress. */
            if (run_with_fault(s, own_pool, site)) {
                done[site] = true;
                failed++;
                progress = true;
                if (getenv("FAULT_VERBOSE")) {
                    int line;
                    const char *file = fut__fault_site(site, &line);
                    printf("  failed %s:%d\n", file, line);
                }
            }
        }
    }
    return failed;
}

#define FAULT_TEST(name, fn, own)                                              \
    START_TEST(name)                                                           \
    {                                                                          \
        int n = inject_all(fn, own);                                           \
        ck_assert_int_gt(n, 0);                                                \
        printf("call sites failed: %-16s %d\n", #fn, n);                       \
        fflush(stdout);                                                        \
    }                                                                          \
    END_TEST

FAULT_TEST(faults_pool, s_pool, false)
FAULT_TEST(faults_spawn, s_spawn, true)
FAULT_TEST(faults_then, s_then, true)
FAULT_TEST(faults_all_any_join, s_all_any_join, true)
FAULT_TEST(faults_timers, s_timers, true)
FAULT_TEST(faults_timeout_input, s_timeout_input, true)
FAULT_TEST(faults_promise, s_promise, true)
FAULT_TEST(faults_group, s_group, true)
FAULT_TEST(faults_parallel_for, s_parallel_for, true)

static Suite *faults_suite(void)
{
    Suite *s = suite_create("faults");
    FUT_TCASE(s, "faults", faults_pool, faults_spawn, faults_then,
              faults_all_any_join, faults_timers, faults_timeout_input,
              faults_promise, faults_group, faults_parallel_for);
    return s;
}

FUT_TEST_MAIN(faults_suite)
