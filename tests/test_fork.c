/*
 * fork: a child's inherited pools fail at once with EOWNERDEAD (their
 * threads do not exist there), while a pool the child makes works, even
 * when the parent forked in the middle of heavy use of the library's
 * global locks.
 */
#include "helpers.h"

#include <signal.h>
#include <sys/wait.h>

/* In a child: a failed check exits with the line number. */
#define child_check(cond)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: child check failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                          \
            _exit(1);                                                          \
        }                                                                      \
    } while (0)

static int chunk(void *arg, size_t lo, size_t hi)
{
    (void)arg;
    (void)lo;
    (void)hi;
    return 0;
}

static int branch(void *arg)
{
    (void)arg;
    return 0;
}

/* ThreadSanitizer cannot follow threads made in the child of a parent
 * that has threads (it meets the parent's thread ids again and stops),
 * and this compiler's AddressSanitizer does not take its allocator's
 * lock around fork (a child's malloc can wait forever for a lock a
 * parent's thread held): under either, the children make no pool, and
 * the rest is still checked. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define CHILD_MAY_MAKE_THREADS 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define CHILD_MAY_MAKE_THREADS 0
#endif
#endif
#ifndef CHILD_MAY_MAKE_THREADS
#define CHILD_MAY_MAKE_THREADS 1
#endif

/* What a child may do: a new pool, a chain of continuations, a sleep. */
static void child_uses_a_new_pool(void)
{
    if (!CHILD_MAY_MAKE_THREADS)
        return;
    fut_pool *mine = NULL;
    fut_pool_config cfg = {.threads = 2};
    child_check(fut_pool_create(&mine, &cfg) == 0);
    fut_future *f = fut_spawn(mine, task_value, (void *)1);
    for (int i = 0; i < 100; i++)
        f = fut_then(f, then_add, (void *)1);
    void *v;
    child_check(fut_await(f, &v) == 0 && v == (void *)101);
    fut_release(f);
    child_check(await_rc(fut_sleep(mine, 1)) == 0);
    child_check(fut_pool_destroy(mine) == 0);
}

START_TEST(inherited_pool_fails_new_pool_works)
{
    fut_pool *pool = pool_new(2);
    gate g;
    gate_init(&g);
    fut_future *held = fut_spawn(pool, task_gate, &g);
    gate_wait_arrived(&g, 1);
    fut_promise *p;
    fut_future *pf;
    ck_assert_int_eq(fut_promise_create(pool, &p, &pf), 0);
    fut_future *done = fut_spawn(pool, task_value, (void *)7);
    ck_assert_int_eq(fut_await(done, NULL), 0);
    fut_group *grp;
    ck_assert_int_eq(fut_group_create(pool, &grp), 0);

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(30); /* a hang is a failure too */
        child_check(await_rc(fut_spawn(pool, task_value, NULL)) == EOWNERDEAD);
        child_check(fut_await(held, NULL) == EOWNERDEAD);
        child_check(fut_await_for(pf, 1000, NULL) == EOWNERDEAD);
        child_check(fut_join_all(&pf, 1) == EOWNERDEAD);
        void *v;
        child_check(fut_await(done, &v) == 0 && v == (void *)7); /* complete */
        child_check(await_rc(fut_sleep(pool, 1)) == EOWNERDEAD);
        child_check(await_rc(fut_then(fut_retain(pf), then_add, NULL)) ==
                    EOWNERDEAD);
        child_check(await_rc(fut_timeout(fut_retain(pf), 10)) == EOWNERDEAD);
        fut_promise *p2;
        fut_future *f2;
        child_check(fut_promise_create(pool, &p2, &f2) == EOWNERDEAD);
        child_check(fut_promise_resolve(p, NULL) == EOWNERDEAD);
        child_check(fut_group_spawn(grp, task_value, NULL) == EOWNERDEAD);
        child_check(fut_group_wait(grp) == EOWNERDEAD);
        child_check(fut_parallel_for(pool, 0, 10, 1, chunk, NULL) ==
                    EOWNERDEAD);
        child_check(fut_join(pool, branch, NULL, branch, NULL) == EOWNERDEAD);
        fut_pool_stats st;
        child_check(fut_pool_stats_get(pool, &st) == EOWNERDEAD);
        child_check(fut_pool_dump(pool, stderr, 0) == EOWNERDEAD);
        child_check(fut_pool_destroy(pool) == EOWNERDEAD);
        child_check(strstr(fut_strerror(EOWNERDEAD), "fork") != NULL);
        child_uses_a_new_pool();
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status %d", status);
    /* the parent's pool is untouched */
    gate_open(&g);
    ck_assert_int_eq(await_rc(held), 0);
    ck_assert_int_eq(fut_promise_resolve(p, NULL), 0);
    ck_assert_int_eq(await_rc(pf), 0);
    fut_release(done);
    ck_assert_int_eq(fut_group_wait(grp), 0);
    fut_group_destroy(grp);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* The parent forks again and again while its workers complete futures
 * (every completion takes a stripe lock) and allocate: each child gets
 * free locks and its own pool works. */
static atomic_bool stop_churn;

static int churn(void *arg, void **value)
{
    fut_pool *pool = arg;
    while (!atomic_load(&stop_churn)) {
        fut_future *f = fut_then(fut_spawn(pool, task_value, NULL), then_add,
                                 (void *)1);
        fut_await(f, NULL);
        fut_release(f);
    }
    *value = NULL;
    return 0;
}

START_TEST(fork_while_busy)
{
    fut_pool *pool = pool_new(2);
    atomic_store(&stop_churn, false);
    fut_future *c1 = fut_spawn(pool, churn, pool);
    fut_future *c2 = fut_spawn(pool, churn, pool);
    for (int i = 0; i < 20; i++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            alarm(30);
            child_uses_a_new_pool();
            _exit(0);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "child %d status %d", i, status);
    }
    atomic_store(&stop_churn, true);
    ck_assert_int_eq(await_rc(c1), 0);
    ck_assert_int_eq(await_rc(c2), 0);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

static Suite *fork_suite(void)
{
    Suite *s = suite_create("fork");
    FUT_TCASE(s, "fork", inherited_pool_fails_new_pool_works,
              fork_while_busy);
    return s;
}

FUT_TEST_MAIN(fork_suite)
