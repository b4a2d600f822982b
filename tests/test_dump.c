/*
 * fut_pool_dump: what it shows while tasks run, wait and sleep, as text
 * and as JSON (checked by a small validator here).
 */
#include "helpers.h"

#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <time.h>

/* ---- A JSON validator: whether s is one JSON value and nothing else. */

static const char *json_value(const char *s);

static const char *json_space(const char *s)
{
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
        s++;
    return s;
}

static const char *json_string(const char *s)
{
    if (*s++ != '"')
        return NULL;
    for (; *s != '"'; s++) {
        if ((unsigned char)*s < 0x20)
            return NULL;
        if (*s == '\\') {
            s++;
            if (*s == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)s[i]))
                        return NULL;
                s += 4;
            } else if (!strchr("\"\\/bfnrt", *s) || !*s) {
                return NULL;
            }
        }
    }
    return s + 1;
}

static const char *json_number(const char *s)
{
    const char *start = s;
    if (*s == '-')
        s++;
    while (isdigit((unsigned char)*s) || *s == '.' || *s == 'e' ||
           *s == 'E' || *s == '+' || *s == '-')
        s++;
    return s > start ? s : NULL;
}

static const char *json_list(const char *s, char close, bool object)
{
    s = json_space(s + 1);
    if (*s == close)
        return s + 1;
    for (;;) {
        if (object) {
            s = json_string(json_space(s));
            if (!s || *(s = json_space(s)) != ':')
                return NULL;
            s++;
        }
        s = json_value(s);
        if (!s)
            return NULL;
        s = json_space(s);
        if (*s == close)
            return s + 1;
        if (*s++ != ',')
            return NULL;
    }
}

static const char *json_value(const char *s)
{
    s = json_space(s);
    switch (*s) {
    case '{': return json_list(s, '}', true);
    case '[': return json_list(s, ']', false);
    case '"': return json_string(s);
    case 't': return strncmp(s, "true", 4) ? NULL : s + 4;
    case 'f': return strncmp(s, "false", 5) ? NULL : s + 5;
    case 'n': return strncmp(s, "null", 4) ? NULL : s + 4;
    default: return json_number(s);
    }
}

static bool json_valid(const char *s)
{
    const char *end = json_value(s);
    return end && *json_space(end) == '\0';
}

/* ---- Dumps into a string --------------------------------------------- */

/* The dump of pool (JSON when json), checked valid when JSON; free it. */
static char *dump(fut_pool *pool, bool json)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(fut_pool_dump(pool, out, json ? FUT_DUMP_JSON : 0), 0);
    fclose(out);
    if (json)
        ck_assert_msg(json_valid(text), "not JSON: %s", text);
    return text;
}

/* Dumps until the text dump contains want (workers go on meanwhile);
 * fails after 10 s. */
static char *dump_until(fut_pool *pool, const char *want)
{
    for (int i = 0; i < 10000; i++) {
        char *text = dump(pool, false);
        if (strstr(text, want))
            return text;
        free(text);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    ck_abort_msg("no dump showed: %s", want);
    return NULL;
}

START_TEST(json_validator_works)
{
    ck_assert(json_valid("{\"a\":[1,2.5,-3e2,true,false,null,\"x\\\"y\"]}"));
    ck_assert(!json_valid("{\"a\":[1,2}"));
    ck_assert(!json_valid("{\"a\" 1}"));
    ck_assert(!json_valid("\"unterminated"));
    ck_assert(!json_valid("{} extra"));
}
END_TEST

/* A named task held at a gate: its worker runs it, by name. */
START_TEST(shows_running_named_unit)
{
    fut_pool *pool = pool_new(2);
    gate g;
    gate_init(&g);
    fut_task_opts o = {.name = "held \"at\" the gate"};
    fut_future *f = fut_spawn_with(pool, &o, task_gate, &g);
    uint64_t id = fut_id(f);
    ck_assert_uint_gt(id, 0);
    gate_wait_arrived(&g, 1);
    usleep(40 * 1000); /* it has run 40 ms or more: the dump says so */
    char *text = dump(pool, false);
    char want[96];
    snprintf(want, sizeof(want), "\"held \"at\" the gate\" #%llu for ",
             (unsigned long long)id);
    const char *at = strstr(text, want);
    ck_assert_msg(strstr(text, "running, in ") && at, "%s", text);
    ck_assert_msg(atoi(at + strlen(want)) >= 30, "%s", text); /* 4 ms ticks */
    ck_assert_ptr_nonnull(strstr(text, "accepting work"));
    free(text);
    text = dump(pool, true);
    ck_assert_msg(strstr(text, "\"name\":\"held \\\"at\\\" the gate\""), "%s",
                  text);
    ck_assert_ptr_nonnull(strstr(text, "\"state\":\"running\""));
    snprintf(want, sizeof(want), "\"id\":%llu,\"running_ms\":",
             (unsigned long long)id);
    at = strstr(text, want);
    ck_assert_msg(at && atoi(at + strlen(want)) >= 30, "%s", text);
    free(text);
    gate_open(&g);
    ck_assert_int_eq(await_rc(f), 0);
    /* Once idle, every worker parks: both say so, and run nothing. */
    text = dump_until(pool, "worker 1 (fut-1): idle");
    free(text);
    text = dump_until(pool, "worker 0 (fut-0): idle");
    ck_assert_msg(!strstr(text, "running"), "%s", text);
    ck_assert_ptr_nonnull(strstr(text, "1 spawned, 1 completed (0 failed)"));
    free(text);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

static int awaits_arg(void *arg, void **value)
{
    return fut_await(arg, value);
}

/* A unit in a wait shows its id and the id of the unit it waits for, in
 * text and JSON. */
START_TEST(shows_waits_with_ids)
{
    fut_pool *pool = pool_new(2);
    gate g;
    gate_init(&g);
    fut_future *b = fut_spawn(pool, task_gate, &g);
    gate_wait_arrived(&g, 1);
    fut_future *a = fut_spawn(pool, awaits_arg, b);
    char want[64];
    snprintf(want, sizeof(want), "in a wait: 0x"); /* awaits_arg: static */
    char *text = dump_until(pool, want);
    snprintf(want, sizeof(want), " #%llu, for #%llu\n",
             (unsigned long long)fut_id(a), (unsigned long long)fut_id(b));
    ck_assert_msg(strstr(text, want), "%s", text);
    free(text);
    text = dump(pool, true);
    snprintf(want, sizeof(want), "\"id\":%llu,\"for_id\":%llu,",
             (unsigned long long)fut_id(a), (unsigned long long)fut_id(b));
    ck_assert_msg(strstr(text, want), "%s", text);
    free(text);
    gate_open(&g);
    ck_assert_int_eq(await_rc(a), 0);
    ck_assert_int_eq(await_rc(b), 0);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* A named unit that waits (a sleep) while its worker runs another named
 * unit on top of the wait: the dump shows the one on top, then, once it
 * has returned, the one below again, by name and id. */
static gate inner_gate;
static fut_future *_Atomic inner_unit;

static int outer_waits(void *arg, void **value)
{
    fut_pool *pool = arg;
    fut_task_opts o = {.name = "inner"};
    fut_future *b = fut_spawn_with(pool, &o, task_gate, &inner_gate);
    atomic_store(&inner_unit, b);
    fut_future *nap = fut_sleep(pool, 300); /* helps: runs b on top */
    int rc = fut_await(nap, value);
    fut_release(nap);
    return rc;
}

START_TEST(shows_the_unit_below_again)
{
    fut_pool *pool = pool_new(1);
    gate_init(&inner_gate);
    fut_task_opts o = {.name = "outer"};
    fut_future *a = fut_spawn_with(pool, &o, outer_waits, pool);
    gate_wait_arrived(&inner_gate, 1);
    char want[64];
    fut_future *b = atomic_load(&inner_unit);
    snprintf(want, sizeof(want), "\"inner\" #%llu for",
             (unsigned long long)fut_id(b));
    char *text = dump(pool, false);
    ck_assert_msg(strstr(text, want), "%s", text);
    free(text);
    gate_open(&inner_gate);
    ck_assert_int_eq(fut_await(b, NULL), 0);
    snprintf(want, sizeof(want), "\"outer\" #%llu for",
             (unsigned long long)fut_id(a));
    text = dump_until(pool, want);
    ck_assert_msg(!strstr(text, "inner"), "%s", text);
    free(text);
    ck_assert_int_eq(await_rc(a), 0);
    fut_release(b);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* Exported, so that the dump names it by its symbol. */
int dump_child_blocks(void *arg, void **value);
int dump_child_blocks(void *arg, void **value)
{
    return task_gate(arg, value);
}

/* A group's child shows its function. */
START_TEST(shows_group_child_by_symbol)
{
    fut_pool *pool = pool_new(1);
    gate g;
    gate_init(&g);
    fut_group *grp;
    ck_assert_int_eq(fut_group_create(pool, &grp), 0);
    ck_assert_int_eq(fut_group_spawn(grp, dump_child_blocks, &g), 0);
    gate_wait_arrived(&g, 1);
    char *text = dump(pool, false);
    ck_assert_msg(strstr(text, "running, in dump_child_blocks #") &&
                      strstr(text, " ms; 0 units completed here"),
                  "%s", text);
    free(text);
    gate_open(&g);
    ck_assert_int_eq(fut_group_wait(grp), 0);
    fut_group_destroy(grp);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* Timers, soonest first, with their kinds; more than 16 are counted. */
START_TEST(lists_timers_soonest_first)
{
    fut_pool *pool = pool_new(1);
    fut_future *sleeps[20];
    for (int i = 0; i < 20; i++)
        sleeps[i] = fut_sleep(pool, (uint64_t)(80 + 20 - i) * 60000);
    fut_promise *p;
    fut_future *pf;
    ck_assert_int_eq(fut_promise_create(pool, &p, &pf), 0);
    fut_future *t = fut_timeout(pf, 30 * 60000);
    char *text = dump(pool, false);
    ck_assert_msg(strstr(text, "timers (21, soonest first): timeout due in "),
                  "%s", text);
    /* the 16 soonest, in order: the timeout, then the sleeps */
    int listed = 0;
    double prev = 0;
    for (char *at = strstr(text, "due in "); at; at = strstr(at, "due in ")) {
        at += strlen("due in ");
        double ms = strtod(at, NULL);
        ck_assert_msg(ms >= prev, "%s", text);
        prev = ms;
        listed++;
    }
    ck_assert_int_eq(listed, 16);
    ck_assert_msg(strstr(text, "; ...") != NULL, "%s", text);
    ck_assert(prev < 97 * 60000.0); /* the latest ones are not listed */
    free(text);
    text = dump(pool, true);
    ck_assert_ptr_nonnull(strstr(text, "\"total\":21"));
    free(text);
    for (int i = 0; i < 20; i++) {
        fut_cancel(sleeps[i]);
        fut_release(sleeps[i]);
    }
    fut_cancel(t);
    fut_release(t);
    ck_assert_int_eq(fut_promise_resolve(p, NULL), EALREADY);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* Continuations waiting on a promise or a fut_all, by name. */
START_TEST(lists_waiting_continuations)
{
    fut_pool *pool = pool_new(1);
    fut_promise *p;
    fut_future *pf;
    ck_assert_int_eq(fut_promise_create(pool, &p, &pf), 0);
    fut_task_opts o = {.name = "after the promise"};
    fut_future *c = fut_then_with(fut_retain(pf), &o, then_add, NULL);
    fut_future *all = fut_all(&pf, 1);
    fut_future *c2 = fut_then(all, then_add, NULL);
    char *text = dump(pool, false);
    ck_assert_msg(strstr(text, "waiting on a promise, fut_all or timeout (2)"),
                  "%s", text);
    ck_assert_msg(strstr(text, "\"after the promise\", on a promise") &&
                      strstr(text, ", on a fut_all"),
                  "%s", text);
    free(text);
    text = dump(pool, true);
    ck_assert_ptr_nonnull(strstr(text, "\"input\":\"fut_all\""));
    free(text);
    ck_assert_int_eq(fut_promise_resolve(p, NULL), 0);
    ck_assert_int_eq(await_rc(c), 0);
    ck_assert_int_eq(await_rc(c2), 0);
    fut_release(pf);
    text = dump(pool, false);
    ck_assert_msg(!strstr(text, "continuations"), "%s", text);
    free(text);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* From inside a task: the dump shows the task itself, running. */
static int task_dumps(void *arg, void **value)
{
    *value = dump(arg, false);
    return 0;
}

START_TEST(dump_from_inside_a_task)
{
    fut_pool *pool = pool_new(1);
    fut_task_opts o = {.name = "self-portrait"};
    fut_future *f = fut_spawn_with(pool, &o, task_dumps, pool);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    fut_release(f);
    ck_assert_msg(strstr(v, "worker 0 (fut-0): running, in ") &&
                      strstr(v, "\"self-portrait\""),
                  "%s", (char *)v);
    free(v);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

START_TEST(dump_bad_arguments)
{
    fut_pool *pool = pool_new(1);
    ck_assert_int_eq(fut_pool_dump(NULL, stdout, 0), EINVAL);
    ck_assert_int_eq(fut_pool_dump(pool, NULL, 0), EINVAL);
    ck_assert_int_eq(fut_pool_dump(pool, stdout, 6), EINVAL);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* ---- The monitor: stall_ms and dump_signal ----------------------------- */

/* Sends stderr to a new file at path (a mkstemp template); returns the
 * old stderr, for capture_end. */
static int capture_start(char *path)
{
    temp_file(path);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 2);
    close(fd);
    return saved;
}

static char *capture_end(int saved, const char *path)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *in = fopen(path, "r");
    ck_assert_ptr_nonnull(in);
    char *text = calloc(1, 1 << 16);
    fread(text, 1, (1 << 16) - 1, in);
    fclose(in);
    unlink(path);
    return text;
}

/* Waits (10 s at most) until the file at path contains want. */
static bool file_shows(const char *path, const char *want)
{
    char *text = calloc(1, 1 << 16);
    bool found = false;
    for (int i = 0; i < 10000 && !found; i++) {
        FILE *in = fopen(path, "r");
        size_t n = in ? fread(text, 1, (1 << 16) - 1, in) : 0;
        text[n] = '\0';
        if (in)
            fclose(in);
        found = strstr(text, want) != NULL;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    free(text);
    return found;
}

static fut_pool *pool_with(size_t threads, uint64_t stall_ms, int sig,
                           const char *name)
{
    fut_pool *pool = NULL;
    fut_pool_config cfg = {
        .threads = threads, .name = name, .stall_ms = stall_ms,
        .dump_signal = sig};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    return pool;
}

/* A unit that runs past stall_ms is reported once, by name, with a dump. */
START_TEST(watchdog_reports_a_long_unit)
{
    char path[] = "/tmp/fut-dump-XXXXXX";
    int saved = capture_start(path);
    fut_pool *pool = pool_with(2, 50, 0, "wd");
    gate g;
    gate_init(&g);
    fut_task_opts o = {.name = "slow step"};
    fut_future *f = fut_spawn_with(pool, &o, task_gate, &g);
    char named[64]; /* its name and id */
    snprintf(named, sizeof(named), " \"slow step\" #%llu for ",
             (unsigned long long)fut_id(f));
    gate_wait_arrived(&g, 1);
    /* the report, then its dump's worker line: taken while the unit runs */
    bool told = file_shows(path, "units completed here");
    gate_open(&g);
    ck_assert_int_eq(await_rc(f), 0);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    char *text = capture_end(saved, path);
    ck_assert_msg(told, "%s", text);
    ck_assert_msg(strstr(text, "fut: pool wd: worker ") &&
                      strstr(text, named) &&
                      strstr(text, " ms (stall_ms 50)"),
                  "%s", text);
    ck_assert_msg(strstr(text, "fut pool \"wd\": 2 workers"), "%s", text);
    /* the dump says how long */
    ck_assert_msg(strstr(text, named) &&
                      strstr(text, " ms; 0 units completed here"),
                  "%s", text);
    char *again = strstr(strstr(text, "has run") + 1,
                         "has run"); /* reported once per unit */
    ck_assert_msg(!again, "%s", text);
    free(text);
}
END_TEST

/* Short units and an idle pool: nothing to report. */
START_TEST(watchdog_quiet_when_all_is_well)
{
    char path[] = "/tmp/fut-dump-XXXXXX";
    int saved = capture_start(path);
    fut_pool *pool = pool_with(2, 200, 0, "calm");
    for (int i = 0; i < 2000; i++)
        ck_assert_int_eq(await_rc(fut_spawn(pool, task_value, NULL)), 0);
    ck_assert_int_eq(await_rc(fut_sleep(pool, 500)), 0); /* idle meanwhile */
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    char *text = capture_end(saved, path);
    ck_assert_msg(text[0] == '\0', "%s", text);
    free(text);
}
END_TEST

/* The one worker waits for a promise nobody inside the pool can keep:
 * reported as a deadlock unless an outside thread keeps it, which the
 * test then does. */
static int task_awaits(void *arg, void **value)
{
    return fut_await(arg, value);
}

START_TEST(watchdog_reports_all_workers_blocked)
{
    char path[] = "/tmp/fut-dump-XXXXXX";
    int saved = capture_start(path);
    fut_pool *pool = pool_with(1, 40, 0, "stuck");
    fut_promise *p;
    fut_future *pf;
    ck_assert_int_eq(fut_promise_create(pool, &p, &pf), 0);
    fut_future *f = fut_spawn(pool, task_awaits, pf);
    /* the report, then its dump's frame line: taken while it waits */
    bool told = file_shows(path, "every worker is blocked in a wait") &&
                file_shows(path, "\n    in a wait: ");
    ck_assert_int_eq(fut_promise_resolve(p, (void *)3), 0);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_ptr_eq(v, (void *)3);
    fut_release(f);
    fut_release(pf);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    char *text = capture_end(saved, path);
    ck_assert_msg(told && strstr(text, "unless a thread outside the pool"),
                  "%s", text);
    ck_assert_msg(strstr(text, "worker 0 (stuck-0): blocked in a wait, in "),
                  "%s", text);
    ck_assert_msg(strstr(text, "\n    in a wait: "), "%s", text); /* frame */
    free(text);
}
END_TEST

/* The dump signal: every pool that asked for it dumps itself, from its
 * monitor thread. */
START_TEST(dump_on_signal)
{
    char path[] = "/tmp/fut-dump-XXXXXX";
    int saved = capture_start(path);
    fut_pool *one = pool_with(1, 0, SIGUSR1, "one");
    fut_pool *two = pool_with(2, 0, SIGUSR1, "two");
    ck_assert_int_eq(raise(SIGUSR1), 0);
    bool both = file_shows(path, "fut pool \"one\"") &&
                file_shows(path, "fut pool \"two\"");
    ck_assert_int_eq(fut_pool_destroy(one), 0);
    ck_assert_int_eq(fut_pool_destroy(two), 0);
    ck_assert_int_eq(raise(SIGUSR1), 0); /* the handler stays, harmless */
    char *text = capture_end(saved, path);
    ck_assert_msg(both, "%s", text);
    free(text);

    /* a traced pool writes its trace so far, too */
    char trace[] = "/tmp/fut-sigtrace-XXXXXX", path2[] = "/tmp/fut-dump-XXXXXX";
    temp_file(trace);
    saved = capture_start(path2);
    fut_pool *traced = NULL;
    fut_pool_config tcfg = {.threads = 1, .trace_path = trace,
                            .dump_signal = SIGUSR1};
    ck_assert_int_eq(fut_pool_create(&traced, &tcfg), 0);
    ck_assert_int_eq(await_rc(fut_spawn(traced, task_value, NULL)), 0);
    ck_assert_int_eq(raise(SIGUSR1), 0);
    bool wrote = file_shows(path2, "trace so far written to");
    char *on_signal = calloc(1, 1 << 16);
    FILE *in = wrote ? fopen(trace, "r") : NULL;
    if (in) {
        size_t n = fread(on_signal, 1, (1 << 16) - 1, in);
        on_signal[n] = '\0';
        fclose(in);
    }
    ck_assert_int_eq(fut_pool_destroy(traced), 0);
    text = capture_end(saved, path2);
    ck_assert_msg(wrote, "%s", text);
    ck_assert_msg(strstr(on_signal, "\"cat\":\"task\""), "%s", on_signal);
    free(on_signal);
    free(text);
    unlink(trace);

    fut_pool *pool = NULL;
    fut_pool_config bad = {.threads = 1, .dump_signal = SIGKILL};
    ck_assert_int_eq(fut_pool_create(&pool, &bad), EINVAL);
    bad.dump_signal = 100000;
    ck_assert_int_eq(fut_pool_create(&pool, &bad), EINVAL);
    bad.dump_signal = -1;
    ck_assert_int_eq(fut_pool_create(&pool, &bad), EINVAL);
    ck_assert_ptr_null(pool);
}
END_TEST

static Suite *dump_suite(void)
{
    Suite *s = suite_create("dump");
    FUT_TCASE(s, "dump", json_validator_works, shows_running_named_unit,
              shows_group_child_by_symbol, shows_waits_with_ids,
              shows_the_unit_below_again, lists_timers_soonest_first,
              lists_waiting_continuations, dump_from_inside_a_task,
              dump_bad_arguments);
    FUT_TCASE(s, "monitor", watchdog_reports_a_long_unit,
              watchdog_quiet_when_all_is_well,
              watchdog_reports_all_workers_blocked, dump_on_signal);
    return s;
}

FUT_TEST_MAIN(dump_suite)
