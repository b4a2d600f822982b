/* Tracing: the Chrome trace written at destroy. */
#define _GNU_SOURCE
#include "helpers.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Not static: the trace names it from the exported symbol table. */
int traced_task(void *arg, void **value);
int traced_task(void *arg, void **value)
{
    *value = arg;
    return 0;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void run_traced(fut_pool *pool)
{
    fut_future *fs[10];
    for (int i = 0; i < 10; i++)
        fs[i] = fut_then(fut_spawn(pool, traced_task, NULL), then_add, NULL);
    fut_future *s = fut_sleep(pool, 5);
    ck_assert_int_eq(fut_join_all(fs, 10), 0);
    ck_assert_int_eq(fut_await(s, NULL), 0);
    for (int i = 0; i < 10; i++)
        fut_release(fs[i]);
    fut_release(s);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}

static void check_trace(const char *path)
{
    char *json = read_file(path);
    ck_assert_ptr_nonnull(strstr(json, "{\"traceEvents\":["));
    /* One complete event per unit: ten tasks, ten continuations. */
    ck_assert_uint_eq(count(json, "\"ph\":\"X\""), 20);
    ck_assert_uint_eq(count(json, "\"name\":\"traced_task\""), 10);
    ck_assert_uint_eq(count(json, "\"cat\":\"then\""), 10);
    /* The sleep, as an async slice in the timer lane. */
    ck_assert_uint_eq(count(json, "\"name\":\"sleep\""), 2);
    ck_assert_ptr_nonnull(strstr(json, "\"args\":{\"name\":\"tr-1\"}"));
    ck_assert_ptr_nonnull(strstr(json, "\"dropped_events\":0"));
    unlink(path);
}

/* Not static either: the name of the parallel_for body in the trace. */
int traced_chunk(void *arg, size_t lo, size_t hi);
int traced_chunk(void *arg, size_t lo, size_t hi)
{
    atomic_fetch_add((atomic_long *)arg, (long)(hi - lo));
    return 0;
}

static int traced_loop_task(void *arg, void **value)
{
    fut_pool **pool = arg;
    static atomic_long inside;
    *value = (void *)(uintptr_t)fut_current_id(); /* its own id */
    return fut_parallel_for(*pool, 0, 40, 10, traced_chunk, &inside);
}

/* Group children and parallel_for chunks, the caller's own included, are
 * units in the trace, each an event named by its function. */
START_TEST(trace_groups_and_loops)
{
    char path[] = "/tmp/fut-trace-XXXXXX";
    temp_file(path);
    fut_pool_config cfg = {.threads = 2, .name = "tr", .trace_path = path};
    fut_pool *pool;
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    fut_group *g;
    ck_assert_int_eq(fut_group_create(pool, &g), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(fut_group_spawn(g, traced_task, NULL), 0);
    ck_assert_int_eq(fut_group_wait(g), 0);
    fut_group_destroy(g);
    atomic_long sum = 0;
    /* from outside: 8 chunks, some run by this thread */
    ck_assert_int_eq(fut_parallel_for(pool, 0, 80, 10, traced_chunk, &sum), 0);
    ck_assert_int_eq(atomic_load(&sum), 80);
    /* from a worker: 4 chunks, and the task itself */
    fut_future *f = fut_spawn(pool, traced_loop_task, &pool);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    uint64_t id = fut_id(f);
    ck_assert_uint_eq((uintptr_t)v, id); /* fut_current_id inside it */
    ck_assert_uint_eq(fut_current_id(), 0); /* no unit runs here */
    fut_release(f);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    char *json = read_file(path);
    ck_assert_uint_eq(count(json, "\"name\":\"traced_task\""), 5);
    ck_assert_uint_eq(count(json, "\"name\":\"traced_chunk\""), 12);
    ck_assert_uint_eq(count(json, "\"ph\":\"X\""), 5 + 12 + 1);
    /* ids: each group child's, and the task's, on its loop's 4 chunks
     * too; the loop called from outside runs in no unit: no id */
    ck_assert_uint_eq(count(json, "\"args\":{\"id\":"), 5 + 4 + 1);
    char want[48];
    snprintf(want, sizeof(want), "\"args\":{\"id\":%llu}",
             (unsigned long long)id);
    ck_assert_uint_eq(count(json, want), 4 + 1);
    ck_assert_ptr_nonnull(strstr(json, "\"dropped_events\":0"));
    unlink(path);
}
END_TEST

static int unexported_task(void *arg, void **value)
{
    *value = arg;
    return 0;
}

/* 300 units on one worker (its lane grows past its first 256 events), a
 * function the binary does not export (named by its address), and a
 * timeout that fires (an async slice named "timeout"). An empty
 * trace_path traces nothing. */
START_TEST(trace_grows_names_addresses_and_timeouts)
{
    char path[] = "/tmp/fut-trace-XXXXXX";
    temp_file(path);
    fut_pool_config cfg = {.threads = 1, .name = "tr", .trace_path = path};
    fut_pool *pool;
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    enum { N = 300 };
    fut_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = fut_spawn(pool, unexported_task, NULL);
    ck_assert_int_eq(fut_join_all(fs, N), 0);
    for (int i = 0; i < N; i++)
        fut_release(fs[i]);
    fut_promise *p;
    fut_future *f;
    ck_assert_int_eq(fut_promise_create(pool, &p, &f), 0);
    fut_future *t = fut_timeout(f, 1);
    ck_assert_int_eq(fut_await(t, NULL), ETIMEDOUT);
    fut_release(t);
    ck_assert_int_eq(fut_promise_resolve(p, NULL), EALREADY);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    char *json = read_file(path);
    ck_assert_uint_eq(count(json, "\"name\":\"0x"), N);
    ck_assert_uint_eq(count(json, "\"name\":\"timeout\""), 2);
    ck_assert_ptr_nonnull(strstr(json, "\"dropped_events\":0"));
    unlink(path);

    cfg.trace_path = "";
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    f = fut_spawn(pool, unexported_task, NULL);
    ck_assert_int_eq(fut_await(f, NULL), 0);
    fut_release(f);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* Every timer is in the trace, the cancelled ones and a timeout whose
 * input finished in time too (from the moment each was made to the moment
 * it was taken back), each async slice with an id of its own. (Before,
 * only timers that fired were.) */
START_TEST(trace_shows_cancelled_timers)
{
    char path[] = "/tmp/fut-trace-XXXXXX";
    temp_file(path);
    fut_pool_config cfg = {.threads = 1, .name = "tr", .trace_path = path};
    fut_pool *pool;
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    fut_future *s[5];
    for (int i = 0; i < 5; i++)
        s[i] = fut_sleep(pool, i < 3 ? 60000 : 5);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(fut_cancel(s[i]), 0);
    for (int i = 0; i < 5; i++) {
        fut_await(s[i], NULL);
        fut_release(s[i]);
    }
    /* a timeout whose input finishes in time: its timer is taken back
     * (the input is a promise, so that it is pending when the timeout is
     * made: a complete input gets no timer at all) */
    fut_promise *p;
    fut_future *in;
    ck_assert_int_eq(fut_promise_create(pool, &p, &in), 0);
    fut_future *t = fut_timeout(in, 60000);
    ck_assert_int_eq(fut_promise_resolve(p, NULL), 0);
    ck_assert_int_eq(fut_await(t, NULL), 0);
    fut_release(t);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    char *json = read_file(path);
    ck_assert_uint_eq(count(json, "\"name\":\"sleep\""), 10);
    ck_assert_uint_eq(count(json, "\"name\":\"timeout\""), 2);
    for (int id = 1; id <= 6; id++) { /* each id begins and ends once */
        char b[64];
        snprintf(b, sizeof(b), "\"ph\":\"b\",\"id\":%d,", id);
        ck_assert_uint_eq(count(json, b), 1);
    }
    unlink(path);
}
END_TEST

START_TEST(trace_from_config)
{
    char path[] = "/tmp/fut-trace-XXXXXX";
    temp_file(path);
    fut_pool *pool;
    fut_pool_config cfg = {.threads = 2, .name = "tr", .trace_path = path};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    run_traced(pool);
    check_trace(path);
}
END_TEST

START_TEST(trace_from_environment)
{
    char path[] = "/tmp/fut-trace-XXXXXX";
    temp_file(path);
    setenv("FUT_TRACE", path, 1);
    fut_pool *pool;
    fut_pool_config cfg = {.threads = 2, .name = "tr"};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    unsetenv("FUT_TRACE");
    run_traced(pool);
    check_trace(path);
}
END_TEST

/* A trace file that cannot be written: destroy still succeeds, and says
 * so on stderr, once, naming the pool, the path and the reason. (Before,
 * it was skipped without a word.) */
START_TEST(unwritable_trace_is_skipped)
{
    fut_pool *pool;
    fut_pool_config cfg = {.threads = 1, .name = "tr",
                           .trace_path = "/nonexistent/dir/trace.json"};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    char err[] = "/tmp/fut-stderr-XXXXXX";
    temp_file(err);
    fflush(stderr);
    int saved = dup(2);
    FILE *capture = fopen(err, "w");
    ck_assert_ptr_nonnull(capture);
    dup2(fileno(capture), 2);
    run_traced(pool); /* destroys it */
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(capture);
    const char *said = read_file(err);
    unlink(err);
    ck_assert_ptr_nonnull(strstr(said, "fut: pool tr: cannot write its trace "
                                       "to /nonexistent/dir/trace.json: "));
    ck_assert_uint_eq(count(said, "fut: "), 1);
}
END_TEST

/* The trace of run_traced on a one-thread pool of that name (in
 * read_file's buffer). */
static const char *trace_of_pool_named(const char *name)
{
    char path[] = "/tmp/fut-trace-XXXXXX";
    temp_file(path);
    fut_pool *pool;
    fut_pool_config cfg = {.threads = 1, .name = name, .trace_path = path};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    run_traced(pool);
    const char *json = read_file(path);
    unlink(path);
    return json;
}

/* A pool name with a quote, a backslash and a tab is escaped in the
 * lanes' names, so the file stays valid JSON. (Before, it was written as
 * it was and broke the file.) */
START_TEST(names_are_escaped)
{
    const char *json = trace_of_pool_named("a\"b\\c\td");
    ck_assert_ptr_nonnull(strstr(json, "\"name\":\"a\\\"b\\\\c\\u0009d-0\""));
    ck_assert_ptr_null(strstr(json, "a\"b"));
    ck_assert_ptr_null(strstr(json, "\t"));
}
END_TEST

/* UTF-8 in a pool name is copied whole (two-, three- and four-byte
 * characters); bytes that are not UTF-8 (a stray 0xFF, a lead byte with
 * no continuation) become '?', so the file stays valid JSON. */
START_TEST(names_keep_utf8)
{
    const char *json =
        trace_of_pool_named("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff\xc3x");
    ck_assert_ptr_nonnull(
        strstr(json, "\"name\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80??x-0\""));
    ck_assert_ptr_null(strstr(json, "\xff"));
}
END_TEST

/* A name longer than a thread name's 15 bytes is cut, in the trace's
 * lanes too, before the character the cut would split, never inside it. */
START_TEST(long_utf8_name_cut_whole)
{
    const char *json = trace_of_pool_named("abcdefghijklmn\xc3\xa9xyz");
    ck_assert_ptr_nonnull(strstr(json, "\"name\":\"abcdefghijklmn-0\""));
    ck_assert_ptr_null(strstr(json, "?"));
    ck_assert_ptr_null(strstr(json, "\xc3\""));
}
END_TEST

/* Several pools tracing to $FUT_TRACE: each writes its own file (the first
 * made writes the path, the next ones PATH.1, PATH.2, ...), so none
 * replaces another's trace. */
START_TEST(trace_environment_several_pools)
{
    char path[] = "/tmp/fut-trace-XXXXXX";
    temp_file(path);
    unlink(path);
    setenv("FUT_TRACE", path, 1);
    fut_pool *a, *b;
    fut_pool_config ca = {.threads = 1, .name = "first"};
    fut_pool_config cb = {.threads = 1, .name = "second"};
    ck_assert_int_eq(fut_pool_create(&a, &ca), 0);
    ck_assert_int_eq(fut_pool_create(&b, &cb), 0);
    unsetenv("FUT_TRACE");
    run_traced(a);
    run_traced(b);
    int found = 0, first = 0, second = 0;
    for (int n = 0; n < 10; n++) { /* earlier pools of this process: n > 0 */
        char name[64];
        if (n == 0)
            snprintf(name, sizeof(name), "%s", path);
        else
            snprintf(name, sizeof(name), "%s.%d", path, n);
        if (access(name, F_OK) != 0)
            continue;
        found++;
        const char *json = read_file(name);
        first += strstr(json, "\"name\":\"first-0\"") != NULL;
        second += strstr(json, "\"name\":\"second-0\"") != NULL;
        unlink(name);
    }
    ck_assert_int_eq(found, 2);
    ck_assert_int_eq(first, 1);
    ck_assert_int_eq(second, 1);
}
END_TEST

/* Arrows: each continuation that a task's completion made ready gets a
 * flow start inside the task's slice and a flow end inside its own, with
 * the same id. */
START_TEST(trace_draws_arrows_to_continuations)
{
    char path[] = "/tmp/fut-flow-XXXXXX";
    temp_file(path);
    fut_pool *pool;
    fut_pool_config cfg = {.threads = 2, .trace_path = path};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    for (int i = 0; i < 5; i++) {
        /* the task ends after its continuation listens: its completion is
         * what makes the continuation ready */
        gate g;
        gate_init(&g);
        fut_future *t = fut_spawn(pool, task_gate, &g);
        fut_future *c = fut_then(t, then_add, NULL);
        gate_open(&g);
        ck_assert_int_eq(await_rc(c), 0);
    }
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    char *json = read_file(path);
    unlink(path);
    size_t starts = count(json, "\"ph\":\"s\""),
           ends = count(json, "\"ph\":\"f\",\"bp\":\"e\"");
    ck_assert_msg(starts == 5 && ends == 5, "%zu starts, %zu ends: %s", starts,
                  ends, json);
    /* each start's id has its end */
    for (const char *at = strstr(json, "\"ph\":\"s\""); at;
         at = strstr(at + 1, "\"ph\":\"s\"")) {
        const char *id = strstr(at, "\"id\":");
        ck_assert_ptr_nonnull(id);
        char want[64];
        snprintf(want, sizeof(want), "\"ph\":\"f\",\"bp\":\"e\",%.*s",
                 (int)(strchr(id, ',') - id), id);
        ck_assert_msg(strstr(json, want), "no end for %s", want);
    }
}
END_TEST

/* A trace written while the pool runs, from outside, and again from
 * inside a task; then the one at destroy, which still has it all. */
static int write_trace_here(void *arg, void **value)
{
    *value = (void *)(intptr_t)fut_pool_trace_write(arg, NULL);
    return 0;
}

START_TEST(trace_written_on_demand)
{
    char path[] = "/tmp/fut-now-XXXXXX", other[] = "/tmp/fut-now2-XXXXXX";
    temp_file(path);
    temp_file(other);
    fut_pool *pool;
    fut_pool_config cfg = {.threads = 2, .trace_path = path};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(await_rc(fut_spawn(pool, traced_task, NULL)), 0);
    ck_assert_int_eq(fut_pool_trace_write(pool, other), 0);
    ck_assert_uint_eq(count(read_file(other), "\"name\":\"traced_task\""), 3);
    void *rc;
    fut_future *f = fut_spawn(pool, write_trace_here, pool);
    ck_assert_int_eq(fut_await(f, &rc), 0);
    ck_assert_int_eq((int)(intptr_t)rc, 0);
    fut_release(f);
    ck_assert_uint_eq(count(read_file(path), "\"name\":\"traced_task\""), 3);
    /* an unwritable path: the program sees why */
    ck_assert_int_eq(fut_pool_trace_write(pool, "/nonexistent/dir/t.json"),
                     ENOENT);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    char *json = read_file(path);
    ck_assert_uint_eq(count(json, "\"name\":\"traced_task\""), 3);
    ck_assert_uint_eq(count(json, "\"cat\":\"task\""), 4);
    unlink(path);
    unlink(other);
    /* a pool that does not trace */
    fut_pool *plain = pool_new(1);
    ck_assert_int_eq(fut_pool_trace_write(plain, other), EINVAL);
    ck_assert_int_eq(fut_pool_trace_write(NULL, other), EINVAL);
    ck_assert_int_eq(fut_pool_destroy(plain), 0);
}
END_TEST

/* trace_events: each thread keeps its latest events only, the others
 * counted as dropped; the latest are the ones kept. */
START_TEST(trace_keeps_latest_events)
{
    char path[] = "/tmp/fut-ring-XXXXXX";
    temp_file(path);
    fut_pool *pool;
    fut_pool_config cfg = {.threads = 1, .trace_path = path,
                           .trace_events = 8};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    for (int i = 0; i < 100; i++) {
        char name[16];
        snprintf(name, sizeof(name), "unit-%d", i);
        fut_task_opts o = {.name = name};
        ck_assert_int_eq(await_rc(fut_spawn_with(pool, &o, traced_task, NULL)),
                         0);
    }
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    char *json = read_file(path);
    unlink(path);
    ck_assert_uint_eq(count(json, "\"cat\":\"task\""), 8);
    ck_assert_ptr_nonnull(strstr(json, "\"name\":\"unit-99\""));
    ck_assert_ptr_nonnull(strstr(json, "\"name\":\"unit-92\""));
    ck_assert_ptr_null(strstr(json, "\"name\":\"unit-91\""));
    ck_assert_ptr_nonnull(strstr(json, "\"dropped_events\":92"));
}
END_TEST

static Suite *trace_suite(void)
{
    Suite *s = suite_create("trace");
    FUT_TCASE(s, "more", trace_draws_arrows_to_continuations,
              trace_written_on_demand, trace_keeps_latest_events);
    FUT_TCASE(s, "trace", trace_from_config, trace_groups_and_loops,
              trace_grows_names_addresses_and_timeouts, trace_from_environment,
              unwritable_trace_is_skipped, names_are_escaped, names_keep_utf8,
              long_utf8_name_cut_whole, trace_environment_several_pools,
              trace_shows_cancelled_timers);
    return s;
}

FUT_TEST_MAIN(trace_suite)
