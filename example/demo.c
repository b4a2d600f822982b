/*
 * fut-demo: the four async patterns of tokio's teaching example, with
 * futures on a fut pool, plus a failing task, a CPU-bound pattern, a
 * timeout and cancel pattern and a deadlock that fut diagnoses.
 *
 * The simulated I/O (fetch_data, async_task, process_item) is a fut_sleep
 * followed by a continuation: the wait holds no worker, and the step that
 * finishes the operation runs on a worker, which is what the output names.
 * Pattern 2 spawns real tasks that block instead, to show what a fixed
 * pool does with them. Every operation prints a "started" and a "done"
 * line, and is recorded (start, end, worker), so the demo can check its
 * own results, compare each pattern with its ideal, and draw the timeline
 * as an SVG (--svg); --trace writes the pool's Chrome trace, where each
 * operation appears under its name.
 *
 * Debugging: the demo_break_* functions below are breakpoint markers,
 * called at each step (`break demo_break_done` in gdb); --step pauses at
 * each of them until you press Enter.
 */
#define _GNU_SOURCE /* sched_getaffinity */
#include <fut/fut.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The CPUs this process may run on: more threads than that cannot run at
 * once, so the ideal time divides by the smaller of the two. */
static size_t cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (size_t)CPU_COUNT(&set);
    return 1;
}

enum { MAX_OPS = 64, PATTERNS = 8, MAIN_THREAD = -2 };

/* One simulated operation, or one chunk of CPU work. */
typedef struct op {
    const char *name;
    int id;
    char label[32]; /* "name(id)": its name in traces and output */
    int pattern;    /* 1..PATTERNS */
    uint64_t ms;    /* simulated duration; 0 for CPU chunks */
    double start;   /* ms since the demo began */
    double end;     /* set by the step that finished it */
    int worker;     /* which worker finished it */
    int fail;       /* the error it returns, 0 for success */
    bool blocks;    /* held its worker all along (pattern 2) */
    uint64_t value; /* CPU chunks: their result */
} op;

static struct {
    fut_pool *pool;
    bool quiet, step;
    bool virtual_time; /* --virtual-time: timers on the pool's own clock */
    double t0;
    op ops[MAX_OPS];
    int nops;
    double pattern_start[PATTERNS + 1], pattern_end[PATTERNS + 1];
    size_t threads;
} demo;

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The demo's clock: the pool's virtual one with --virtual-time (exact
 * milliseconds), else the wall clock; from the demo's start. */
static double now_ms(void)
{
    if (demo.virtual_time && demo.pool)
        return (double)fut_clock_now(demo.pool) - demo.t0;
    return wall_ms() - demo.t0;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    if (demo.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

/* ---- Breakpoint markers ----------------------------------------------
 * Each step of the demo calls one of these: break on them in a debugger
 * (gdb: `break demo_break_done`, then `info threads`, `bt`), or run with
 * --step to pause at each. Exported and never inlined, so that a debugger
 * finds them by name. */
static pthread_mutex_t step_lock = PTHREAD_MUTEX_INITIALIZER;

static void step_pause(const char *what, const char *label)
{
    if (!demo.step)
        return;
    pthread_mutex_lock(&step_lock); /* one pause at a time, any thread */
    int w = fut_worker_index();
    char where[32] = "main thread";
    if (w >= 0)
        snprintf(where, sizeof(where), "worker %d", w);
    printf("   [step] %s %s (%s): press Enter\n", what, label, where);
    fflush(stdout);
    char line[8];
    if (!fgets(line, sizeof(line), stdin))
        demo.step = false; /* end of input: run on */
    pthread_mutex_unlock(&step_lock);
}

__attribute__((noinline)) void demo_break_started(const op *o);
__attribute__((noinline)) void demo_break_started(const op *o)
{
    step_pause("started", o->label); /* BREAKPOINT: an operation begins */
}

__attribute__((noinline)) void demo_break_done(const op *o);
__attribute__((noinline)) void demo_break_done(const op *o)
{
    step_pause("done", o->label); /* BREAKPOINT: on the worker that ends it */
}

__attribute__((noinline)) void demo_break_pattern(int k, const char *title);
__attribute__((noinline)) void demo_break_pattern(int k, const char *title)
{
    (void)k;
    step_pause("pattern", title); /* BREAKPOINT: a pattern begins */
}

static op *op_new(const char *name, int id, int pattern, uint64_t ms)
{
    if (demo.nops == MAX_OPS) {
        fprintf(stderr, "fut-demo: too many operations\n");
        exit(2);
    }
    op *o = &demo.ops[demo.nops++];
    *o = (op){.name = name,
              .id = id,
              .pattern = pattern,
              .ms = ms,
              .start = now_ms(),
              .worker = -1};
    snprintf(o->label, sizeof(o->label), "%s(%d)", name, id);
    return o;
}

/* The "started" line of an operation, from the thread that starts it. */
static void started(op *o, const char *how)
{
    say("   %-16s started at +%3.0f ms%s\n", o->label,
        o->start - demo.pattern_start[o->pattern], how);
    demo_break_started(o);
}

/* The "done" line, from the worker that finishes it. */
static void done(op *o)
{
    if (o->fail)
        say("   %-16s failed on worker %d at +%3.0f ms: %s\n", o->label,
            o->worker, o->end - demo.pattern_start[o->pattern],
            fut_strerror(o->fail));
    else
        say("   %-16s done   on worker %d at +%3.0f ms\n", o->label,
            o->worker, o->end - demo.pattern_start[o->pattern]);
    demo_break_done(o);
}

/* ---- The simulated operations ----------------------------------------- */

/* The step that completes an operation once its wait is over. Exported
 * (not static) so that the trace can name it. */
int finish_op(void *arg, void *input, void **value);
int finish_op(void *arg, void *input, void **value)
{
    (void)input;
    op *o = arg;
    o->end = now_ms();
    o->worker = fut_worker_index();
    done(o);
    *value = o;
    return o->fail;
}

static fut_future *simulate(const char *name, int id, int pattern, uint64_t ms,
                            int fail)
{
    op *o = op_new(name, id, pattern, ms);
    o->fail = fail;
    started(o, " (a timer: no worker held)");
    fut_task_opts named = {.name = o->label}; /* the trace shows it */
    return fut_then_with(fut_sleep(demo.pool, ms), &named, finish_op, o);
}

/* fetch_data(): takes 100 ms and returns data. */
static fut_future *fetch_data(int pattern, int id)
{
    return simulate("fetch_data", id, pattern, 100, 0);
}

/* async_task(id, ms): a task of variable duration. */
static fut_future *async_task(int pattern, int id, uint64_t ms)
{
    return simulate("async_task", id, pattern, ms, 0);
}

/* process_item(i): takes 50 ms; items must be processed in order. */
static fut_future *process_item(int pattern, int i)
{
    return simulate("process_item", i, pattern, 50, 0);
}

/* Awaits f and returns its op (NULL on error); the op printed its lines. */
static op *await_op(fut_future *f, int *error)
{
    void *v;
    *error = fut_await(f, &v);
    fut_release(f);
    return v;
}

/* ---- The patterns ------------------------------------------------------ */

typedef struct result {
    double elapsed, ideal, other; /* other: the sum or max it avoids */
    bool ok;
} result;

static void report(int k, const result *r, const char *ideal_name,
                   const char *other_name, const char *lesson)
{
    printf("   took %.0f ms; ideal %.0f ms (%s)", r->elapsed, r->ideal,
           ideal_name);
    if (other_name)
        printf(", %s %.0f ms", other_name, r->other);
    printf("%s\n", r->ok ? "" : "  ** WRONG RESULT **");
    say("   Lesson: %s\n\n", lesson);
    demo.pattern_end[k] = now_ms();
}

static result pattern_sequential(int k)
{
    say("== %d. Sequential: three fetch_data() awaited one after another\n", k);
    result r = {.ideal = 300, .other = 100, .ok = true};
    double start = now_ms();
    for (int i = 1; i <= 3; i++) {
        int err;
        op *o = await_op(fetch_data(k, i), &err);
        r.ok &= !err && o && o->id == i;
    }
    r.elapsed = now_ms() - start;
    report(k, &r, "sum of 3 x 100", "in parallel it would be",
           "each await lets the next call start only after it; fine when a "
           "step needs the previous one's data.");
    return r;
}

/* async_task as code that blocks (a read() on a socket, a sleep): it
 * holds its worker for the whole 100 ms. Exported for traces. */
int blocking_task(void *arg, void **value);
int blocking_task(void *arg, void **value)
{
    op *o = arg;
    o->start = now_ms(); /* when a worker took it, not when it was spawned */
    o->worker = fut_worker_index();
    say("   %-16s started on worker %d at +%3.0f ms (holds it while it "
        "blocks)\n",
        o->label, o->worker, o->start - demo.pattern_start[o->pattern]);
    demo_break_started(o);
    struct timespec ts = {0, (long)o->ms * 1000000L};
    while (nanosleep(&ts, &ts) == EINTR)
        ;
    o->end = now_ms();
    done(o);
    *value = o;
    return 0;
}

static result pattern_spawn(int k)
{
    size_t rounds = (5 + demo.threads - 1) / demo.threads;
    say("== %d. Parallel spawn: five async_task of 100 ms that block, "
        "spawned with fut_spawn\n",
        k);
    result r = {.ideal = (double)rounds * 100, .other = 500, .ok = true};
    double start = now_ms();
    fut_future *fs[5];
    for (int i = 0; i < 5; i++) {
        op *o = op_new("async_task", i + 1, k, 100);
        o->blocks = true;
        say("   %-16s spawned at +%3.0f ms\n", o->label,
            o->start - demo.pattern_start[k]);
        fut_task_opts named = {.name = o->label};
        fs[i] = fut_spawn_with(demo.pool, &named, blocking_task, o);
    }
    if (!demo.quiet) { /* look inside, 50 ms in: who runs what, what waits */
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        say("   fut_pool_dump at +%3.0f ms:\n", now_ms() - start);
        fut_pool_dump(demo.pool, stdout, FUT_DUMP_TEXT);
    }
    for (int i = 0; i < 5; i++) {
        int err;
        op *o = await_op(fs[i], &err);
        r.ok &= !err && o && o->id == i + 1;
    }
    r.elapsed = now_ms() - start;
    if (rounds < 5) /* overlapped, or it was not parallel */
        r.ok &= r.elapsed < 0.8 * r.other;
    char ideal[80];
    snprintf(ideal, sizeof(ideal), "%zu round%s of 100: 5 tasks on %zu worker%s",
             rounds, rounds == 1 ? "" : "s", demo.threads,
             demo.threads == 1 ? "" : "s");
    report(k, &r, ideal, "one after another",
           "a task that blocks holds its worker, so five of them on N "
           "workers take ceil(5/N) rounds (try --threads 5). tokio::spawn "
           "runs them all at once because its tasks give the thread back at "
           "each .await; in fut, wait with fut_sleep and fut_then "
           "(patterns 1, 3 and 4) and no worker is held.");
    return r;
}

static result pattern_join(int k)
{
    say("== %d. Join: three async_task joined with fut_join_all\n", k);
    result r = {.ideal = 300, .other = 600, .ok = true};
    double start = now_ms();
    fut_future *fs[3] = {async_task(k, 1, 200), async_task(k, 2, 300),
                         async_task(k, 3, 100)};
    r.ok &= fut_join_all(fs, 3) == 0;
    for (int i = 0; i < 3; i++) {
        int err;
        op *o = await_op(fs[i], &err);
        r.ok &= !err && o && o->id == i + 1;
    }
    r.elapsed = now_ms() - start;
    r.ok &= r.elapsed < 0.8 * r.other;
    report(k, &r, "the longest", "sum",
           "fut_join_all waits for the slowest one, like tokio::join!, and "
           "gives the first error in argument order.");
    return r;
}

static result pattern_ordered(int k)
{
    say("== %d. Ordered loop: process_item(1..5), each done before the "
        "next\n",
        k);
    result r = {.ideal = 250, .other = 50, .ok = true};
    double start = now_ms(), prev_end = 0;
    for (int i = 1; i <= 5; i++) {
        int err;
        op *o = await_op(process_item(k, i), &err);
        r.ok &= !err && o && o->id == i && o->start >= prev_end;
        prev_end = o ? o->end : prev_end;
    }
    r.elapsed = now_ms() - start;
    report(k, &r, "5 x 50", "unordered it could take",
           "when order matters, await inside the loop; the cost is the sum.");
    return r;
}

static result pattern_failure(int k)
{
    say("== %d. A task that fails: its error reaches the caller\n", k);
    result r = {.ideal = 150, .ok = true};
    double start = now_ms();
    fut_future *good = async_task(k, 1, 100);
    fut_future *bad = simulate("flaky_task", 2, k, 150, EIO);
    /* A continuation of the failed task never runs; the error flows on. */
    op *never = op_new("never_runs", 3, k, 0);
    fut_future *after = fut_then(fut_retain(bad), finish_op, never);
    int err;
    await_op(good, &err);
    r.ok &= err == 0;
    void *v;
    err = fut_await(bad, &v);
    say("   flaky_task(2) -> error %d: %s (value %p)\n", err, fut_strerror(err),
        v);
    r.ok &= err == EIO && v == NULL;
    err = fut_await(after, NULL);
    bool ran = never->worker != -1;
    say("   its continuation -> error %d: %s, ran: %s\n", err,
        fut_strerror(err), ran ? "yes" : "no");
    r.ok &= err == EIO && !ran;
    fut_release(bad);
    fut_release(after);
    r.elapsed = now_ms() - start;
    report(k, &r, "the longest", NULL,
           "a task's nonzero return is its future's error, as a JoinHandle "
           "gives Err; continuations pass it on without running.");
    return r;
}

/* CPU-bound work: count the primes in [lo, hi) by trial division. */
static uint64_t count_primes(uint64_t lo, uint64_t hi)
{
    uint64_t n = 0;
    for (uint64_t x = lo < 2 ? 2 : lo; x < hi; x++) {
        bool prime = true;
        for (uint64_t d = 2; d * d <= x && prime; d++)
            prime = x % d != 0;
        n += prime;
    }
    return n;
}

enum { CPU_CHUNKS = 16, CPU_LIMIT = 1200000 };

int prime_chunk(void *arg, void **value);
int prime_chunk(void *arg, void **value)
{
    op *o = arg;
    uint64_t step = CPU_LIMIT / CPU_CHUNKS;
    o->start = now_ms();
    o->value =
        count_primes((uint64_t)o->id * step, (uint64_t)(o->id + 1) * step);
    o->end = now_ms();
    o->worker = fut_worker_index();
    *value = o;
    return 0;
}

static result pattern_cpu(int k)
{
    say("== %d. CPU-bound: count primes below %d in %d chunks\n", k, CPU_LIMIT,
        CPU_CHUNKS);
    result r = {.ok = true};
    op *main_run = op_new("serial", 0, k, 0);
    double start = main_run->start;
    uint64_t serial = count_primes(0, CPU_LIMIT);
    main_run->end = now_ms();
    main_run->worker = MAIN_THREAD;
    double serial_ms = main_run->end - start;
    say("   serial, on this thread: %llu primes in %.0f ms\n",
        (unsigned long long)serial, serial_ms);
    start = now_ms();
    fut_future *fs[CPU_CHUNKS];
    for (int i = 0; i < CPU_CHUNKS; i++)
        fs[i] =
            fut_spawn(demo.pool, prime_chunk, op_new("prime_chunk", i, k, 0));
    uint64_t total = 0;
    int per_worker[64] = {0};
    for (int i = 0; i < CPU_CHUNKS; i++) {
        void *v;
        r.ok &= fut_await(fs[i], &v) == 0;
        fut_release(fs[i]);
        op *o = v;
        total += o ? o->value : 0;
        if (o && o->worker >= 0 && o->worker < 64)
            per_worker[o->worker]++;
    }
    r.elapsed = now_ms() - start;
    size_t at_once = demo.threads < cpus() ? demo.threads : cpus();
    r.ideal = serial_ms / (double)at_once; /* threads beyond the CPUs wait */
    r.other = serial_ms;
    r.ok &= total == serial;
    say("   parallel: %llu primes; chunks per worker:",
        (unsigned long long)total);
    for (size_t w = 0; w < demo.threads && w < 64; w++)
        say(" %d", per_worker[w]);
    say("\n   speed-up %.2fx on %zu threads\n", serial_ms / r.elapsed,
        demo.threads);
    report(k, &r,
           demo.threads > cpus() ? "serial / CPUs: more threads than CPUs"
                                 : "serial / threads",
           "serial",
           "CPU work scales with workers (try --threads 1); waiting work "
           "(patterns 1-4) does not need them at all.");
    return r;
}

static result pattern_timeout(int k)
{
    say("== %d. Timeout and cancel: fetch_data bounded by fut_timeout, and "
        "the first of two mirrors\n",
        k);
    result r = {.ideal = 200, .other = 400, .ok = true};
    double start = now_ms();
    fut_future *quick = fut_timeout(fetch_data(k, 1), 200);
    fut_future *slow =
        fut_timeout(simulate("slow_fetch", 2, k, 400, 0), 200);
    op *slow_op = &demo.ops[demo.nops - 1];
    fut_future *mirrors[2] = {simulate("mirror_eu", 3, k, 250, 0),
                              simulate("mirror_us", 4, k, 60, 0)};
    op *names[2] = {&demo.ops[demo.nops - 2], &demo.ops[demo.nops - 1]};
    /* the first to finish wins; the other is cancelled (select!) */
    fut_future *first = fut_any(mirrors, 2, true);
    int err;
    op *o = await_op(quick, &err);
    r.ok &= !err && o && o->id == 1;
    void *v;
    err = fut_await(first, &v);
    size_t winner = (size_t)(uintptr_t)v;
    int loser = fut_await(mirrors[0], NULL);
    say("   fut_any -> %s came first; mirror_eu(3) -> %s: never finishes\n",
        err || winner > 1 ? fut_strerror(err) : names[winner]->label,
        fut_strerror(loser));
    r.ok &= !err && winner == 1 && loser == ECANCELED && names[0]->worker == -1;
    err = fut_await(slow, NULL);
    say("   slow_fetch(2) -> %s at +%3.0f ms: its timer is cancelled, its "
        "step never runs\n",
        fut_strerror(err), now_ms() - demo.pattern_start[k]);
    r.ok &= err == ETIMEDOUT && slow_op->worker == -1;
    fut_release(slow);
    fut_release(first);
    fut_release(mirrors[0]);
    fut_release(mirrors[1]);
    r.elapsed = now_ms() - start;
    report(k, &r, "the timeout", "the slow fetch alone",
           "fut_timeout bounds a wait and cancels what it cuts off, like "
           "tokio::time::timeout; fut_any takes the first to finish and can "
           "cancel the rest, like select!. Cancelled work never runs.");
    return r;
}

/* A task given its own future (through a promise), which it awaits: a
 * wait for itself, which can never end. Exported for traces. */
int wait_for_myself(void *arg, void **value);
int wait_for_myself(void *arg, void **value)
{
    void *me;
    int err = fut_await(arg, &me); /* the promise's value: our future */
    if (!err)
        err = fut_await(me, NULL); /* BREAKPOINT: EDEADLK, at once */
    *value = (void *)(intptr_t)err;
    return 0;
}

/* A group's child waiting for its own group: also a wait for itself. */
int wait_for_my_group(void *arg, void **value);
int wait_for_my_group(void *arg, void **value)
{
    (void)value;
    return fut_group_wait(arg); /* its error becomes the group's */
}

/* ping and pong: each is handed the other's future (through a promise)
 * and awaits it. Whichever looks second finds the cycle: EDEADLK, and it
 * shows the pool as it is at that moment, the other one blocked. */
int await_partner(void *arg, void **value);
int await_partner(void *arg, void **value)
{
    void *partner;
    int err = fut_await(arg, &partner);
    if (!err)
        err = fut_await(partner, NULL); /* BREAKPOINT: the cycle closes */
    if (err == EDEADLK && !demo.quiet) {
        say("   fut_await(partner) -> %s; the pool at that moment:\n",
            fut_strerror(err));
        fut_pool_dump(demo.pool, stdout, FUT_DUMP_TEXT);
    }
    *value = (void *)(intptr_t)err;
    return 0;
}

static result pattern_deadlock(int k)
{
    say("== %d. Deadlock, diagnosed: a task that awaits its own future, a "
        "child that waits for its group,\n   two tasks that await each "
        "other\n",
        k);
    result r = {.ok = true};
    double start = now_ms();
    fut_promise *p;
    fut_future *its_future;
    r.ok &= fut_promise_create(demo.pool, &p, &its_future) == 0;
    fut_task_opts named = {.name = "wait_for_myself"};
    fut_future *t = fut_spawn_with(demo.pool, &named, wait_for_myself,
                                   its_future);
    fut_promise_resolve(p, t);
    void *v;
    r.ok &= fut_await(t, &v) == 0;
    int err = (int)(intptr_t)v;
    say("   wait_for_myself: fut_await(its own future) -> %s\n",
        fut_strerror(err));
    r.ok &= err == EDEADLK;
    fut_release(t);
    fut_release(its_future);
    fut_group *g;
    r.ok &= fut_group_create(demo.pool, &g) == 0;
    r.ok &= fut_group_spawn(g, wait_for_my_group, g) == 0;
    err = fut_group_wait(g);
    say("   wait_for_my_group: fut_group_wait(its own group) -> %s\n",
        fut_strerror(err));
    r.ok &= err == EDEADLK;
    fut_group_destroy(g);
    /* A cycle of two: ping awaits pong while pong awaits ping. */
    fut_promise *to_ping, *to_pong;
    fut_future *ping_slot, *pong_slot;
    r.ok &= fut_promise_create(demo.pool, &to_ping, &ping_slot) == 0;
    r.ok &= fut_promise_create(demo.pool, &to_pong, &pong_slot) == 0;
    fut_task_opts ping_name = {.name = "ping"}, pong_name = {.name = "pong"};
    fut_future *ping =
        fut_spawn_with(demo.pool, &ping_name, await_partner, ping_slot);
    fut_future *pong =
        fut_spawn_with(demo.pool, &pong_name, await_partner, pong_slot);
    fut_promise_resolve(to_ping, pong);
    fut_promise_resolve(to_pong, ping);
    void *a = NULL, *b = NULL;
    r.ok &= fut_await(ping, &a) == 0 && fut_await(pong, &b) == 0;
    int ea = (int)(intptr_t)a, eb = (int)(intptr_t)b;
    say("   ping -> %s; pong -> %s\n", ea ? fut_strerror(ea) : "done",
        eb ? fut_strerror(eb) : "done");
    r.ok &= ea == EDEADLK || eb == EDEADLK;
    fut_release(ping);
    fut_release(pong);
    fut_release(ping_slot);
    fut_release(pong_slot);
    r.elapsed = now_ms() - start;
    report(k, &r, "at once", NULL,
           "a wait that could only end if the waiter itself went on fails "
           "with EDEADLK at once, instead of hanging without a word; with "
           "--stall-ms, the watchdog also reports waits that never end.");
    return r;
}

/* ---- The timeline as SVG ---------------------------------------------- */

static const char *colors[PATTERNS + 1] = {
    "#999",    "#4e79a7", "#f28e2b", "#59a14f", "#e15759",
    "#b07aa1", "#76b7b2", "#edc948", "#9c755f"};
static const char *titles[PATTERNS + 1] = {
    "",          "1 sequential",  "2 parallel spawn",   "3 join",
    "4 ordered loop", "5 failure", "6 CPU-bound", "7 timeout & cancel",
    "8 deadlock"};

/* Operations in stacked rows (waits), then one lane per worker (what ran
 * there: CPU chunks as bars, finishing steps as ticks). */
static int write_svg(const char *path)
{
    FILE *out = fopen(path, "w");
    if (!out)
        return errno;
    double end = 0;
    for (int i = 0; i < demo.nops; i++)
        if (demo.ops[i].end > end)
            end = demo.ops[i].end;
    const double left = 110, width = 900, row = 16;
    double scale = width / (end > 0 ? end : 1);
    int rows[MAX_OPS];
    double row_free[MAX_OPS] = {0};
    int nrows = 0;
    for (int i = 0; i < demo.nops; i++) {
        op *o = &demo.ops[i];
        if (o->ms == 0)
            continue; /* CPU chunks and never-run steps go to worker lanes */
        int r = 0;
        while (r < nrows && row_free[r] > o->start)
            r++;
        if (r == nrows)
            nrows++;
        row_free[r] = o->end;
        rows[i] = r;
    }
    double lanes_y = 40 + nrows * row + 20;
    size_t lanes = demo.threads + 1; /* the workers, then the main thread */
    double height = lanes_y + (double)lanes * row * 1.5 + 40;
    fprintf(out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
            "height=\"%.0f\" font-family=\"sans-serif\" font-size=\"10\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            left + width + 20, height);
    for (int k = 1; k <= PATTERNS; k++) {
        if (demo.pattern_end[k] <= 0)
            continue;
        double x = left + demo.pattern_start[k] * scale;
        double w = (demo.pattern_end[k] - demo.pattern_start[k]) * scale;
        fprintf(out,
                "<rect x=\"%.1f\" y=\"14\" width=\"%.1f\" height=\"%.0f\" "
                "fill=\"%s\" opacity=\"0.08\"/>\n"
                "<text x=\"%.1f\" y=\"24\" fill=\"%s\">%s</text>\n",
                x, w, height - 34, colors[k], x + 2, colors[k], titles[k]);
    }
    fprintf(out, "<text x=\"4\" y=\"%.0f\">waits (sleeps)</text>\n",
            40 + row * 0.7);
    for (int i = 0; i < demo.nops; i++) {
        op *o = &demo.ops[i];
        if (o->ms == 0 || o->worker < 0)
            continue;
        double x = left + o->start * scale, y = 40 + rows[i] * row;
        fprintf(out,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" "
                "fill=\"%s\" rx=\"2\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" fill=\"white\">%s(%d)</text>\n",
                x, y, (o->end - o->start) * scale, row - 3, colors[o->pattern],
                x + 2, y + row * 0.6, o->name, o->id);
    }
    for (size_t w = 0; w < lanes; w++) {
        double y = lanes_y + (double)w * row * 1.5;
        int who = w < demo.threads ? (int)w : MAIN_THREAD;
        if (who == MAIN_THREAD)
            fprintf(out, "<text x=\"4\" y=\"%.1f\">main thread</text>\n",
                    y + row * 0.7);
        else
            fprintf(out, "<text x=\"4\" y=\"%.1f\">worker %d</text>\n",
                    y + row * 0.7, who);
        fprintf(out,
                "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" "
                "stroke=\"#ddd\"/>\n",
                left, y + row, left + width, y + row);
        for (int i = 0; i < demo.nops; i++) {
            op *o = &demo.ops[i];
            if (o->worker != who)
                continue;
            bool bar = !o->ms || o->blocks; /* it ran there all along */
            double x = left + (bar ? o->start : o->end) * scale;
            double len = bar ? (o->end - o->start) * scale : 1.5;
            fprintf(out,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                    "height=\"%.0f\" fill=\"%s\"/>\n",
                    x, y, len < 1.5 ? 1.5 : len, row - 3, colors[o->pattern]);
        }
    }
    double axis = height - 14;
    for (double t = 0; t <= end; t += 250)
        fprintf(out,
                "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" "
                "stroke=\"#999\"/>\n"
                "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.0f "
                "ms</text>\n",
                left + t * scale, axis - 14, left + t * scale, axis - 9,
                left + t * scale, axis, t);
    fputs("</svg>\n", out);
    return fclose(out) ? errno : 0;
}

/* ---- main -------------------------------------------------------------- */

/* With --virtual-time a pattern runs inside a task: the clock moves only
 * when every unit waits, and the pattern, a unit itself, holds it while
 * it starts its operations (a thread outside the pool would not). */
typedef struct pattern_run {
    int k;
    result (*fn)(int);
    result r;
} pattern_run;

static int run_pattern(void *arg, void **value)
{
    pattern_run *p = arg;
    p->r = p->fn(p->k);
    *value = NULL;
    return 0;
}

/* text as a whole decimal number in [lo, hi], else -1 */
static long number(const char *text, long lo, long hi)
{
    char *end;
    errno = 0;
    long n = strtol(text, &end, 10);
    return errno || end == text || *end || n < lo || n > hi ? -1 : n;
}

static void usage(FILE *to)
{
    fputs("usage: fut-demo [--threads N] [--pattern K] [--quiet] [--step]\n"
          "                [--stall-ms MS] [--virtual-time] [--trace FILE]\n"
          "                [--svg FILE] [--help]\n"
          "  --threads N   pool size (default: the CPUs you may use)\n"
          "  --pattern K   run only pattern K (1-8)\n"
          "  --quiet       print only each pattern's timing line\n"
          "  --step        pause at each breakpoint marker (demo_break_*)\n"
          "                until Enter is pressed\n"
          "  --stall-ms MS report on stderr any unit that runs MS or longer\n"
          "                (the pool's watchdog)\n"
          "  --virtual-time  timers on a virtual clock that jumps ahead\n"
          "                whenever the pool waits: the same story, exact\n"
          "                times, milliseconds of wall time (patterns 2 and\n"
          "                6, which block and compute, are skipped)\n"
          "  --trace FILE  write the pool's Chrome trace (Perfetto)\n"
          "  --svg FILE    draw the timeline of what ran where\n"
          "Patterns: 1 sequential awaits, 2 parallel spawn, 3 join,\n"
          "4 ordered loop, 5 a failing task, 6 CPU-bound work,\n"
          "7 timeout and cancel, 8 a deadlock diagnosed.\n"
          "kill -USR1 <pid> makes the pool dump itself on stderr.\n"
          "Exit status: 0 when every result is right, 1 if one is wrong,\n"
          "2 on bad usage or setup failure.\n",
          to);
}

int main(int argc, char **argv)
{
    /* kill -USR1 dumps the pool on stderr (fut_pool_dump) */
    fut_pool_config cfg = {.name = "demo", .dump_signal = SIGUSR1};
    const char *svg = NULL;
    int only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--quiet")) {
            demo.quiet = true;
        } else if (!strcmp(a, "--step")) {
            demo.step = true;
        } else if (!strcmp(a, "--virtual-time")) {
            demo.virtual_time = cfg.virtual_time = cfg.auto_advance = true;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "--pattern") ||
                   !strcmp(a, "--trace") || !strcmp(a, "--svg") ||
                   !strcmp(a, "--stall-ms")) {
            if (!next) {
                fprintf(stderr, "fut-demo: %s needs a value (see --help)\n", a);
                return 2;
            }
            i++;
            long n = 0;
            if (!strcmp(a, "--threads") && (n = number(next, 1, 4096)) > 0) {
                cfg.threads = (size_t)n;
            } else if (!strcmp(a, "--pattern") &&
                       (n = number(next, 1, PATTERNS)) > 0) {
                only = (int)n;
            } else if (!strcmp(a, "--stall-ms") &&
                       (n = number(next, 1, 3600000)) > 0) {
                cfg.stall_ms = (uint64_t)n;
            } else if (!strcmp(a, "--trace")) {
                cfg.trace_path = next;
            } else if (!strcmp(a, "--svg")) {
                svg = next;
            } else {
                fprintf(stderr, "fut-demo: bad %s value '%s' (want %s)\n", a,
                        next,
                        !strcmp(a, "--threads")    ? "1..4096"
                        : !strcmp(a, "--stall-ms") ? "1..3600000"
                                                   : "1..8");
                return 2;
            }
        } else {
            fprintf(stderr, "fut-demo: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    double wall0 = wall_ms();
    demo.t0 = 0;
    demo.t0 = now_ms();
    int rc = fut_pool_create(&demo.pool, &cfg);
    if (!rc && demo.virtual_time)
        demo.t0 = 0; /* the virtual clock starts at 0 */
    if (rc) {
        fprintf(stderr, "fut-demo: fut_pool_create: %s\n", fut_strerror(rc));
        return 2;
    }
    demo.threads = fut_pool_threads(demo.pool);
    say("fut-demo: a pool of %zu worker thread%s on %zu CPU%s\n\n",
        demo.threads, demo.threads == 1 ? "" : "s", cpus(),
        cpus() == 1 ? "" : "s");

    result (*const patterns[PATTERNS + 1])(int) = {
        NULL,         pattern_sequential, pattern_spawn,
        pattern_join, pattern_ordered,    pattern_failure,
        pattern_cpu,  pattern_timeout,    pattern_deadlock};
    bool ok = true;
    for (int k = 1; k <= PATTERNS; k++) {
        if (only && k != only)
            continue;
        if (demo.virtual_time && (k == 2 || k == 6)) {
            if (only || !demo.quiet)
                printf("%d. %s: real time only (it %s), skipped with "
                       "--virtual-time\n\n",
                       k, titles[k] + 2, k == 2 ? "blocks" : "computes");
            continue;
        }
        if (demo.quiet)
            printf("%d. %-18s", k, titles[k] + 2);
        demo.pattern_start[k] = now_ms();
        demo_break_pattern(k, titles[k]);
        if (demo.virtual_time) {
            pattern_run run = {.k = k, .fn = patterns[k]};
            fut_future *f = fut_spawn(demo.pool, run_pattern, &run);
            ok &= fut_await(f, NULL) == 0 && run.r.ok;
            fut_release(f);
        } else {
            ok &= patterns[k](k).ok;
        }
    }
    double now_virtual_end = now_ms(); /* before the pool goes */
    fut_pool_destroy(demo.pool); /* writes the trace, if asked */
    demo.pool = NULL;
    if (svg && (rc = write_svg(svg)) != 0) {
        fprintf(stderr, "fut-demo: %s: %s\n", svg, strerror(rc));
        return 2;
    }
    if (demo.virtual_time)
        printf("virtual time: %.0f ms of the demo's clock in %.0f ms of wall "
               "time\n",
               now_virtual_end, wall_ms() - wall0);
    printf("%s\n", ok ? "all results correct" : "SOME RESULTS WRONG");
    return ok ? 0 : 1;
}
