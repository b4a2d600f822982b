/*
 * Virtual time: fut_clock_advance fires timers in deadline order and
 * returns once their work has run; auto_advance runs a program at full
 * speed with exact times; a stuck pool is reported.
 */
#include "helpers.h"

#include <fcntl.h>
#include <string.h>
#include <time.h>

static fut_pool *vpool(size_t threads, bool automatic)
{
    fut_pool *pool = NULL;
    fut_pool_config cfg = {.threads = threads, .virtual_time = true,
                           .auto_advance = automatic};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    return pool;
}

/* A log of (event, virtual ms), kept by continuations. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_what[64];
static uint64_t log_when[64];
static int log_len;
static fut_pool *log_pool;

static int note(void *arg, void *input, void **value)
{
    pthread_mutex_lock(&log_lock);
    log_what[log_len] = (int)(intptr_t)arg;
    log_when[log_len++] = fut_clock_now(log_pool);
    pthread_mutex_unlock(&log_lock);
    *value = input;
    return 0;
}

START_TEST(advance_fires_in_order_and_waits_for_the_work)
{
    for (size_t threads = 1; threads <= 4; threads *= 2) {
        fut_pool *pool = vpool(threads, false);
        log_pool = pool;
        log_len = 0;
        ck_assert_uint_eq(fut_clock_now(pool), 0);
        fut_future *f[3];
        uint64_t at[3] = {300, 100, 200};
        for (int i = 0; i < 3; i++) /* each: a sleep, then two steps */
            f[i] = fut_then(fut_then(fut_sleep(pool, at[i]), note,
                                     (void *)(intptr_t)(10 * (i + 1))),
                            note, (void *)(intptr_t)(10 * (i + 1) + 1));
        ck_assert_int_eq(fut_clock_advance(pool, 250), 0);
        /* right after: the 100 and the 200 ms ones, both steps each, at
         * their exact times */
        ck_assert_int_eq(log_len, 4);
        ck_assert_int_eq(log_what[0], 20);
        ck_assert_int_eq(log_what[1], 21);
        ck_assert_int_eq(log_what[2], 30);
        ck_assert_int_eq(log_what[3], 31);
        ck_assert_uint_eq(log_when[0], 100);
        ck_assert_uint_eq(log_when[2], 200);
        ck_assert(!fut_is_ready(f[0]));
        ck_assert_uint_eq(fut_clock_now(pool), 250);
        ck_assert_int_eq(fut_clock_advance(pool, 50), 0); /* exactly to 300 */
        ck_assert_int_eq(log_len, 6);
        ck_assert_uint_eq(log_when[4], 300);
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(await_rc(f[i]), 0);
        ck_assert_int_eq(fut_clock_advance(pool, 0), 0); /* nothing due */
        ck_assert_int_eq(fut_pool_destroy(pool), 0);
    }
}
END_TEST

/* fut_timeout on virtual time: no margin, no real wait. */
static fut_future *fetch(fut_pool *pool, uint64_t ms)
{
    return fut_then(fut_sleep(pool, ms), then_add, (void *)1);
}

START_TEST(timeout_on_virtual_time)
{
    fut_pool *pool = vpool(2, false);
    fut_future *late = fut_timeout(fetch(pool, 100), 50);
    fut_future *in_time = fut_timeout(fetch(pool, 100), 150);
    ck_assert_int_eq(fut_clock_advance(pool, 49), 0);
    ck_assert(!fut_is_ready(late));
    ck_assert_int_eq(fut_clock_advance(pool, 1), 0);
    ck_assert(fut_is_ready(late)); /* at 50 exactly */
    ck_assert_int_eq(await_rc(late), ETIMEDOUT);
    ck_assert_int_eq(fut_clock_advance(pool, 50), 0);
    void *v;
    ck_assert_int_eq(fut_await(in_time, &v), 0);
    ck_assert_ptr_eq(v, (void *)1);
    fut_release(in_time);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* Auto advance: 10,000 sleeps of up to one virtual hour, made from a
 * task (so that the clock does not move while they are made), each
 * completing at its exact virtual time, in a few seconds of wall time at
 * most (the figure is printed). */
enum { SLEEPS = 10000 };
static fut_pool *auto_pool;
static fut_future *auto_f[SLEEPS];
static uint64_t auto_ms[SLEEPS];

static int stamp(void *arg, void *input, void **value)
{
    (void)arg;
    (void)input;
    *value = (void *)(uintptr_t)fut_clock_now(auto_pool);
    return 0;
}

static int make_sleeps(void *arg, void **value)
{
    (void)arg;
    (void)value;
    for (int i = 0; i < SLEEPS; i++)
        auto_f[i] = fut_then(fut_sleep(auto_pool, auto_ms[i]), stamp, NULL);
    return 0;
}

START_TEST(auto_advance_runs_an_hour_at_once)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    auto_pool = vpool(2, true);
    uint32_t x = 12345;
    for (int i = 0; i < SLEEPS; i++) {
        x = x * 1103515245u + 12345u;
        auto_ms[i] = 1 + (x >> 8) % 3600000u;
    }
    ck_assert_int_eq(await_rc(fut_spawn(auto_pool, make_sleeps, NULL)), 0);
    for (int i = 0; i < SLEEPS; i++) {
        void *v;
        ck_assert_int_eq(fut_await(auto_f[i], &v), 0);
        ck_assert_uint_eq((uint64_t)(uintptr_t)v, auto_ms[i]);
        fut_release(auto_f[i]);
    }
    ck_assert_int_eq(fut_pool_destroy(auto_pool), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) +
               (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("auto_advance: %d sleeps up to an hour of virtual time in %.3f s "
           "of wall time\n",
           SLEEPS, s);
    ck_assert(s < 60); /* an hour of real time would be 3600 */
}
END_TEST

/* What the file at path holds (its first size - 1 bytes), in text. */
static void read_text(const char *path, char *text, size_t size)
{
    FILE *in = fopen(path, "r");
    size_t n = in ? fread(text, 1, size - 1, in) : 0;
    text[n] = '\0';
    if (in)
        fclose(in);
}

/* Auto advance with nothing to move to while a unit waits: reported. */
static int awaits(void *arg, void **value)
{
    return fut_await(arg, value);
}

START_TEST(stuck_pool_is_reported)
{
    char path[] = "/tmp/fut-clock-XXXXXX";
    temp_file(path);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY);
    dup2(fd, 2);
    close(fd);
    fut_pool *pool = vpool(1, true);
    fut_promise *p;
    fut_future *pf;
    ck_assert_int_eq(fut_promise_create(pool, &p, &pf), 0);
    fut_future *f = fut_spawn(pool, awaits, pf);
    bool told = false;
    char text[4096] = {0};
    for (int i = 0; i < 10000 && !told; i++) {
        read_text(path, text, sizeof(text));
        told = strstr(text, "virtual time cannot move on") != NULL;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    ck_assert_int_eq(fut_promise_resolve(p, (void *)5), 0);
    ck_assert_int_eq(await_rc(f), 0);
    fut_release(pf);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    /* all of it now: the loop may have read the line before the dump */
    read_text(path, text, sizeof(text));
    unlink(path);
    ck_assert_msg(told, "%s", text);
    ck_assert_msg(strstr(text, "blocked in a wait"), "%s", text); /* dump */
}
END_TEST

static int advance_inside(void *arg, void **value)
{
    *value = (void *)(intptr_t)fut_clock_advance(arg, 1);
    return 0;
}

START_TEST(clock_misuse_and_destroy)
{
    fut_pool *real = pool_new(1);
    ck_assert_int_eq(fut_clock_advance(real, 1), EINVAL);
    ck_assert_int_eq(fut_clock_advance(NULL, 1), EINVAL);
    ck_assert_uint_eq(fut_clock_now(NULL), 0);
    ck_assert_uint_gt(fut_clock_now(real), 0); /* CLOCK_MONOTONIC */
    ck_assert_int_eq(fut_pool_destroy(real), 0);
    fut_pool *pool = vpool(1, false);
    void *v;
    fut_future *f = fut_spawn(pool, advance_inside, pool);
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_int_eq((int)(intptr_t)v, EDEADLK);
    fut_release(f);
    /* destroy runs the clock to each pending timer: an hour, at once */
    fut_future *hour = fut_sleep(pool, 3600000);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    ck_assert_int_eq(await_rc(hour), 0);
}
END_TEST

static Suite *clock_suite(void)
{
    Suite *s = suite_create("clock");
    FUT_TCASE(s, "clock", advance_fires_in_order_and_waits_for_the_work,
              timeout_on_virtual_time, auto_advance_runs_an_hour_at_once,
              stuck_pool_is_reported, clock_misuse_and_destroy);
    return s;
}

FUT_TEST_MAIN(clock_suite)
