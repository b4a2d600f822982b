/*
 * Hostile input, as a table: every public function given NULL pointers,
 * zero and huge sizes, counts and timeouts, NULL entries in arrays of
 * futures, static failed futures and spent promises. Each case must give
 * its documented result: no crash, no hang.
 */
#include "helpers.h"

#include <stdio.h>
#include <string.h>

static fut_pool *pool;
static fut_future *ok_future; /* a completed future of pool */


static int never(void *arg, size_t lo, size_t hi)
{
    (void)arg, (void)lo, (void)hi;
    return EDOM;
}

static int c_pool_create_null(void)
{
    return fut_pool_create(NULL, NULL);
}
static int c_pool_create_huge(void)
{
    fut_pool *p;
    fut_pool_config cfg = {.threads = SIZE_MAX};
    return fut_pool_create(&p, &cfg);
}
static int c_pool_create_long_name(void)
{
    static char name[1000];
    memset(name, 'x', sizeof(name) - 1);
    fut_pool *p;
    fut_pool_config cfg = {.threads = 1, .name = name};
    int rc = fut_pool_create(&p, &cfg);
    return rc ? rc : fut_pool_destroy(p);
}
static int c_pool_destroy_null(void)
{
    return fut_pool_destroy(NULL);
}
static int c_pool_threads_null(void)
{
    return (int)fut_pool_threads(NULL);
}
static int c_stats_null_pool(void)
{
    fut_pool_stats st;
    return fut_pool_stats_get(NULL, &st);
}
static int c_stats_null_out(void)
{
    return fut_pool_stats_get(pool, NULL);
}
static int c_spawn_null_pool(void)
{
    return await_rc(fut_spawn(NULL, task_value, NULL));
}
static int c_spawn_null_fn(void)
{
    return await_rc(fut_spawn(pool, NULL, NULL));
}
static int c_sleep_null(void)
{
    return await_rc(fut_sleep(NULL, 1));
}
static int c_sleep_huge_cancelled(void)
{
    fut_future *f = fut_sleep(pool, UINT64_MAX);
    int rc = fut_cancel(f);
    return rc ? rc : await_rc(f);
}
static int c_then_null(void)
{
    return await_rc(fut_then(NULL, then_add, NULL));
}
static int c_all_values_huge(void)
{
    fut_future *one[1] = {ok_future};
    return await_rc(fut_all_values(one, SIZE_MAX));
}
static int c_all_values_null(void)
{
    return await_rc(fut_all_values(NULL, 1));
}
static int c_chain_null(void)
{
    return await_rc(fut_chain(NULL, NULL, NULL));
}
static int c_chain_null_fn(void)
{
    return await_rc(fut_chain(fut_retain(ok_future), NULL, NULL));
}
static int c_catch_null(void)
{
    return await_rc(fut_catch(NULL, NULL, NULL));
}
static int c_catch_null_fn(void)
{
    return await_rc(fut_catch(fut_retain(ok_future), NULL, NULL));
}
static int c_finally_null(void)
{
    return await_rc(fut_finally(NULL, NULL, NULL));
}
static int c_finally_null_fn(void)
{
    return await_rc(fut_finally(fut_retain(ok_future), NULL, NULL));
}
static int c_fany_null(void)
{
    return await_rc(fut_any(NULL, 1, false));
}
static int c_fany_empty(void)
{
    fut_future *one[1] = {ok_future};
    return await_rc(fut_any(one, 0, true));
}
static int c_fany_huge_count(void)
{
    fut_future *one[1] = {ok_future};
    return await_rc(fut_any(one, SIZE_MAX, false));
}
static int c_settled_null(void)
{
    int errors[1];
    return fut_join_settled(NULL, 1, errors);
}
static int c_settled_null_errors(void)
{
    fut_future *one[1] = {ok_future};
    return fut_join_settled(one, 1, NULL);
}
static const fut_task_opts no_opts; /* all zero: as without options */
static int c_spawn_with_null_pool(void)
{
    return await_rc(fut_spawn_with(NULL, &no_opts, task_value, NULL));
}
static int c_spawn_with_null_opts(void)
{
    return await_rc(fut_spawn_with(pool, NULL, task_value, NULL));
}
static int c_spawn_with_huge_copy(void)
{
    fut_task_opts o = {.arg_size = SIZE_MAX};
    return await_rc(fut_spawn_with(pool, &o, task_value, &o));
}
static int c_spawn_with_copy_of_null(void)
{
    fut_task_opts o = {.arg_size = 8};
    return await_rc(fut_spawn_with(pool, &o, task_value, NULL));
}
static int c_spawn_with_long_name(void)
{
    static char name[100001];
    memset(name, 'n', sizeof(name) - 1);
    fut_task_opts o = {.name = name};
    return await_rc(fut_spawn_with(pool, &o, task_value, NULL));
}
static int c_then_with_null(void)
{
    return await_rc(fut_then_with(NULL, &no_opts, then_add, NULL));
}
static int c_chain_with_null_fn(void)
{
    return await_rc(fut_chain_with(fut_retain(ok_future), &no_opts, NULL, NULL));
}
static int c_catch_with_null(void)
{
    return await_rc(fut_catch_with(NULL, &no_opts, NULL, NULL));
}
static int c_finally_with_null_fn(void)
{
    return await_rc(fut_finally_with(fut_retain(ok_future), &no_opts, NULL,
                                     NULL));
}
static int c_take_null(void)
{
    void *v;
    return fut_take(NULL, &v);
}
static int c_take_null_out(void)
{
    return fut_take(ok_future, NULL);
}
static int c_resolve_with_null(void)
{
    return fut_promise_resolve_with(NULL, NULL, free);
}
static int c_dump_null(void)
{
    return fut_pool_dump(NULL, stderr, 0);
}
static int c_dump_null_out(void)
{
    return fut_pool_dump(pool, NULL, FUT_DUMP_JSON);
}
static int c_dump_bad_flags(void)
{
    return fut_pool_dump(pool, stderr, ~0u);
}
static int c_then_null_fn(void)
{
    return await_rc(fut_then(fut_retain(ok_future), NULL, NULL));
}
static int c_timeout_null(void)
{
    return await_rc(fut_timeout(NULL, 1));
}
static int c_timeout_huge(void)
{
    return await_rc(fut_timeout(fut_spawn(pool, task_value, NULL), UINT64_MAX));
}
static int c_all_null_array(void)
{
    return await_rc(fut_all(NULL, 5));
}
static int c_all_null_entry(void)
{
    fut_future *fs[] = {ok_future, NULL, ok_future};
    return await_rc(fut_all(fs, 3));
}
static int c_all_empty(void)
{
    return await_rc(fut_all(NULL, 0));
}
static int c_all_huge_count(void)
{
    fut_future *fs[] = {ok_future}; /* the count fails before any entry */
    return await_rc(fut_all(fs, SIZE_MAX));
}
static int c_await_null(void)
{
    return fut_await(NULL, NULL);
}
static int c_await_for_null(void)
{
    return fut_await_for(NULL, 5, NULL);
}
static int c_await_for_zero(void)
{
    fut_promise *p;
    fut_future *f;
    fut_promise_create(pool, &p, &f);
    int rc = fut_await_for(f, 0, NULL);
    fut_promise_reject(p, EPIPE);
    fut_release(f);
    return rc;
}
static int c_await_for_huge(void)
{
    return fut_await_for(ok_future, UINT64_MAX, NULL);
}
static int c_join_null(void)
{
    return fut_join_all(NULL, 3);
}
static int c_join_null_entry(void)
{
    fut_future *fs[] = {NULL};
    return fut_join_all(fs, 1);
}
static int c_join_empty(void)
{
    return fut_join_all(NULL, 0);
}
static int c_any_empty(void)
{
    return fut_await_any(NULL, 0, NULL);
}
static int c_any_null_entry(void)
{
    fut_future *fs[] = {ok_future, NULL};
    return fut_await_any(fs, 2, NULL);
}
static int c_any_null_index(void)
{
    fut_future *fs[] = {ok_future};
    return fut_await_any(fs, 1, NULL);
}
static int c_ready_null(void)
{
    return fut_is_ready(NULL);
}
static int c_retain_null(void)
{
    return fut_retain(NULL) != NULL;
}
static int c_release_static(void)
{
    fut_future *f = fut_spawn(NULL, NULL, NULL); /* a static failure */
    for (int i = 0; i < 1000; i++)
        fut_release(fut_retain(f));
    fut_release(f);
    fut_release(f); /* more releases than references: still harmless */
    return fut_await(f, NULL);
}
static int c_cancel_null(void)
{
    return fut_cancel(NULL);
}
static int c_cancel_static(void)
{
    return fut_cancel(fut_all(NULL, 0));
}
static int c_cancel_done(void)
{
    return fut_cancel(ok_future);
}
static int c_promise_null_pool(void)
{
    fut_promise *p;
    fut_future *f;
    return fut_promise_create(NULL, &p, &f);
}
static int c_promise_null_out(void)
{
    fut_future *f;
    return fut_promise_create(pool, NULL, &f);
}
static int c_resolve_null(void)
{
    return fut_promise_resolve(NULL, NULL);
}
static int c_reject_null(void)
{
    return fut_promise_reject(NULL, EIO);
}
static int c_reject_zero(void)
{
    fut_promise *p;
    fut_future *f;
    fut_promise_create(pool, &p, &f);
    int rc = fut_promise_reject(p, 0); /* not consumed */
    fut_promise_resolve(p, NULL);
    fut_release(f);
    return rc;
}
static int c_kept_after_cancel(void)
{
    fut_promise *p;
    fut_future *f;
    fut_promise_create(pool, &p, &f);
    fut_cancel(f);
    int rc = fut_promise_resolve(p, NULL);
    fut_release(f);
    return rc;
}
static int c_group_null(void)
{
    return fut_group_create(pool, NULL);
}
static int c_group_spawn_null(void)
{
    return fut_group_spawn(NULL, task_value, NULL);
}
static int c_group_cancel_null(void)
{
    return fut_group_cancel(NULL);
}
static int c_group_wait_null(void)
{
    return fut_group_wait(NULL);
}
static int c_group_destroy_null(void)
{
    fut_group_destroy(NULL);
    return 0;
}
static int c_pfor_null(void)
{
    return fut_parallel_for(NULL, 0, 1, 1, never, NULL);
}
static int c_pfor_backwards(void)
{
    return fut_parallel_for(pool, 2, 1, 1, never, NULL);
}
static int c_pfor_empty(void)
{
    return fut_parallel_for(pool, 7, 7, 0, never, NULL);
}
static int c_pfor_null_fn(void)
{
    return fut_parallel_for(pool, 0, 1, 1, NULL, NULL);
}
static int c_pfor_huge_grain(void)
{
    return fut_parallel_for(pool, 0, 10, SIZE_MAX, never, NULL);
}
static int c_strerror_any(void)
{
    int codes[] = {0, -1, INT32_MIN, INT32_MAX, EIO};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (!fut_strerror(codes[i]) || !fut_strerror(codes[i])[0])
            return 1;
    return 0;
}

static const struct {
    const char *name;
    int (*run)(void);
    int want;
} cases[] = {
    {"pool_create(NULL)", c_pool_create_null, EINVAL},
    {"pool_create(threads = SIZE_MAX)", c_pool_create_huge, EINVAL},
    {"pool_create(999-char name)", c_pool_create_long_name, 0},
    {"pool_destroy(NULL)", c_pool_destroy_null, EINVAL},
    {"pool_threads(NULL)", c_pool_threads_null, 0},
    {"stats_get(NULL, _)", c_stats_null_pool, EINVAL},
    {"stats_get(_, NULL)", c_stats_null_out, EINVAL},
    {"spawn(NULL pool)", c_spawn_null_pool, EINVAL},
    {"spawn(NULL fn)", c_spawn_null_fn, EINVAL},
    {"sleep(NULL pool)", c_sleep_null, EINVAL},
    {"sleep(UINT64_MAX), cancelled", c_sleep_huge_cancelled, ECANCELED},
    {"spawn_with(NULL pool)", c_spawn_with_null_pool, EINVAL},
    {"spawn_with(NULL opts)", c_spawn_with_null_opts, 0},
    {"spawn_with(arg_size SIZE_MAX)", c_spawn_with_huge_copy, ENOMEM},
    {"spawn_with(arg_size 8, NULL arg)", c_spawn_with_copy_of_null, EINVAL},
    {"spawn_with(100000-char name)", c_spawn_with_long_name, 0},
    {"then_with(NULL)", c_then_with_null, EINVAL},
    {"chain_with(_, NULL fn)", c_chain_with_null_fn, EINVAL},
    {"catch_with(NULL, NULL fn)", c_catch_with_null, EINVAL},
    {"finally_with(_, NULL fn)", c_finally_with_null_fn, EINVAL},
    {"take(NULL)", c_take_null, EINVAL},
    {"take(_, NULL)", c_take_null_out, EINVAL},
    {"promise_resolve_with(NULL)", c_resolve_with_null, EINVAL},
    {"pool_dump(NULL)", c_dump_null, EINVAL},
    {"pool_dump(_, NULL)", c_dump_null_out, EINVAL},
    {"pool_dump(_, _, ~0)", c_dump_bad_flags, EINVAL},
    {"then(NULL)", c_then_null, EINVAL},
    {"then(_, NULL fn)", c_then_null_fn, EINVAL},
    {"join_settled(NULL, 1)", c_settled_null, EINVAL},
    {"join_settled(_, 1, NULL)", c_settled_null_errors, EINVAL},
    {"any(NULL, 1)", c_fany_null, EINVAL},
    {"any(_, 0)", c_fany_empty, EINVAL},
    {"any(1 entry, SIZE_MAX)", c_fany_huge_count, ENOMEM},
    {"all_values(NULL, 1)", c_all_values_null, EINVAL},
    {"all_values(1 entry, SIZE_MAX)", c_all_values_huge, ENOMEM},
    {"chain(NULL)", c_chain_null, EINVAL},
    {"chain(_, NULL fn)", c_chain_null_fn, EINVAL},
    {"catch(NULL)", c_catch_null, EINVAL},
    {"catch(_, NULL fn)", c_catch_null_fn, EINVAL},
    {"finally(NULL)", c_finally_null, EINVAL},
    {"finally(_, NULL fn)", c_finally_null_fn, EINVAL},
    {"timeout(NULL)", c_timeout_null, EINVAL},
    {"timeout(_, UINT64_MAX)", c_timeout_huge, 0},
    {"all(NULL, 5)", c_all_null_array, EINVAL},
    {"all(NULL entry)", c_all_null_entry, EINVAL},
    {"all(NULL, 0)", c_all_empty, 0},
    {"all(1 entry, SIZE_MAX)", c_all_huge_count, ENOMEM},
    {"await(NULL)", c_await_null, EINVAL},
    {"await_for(NULL)", c_await_for_null, EINVAL},
    {"await_for(pending, 0)", c_await_for_zero, ETIMEDOUT},
    {"await_for(done, UINT64_MAX)", c_await_for_huge, 0},
    {"join_all(NULL, 3)", c_join_null, EINVAL},
    {"join_all(NULL entry)", c_join_null_entry, EINVAL},
    {"join_all(NULL, 0)", c_join_empty, 0},
    {"await_any(NULL, 0)", c_any_empty, EINVAL},
    {"await_any(NULL entry)", c_any_null_entry, EINVAL},
    {"await_any(_, _, NULL index)", c_any_null_index, 0},
    {"is_ready(NULL)", c_ready_null, 0},
    {"retain(NULL)", c_retain_null, 0},
    {"release(static failure) x1002", c_release_static, EINVAL},
    {"cancel(NULL)", c_cancel_null, EINVAL},
    {"cancel(all of nothing)", c_cancel_static, EALREADY},
    {"cancel(completed)", c_cancel_done, EALREADY},
    {"promise_create(NULL pool)", c_promise_null_pool, EINVAL},
    {"promise_create(NULL out)", c_promise_null_out, EINVAL},
    {"promise_resolve(NULL)", c_resolve_null, EINVAL},
    {"promise_reject(NULL)", c_reject_null, EINVAL},
    {"promise_reject(_, 0)", c_reject_zero, EINVAL},
    {"resolve after cancel", c_kept_after_cancel, EALREADY},
    {"group_create(_, NULL)", c_group_null, EINVAL},
    {"group_spawn(NULL)", c_group_spawn_null, EINVAL},
    {"group_wait(NULL)", c_group_wait_null, EINVAL},
    {"group_cancel(NULL)", c_group_cancel_null, EINVAL},
    {"group_destroy(NULL)", c_group_destroy_null, 0},
    {"parallel_for(NULL pool)", c_pfor_null, EINVAL},
    {"parallel_for(begin > end)", c_pfor_backwards, EINVAL},
    {"parallel_for(empty, grain 0)", c_pfor_empty, 0},
    {"parallel_for(NULL fn)", c_pfor_null_fn, EINVAL},
    {"parallel_for(grain SIZE_MAX)", c_pfor_huge_grain, EDOM},
    {"strerror(anything)", c_strerror_any, 0},
};

START_TEST(every_case)
{
    pool = pool_new(2);
    ok_future = fut_spawn(pool, task_value, NULL);
    ck_assert_int_eq(fut_await(ok_future, NULL), 0);
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++) {
        int got = cases[i].run();
        ck_assert_msg(got == cases[i].want, "%s: got %d (%s), want %d (%s)",
                      cases[i].name, got, fut_strerror(got), cases[i].want,
                      fut_strerror(cases[i].want));
    }
    printf("hostile inputs tried: %zu\n", n);
    fut_release(ok_future);
    assert_stats_balanced(pool);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

static Suite *hostile_suite(void)
{
    Suite *s = suite_create("hostile");
    FUT_TCASE(s, "hostile", every_case);
    return s;
}

FUT_TEST_MAIN(hostile_suite)
