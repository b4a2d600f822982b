/*
 * Shared pieces of the Check suites: a main that runs one suite with
 * every test forked, tasks that tests reuse, and a gate that holds tasks
 * until the test opens it (tests wait for conditions, never for time).
 */
#ifndef FUT_TEST_HELPERS_H
#define FUT_TEST_HELPERS_H

#include <fut/fut.h>

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define TEST_TIMEOUT 120 /* seconds per test; sanitizers slow code 10x */

/* Checks made on a thread other than the test's own (a worker running a
 * task, a thread the test started). Check's assertions may run only on
 * the test's thread: under CK_FORK=no (scripts/valgrind.sh) a failing one
 * would unwind another thread's stack. A failure here prints the check
 * and aborts the test's process, which fails the test in either mode. */
#define thread_check(cond)                                                     \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed on another thread: %s\n",     \
                    __FILE__, __LINE__, #cond);                                \
            abort();                                                           \
        }                                                                      \
    } while (0)
#define thread_check_eq(a, b) thread_check((a) == (b))
#define thread_check_ne(a, b) thread_check((a) != (b))

/* A task returning arg as its value. */
/* Makes an empty file from a mkstemp template ("/tmp/name-XXXXXX"),
 * which it fills in; the caller unlinks it. */
static inline void temp_file(char *path)
{
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

static inline int task_value(void *arg, void **value)
{
    *value = arg;
    return 0;
}

/* A task failing with the error code in arg. */
static inline int task_fail(void *arg, void **value)
{
    (void)value;
    return (int)(intptr_t)arg;
}

/* A continuation adding arg to its input. */
static inline int then_add(void *arg, void *input, void **value)
{
    *value = (void *)((uintptr_t)input + (uintptr_t)arg);
    return 0;
}

/* A continuation counting its runs in the atomic_int at arg. */
static inline int then_count(void *arg, void *input, void **value)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    *value = input;
    return 0;
}

/* The error of f, which is then released. */
static inline int await_rc(fut_future *f)
{
    int rc = fut_await(f, NULL);
    fut_release(f);
    return rc;
}

/* A gate: tasks wait at it until the test opens it. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    int open;
    int arrived; /* how many tasks reached the gate */
} gate;

static inline void gate_init(gate *g)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = 0;
    g->arrived = 0;
}

static inline void gate_open(gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->lock);
}

static inline void gate_wait_arrived(gate *g, int n)
{
    pthread_mutex_lock(&g->lock);
    while (g->arrived < n)
        pthread_cond_wait(&g->cv, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

/* A task that blocks at the gate (arg) and returns the gate as value. */
static inline int task_gate(void *arg, void **value)
{
    gate *g = arg;
    pthread_mutex_lock(&g->lock);
    g->arrived++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->lock);
    pthread_mutex_unlock(&g->lock);
    *value = g;
    return 0;
}

/* A one-worker pool whose destroy runs on another thread but cannot
 * finish: its worker is held at the gate by `held`, fn(arg) (task_gate on
 * the gate when fn is NULL). Destroy may begin any moment after
 * closing_start returns; tests call until they see ESHUTDOWN. */
typedef struct closing {
    fut_pool *pool;
    gate g;
    fut_future *held;
    pthread_t destroyer;
} closing;

static void *closing_destroy(void *pool)
{
    fut_pool_destroy(pool);
    return NULL;
}

static inline fut_pool *pool_new(size_t threads);

static inline void closing_start(closing *c, fut_task_fn fn, void *arg)
{
    gate_init(&c->g);
    c->pool = pool_new(1);
    c->held =
        fn ? fut_spawn(c->pool, fn, arg) : fut_spawn(c->pool, task_gate, &c->g);
    gate_wait_arrived(&c->g, 1);
    pthread_create(&c->destroyer, NULL, closing_destroy, c->pool);
}

/* Lets the held task go and waits for destroy to return. */
static inline void closing_finish(closing *c)
{
    gate_open(&c->g);
    pthread_join(c->destroyer, NULL);
}

static inline fut_pool *pool_new(size_t threads)
{
    fut_pool *pool = NULL;
    fut_pool_config cfg = {.threads = threads};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    ck_assert_ptr_nonnull(pool);
    return pool;
}

/* Checks the stats invariant of an idle pool. */
static inline void assert_stats_balanced(fut_pool *pool)
{
    fut_pool_stats st;
    ck_assert_int_eq(fut_pool_stats_get(pool, &st), 0);
    ck_assert_uint_eq(st.spawned, st.completed + st.cancelled);
    ck_assert_uint_eq(st.queued, 0);
}

/* Runs one suite, every test forked (unless CK_FORK=no, as under
 * valgrind); exits nonzero on any failure. */
#define FUT_TEST_MAIN(make_suite)                                              \
    int main(void)                                                             \
    {                                                                          \
        SRunner *sr = srunner_create(make_suite());                            \
        srunner_run_all(sr, CK_NORMAL);                                        \
        int failed = srunner_ntests_failed(sr);                                \
        srunner_free(sr);                                                      \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;                           \
    }

/* Adds a test case holding the given tests, with the standard timeout. */
#define FUT_TCASE(suite, name, ...)                                            \
    do {                                                                       \
        TCase *tc_ = tcase_create(name);                                       \
        tcase_set_timeout(tc_, TEST_TIMEOUT);                                  \
        const TTest *tests_[] = {__VA_ARGS__};                                 \
        for (size_t i_ = 0; i_ < sizeof(tests_) / sizeof(tests_[0]); i_++)     \
            tcase_add_test(tc_, tests_[i_]);                                   \
        suite_add_tcase(suite, tc_);                                           \
    } while (0)

#endif
