/* Pools: creation, defaults, names, worker index, stats, destroy rules. */
#define _GNU_SOURCE
#include "helpers.h"

#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

START_TEST(create_defaults)
{
    fut_pool *pool = NULL;
    ck_assert_int_eq(fut_pool_create(&pool, NULL), 0);
    cpu_set_t set;
    ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    ck_assert_uint_eq(fut_pool_threads(pool), (size_t)CPU_COUNT(&set));
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* FUT_THREADS decides the size when the config leaves it 0; an explicit
 * size wins; a malformed value is EINVAL (each test runs in its own
 * process, so the environment is its own). */
START_TEST(size_from_environment)
{
    fut_pool *pool = NULL;
    setenv("FUT_THREADS", "3", 1);
    ck_assert_int_eq(fut_pool_create(&pool, NULL), 0);
    ck_assert_uint_eq(fut_pool_threads(pool), 3);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    fut_pool_config two = {.threads = 2};
    ck_assert_int_eq(fut_pool_create(&pool, &two), 0);
    ck_assert_uint_eq(fut_pool_threads(pool), 2);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    const char *bad[] = {
        "0", "abc", "4097", "-1", "2x", " 2", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("FUT_THREADS", bad[i], 1);
        pool = NULL;
        ck_assert_int_eq(fut_pool_create(&pool, NULL), EINVAL);
        ck_assert_ptr_null(pool);
    }
    setenv("FUT_THREADS", "", 1); /* empty: as if unset */
    ck_assert_int_eq(fut_pool_create(&pool, NULL), 0);
    cpu_set_t set;
    ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    ck_assert_uint_eq(fut_pool_threads(pool), (size_t)CPU_COUNT(&set));
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    unsetenv("FUT_THREADS");
}
END_TEST

START_TEST(create_bad_arguments)
{
    fut_pool *pool = NULL;
    fut_pool_config huge = {.threads = (size_t)1 << 40};
    ck_assert_int_eq(fut_pool_create(NULL, NULL), EINVAL);
    ck_assert_int_eq(fut_pool_create(&pool, &huge), EINVAL);
    ck_assert_ptr_null(pool);
    ck_assert_int_eq(fut_pool_destroy(NULL), EINVAL);
    ck_assert_uint_eq(fut_pool_threads(NULL), 0);
    fut_pool_stats st;
    ck_assert_int_eq(fut_pool_stats_get(NULL, &st), EINVAL);
}
END_TEST

static int task_name(void *arg, void **value)
{
    (void)arg;
    char *name = calloc(1, 16);
    pthread_getname_np(pthread_self(), name, 16);
    *value = name;
    return 0;
}

static int task_index(void *arg, void **value)
{
    (void)arg;
    *value = (void *)(intptr_t)fut_worker_index();
    return 0;
}

START_TEST(workers_are_named)
{
    fut_pool *pool;
    fut_pool_config cfg = {.threads = 1, .name = "io"};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    fut_future *f = fut_spawn(pool, task_name, NULL);
    void *name;
    ck_assert_int_eq(fut_await(f, &name), 0);
    ck_assert_str_eq(name, "io-0");
    free(name);
    fut_release(f);
    fut_pool_destroy(pool);

    /* A long prefix is cut so that the index still shows. */
    cfg.name = "a-very-long-pool-name";
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    f = fut_spawn(pool, task_name, NULL);
    ck_assert_int_eq(fut_await(f, &name), 0);
    ck_assert_str_eq(name, "a-very-long-p-0");
    free(name);
    fut_release(f);
    fut_pool_destroy(pool);

    pool = pool_new(1);
    f = fut_spawn(pool, task_name, NULL);
    ck_assert_int_eq(fut_await(f, &name), 0);
    ck_assert_str_eq(name, "fut-0");
    free(name);
    fut_release(f);
    fut_pool_destroy(pool);
}
END_TEST

/* The names of the calling process's threads, from /proc, joined by
 * spaces into buf. */
static void thread_names(char *buf, size_t size)
{
    buf[0] = 0;
    DIR *d = opendir("/proc/self/task");
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], name[32] = {0};
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(name, sizeof(name), f))
            name[strcspn(name, "\n")] = 0;
        fclose(f);
        strncat(buf, name, size - strlen(buf) - 2);
        strcat(buf, " ");
    }
    closedir(d);
}

/* Every thread is named by the time fut_pool_create returns, and a long
 * name is cut at a character boundary, never inside a UTF-8 sequence. */
START_TEST(names_set_before_create_returns)
{
    for (int round = 0; round < 20; round++) {
        fut_pool *pool;
        /* 12 ASCII bytes, then a two-byte e-acute that a 13-byte cut
         * would split */
        fut_pool_config cfg = {.threads = 3, .name = "abcdefghijkl\xc3\xa9z"};
        ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
        char names[4096];
        thread_names(names, sizeof(names));
        ck_assert_ptr_nonnull(strstr(names, "abcdefghijkl-0 "));
        ck_assert_ptr_nonnull(strstr(names, "abcdefghijkl-2 "));
        ck_assert_ptr_nonnull(strstr(names, "abcdefghi-timer "));
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    }
    /* A name of nothing but continuation bytes (not UTF-8) has no
     * boundary to cut at: only the suffix is left. */
    fut_pool *pool;
    fut_pool_config cfg = {.threads = 1,
                           .name = "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80"};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    char names[4096];
    thread_names(names, sizeof(names));
    ck_assert_ptr_nonnull(strstr(names, " -0 "));
    ck_assert_ptr_nonnull(strstr(names, " -timer "));
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

START_TEST(worker_index)
{
    ck_assert_int_eq(fut_worker_index(), -1);
    fut_pool *pool = pool_new(3);
    fut_future *fs[32];
    for (int i = 0; i < 32; i++)
        fs[i] = fut_spawn(pool, task_index, NULL);
    for (int i = 0; i < 32; i++) {
        void *v;
        ck_assert_int_eq(fut_await(fs[i], &v), 0);
        ck_assert_int_ge((intptr_t)v, 0);
        ck_assert_int_lt((intptr_t)v, 3);
        fut_release(fs[i]);
    }
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(stats_add_up)
{
    fut_pool *pool = pool_new(2);
    enum { N = 200 };
    fut_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = fut_spawn(pool, i % 4 ? task_value : task_fail,
                          (void *)(intptr_t)(i % 4 ? i : EIO));
    ck_assert_int_eq(fut_join_all(fs, N), EIO);
    fut_pool_stats st;
    ck_assert_int_eq(fut_pool_stats_get(pool, &st), 0);
    ck_assert_uint_eq(st.threads, 2);
    ck_assert_uint_eq(st.spawned, N);
    ck_assert_uint_eq(st.completed, N);
    ck_assert_uint_eq(st.failed, N / 4);
    ck_assert_uint_eq(st.cancelled, 0);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_uint_eq(st.timers_pending, 0);
    for (int i = 0; i < N; i++)
        fut_release(fs[i]);
    fut_pool_destroy(pool);
}
END_TEST

START_TEST(stats_count_queued)
{
    fut_pool *pool = pool_new(1);
    gate g;
    gate_init(&g);
    fut_future *blocker = fut_spawn(pool, task_gate, &g);
    gate_wait_arrived(&g, 1);
    fut_future *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = fut_spawn(pool, task_value, NULL);
    fut_pool_stats st;
    fut_pool_stats_get(pool, &st);
    ck_assert_uint_eq(st.queued, 3);
    ck_assert_int_eq(fut_cancel(fs[1]), 0);
    fut_pool_stats_get(pool, &st);
    ck_assert_uint_eq(st.queued, 2);
    ck_assert_uint_eq(st.cancelled, 1);
    gate_open(&g);
    fut_join_all(fs, 3);
    fut_await(blocker, NULL);
    assert_stats_balanced(pool);
    fut_pool_stats_get(pool, &st);
    ck_assert_uint_eq(st.spawned, 4);
    ck_assert_uint_eq(st.completed, 3);
    for (int i = 0; i < 3; i++)
        fut_release(fs[i]);
    fut_release(blocker);
    fut_pool_destroy(pool);
}
END_TEST

/* Continuations are units too: each is counted queued from the moment
 * its input completes until a worker starts it. */
START_TEST(stats_count_continuations)
{
    fut_pool *pool = pool_new(1);
    gate g;
    gate_init(&g);
    fut_future *blocker = fut_spawn(pool, task_gate, &g);
    gate_wait_arrived(&g, 1);
    fut_promise *ps[3];
    fut_future *cs[3];
    for (int i = 0; i < 3; i++) {
        fut_future *f;
        ck_assert_int_eq(fut_promise_create(pool, &ps[i], &f), 0);
        cs[i] = fut_then(f, then_add, (void *)1);
    }
    fut_pool_stats st;
    fut_pool_stats_get(pool, &st);
    ck_assert_uint_eq(st.queued, 0); /* waiting for their inputs */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(fut_promise_resolve(ps[i], (void *)(intptr_t)i), 0);
    fut_pool_stats_get(pool, &st);
    ck_assert_uint_eq(st.queued, 3); /* behind the blocker */
    gate_open(&g);
    ck_assert_int_eq(fut_join_all(cs, 3), 0);
    for (int i = 0; i < 3; i++) {
        void *v;
        ck_assert_int_eq(fut_await(cs[i], &v), 0);
        ck_assert_int_eq((intptr_t)v, i + 1);
        fut_release(cs[i]);
    }
    fut_await(blocker, NULL);
    fut_release(blocker);
    assert_stats_balanced(pool);
    fut_pool_destroy(pool);
}
END_TEST

static int task_destroy_own(void *arg, void **value)
{
    (void)value;
    return fut_pool_destroy(arg);
}

START_TEST(destroy_from_own_worker)
{
    fut_pool *pool = pool_new(2);
    fut_future *f = fut_spawn(pool, task_destroy_own, pool);
    ck_assert_int_eq(fut_await(f, NULL), EDEADLK);
    fut_release(f);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* Destroying pool B from a worker of pool A is allowed. */
START_TEST(destroy_from_other_pool)
{
    fut_pool *a = pool_new(1), *b = pool_new(1);
    fut_future *f = fut_spawn(a, task_destroy_own, b);
    ck_assert_int_eq(fut_await(f, NULL), 0);
    fut_release(f);
    fut_pool_destroy(a);
}
END_TEST

START_TEST(many_pools)
{
    for (int i = 0; i < 20; i++) {
        fut_pool *pool = pool_new((size_t)(i % 4) + 1);
        fut_future *f = fut_spawn(pool, task_value, (void *)7);
        void *v;
        ck_assert_int_eq(fut_await(f, &v), 0);
        ck_assert_ptr_eq(v, (void *)7);
        fut_release(f);
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    }
}
END_TEST

struct steal_me {
    fut_pool *pool;
    gate child_ran; /* opened by the child */
};

static int open_gate(void *arg, void **value)
{
    (void)value;
    gate_open(arg);
    return 0;
}

/* Queues a child on its own worker's queue, then blocks that worker
 * (not in a fut wait, which would run the child itself) until the child
 * has run: only another worker, stealing it, can run it. */
static int parent_blocks(void *arg, void **value)
{
    struct steal_me *s = arg;
    fut_future *c = fut_spawn(s->pool, open_gate, &s->child_ran);
    pthread_mutex_lock(&s->child_ran.lock);
    while (!s->child_ran.open)
        pthread_cond_wait(&s->child_ran.cv, &s->child_ran.lock);
    pthread_mutex_unlock(&s->child_ran.lock);
    *value = NULL;
    int rc = fut_await(c, NULL);
    fut_release(c);
    return rc;
}

/* `stolen` counts the units a worker took from another worker's queue:
 * exactly the one child here; none when the parent awaits its children on
 * one thread (it runs them itself), nor for work queued from outside. */
START_TEST(stats_count_steals)
{
    fut_pool *pool = pool_new(2);
    struct steal_me s = {.pool = pool};
    gate_init(&s.child_ran);
    fut_future *f = fut_spawn(pool, parent_blocks, &s);
    ck_assert_int_eq(fut_await(f, NULL), 0);
    fut_release(f);
    fut_pool_stats st;
    ck_assert_int_eq(fut_pool_stats_get(pool, &st), 0);
    ck_assert_uint_eq(st.spawned, 2);
    ck_assert_uint_eq(st.stolen, 1);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);

    pool = pool_new(1);
    fut_future *fs[20];
    for (int i = 0; i < 20; i++)
        fs[i] = fut_spawn(pool, task_value, NULL);
    ck_assert_int_eq(fut_join_all(fs, 20), 0);
    for (int i = 0; i < 20; i++)
        fut_release(fs[i]);
    ck_assert_int_eq(fut_pool_stats_get(pool, &st), 0);
    ck_assert_uint_eq(st.stolen, 0);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

static Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    FUT_TCASE(s, "lifecycle", create_defaults, create_bad_arguments, many_pools,
              destroy_from_own_worker, destroy_from_other_pool);
    FUT_TCASE(s, "workers", workers_are_named, worker_index);
    FUT_TCASE(s, "stats", stats_add_up, stats_count_queued,
              stats_count_continuations, stats_count_steals);
    FUT_TCASE(s, "names", names_set_before_create_returns);
    FUT_TCASE(s, "size", size_from_environment);
    return s;
}

FUT_TEST_MAIN(pool_suite)
