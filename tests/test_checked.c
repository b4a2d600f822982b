/*
 * The checked build (FUT_CHECKED, which the test builds use): misuse of a
 * handle stops the program with a message naming the call and the
 * handle, instead of corrupting memory. Each misuse runs in a child
 * process; the parent checks that it aborted and what it said.
 */
#include "helpers.h"

#include <string.h>
#include <sys/wait.h>

#ifdef FUT_CHECKED

/* Runs misuse(pool) in a child, its stderr into a pipe; returns what it
 * wrote, after checking that it aborted. */
static char *misuse_in_child(void (*misuse)(fut_pool *))
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fut_pool *pool = NULL;
        fut_pool_config cfg = {.threads = 2};
        if (fut_pool_create(&pool, &cfg))
            _exit(3);
        misuse(pool);
        sleep(5); /* a worker may be the one to find it */
        _exit(0); /* not stopped: the test fails */
    }
    close(fds[1]);
    static char text[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], text + len, sizeof(text) - 1 - len)) > 0)
        len += (size_t)n;
    text[len] = '\0';
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "not stopped (status %d): %s", status, text);
    return text;
}

/* A kept promise's future: the caller holds its only reference. */
static fut_future *kept(fut_pool *pool)
{
    fut_promise *p;
    fut_future *f;
    fut_promise_create(pool, &p, &f);
    fut_promise_resolve(p, NULL);
    return f;
}

static void double_release(fut_pool *pool)
{
    fut_future *f = kept(pool);
    fut_release(f);
    fut_release(f); /* misuse */
}

static void await_after_release(fut_pool *pool)
{
    fut_future *f = kept(pool);
    fut_release(f);
    fut_await(f, NULL); /* misuse */
}

/* The case: releasing a future that fut_then consumed. The
 * continuation's reference is gone; when the continuation lets go of its
 * input, the input is freed already. */
static void release_consumed(fut_pool *pool)
{
    fut_future *f = fut_spawn(pool, task_value, NULL);
    fut_await(f, NULL);
    fut_future *c = fut_then(f, then_add, NULL);
    fut_release(f); /* misuse: f is c's now */
    fut_await(c, NULL);
    fut_release(c);
    fut_release(f);
}

static void promise_kept_twice(fut_pool *pool)
{
    fut_promise *p;
    fut_future *f;
    fut_promise_create(pool, &p, &f);
    fut_promise_resolve(p, NULL);
    fut_promise_resolve(p, NULL); /* misuse: f is still alive */
}

static void await_garbage(fut_pool *pool)
{
    (void)pool;
    static uint64_t junk[16] = {1, 2, 3, 4, 5, 6, 7, 8};
    fut_await((fut_future *)(void *)junk, NULL); /* misuse */
}

static void cancel_misaligned(fut_pool *pool)
{
    (void)pool;
    static char bytes[64];
    fut_cancel((fut_future *)(void *)(bytes + 3)); /* misuse */
}

static int destroys_own_group(void *arg, void **value)
{
    (void)value;
    fut_group_destroy(arg); /* misuse: it is one of the group's children */
    return 0;
}

static void destroy_group_from_child(fut_pool *pool)
{
    fut_group *g;
    fut_group_create(pool, &g);
    fut_group_spawn(g, destroys_own_group, g);
    fut_group_wait(g);
}

START_TEST(double_release_stops)
{
    char *text = misuse_in_child(double_release);
    ck_assert_msg(strstr(text, "fut: misuse in fut_release(0x") &&
                      strstr(text, "already freed"),
                  "%s", text);
}
END_TEST

START_TEST(use_after_release_stops)
{
    char *text = misuse_in_child(await_after_release);
    ck_assert_msg(strstr(text, "fut: misuse in fut_await(0x") &&
                      strstr(text, "already freed"),
                  "%s", text);
}
END_TEST

START_TEST(release_of_consumed_future_stops)
{
    char *text = misuse_in_child(release_consumed);
    ck_assert_msg(strstr(text, "fut: misuse in fut_release(0x") &&
                      strstr(text, "consumed"),
                  "%s", text);
}
END_TEST

START_TEST(promise_kept_twice_stops)
{
    char *text = misuse_in_child(promise_kept_twice);
    ck_assert_msg(strstr(text, "fut: misuse in fut_promise_resolve(0x") &&
                      strstr(text, "kept (or rejected) already"),
                  "%s", text);
}
END_TEST

START_TEST(garbage_handles_stop)
{
    char *text = misuse_in_child(await_garbage);
    ck_assert_msg(strstr(text, "fut: misuse in fut_await(0x") &&
                      strstr(text, "not a future"),
                  "%s", text);
    text = misuse_in_child(cancel_misaligned);
    ck_assert_msg(strstr(text, "fut: misuse in fut_cancel(0x") &&
                      strstr(text, "not a future"),
                  "%s", text);
}
END_TEST

/* Correct use never trips the checks: a promise kept once and its
 * future released after; a consumed future left alone. */
START_TEST(group_destroyed_by_its_child_stops)
{
    char *text = misuse_in_child(destroy_group_from_child);
    ck_assert_msg(strstr(text, "fut: misuse in fut_group_destroy(0x") &&
                      strstr(text, "not freed"),
                  "%s", text);
}
END_TEST

START_TEST(correct_use_is_quiet)
{
    fut_pool *pool = pool_new(2);
    fut_promise *p;
    fut_future *f;
    ck_assert_int_eq(fut_promise_create(pool, &p, &f), 0);
    fut_future *c = fut_then(fut_retain(f), then_add, (void *)1);
    ck_assert_int_eq(fut_promise_resolve(p, (void *)1), 0);
    void *v;
    ck_assert_int_eq(fut_await(c, &v), 0);
    ck_assert_ptr_eq(v, (void *)2);
    fut_release(c);
    fut_release(f);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

#endif

static Suite *checked_suite(void)
{
    Suite *s = suite_create("checked");
#ifdef FUT_CHECKED
    FUT_TCASE(s, "misuse", double_release_stops, use_after_release_stops,
              group_destroyed_by_its_child_stops,
              release_of_consumed_future_stops, promise_kept_twice_stops,
              garbage_handles_stop, correct_use_is_quiet);
#else
    TCase *tc = tcase_create("misuse (a checked build only)");
    suite_add_tcase(s, tc);
#endif
    return s;
}

FUT_TEST_MAIN(checked_suite)
