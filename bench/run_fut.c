/*
 * fut's side of the benchmark: every workload with a future per task
 * ("fut"), the fork-join ones with groups ("fut-group"), and fib with
 * fut_join ("fut-join").
 */
#include "bench.h"

#include <fut/fut.h>

#include <dirent.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static fut_pool *pool;

static int fut_setup(size_t threads)
{
    fut_pool_config cfg = {.threads = threads, .name = "bench"};
    return fut_pool_create(&pool, &cfg);
}

static void fut_teardown(void)
{
    fut_pool_destroy(pool);
    pool = NULL;
}

/* ---- spawn -------------------------------------------------------------- */

static int one(void *arg, void **value)
{
    (void)arg;
    *value = (void *)1;
    return 0;
}

/* The options of fut-named's tasks: a name each, copied at spawn. */
static const fut_task_opts named = {.name = "bench-task"};

/* Spawns fn(i) for i < n (with opts, when not NULL), joins them, sums
 * their values: the time. */
static double spawn_join_sum(long n, fut_task_fn fn, uint64_t *sum,
                             const fut_task_opts *opts)
{
    fut_future **fs = malloc((size_t)n * sizeof(*fs));
    double t0 = bench_now();
    for (long i = 0; i < n; i++)
        fs[i] = opts ? fut_spawn_with(pool, opts, fn, (void *)(uintptr_t)i)
                     : fut_spawn(pool, fn, (void *)(uintptr_t)i);
    fut_join_all(fs, (size_t)n); /* one wakeup; then each is ready */
    uint64_t s = 0;
    for (long i = 0; i < n; i++) {
        void *v;
        fut_await(fs[i], &v);
        fut_release(fs[i]);
        s += (uintptr_t)v;
    }
    double t = bench_now() - t0;
    free(fs);
    *sum = s;
    return t;
}

static double fut_spawn_n(long n, uint64_t *sum)
{
    return spawn_join_sum(n, one, sum, NULL);
}

static double named_spawn_n(long n, uint64_t *sum)
{
    return spawn_join_sum(n, one, sum, &named);
}

static atomic_uint_fast64_t counter;

static int count_one(void *arg, void **value)
{
    (void)arg;
    (void)value;
    atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    return 0;
}

/* All n children from inside one task on the pool, as OpenMP's `single`
 * thread (a member of the team) spawns its tasks. */
static int group_spawner(void *arg, void **value)
{
    (void)value;
    fut_group *g = NULL;
    int err = fut_group_create(pool, &g);
    for (long i = 0; !err && i < (long)(intptr_t)arg; i++)
        err = fut_group_spawn(g, count_one, NULL);
    fut_group_destroy(g);
    return err;
}

static double group_spawn_n(long n, uint64_t *sum)
{
    atomic_store(&counter, 0);
    double t0 = bench_now();
    fut_future *f = fut_spawn(pool, group_spawner, (void *)(intptr_t)n);
    fut_await(f, NULL);
    double t = bench_now() - t0;
    fut_release(f);
    *sum = atomic_load(&counter);
    return t;
}

/* The same n children without handles as a fork-join: [lo, hi) split in
 * halves with fut_join down to single children, from one task on the
 * pool (rayon's way to run many small tasks). */
struct span {
    long lo, hi;
};

static int spawn_span(void *arg)
{
    struct span *sp = arg;
    if (sp->hi - sp->lo == 1)
        return count_one(NULL, NULL);
    long mid = sp->lo + (sp->hi - sp->lo) / 2;
    struct span a = {sp->lo, mid}, b = {mid, sp->hi};
    return fut_join(pool, spawn_span, &a, spawn_span, &b);
}

static int join_spawner(void *arg, void **value)
{
    (void)value;
    return spawn_span(arg);
}

static double join_spawn_n(long n, uint64_t *sum)
{
    struct span all = {0, n};
    atomic_store(&counter, 0);
    double t0 = bench_now();
    fut_future *f = fut_spawn(pool, join_spawner, &all);
    fut_await(f, NULL);
    double t = bench_now() - t0;
    fut_release(f);
    *sum = atomic_load(&counter);
    return t;
}

/* ---- fib ---------------------------------------------------------------- */

static int fib_task(void *arg, void **value)
{
    long n = (long)(intptr_t)arg;
    if (n < 2) {
        *value = (void *)(intptr_t)n;
        return 0;
    }
    fut_future *a = fut_spawn(pool, fib_task, (void *)(intptr_t)(n - 1));
    fut_future *b = fut_spawn(pool, fib_task, (void *)(intptr_t)(n - 2));
    void *va, *vb;
    fut_await(b, &vb); /* the newest first: it is on top of our deque */
    fut_await(a, &va);
    fut_release(a);
    fut_release(b);
    *value = (void *)((uintptr_t)va + (uintptr_t)vb);
    return 0;
}

static double fut_fib(long n, uint64_t *sum)
{
    double t0 = bench_now();
    fut_future *f = fut_spawn(pool, fib_task, (void *)(intptr_t)n);
    void *v;
    fut_await(f, &v);
    double t = bench_now() - t0;
    fut_release(f);
    *sum = (uintptr_t)v;
    return t;
}

/* fib with a name given to every task (fut-named): what names cost. */
static int named_fib_task(void *arg, void **value)
{
    long n = (long)(intptr_t)arg;
    if (n < 2) {
        *value = (void *)(intptr_t)n;
        return 0;
    }
    fut_future *a =
        fut_spawn_with(pool, &named, named_fib_task, (void *)(intptr_t)(n - 1));
    fut_future *b =
        fut_spawn_with(pool, &named, named_fib_task, (void *)(intptr_t)(n - 2));
    void *va, *vb;
    fut_await(b, &vb);
    fut_await(a, &va);
    fut_release(a);
    fut_release(b);
    *value = (void *)((uintptr_t)va + (uintptr_t)vb);
    return 0;
}

static double named_fib(long n, uint64_t *sum)
{
    double t0 = bench_now();
    fut_future *f =
        fut_spawn_with(pool, &named, named_fib_task, (void *)(intptr_t)n);
    void *v;
    fut_await(f, &v);
    double t = bench_now() - t0;
    fut_release(f);
    *sum = (uintptr_t)v;
    return t;
}

struct fib_frame {
    long n;
    uint64_t result;
};

static int fib_group_task(void *arg, void **value)
{
    (void)value;
    struct fib_frame *f = arg;
    if (f->n < 2) {
        f->result = (uint64_t)f->n;
        return 0;
    }
    struct fib_frame a = {f->n - 1, 0}, b = {f->n - 2, 0};
    fut_group *g;
    fut_group_create(pool, &g);
    fut_group_spawn(g, fib_group_task, &a);
    fut_group_spawn(g, fib_group_task, &b);
    fut_group_destroy(g);
    f->result = a.result + b.result;
    return 0;
}

/* fib as rayon::join does it: no cutoff, both halves on the stack. */
static int fib_join(void *arg)
{
    struct fib_frame *f = arg;
    if (f->n < 2) {
        f->result = (uint64_t)f->n;
        return 0;
    }
    struct fib_frame a = {f->n - 1, 0}, b = {f->n - 2, 0};
    int err = fut_join(pool, fib_join, &a, fib_join, &b);
    f->result = a.result + b.result;
    return err;
}

static int fib_join_task(void *arg, void **value)
{
    (void)value;
    return fib_join(arg);
}

/* fib n by fn(&frame) in one task on the pool. */
static double frame_fib(long n, fut_task_fn fn, uint64_t *sum)
{
    struct fib_frame root = {n, 0};
    double t0 = bench_now();
    fut_future *f = fut_spawn(pool, fn, &root);
    int err = fut_await(f, NULL);
    double t = bench_now() - t0;
    fut_release(f);
    *sum = err ? 0 : root.result;
    return t;
}

static double group_fib(long n, uint64_t *sum)
{
    return frame_fib(n, fib_group_task, sum);
}

static double join_fib(long n, uint64_t *sum)
{
    return frame_fib(n, fib_join_task, sum);
}

/* ---- map ---------------------------------------------------------------- */

static long map_w;

static int map_task(void *arg, void **value)
{
    *value = (void *)(uintptr_t)bench_work((uintptr_t)arg, map_w);
    return 0;
}

static double fut_map(long n, long w, uint64_t *sum)
{
    map_w = w;
    return spawn_join_sum(n, map_task, sum, NULL);
}

/* ---- for ---------------------------------------------------------------- */

static atomic_uint_fast64_t reduce_sum;

static int reduce_range(void *arg, size_t lo, size_t hi)
{
    (void)arg;
    uint64_t s = 0;
    for (size_t i = lo; i < hi; i++)
        s += bench_term(i);
    atomic_fetch_add_explicit(&reduce_sum, s, memory_order_relaxed);
    return 0;
}

static double fut_pfor(long n, uint64_t *sum)
{
    atomic_store(&reduce_sum, 0);
    size_t grain = (size_t)n / (fut_pool_threads(pool) * 16) + 1;
    double t0 = bench_now();
    fut_parallel_for(pool, 0, (size_t)n, grain, reduce_range, NULL);
    double t = bench_now() - t0;
    *sum = atomic_load(&reduce_sum);
    return t;
}

/* ---- chain -------------------------------------------------------------- */

static int add_one(void *arg, void *input, void **value)
{
    (void)arg;
    *value = (void *)((uintptr_t)input + 1);
    return 0;
}

static double fut_chain_n(long n, uint64_t *sum)
{
    fut_promise *p;
    fut_future *f;
    double t0 = bench_now();
    fut_promise_create(pool, &p, &f);
    for (long i = 0; i < n; i++)
        f = fut_then(f, add_one, NULL);
    fut_promise_resolve(p, NULL);
    void *v;
    fut_await(f, &v);
    double t = bench_now() - t0;
    fut_release(f);
    *sum = (uintptr_t)v;
    return t;
}

/* ---- sleep -------------------------------------------------------------- */

static double *born, *late;

static int mark_late(void *arg, void *input, void **value)
{
    (void)input;
    (void)value;
    late[(uintptr_t)arg] = bench_now();
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double fut_sleep_n(long n, long ms, uint64_t *sum, double *p50,
                          double *p99)
{
    fut_future **fs = malloc((size_t)n * sizeof(*fs));
    born = malloc((size_t)n * sizeof(*born));
    late = malloc((size_t)n * sizeof(*late));
    double t0 = bench_now();
    for (long i = 0; i < n; i++) {
        born[i] = bench_now();
        fs[i] = fut_then(fut_sleep(pool, (uint64_t)ms), mark_late,
                         (void *)(uintptr_t)i);
    }
    uint64_t ok = 0;
    for (long i = 0; i < n; i++) {
        ok += fut_await(fs[i], NULL) == 0;
        fut_release(fs[i]);
    }
    double t = bench_now() - t0;
    for (long i = 0; i < n; i++)
        late[i] -= born[i] + (double)ms / 1e3;
    qsort(late, (size_t)n, sizeof(*late), cmp_double);
    *p50 = late[n / 2];
    *p99 = late[n * 99 / 100];
    free(fs);
    free(born);
    free(late);
    *sum = ok;
    return t;
}

/* ---- rss and idle: each run in a child process of its own -------------- */

/* What the child sends back through its pipe. */
struct child_result {
    double seconds, figure;
    uint64_t sum;
};

/* Forks a child that makes a pool of its own, the only one with threads
 * there, runs fn(n, &result) on it and sends the result back: so the heap
 * it measures was never used by an earlier run, and the CPU time it counts
 * is that of its own pool only. Zeros when something failed. */
static double in_child(void (*fn)(long, struct child_result *), long n,
                       uint64_t *sum, double *figure)
{
    struct child_result r = {0, 0, 0};
    size_t threads = fut_pool_threads(pool);
    int fds[2];
    if (pipe(fds) != 0) {
        *sum = 0;
        *figure = 0;
        return 0;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (fut_setup(threads) == 0) {
            fn(n, &r);
            fut_teardown();
        }
        _exit(write(fds[1], &r, sizeof(r)) == sizeof(r) ? 0 : 1);
    }
    close(fds[1]);
    if (pid < 0 || read(fds[0], &r, sizeof(r)) != sizeof(r))
        r = (struct child_result){0, 0, 0};
    close(fds[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    *sum = r.sum;
    *figure = r.figure;
    return r.seconds;
}

static double resident_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

/* n pending hour-long sleeps: resident bytes per future, the array of n
 * pointers that holds them included; the time is their creation. */
static void rss_child(long n, struct child_result *r)
{
#ifdef __GLIBC__
    malloc_trim(0); /* what the parent freed is counted when it is reused */
#endif
    double before = resident_bytes(), t0 = bench_now();
    fut_future **fs = malloc((size_t)n * sizeof(*fs));
    for (long i = 0; i < n; i++)
        fs[i] = fut_sleep(pool, 3600000);
    r->seconds = bench_now() - t0;
    r->figure = (resident_bytes() - before) / (double)n;
    for (long i = 0; i < n; i++) {
        r->sum += fut_cancel(fs[i]) == 0;
        fut_release(fs[i]);
    }
    free(fs);
}

static double fut_rss(long n, uint64_t *sum, double *bytes)
{
    return in_child(rss_child, n, sum, bytes);
}

/* CPU time, in seconds, of the pool's threads (named "bench-..."): the
 * run times the kernel keeps in /proc/self/task/TID/schedstat, in ns. */
static double pool_cpu_seconds(void)
{
    double sum = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[300], name[32] = "";
        unsigned long long run = 0;
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (!fgets(name, sizeof(name), f) || strncmp(name, "bench-", 6)) {
            fclose(f);
            continue;
        }
        fclose(f);
        snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", e->d_name);
        if ((f = fopen(path, "r"))) {
            if (fscanf(f, "%llu", &run) == 1)
                sum += (double)run / 1e9;
            fclose(f);
        }
    }
    if (d)
        closedir(d);
    return sum;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, ms % 1000 * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The CPU time the process (its pool) spends while nothing is asked of
 * it for ms milliseconds, after 100 ms to settle. */
static void idle_child(long ms, struct child_result *r)
{
    sleep_ms(100);
    double cpu = pool_cpu_seconds(), t0 = bench_now();
    sleep_ms(ms);
    r->seconds = bench_now() - t0;
    r->figure = pool_cpu_seconds() - cpu;
    r->sum = (uint64_t)ms;
}

static double fut_idle(long ms, uint64_t *sum, double *cpu)
{
    return in_child(idle_child, ms, sum, cpu);
}

const bench_peer bench_fut = {
    .name = "fut",
    .setup = fut_setup,
    .teardown = fut_teardown,
    .spawn = fut_spawn_n,
    .fib = fut_fib,
    .map = fut_map,
    .pfor = fut_pfor,
    .chain = fut_chain_n,
    .sleep = fut_sleep_n,
    .rss = fut_rss,
    .idle = fut_idle,
};

/* fut with a name on every task (fut_spawn_with): against fut, the cost
 * of naming units. */
const bench_peer bench_fut_named = {
    .name = "fut-named",
    .setup = fut_setup,
    .teardown = fut_teardown,
    .spawn = named_spawn_n,
    .fib = named_fib,
};

const bench_peer bench_fut_group = {
    .name = "fut-group",
    .setup = fut_setup,
    .teardown = fut_teardown,
    .spawn = group_spawn_n,
    .fib = group_fib,
};

const bench_peer bench_fut_join = {
    .name = "fut-join",
    .setup = fut_setup,
    .teardown = fut_teardown,
    .spawn = join_spawn_n,
    .fib = join_fib,
};
