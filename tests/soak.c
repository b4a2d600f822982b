/*
 * fut-soak: several outside threads, and the tasks themselves, issue a
 * random, seeded mix of spawn, then, timeout, all, any, await, await_for,
 * cancel, promises kept or rejected from other threads, retain and
 * release, for a bounded number of operations. Then the invariants:
 *
 *  - every future anyone awaited completed, with its own value or an
 *    error its history allows (no value lost, none swapped);
 *  - no task or continuation ran twice, and every one whose future
 *    succeeded ran exactly once;
 *  - once the pool is idle, spawned == completed + cancelled, queued == 0.
 *
 *   fut-soak [OPS [SEED [THREADS]]]   (defaults: 20000 1 2; --help)
 * Prints the figures; exits 0 when every invariant held, 1 when one did
 * not, 2 on a bad argument, 3 when destroy hung (a watchdog).
 */
#include <fut/fut.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { ACTORS = 3, HELD = 48, MAILBOX = 64, TASK_FAILS = 17 };

enum kind { TASK, THEN, ALL, PROMISE, SLEEP, TIMEOUT };

typedef struct held {
    fut_future *f;
    long id; /* the value it must carry; -1: NULL */
    enum kind kind;
} held;

static fut_pool *pool;
static atomic_long ops_left, next_id, failures;
static atomic_uchar *runs; /* per id: how many times its body ran */
static long max_ids;
static atomic_long stat_ops[10];

static pthread_mutex_t mail_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    fut_promise *p;
    long id;
} mail[MAILBOX];
static int mail_n;

static void fail(const char *what, long id, int rc)
{
    atomic_fetch_add(&failures, 1);
    fprintf(stderr, "soak: %s (id %ld): %s\n", what, id, fut_strerror(rc));
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static long new_id(void)
{
    long id = atomic_fetch_add(&next_id, 1);
    if (id >= max_ids) {
        fprintf(stderr, "soak: out of ids\n");
        exit(2);
    }
    return id;
}

static void ran(long id)
{
    if (atomic_fetch_add(&runs[id], 1) != 0)
        fail("ran twice", id, 0);
}

static int task_body(void *arg, void **value)
{
    long id = (long)(intptr_t)arg;
    ran(id);
    if (id % 5 == 0 && id % 3 != 0) { /* a task's own fork-join */
        long child = new_id();
        fut_future *f = fut_spawn(pool, task_body, (void *)(intptr_t)child);
        void *v;
        int rc = fut_await(f, &v);
        if (rc == 0 && (long)(intptr_t)v != child)
            fail("child value", child, rc);
        fut_release(f);
    }
    if (id % TASK_FAILS == 0)
        return EIO;
    *value = (void *)(intptr_t)id;
    return 0;
}

static int then_body(void *arg, void *input, void **value)
{
    (void)input;
    long id = (long)(intptr_t)arg;
    ran(id);
    *value = (void *)(intptr_t)id;
    return 0;
}

/* The outcome of h, awaited with rc and value v, is one its history
 * allows. */
static void check(const held *h, int rc, void *v)
{
    if (rc == 0) {
        long want = h->id;
        if ((want < 0 && v != NULL) || (want >= 0 && (long)(intptr_t)v != want))
            fail("wrong value", want, rc);
        if (want >= 0 && (h->kind == TASK || h->kind == THEN) &&
            atomic_load(&runs[want]) != 1)
            fail("succeeded but did not run once", want, rc);
        return;
    }
    if (rc != EIO && rc != ECANCELED && rc != EPIPE && rc != ETIMEDOUT)
        fail("unexpected error", h->id, rc);
}

static void settle_one(uint64_t *seed, bool reject_all);

/* Awaits h; while it waits (it may hang on a promise in the mailbox),
 * keeps promises, so that nothing waits on a promise nobody will keep. */
static void await_check(held *h, uint64_t *seed)
{
    void *v;
    int rc;
    while ((rc = fut_await_for(h->f, 1, &v)) == ETIMEDOUT &&
           !fut_is_ready(h->f)) /* a timeout's own outcome is ETIMEDOUT */
        settle_one(seed, false);
    check(h, rc, v);
}

static void drop(held *hs, int *n, int i)
{
    fut_release(hs[i].f);
    hs[i] = hs[--*n];
}

static void post_promise(held *hs, int *n)
{
    fut_promise *p;
    fut_future *f;
    if (fut_promise_create(pool, &p, &f) != 0)
        return;
    long id = new_id();
    hs[(*n)++] = (held){f, id, PROMISE};
    pthread_mutex_lock(&mail_lock);
    if (mail_n < MAILBOX) {
        mail[mail_n].p = p;
        mail[mail_n++].id = id;
        p = NULL;
    }
    pthread_mutex_unlock(&mail_lock);
    if (p)
        fut_promise_resolve(p, (void *)(intptr_t)id);
}

/* Keeps or rejects a promise some thread posted (reject_all: rejects). */
static void settle_one(uint64_t *seed, bool reject_all)
{
    pthread_mutex_lock(&mail_lock);
    fut_promise *p = NULL;
    long id = 0;
    if (mail_n > 0) {
        p = mail[--mail_n].p;
        id = mail[mail_n].id;
    }
    pthread_mutex_unlock(&mail_lock);
    if (!p)
        return;
    int rc = reject_all || rnd(seed) % 4 == 0
                 ? fut_promise_reject(p, EPIPE)
                 : fut_promise_resolve(p, (void *)(intptr_t)id);
    if (rc != 0 && rc != EALREADY)
        fail("settle", id, rc);
}

static void one_op(uint64_t *seed, held *hs, int *n)
{
    int op = (int)(rnd(seed) % 10);
    atomic_fetch_add(&stat_ops[op], 1);
    int i = *n ? (int)(rnd(seed) % (uint64_t)*n) : 0;
    switch (op) {
    case 0:
    case 1: {
        long id = new_id();
        hs[(*n)++] =
            (held){fut_spawn(pool, task_body, (void *)(intptr_t)id), id, TASK};
        break;
    }
    case 2: /* then: consumes its input */
        if (*n) {
            long id = new_id();
            hs[i].f = fut_then(hs[i].f, then_body, (void *)(intptr_t)id);
            hs[i].id = id;
            hs[i].kind = THEN;
        }
        break;
    case 3: { /* all of up to three: borrows */
        fut_future *in[3];
        int k = *n < 3 ? *n : 3;
        for (int j = 0; j < k; j++)
            in[j] = hs[(i + j) % *n].f;
        hs[(*n)++] = (held){fut_all(in, (size_t)k), -1, ALL};
        break;
    }
    case 4: { /* any of up to three, and a task sure to finish */
        fut_future *in[4];
        int k = *n < 3 ? *n : 3;
        for (int j = 0; j < k; j++)
            in[j] = hs[(i + j) % *n].f;
        long id = new_id();
        in[k] = fut_spawn(pool, task_body, (void *)(intptr_t)id);
        size_t index;
        int rc = fut_await_any(in, (size_t)k + 1, &index);
        if (rc != 0 || index > (size_t)k || !fut_is_ready(in[index]))
            fail("await_any", -1, rc);
        hs[(*n)++] = (held){in[k], id, TASK};
        break;
    }
    case 5:
        if (*n) {
            await_check(&hs[i], seed);
            drop(hs, n, i);
        }
        break;
    case 6:
        if (*n) {
            void *v;
            int rc = fut_await_for(hs[i].f, rnd(seed) % 3, &v);
            if (rc != ETIMEDOUT || fut_is_ready(hs[i].f))
                check(&hs[i], rc, v);
        }
        break;
    case 7:
        if (*n) {
            int rc = fut_cancel(hs[i].f);
            if (rc != 0 && rc != EBUSY && rc != EALREADY)
                fail("cancel", hs[i].id, rc);
        }
        break;
    case 8:
        if (rnd(seed) % 2)
            post_promise(hs, n);
        else
            settle_one(seed, false);
        break;
    default:
        if (!*n)
            break;
        switch (rnd(seed) % 4) {
        case 0: /* a timeout: consumes its input, carries its value */
            hs[i].f = fut_timeout(hs[i].f, rnd(seed) % 4);
            hs[i].kind = TIMEOUT;
            break;
        case 1:
            hs[(*n)++] = (held){fut_sleep(pool, rnd(seed) % 3), -1, SLEEP};
            break;
        case 2: /* a second owner, dropped at once */
            fut_release(fut_retain(hs[i].f));
            break;
        default: drop(hs, n, i); /* released unawaited: the work still runs */
        }
    }
    if (*n >= HELD - 2) { /* keep the set bounded */
        await_check(&hs[0], seed);
        drop(hs, n, 0);
    }
}

static void *actor(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    held hs[HELD];
    int n = 0;
    while (atomic_fetch_sub(&ops_left, 1) > 0)
        one_op(&seed, hs, &n);
    for (int k = 0; k < 2 * MAILBOX; k++)
        settle_one(&seed, true);
    while (n) {
        await_check(&hs[0], &seed);
        drop(hs, &n, 0);
    }
    return NULL;
}

static int settle_task(void *arg, void **value)
{
    (void)value;
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    settle_one(&seed, false);
    return 0;
}

/* argv[i] as a whole decimal number in [lo, hi], else a usage error. */
static unsigned long number(int argc, char **argv, int i, unsigned long dflt,
                            unsigned long lo, unsigned long hi)
{
    if (argc <= i)
        return dflt;
    char *end;
    errno = 0;
    unsigned long n = strtoul(argv[i], &end, 10);
    if (errno || end == argv[i] || *end || argv[i][0] == '-' || n < lo ||
        n > hi) {
        fprintf(stderr, "fut-soak: bad argument '%s' (want %lu..%lu)\n",
                argv[i], lo, hi);
        exit(2);
    }
    return n;
}

/* Destroy must return: past WATCHDOG_S seconds it has hung, and the soak
 * says so instead of hanging its caller. */
enum { WATCHDOG_S = 120 };
static pthread_mutex_t dog_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dog_cv = PTHREAD_COND_INITIALIZER;
static bool destroyed;

static void *watchdog(void *arg)
{
    (void)arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WATCHDOG_S;
    pthread_mutex_lock(&dog_lock);
    while (!destroyed)
        if (pthread_cond_timedwait(&dog_cv, &dog_lock, &until) == ETIMEDOUT &&
            !destroyed) {
            fprintf(stderr, "soak: fut_pool_destroy hung for %d s\n",
                    WATCHDOG_S);
            _exit(3);
        }
    pthread_mutex_unlock(&dog_lock);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: fut-soak [OPS [SEED [THREADS]]]  (defaults: 20000 1 2)\n"
               "A seeded random mix of every operation from %d outside "
               "threads and the tasks; exits 0 when every invariant held, 1 "
               "when one did not, 2 on a bad argument, 3 when destroy "
               "hung.\n",
               ACTORS);
        return 0;
    }
    if (argc > 4) {
        fprintf(stderr, "fut-soak: too many arguments (see --help)\n");
        return 2;
    }
    long ops = (long)number(argc, argv, 1, 20000, 1, 1000000000);
    unsigned long seed = number(argc, argv, 2, 1, 0, ULONG_MAX);
    fut_pool_config cfg = {.threads = number(argc, argv, 3, 2, 1, 4096),
                           .name = "soak"};
    max_ids = 4 * ops + 1000;
    runs = calloc((size_t)max_ids, sizeof(*runs));
    if (!runs || fut_pool_create(&pool, &cfg) != 0) {
        fprintf(stderr, "soak: setup failed\n");
        return 2;
    }
    atomic_store(&ops_left, ops);
    pthread_t th[ACTORS];
    for (int a = 0; a < ACTORS; a++)
        pthread_create(&th[a], NULL, actor, (void *)(uintptr_t)(seed + a));
    /* Tasks keep promises too, from the workers. */
    for (int k = 0; k < 100; k++)
        fut_release(fut_spawn(pool, settle_task, (void *)(uintptr_t)(k + 7)));
    for (int a = 0; a < ACTORS; a++)
        pthread_join(th[a], NULL);
    uint64_t s = seed;
    for (int k = 0; k < 2 * MAILBOX; k++)
        settle_one(&s, true);

    /* Released futures' work may still run: wait (sleeping) until idle. */
    fut_pool_stats st;
    for (int waited = 0;; waited++) {
        fut_pool_stats_get(pool, &st);
        if (st.queued == 0 && st.spawned == st.completed + st.cancelled &&
            st.timers_pending == 0)
            break;
        if (waited > 120000) {
            fail("pool never went idle", -1, 0);
            break;
        }
        fut_future *nap = fut_sleep(pool, 1);
        fut_await(nap, NULL);
        fut_release(nap);
    }
    long twice = 0;
    for (long id = 0; id < atomic_load(&next_id); id++)
        twice += atomic_load(&runs[id]) > 1;
    pthread_t dog;
    pthread_create(&dog, NULL, watchdog, NULL);
    fut_pool_destroy(pool);
    pthread_mutex_lock(&dog_lock);
    destroyed = true;
    pthread_cond_signal(&dog_cv);
    pthread_mutex_unlock(&dog_lock);
    pthread_join(dog, NULL);
    free(runs);

    long total = 0;
    for (int k = 0; k < 10; k++)
        total += atomic_load(&stat_ops[k]);
    printf("soak: %ld operations (seed %lu, %zu threads, %d outside threads): "
           "%llu units spawned, %llu completed, %llu cancelled, %llu failed, "
           "%llu stolen; ran twice: %ld; lost: %s; invariant failures: %ld\n",
           total, seed, cfg.threads, ACTORS, (unsigned long long)st.spawned,
           (unsigned long long)st.completed, (unsigned long long)st.cancelled,
           (unsigned long long)st.failed, (unsigned long long)st.stolen, twice,
           st.spawned == st.completed + st.cancelled ? "0" : "SOME",
           atomic_load(&failures));
    return atomic_load(&failures) == 0 && twice == 0 ? 0 : 1;
}
