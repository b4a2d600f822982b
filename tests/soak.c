/*
 * fut-soak: several outside threads ("actors"), and the tasks themselves,
 * issue a seeded random mix of spawn, then, timeout (short and one hour),
 * all, any, await, await_for, cancel, sleep (short and one hour), promises
 * kept or rejected from other threads, retain and release, and
 * fut_parallel_for, for a bounded number of operations; then two "racer"
 * threads keep adding work while the pool is destroyed.
 *
 *   fut-soak [OPTIONS] [OPS [SEED [THREADS]]]   (defaults: 20000 1 2)
 *     --trace FILE   the pool writes its Chrome trace to FILE at destroy
 *     --help         this usage, on stdout
 * Prints one line of figures; exits 0 when every invariant held, 1 when
 * one did not, 2 on a bad argument, 3 when destroy hung (a watchdog).
 *
 * The model. Every future the soak makes gets a node (a preallocated
 * array, indexed by a unique id) recording its kind (TASK, THEN, ALL,
 * PROMISE, SLEEP, TIMEOUT), its inputs (node ids), its value (VAL(id) for
 * tasks, continuations and promises, NULL for fut_all and sleeps, the
 * input's for a timeout) and its cancel state:
 *   SURE   fut_cancel on this very future returned 0;
 *   MAYBE  a cancel or a firing timeout may have reached it indirectly
 *          (cancelling a continuation or a timeout cancels its input, and
 *          so on down the chain; a timeout that fires cancels its input).
 * Marks are made before the call that could cause them, so that whoever
 * sees the outcome sees the mark; a cancel that returned EBUSY or
 * EALREADY cancelled nothing and withdraws its marks. A promise's settler
 * records its intent (resolve / reject with EPIPE) before settling. From
 * the nodes, allowed() computes the set of outcomes a future's history
 * allows: TASK its own deterministic outcome (EIO for ids divisible by
 * 17, else its value); THEN its input's errors, or its value; ALL the
 * first failing input's error, or NULL; PROMISE what the settler did;
 * SLEEP NULL; TIMEOUT its input's outcome (a complete input is returned
 * as is: then the node is an alias), or ETIMEDOUT unless it is one hour
 * long; SURE means exactly ECANCELED, MAYBE adds ECANCELED. The bodies'
 * own run counts sharpen it: a body that ran has its normal outcome; a
 * complete future whose body never ran does not.
 *
 * Invariants checked (each failure is printed and counted; exit 1):
 *  1. every outcome awaited (fut_await, fut_await_for, a task awaiting
 *     its child) is in the allowed set, with the node's own value on
 *     success and NULL on failure; where no cancel and no timeout touched
 *     the future's history, the set is one outcome (the check is exact);
 *  2. a task or continuation body runs at most once; a continuation gets
 *     its input's value; fut_cancel_requested() is true in a body only
 *     when a cancel was asked of its future (directly, down a chain, or
 *     by a timeout);
 *  3. once the pool is idle, and again after destroy, every TASK and THEN
 *     node, awaited or released unawaited, ran as its record says: once
 *     when it must (no cancel, input certainly successful), never when it
 *     cannot (its cancel returned 0, its input certainly failed, its
 *     spawn was refused), 0 or 1 times when a cancel may have reached it;
 *  4. once idle, the pool's stats (a secondary check) agree with the
 *     soak's records: spawned, completed, cancelled, failed; nothing
 *     queued, no timer pending;
 *  5. fut_parallel_for, from outside threads and from tasks: each index
 *     visited exactly once, in whole chunks of the grain, and 0 returned;
 *     with one chunk failing on purpose, EIO returned, no index visited
 *     twice, skipped chunks skipped whole, and no chunk run after the
 *     failing one by the thread that ran it; fut_cancel_requested() false
 *     in the body;
 *  6. one-hour sleeps are all cancelled (fut_cancel returns 0, outcome
 *     exactly ECANCELED); one-hour timeouts carry their input's outcome,
 *     never ETIMEDOUT; a timer the library failed to remove would hang
 *     destroy for an hour: the watchdog ends the soak (exit 3); a timeout
 *     that completed from its input (the soak keeps a reference to the
 *     input) has exactly the input's outcome and value, and one that
 *     fired left its input complete (it cancels it first) unless the
 *     input's body is running;
 *  7. fut_cancel returns 0, EBUSY or EALREADY; a settle returns 0, or
 *     EALREADY only when a cancel may have reached the promise;
 *     fut_await_any returns 0 and a complete index;
 *  8. destroy, raced by two outside threads that spawn, sleep, make and
 *     keep promises and run fut_parallel_for until refused, returns 0
 *     within the watchdog; each spawn or sleep was either accepted (its
 *     future complete when destroy returns, its task run once) or refused
 *     (exactly ESHUTDOWN, its task never run); once refused, a racer is
 *     never accepted again; a refused fut_parallel_for returns ESHUTDOWN
 *     and runs nothing; promises keep working; every future is awaited
 *     after the pool is gone;
 *  9. with --trace, the file exists after destroy, is the Chrome trace
 *     JSON ({"traceEvents":[ ... "dropped_events":N}}) and, when nothing
 *     was dropped, holds one complete event per unit the pool ran;
 * 10. progress: the actors finish an operation or a check at least every
 *     60 s, and the pool goes idle within 30 s of their end (a hang fails
 *     the soak instead of hanging it).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep under -std=c11 */
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

enum {
    ACTORS = 3,          /* outside threads issuing operations       */
    HELD = 48,           /* futures an actor holds at most           */
    MAILBOX = 64,        /* promises waiting for a settler           */
    TASK_FAILS = 17,     /* a task whose id divides by this: EIO     */
    SETTLERS = 100,      /* tasks that keep promises, on the workers */
    RACERS = 2,          /* outside threads racing destroy           */
    RACER_CAP = 1 << 14, /* futures a racer keeps                    */
    PF_MAX = 300,        /* parallel_for ranges: up to 299 indices   */
    WATCHDOG_S = 60,     /* destroy longer than this has hung        */
    IDLE_S = 30,         /* the pool must go idle within this        */
    STALL_S = 60,        /* actors with no progress this long: hung  */
};
#define HOUR_MS 3600000u
#define MAX_OPS 100000000ul /* node ids must fit an int32_t */

/* ---- Nodes ---------------------------------------------------------- */

enum kind { TASK, THEN, ALL, PROMISE, SLEEP, TIMEOUT };
static const char *const kind_names[] = {"task",    "then",  "all",
                                         "promise", "sleep", "timeout"};

/* Flags fixed when the node is made, before its future exists. */
enum {
    F_HOUR = 1,    /* a one-hour sleep or timeout                  */
    F_CHILD = 2,   /* a task's own child: forks nothing further    */
    F_SETTLER = 4, /* a task that keeps a promise                  */
    F_RACER = 8,   /* made by a racer while the pool is destroyed  */
    F_NOPOOL = 16, /* no pool: fut_all of nothing, and what follows */
    F_SLOW = 32,   /* a task that naps, so that cancels find it running */
};
/* cancel: SURE, MAYBE (for good), TRIED (some cancel was asked for, for
 * good, whatever it did: not a mark) and C_TRY per cancel in flight */
enum { C_SURE = 1, C_MAYBE = 2, C_TRIED = 4, C_TRY = 8 };
enum { I_UNSET, I_RESOLVE, I_REJECT };

typedef struct node {
    int32_t in[3];                  /* inputs, node ids              */
    unsigned char kind, nin, flags; /* enum kind, inputs, F_*        */
    bool alias;          /* a timeout that returned its input, in[0] */
    bool refused;        /* a racer's spawn or sleep got ESHUTDOWN   */
    atomic_uchar cancel; /* C_SURE | C_MAYBE | C_TRIED | n * C_TRY   */
    atomic_uchar intent; /* a promise's settler's, before it settles */
    atomic_uchar runs;   /* how many times the body ran              */
} node;

static node *nodes;
static long max_ids;
static atomic_long next_id;
static atomic_long nodes_made; /* written in full: see walk() */

/* Outcomes as bits, a set of them per node. */
enum {
    O_OK = 1,
    O_EIO = 2,
    O_EPIPE = 4,
    O_ECANCELED = 8,
    O_ETIMEDOUT = 16,
    O_ESHUTDOWN = 32,
    O_ERRORS = 62,
    O_OUTCOMES = 63,
    O_HIST = 64,  /* a cancel or a timeout is in the history      */
    O_KNOWN = 128 /* memo: computed                                */
};

#define VAL(id) ((void *)(intptr_t)((id) + 1))
#define ARG(id) ((void *)(intptr_t)(id))
#define ID(arg) ((long)(intptr_t)(arg))

/* ---- Shared state and figures --------------------------------------- */

static fut_pool *pool;
static uint64_t base_seed;
static atomic_long ops_left, failures;
static atomic_long checked, exact, hour_sleeps, hour_timeouts;
static atomic_long pf_calls, pf_on_workers, pf_failed;
static atomic_long chunks_accepted, chunk_calls, chunk_fails;
static atomic_long cancels[3]; /* fut_cancel returned 0, EBUSY, EALREADY */

static pthread_mutex_t mail_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    fut_promise *p;
    long id;
} mail[MAILBOX];
static int mail_n;

/* Counts a broken invariant; prints the first 50: what, the node (id -1:
 * none) and the error code involved (0: none). */
static bool fail(const char *what, long id, int rc)
{
    if (atomic_fetch_add(&failures, 1) >= 50)
        return false;
    fprintf(stderr, "soak: %s", what);
    if (id >= 0)
        fprintf(stderr, " (node %ld, %s)", id, kind_names[nodes[id].kind]);
    if (rc)
        fprintf(stderr, ": %s", fut_strerror(rc));
    fputc('\n', stderr);
    return true;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A nonzero seed derived from x. */
static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ x >> 30) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ x >> 27) * 0x94D049BB133111EBull;
    return (x ^ x >> 31) | 1;
}

static long new_node(enum kind kind, unsigned flags, int nin, const long *in)
{
    long id = atomic_fetch_add(&next_id, 1);
    if (id >= max_ids) {
        fprintf(stderr, "soak: out of node ids (a bug in the soak)\n");
        fflush(NULL);
        _exit(1);
    }
    node *n = &nodes[id];
    n->kind = (unsigned char)kind;
    n->flags = (unsigned char)flags;
    n->nin = (unsigned char)nin;
    for (int j = 0; j < nin; j++)
        n->in[j] = (int32_t)in[j];
    atomic_fetch_add(&nodes_made, 1); /* release: see walk() */
    return id;
}

static long resolve(long id)
{
    while (nodes[id].alias)
        id = nodes[id].in[0];
    return id;
}

/* The cancel marks on a node: 0 when no cancel may have reached it. */
static unsigned marks(const node *n)
{
    return atomic_load(&n->cancel) & ~(unsigned)C_TRIED;
}

static bool task_fails(long id)
{
    return !(nodes[id].flags & F_SETTLER) && id % TASK_FAILS == 0;
}

static void *value_of(long id)
{
    id = resolve(id);
    switch (nodes[id].kind) {
    case ALL:
    case SLEEP: return NULL;
    case TIMEOUT: return value_of(nodes[id].in[0]);
    default: return VAL(id);
    }
}

static unsigned bit_of(int rc)
{
    switch (rc) {
    case 0: return O_OK;
    case EIO: return O_EIO;
    case EPIPE: return O_EPIPE;
    case ECANCELED: return O_ECANCELED;
    case ETIMEDOUT: return O_ETIMEDOUT;
    case ESHUTDOWN: return O_ESHUTDOWN;
    default: return 0;
    }
}

static void print_set(FILE *out, unsigned s)
{
    static const char *const names[] = {"value",     "EIO",       "EPIPE",
                                        "ECANCELED", "ETIMEDOUT", "ESHUTDOWN"};
    fputc('{', out);
    for (int b = 0, first = 1; b < 6; b++)
        if (s & 1u << b) {
            fprintf(out, "%s%s", first ? "" : ", ", names[b]);
            first = 0;
        }
    fputc('}', out);
}

/* ---- Allowed outcomes ----------------------------------------------- */

/* Results of allowed() already computed: a small hash reset per check
 * (its generation), or one byte per node and `done` for the walks. */
enum { MEMO_SLOTS = 1 << 12 };
typedef struct memo {
    unsigned char *direct; /* 2 per node; NULL: the hash                 */
    uint32_t gen;
    uint32_t stamp[MEMO_SLOTS];
    long key[MEMO_SLOTS];
    unsigned char val[MEMO_SLOTS];
} memo;

static unsigned char *memo_slot(memo *m, long id, bool done)
{
    if (!m)
        return NULL;
    long k = 2 * id + done;
    if (m->direct)
        return &m->direct[k];
    size_t h = (size_t)((uint64_t)k * 0x9E3779B97F4A7C15ull >> 40);
    for (int probe = 0; probe < 16; probe++) {
        size_t i = (h + (size_t)probe) % MEMO_SLOTS;
        if (m->stamp[i] != m->gen) {
            m->stamp[i] = m->gen;
            m->key[i] = k;
            m->val[i] = 0;
            return &m->val[i];
        }
        if (m->key[i] == k)
            return &m->val[i];
    }
    return NULL; /* full: compute again */
}

static unsigned allowed(memo *m, long id, bool done);

/* What a TASK's history allows. */
static unsigned task_set(const node *n, long id, unsigned c, bool done)
{
    if (n->refused)
        return O_ESHUTDOWN;
    unsigned normal = task_fails(id) ? O_EIO : O_OK;
    if (atomic_load(&n->runs) >= 1) /* it ran: cancels could not touch it */
        return normal;
    unsigned s = normal | (c ? O_ECANCELED : 0);
    if (done) /* complete, and its body never ran */
        s &= ~normal;
    return s;
}

static unsigned then_set(memo *m, const node *n, unsigned c, bool done)
{
    if (atomic_load(&n->runs) >= 1)
        return O_OK;
    /* Complete and not cancelled: it completed from its input. */
    unsigned in = allowed(m, n->in[0], done && !c);
    unsigned s = in & (O_ERRORS | O_HIST);
    if ((in & O_OK) && !done) /* it may still run */
        s |= O_OK;
    return s | (c ? O_ECANCELED : 0);
}

static unsigned all_set(memo *m, const node *n, unsigned c, bool done)
{
    unsigned s = 0;
    bool ok = true; /* every input so far may have succeeded */
    for (int j = 0; j < n->nin; j++) {
        unsigned in = allowed(m, n->in[j], done && !c);
        s |= in & O_HIST;
        if (ok)
            s |= in & O_ERRORS;
        ok = ok && (in & O_OK);
    }
    return s | (ok ? O_OK : 0) | (c ? O_ECANCELED : 0);
}

static unsigned promise_set(const node *n, unsigned c, bool done)
{
    unsigned s;
    switch (atomic_load(&n->intent)) {
    case I_RESOLVE: s = O_OK; break;
    case I_REJECT: s = O_EPIPE; break;
    default: s = done ? 0 : O_OK | O_EPIPE; /* complete: a cancel did it */
    }
    return s | (c ? O_ECANCELED : 0);
}

static unsigned timeout_set(memo *m, const node *n, unsigned c, bool done)
{
    bool hour = n->flags & F_HOUR;
    /* A one-hour timeout completes from its input (or a cancel). */
    unsigned s = allowed(m, n->in[0], done && !c && hour) | O_HIST;
    if (!hour)
        s |= O_ETIMEDOUT;
    return s | (c ? O_ECANCELED : 0);
}

/* The outcomes node id's history allows (O_OUTCOMES bits) and whether a
 * cancel or timeout is in it (O_HIST). done: the future is known to be
 * complete. */
static unsigned allowed(memo *m, long id, bool done)
{
    id = resolve(id);
    unsigned char *slot = memo_slot(m, id, done);
    if (slot && *slot)
        return *slot & ~O_KNOWN;
    const node *n = &nodes[id];
    unsigned c = marks(n);
    unsigned s;
    if (c & C_SURE) {
        s = O_ECANCELED;
    } else {
        switch (n->kind) {
        case TASK: s = task_set(n, id, c, done); break;
        case THEN: s = then_set(m, n, c, done); break;
        case ALL: s = all_set(m, n, c, done); break;
        case PROMISE: s = promise_set(n, c, done); break;
        case SLEEP:
            s = n->refused ? O_ESHUTDOWN : O_OK | (c ? O_ECANCELED : 0);
            break;
        default: s = timeout_set(m, n, c, done);
        }
    }
    if (c)
        s |= O_HIST;
    if (slot)
        *slot = (unsigned char)(s | O_KNOWN);
    return s;
}

/* Node id's future, complete, gave rc and value v: one its history
 * allows. */
static void check(memo *m, long id, int rc, void *v)
{
    if (m)
        m->gen++;
    unsigned s = allowed(m, id, true);
    unsigned outs = s & O_OUTCOMES;
    atomic_fetch_add(&checked, 1);
    bool one = outs && !(outs & (outs - 1));
    if (one)
        atomic_fetch_add(&exact, 1);
    else if (outs && !(s & O_HIST))
        fail("the model is not exact with no cancel or timeout", id, 0);
    if (!(bit_of(rc) & s)) {
        char what[80];
        snprintf(what, sizeof(what), "outcome %s not allowed",
                 rc ? fut_strerror(rc) : "'its value'");
        if (fail(what, resolve(id), 0)) {
            fprintf(stderr, "soak:   allowed ");
            print_set(stderr, s);
            fprintf(stderr, "\n");
        }
    } else if (rc == 0 && v != value_of(id)) {
        fail("wrong value", resolve(id), rc);
    } else if (rc != 0 && v != NULL) {
        fail("a value with an error", resolve(id), rc);
    }
}

/* ---- Cancels ------------------------------------------------------- */

/* A cancel of id reaches its input when it is a continuation or a
 * timeout, and so on down. */
static long reached(long id)
{
    const node *n = &nodes[id];
    return n->kind == THEN || n->kind == TIMEOUT ? resolve(n->in[0]) : -1;
}

/* Marks id and all a cancel of it may reach as cancelled for good (a
 * timeout about to be armed on id). */
static void mark_maybe(long id)
{
    for (long k = resolve(id); k >= 0; k = reached(k))
        atomic_fetch_or(&nodes[k].cancel, C_MAYBE | C_TRIED);
}

/* fut_cancel on f, node id, with its marks; returns its result. */
static int cancel_node(fut_future *f, long id)
{
    id = resolve(id);
    for (long k = id; k >= 0; k = reached(k)) {
        atomic_fetch_add(&nodes[k].cancel, C_TRY);
        atomic_fetch_or(&nodes[k].cancel, C_TRIED);
    }
    int rc = fut_cancel(f);
    if (rc == 0)
        atomic_fetch_or(&nodes[id].cancel, C_SURE | C_MAYBE);
    for (long k = id; k >= 0; k = reached(k)) {
        if (rc == 0) /* it went on down: nothing tells how far */
            atomic_fetch_or(&nodes[k].cancel, C_MAYBE);
        atomic_fetch_sub(&nodes[k].cancel, C_TRY);
    }
    if (rc != 0 && rc != EBUSY && rc != EALREADY)
        fail("fut_cancel", id, rc);
    else
        atomic_fetch_add(&cancels[rc == 0 ? 0 : rc == EBUSY ? 1 : 2], 1);
    return rc;
}

/* ---- Bodies ---------------------------------------------------------- */

static void nap_us(long us)
{
    struct timespec ts = {us / 1000000, us % 1000000 * 1000};
    nanosleep(&ts, NULL);
}

static void ran(long id)
{
    if (atomic_fetch_add(&nodes[id].runs, 1) != 0)
        fail("ran twice", id, 0);
}

/* One fut_parallel_for call: what its body saw. */
typedef struct pf_call {
    size_t begin, end, grain, fail_at;
    bool inject;
    atomic_int bad;
    atomic_long calls, order; /* chunks run, and their order           */
    atomic_uchar seen[PF_MAX];
    atomic_int tid[PF_MAX]; /* per chunk: who ran it, and when (order) */
    atomic_long when[PF_MAX];
} pf_call;

/* A small number naming the calling thread. */
static int thread_tag(void)
{
    static atomic_int tags;
    static _Thread_local int tag;
    if (!tag)
        tag = atomic_fetch_add(&tags, 1) + 1;
    return tag;
}

static int pf_body(void *arg, size_t lo, size_t hi)
{
    pf_call *c = arg;
    atomic_fetch_add(&chunk_calls, 1);
    atomic_fetch_add(&c->calls, 1);
    if (fut_cancel_requested())
        atomic_store(&c->bad, 1);
    if (lo < c->begin || hi > c->end || lo >= hi ||
        (lo - c->begin) % c->grain ||
        hi != (c->end - lo > c->grain ? lo + c->grain : c->end)) {
        atomic_store(&c->bad, 2);
        return 0;
    }
    for (size_t i = lo; i < hi; i++)
        atomic_fetch_add(&c->seen[i - c->begin], 1);
    size_t k = (lo - c->begin) / c->grain;
    atomic_store(&c->tid[k], thread_tag());
    atomic_store(&c->when[k], atomic_fetch_add(&c->order, 1));
    if (c->inject && lo <= c->fail_at && c->fail_at < hi) {
        atomic_fetch_add(&chunk_fails, 1);
        return EIO;
    }
    return 0;
}

/* A random fut_parallel_for with its checks; one chunk fails on purpose
 * one time in four. may_refuse: an outside racer (ESHUTDOWN allowed,
 * then nothing may have run). Returns whether it was refused. */
static bool pf_check(uint64_t *seed, bool may_refuse)
{
    pf_call c;
    size_t n = (size_t)(rnd(seed) % PF_MAX);
    size_t grain_arg = rnd(seed) % 4 == 0 ? 0 : 1 + (size_t)(rnd(seed) % 40);
    c.begin = (size_t)(rnd(seed) % 8);
    c.end = c.begin + n;
    c.grain = grain_arg ? grain_arg : 1;
    c.inject = n && rnd(seed) % 4 == 0;
    c.fail_at = n ? c.begin + (size_t)(rnd(seed) % n) : 0;
    atomic_init(&c.bad, 0);
    atomic_init(&c.calls, 0);
    atomic_init(&c.order, 0);
    for (size_t i = 0; i < PF_MAX; i++) {
        atomic_init(&c.seen[i], 0);
        atomic_init(&c.tid[i], 0);
        atomic_init(&c.when[i], 0);
    }
    int rc = fut_parallel_for(pool, c.begin, c.end, grain_arg, pf_body, &c);
    size_t chunks = n / c.grain + (n % c.grain != 0);
    if (rc == ESHUTDOWN && may_refuse) {
        if (atomic_load(&c.calls))
            fail("a refused parallel_for ran chunks", -1, rc);
        return true;
    }
    atomic_fetch_add(&chunks_accepted, (long)chunks);
    atomic_fetch_add(&pf_calls, 1);
    if (fut_worker_index() >= 0)
        atomic_fetch_add(&pf_on_workers, 1);
    if (c.inject)
        atomic_fetch_add(&pf_failed, 1);
    if (rc != (c.inject ? EIO : 0))
        fail(c.inject ? "parallel_for with a failing chunk" : "parallel_for",
             -1, rc);
    if (atomic_load(&c.bad))
        fail(atomic_load(&c.bad) == 1 ? "cancel requested in a loop body"
                                      : "parallel_for chunk bounds",
             -1, 0);
    /* The thread that ran the failing chunk skips every chunk it takes
     * after it: it noted the failure before it took another. */
    size_t f = c.inject ? (c.fail_at - c.begin) / c.grain : 0;
    for (size_t k = 0; c.inject && k < chunks; k++)
        if (k != f && atomic_load(&c.seen[k * c.grain]) &&
            atomic_load(&c.tid[k]) == atomic_load(&c.tid[f]) &&
            atomic_load(&c.when[k]) > atomic_load(&c.when[f]))
            fail("parallel_for ran a chunk after a failure, on the thread "
                 "that saw it",
                 -1, 0);
    for (size_t k = 0; k < chunks; k++) {
        size_t lo = k * c.grain, hi = lo + c.grain < n ? lo + c.grain : n;
        unsigned char first = atomic_load(&c.seen[lo]);
        bool failing =
            c.inject && lo <= c.fail_at - c.begin && c.fail_at - c.begin < hi;
        if (first > 1 || (!c.inject && first != 1) || (failing && first != 1)) {
            char what[80];
            snprintf(what, sizeof(what),
                     "parallel_for visited chunk %zu %u times%s", k,
                     (unsigned)first, c.inject ? " (one failing)" : "");
            fail(what, -1, 0);
        }
        for (size_t i = lo; i < hi; i++)
            if (atomic_load(&c.seen[i]) != first)
                fail("parallel_for chunk run in part", -1, 0);
    }
    return false;
}

static void settle_one(uint64_t *seed, bool reject_all);

static int task_body(void *arg, void **value)
{
    long id = ID(arg);
    unsigned flags = nodes[id].flags;
    ran(id);
    if (flags & F_SETTLER) {
        uint64_t seed = mix(base_seed ^ (uint64_t)id);
        settle_one(&seed, false);
    } else if (!(flags & F_CHILD)) {
        if (id % 5 == 0 && id % 3 != 0) { /* a task's own fork-join */
            long child = new_node(TASK, F_CHILD, 0, NULL);
            fut_future *f = fut_spawn(pool, task_body, ARG(child));
            void *v;
            int rc = fut_await(f, &v);
            check(NULL, child, rc, v);
            fut_release(f);
        }
        if (id % 7 == 3) { /* a loop on the workers */
            uint64_t seed = mix(base_seed + (uint64_t)id);
            pf_check(&seed, false);
        }
        if ((flags & F_SLOW) || id % 11 == 5) /* cancels find it running */
            for (int k = 0; k < 4 && !fut_cancel_requested(); k++)
                nap_us(50);
    }
    if (fut_cancel_requested() &&
        !(atomic_load(&nodes[id].cancel) & (C_TRIED | C_MAYBE | C_SURE)))
        fail("cancel requested in a task nobody cancelled", id, 0);
    if (task_fails(id))
        return EIO;
    *value = VAL(id);
    return 0;
}

static int then_body(void *arg, void *input, void **value)
{
    long id = ID(arg);
    ran(id);
    if (fut_cancel_requested() &&
        !(atomic_load(&nodes[id].cancel) & (C_TRIED | C_MAYBE | C_SURE)))
        fail("cancel requested in a continuation nobody cancelled", id, 0);
    if (input != value_of(nodes[id].in[0]))
        fail("a continuation got a wrong input value", id, 0);
    *value = VAL(id);
    return 0;
}

/* ---- Promises ---------------------------------------------------------- */

/* Keeps or rejects a promise some thread posted (reject_all: rejects),
 * its intent recorded first. */
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
    bool reject = reject_all || rnd(seed) % 4 == 0;
    atomic_store(&nodes[id].intent, reject ? I_REJECT : I_RESOLVE);
    int rc =
        reject ? fut_promise_reject(p, EPIPE) : fut_promise_resolve(p, VAL(id));
    if (rc == EALREADY && !marks(&nodes[id]))
        fail("a settle refused with no cancel", id, rc);
    else if (rc != 0 && rc != EALREADY)
        fail("settle", id, rc);
}

/* ---- Actors -------------------------------------------------------- */

typedef struct held {
    fut_future *f;
    long id;       /* its node (an alias resolved)                 */
    bool hour;     /* a one-hour sleep: to cancel before any use   */
    fut_future *x; /* f is a timeout: its input, a reference kept  */
} held;

typedef struct actor {
    uint64_t seed;
    held hs[HELD];
    int n;
    memo m;
} actor;

/* Makes hs[i] usable as an input or for an await: a one-hour sleep is
 * cancelled first, which must succeed. */
static void use(actor *a, int i)
{
    held *h = &a->hs[i];
    if (!h->hour)
        return;
    h->hour = false;
    int rc = cancel_node(h->f, h->id);
    if (rc != 0)
        fail("cancelling a one-hour sleep", h->id, rc);
    atomic_fetch_add(&hour_sleeps, 1);
}

/* h, a timeout, completed with rc and v: its input must be complete,
 * with the same outcome, unless the timeout fired (then the input was
 * cancelled first, so it is complete unless its body runs) or was
 * cancelled itself. */
static void check_input(actor *a, const held *h, int rc, void *v)
{
    long xid = resolve(nodes[h->id].in[0]);
    enum kind k = (enum kind)nodes[xid].kind;
    if (marks(&nodes[h->id]) & C_SURE)
        return;
    bool fired = rc == ETIMEDOUT && !(nodes[h->id].flags & F_HOUR);
    if (fired && (k == TASK || k == THEN) && !fut_is_ready(h->x))
        return; /* running: a cancel cannot stop it */
    if (!fut_is_ready(h->x)) {
        fail(fired ? "a timeout fired but left its input pending"
                   : "a timeout completed before its input",
             h->id, rc);
        return;
    }
    void *xv;
    int xrc = fut_await(h->x, &xv);
    check(&a->m, xid, xrc, xv);
    if (!fired && (xrc != rc || xv != v))
        fail("a timeout's outcome is not its input's", h->id, rc);
}

/* Awaits hs[i] and checks it; while it waits (it may hang on a promise
 * in the mailbox), keeps promises, so that nothing waits on a promise
 * nobody will keep. */
static void await_check(actor *a, int i)
{
    use(a, i);
    held *h = &a->hs[i];
    void *v;
    while (fut_await_for(h->f, 1, &v) == ETIMEDOUT && !fut_is_ready(h->f))
        settle_one(&a->seed, false);
    int rc = fut_await(h->f, &v); /* complete: its own outcome, at once */
    check(&a->m, h->id, rc, v);
    if (h->x)
        check_input(a, h, rc, v);
}

static void forget_input(held *h)
{
    fut_release(h->x);
    h->x = NULL;
}

static void drop(actor *a, int i)
{
    use(a, i);
    fut_release(a->hs[i].f);
    forget_input(&a->hs[i]);
    a->hs[i] = a->hs[--a->n];
}

static void add(actor *a, fut_future *f, long id, bool hour)
{
    a->hs[a->n++] = (held){f, id, hour, NULL};
}

static void spawn_task(actor *a)
{
    long id = new_node(TASK, 0, 0, NULL);
    add(a, fut_spawn(pool, task_body, ARG(id)), id, false);
}

static void post_promise(actor *a)
{
    fut_promise *p;
    fut_future *f;
    long id = new_node(PROMISE, 0, 0, NULL);
    int rc = fut_promise_create(pool, &p, &f);
    if (rc != 0) {
        fail("fut_promise_create", id, rc);
        return;
    }
    add(a, f, id, false);
    pthread_mutex_lock(&mail_lock);
    if (mail_n < MAILBOX) {
        mail[mail_n].p = p;
        mail[mail_n++].id = id;
        p = NULL;
    }
    pthread_mutex_unlock(&mail_lock);
    if (p) {
        atomic_store(&nodes[id].intent, I_RESOLVE);
        if ((rc = fut_promise_resolve(p, VAL(id))) != 0)
            fail("resolve", id, rc);
    }
}

/* fut_timeout on hs[i], ms long. */
static void timeout_on(actor *a, int i, uint64_t ms)
{
    use(a, i);
    held *h = &a->hs[i];
    bool hour = ms == HOUR_MS;
    long in[1] = {h->id};
    long id = new_node(TIMEOUT, hour ? F_HOUR : 0, 1, in);
    if (!hour && !fut_is_ready(h->f))
        mark_maybe(h->id);            /* if it fires, it cancels its input */
    fut_future *x = fut_retain(h->f); /* to look at once t completes */
    fut_future *t = fut_timeout(h->f, ms);
    if (t == h->f) { /* complete: returned as it is */
        nodes[id].alias = true;
        fut_release(x);
    } else {
        h->id = id;
        forget_input(h);
        h->x = x;
        if (hour)
            atomic_fetch_add(&hour_timeouts, 1);
    }
    h->f = t;
}

static void one_op(actor *a)
{
    uint64_t *seed = &a->seed;
    held *hs = a->hs;
    int op = (int)(rnd(seed) % 20);
    int i = a->n ? (int)(rnd(seed) % (uint64_t)a->n) : 0;
    switch (op) {
    case 0:
    case 1:
    case 2:
    case 3: spawn_task(a); break;
    case 4:
    case 5: /* then: consumes its input */
        if (a->n) {
            use(a, i);
            long in[1] = {hs[i].id};
            long id = new_node(THEN, nodes[in[0]].flags & F_NOPOOL, 1, in);
            hs[i].f = fut_then(hs[i].f, then_body, ARG(id));
            hs[i].id = id;
            forget_input(&hs[i]);
        }
        break;
    case 6: { /* all of up to three: borrows */
        fut_future *f[3];
        long in[3];
        int k = a->n < 3 ? a->n : 3;
        unsigned nopool = F_NOPOOL;
        for (int j = 0; j < k; j++) {
            int x = (i + j) % a->n;
            use(a, x);
            f[j] = hs[x].f;
            in[j] = hs[x].id;
            nopool &= nodes[in[j]].flags;
        }
        long id = new_node(ALL, nopool, k, in);
        add(a, fut_all(f, (size_t)k), id, false);
        break;
    }
    case 7: { /* any of up to three, and a task sure to finish */
        fut_future *f[4];
        int k = a->n < 3 ? a->n : 3;
        for (int j = 0; j < k; j++) {
            use(a, (i + j) % a->n);
            f[j] = hs[(i + j) % a->n].f;
        }
        spawn_task(a);
        f[k] = hs[a->n - 1].f;
        size_t index = SIZE_MAX;
        int rc = fut_await_any(f, (size_t)k + 1, &index);
        if (rc != 0 || index > (size_t)k || !fut_is_ready(f[index]))
            fail("fut_await_any", -1, rc);
        break;
    }
    case 8:
    case 9:
        if (a->n) {
            await_check(a, i);
            drop(a, i);
        }
        break;
    case 10:
        if (a->n) { /* a short wait; checked when complete */
            void *v;
            int rc = fut_await_for(hs[i].f, rnd(seed) % 3, &v);
            if (fut_is_ready(hs[i].f)) {
                use(a, i);
                rc = fut_await(hs[i].f, &v);
                check(&a->m, hs[i].id, rc, v);
            } else if (rc != ETIMEDOUT) {
                fail("fut_await_for on a pending future", hs[i].id, rc);
            }
        }
        break;
    case 11: { /* a slow task, cancelled 0 to 300 us later */
        long id = new_node(TASK, F_SLOW, 0, NULL);
        add(a, fut_spawn(pool, task_body, ARG(id)), id, false);
        nap_us((long)(rnd(seed) % 300));
        cancel_node(hs[a->n - 1].f, id);
        break;
    }
    case 12:
        if (a->n) {
            int rc = cancel_node(hs[i].f, hs[i].id);
            if (hs[i].hour) {
                hs[i].hour = false;
                atomic_fetch_add(&hour_sleeps, 1);
                if (rc != 0)
                    fail("cancelling a one-hour sleep", hs[i].id, rc);
            }
        }
        break;
    case 13:
    case 14:
        if (rnd(seed) % 2)
            post_promise(a);
        else
            settle_one(seed, false);
        break;
    case 15: /* a short timeout: consumes its input, carries its value */
        if (a->n)
            timeout_on(a, i, rnd(seed) % 4);
        break;
    case 16: { /* a sleep; one in four lasts an hour unless cancelled */
        bool hour = rnd(seed) % 4 == 0;
        long id = new_node(SLEEP, hour ? F_HOUR : 0, 0, NULL);
        add(a, fut_sleep(pool, hour ? HOUR_MS : rnd(seed) % 3), id, hour);
        break;
    }
    case 17: /* a one-hour timeout, on a held future or a fresh one */
        switch (rnd(seed) % 3) {
        case 0:
            if (!a->n)
                return;
            break;
        case 1:
            post_promise(a);
            if (!a->n)
                return;
            i = a->n - 1;
            break;
        default: spawn_task(a); i = a->n - 1;
        }
        timeout_on(a, i, HOUR_MS);
        break;
    case 18: pf_check(seed, false); break;
    default:
        if (!a->n)
            break;
        if (rnd(seed) % 2) /* a second owner, dropped at once */
            fut_release(fut_retain(hs[i].f));
        else
            drop(a, i); /* released unawaited: the work still runs */
    }
    if (a->n >= HELD - 2) { /* keep the set bounded */
        await_check(a, 0);
        drop(a, 0);
    }
}

static void *actor_main(void *arg)
{
    actor *a = arg;
    while (atomic_fetch_sub(&ops_left, 1) > 0)
        one_op(a);
    for (int k = 0; k < 2 * MAILBOX; k++)
        settle_one(&a->seed, true);
    while (a->n) {
        await_check(a, 0);
        drop(a, 0);
    }
    return NULL;
}

/* ---- Walks: who ran ------------------------------------------------ */

typedef struct tally {
    long task_nodes, then_nodes, runs, eio_runs, not_run;
    long must_ran;  /* ran once, as they had to     */
    long never_ran; /* did not run, as they could not */
    long maybe_ran, maybe_not;
} tally;

/* Every TASK and THEN node ran as its record says; the pool is idle or
 * gone, so every future is complete. */
static void walk(const char *when, tally *t)
{
    long made = atomic_load(&nodes_made); /* acquire: every node written */
    if (made != atomic_load(&next_id))
        fail("nodes made but not written", -1, 0);
    memo *m = calloc(1, sizeof(*m));
    unsigned char *direct = calloc(2 * (size_t)made + 2, 1);
    if (!m || !direct) {
        fprintf(stderr, "soak: no memory for the walk\n");
        exit(1);
    }
    m->direct = direct;
    memset(t, 0, sizeof(*t));
    for (long id = 0; id < made; id++) {
        const node *n = &nodes[id];
        if (n->kind != TASK && n->kind != THEN)
            continue;
        unsigned r = atomic_load(&n->runs);
        unsigned c = marks(n);
        int expect; /* 1: must have run, 0: cannot have, -1: either */
        if (n->kind == TASK) {
            t->task_nodes++;
            expect = n->refused || (c & C_SURE) ? 0 : c ? -1 : 1;
        } else {
            t->then_nodes += !(n->flags & F_NOPOOL);
            unsigned in = allowed(m, n->in[0], true);
            expect = (c & C_SURE) || !(in & O_OK) ? 0
                     : !(in & O_ERRORS) && !c     ? 1
                                                  : -1;
        }
        if (!(n->flags & F_NOPOOL)) { /* else it ran inline: no unit */
            t->runs += r;
            t->eio_runs += r && n->kind == TASK && task_fails(id);
            t->not_run += r == 0;
        }
        if (r > 1 || (expect >= 0 && r != (unsigned)expect)) {
            char what[96];
            snprintf(what, sizeof(what), "%s: ran %u times, %s", when, r,
                     expect == 1   ? "must run once"
                     : expect == 0 ? "cannot have run"
                                   : "at most once");
            fail(what, id, 0);
        }
        if (expect == 1)
            t->must_ran += r == 1;
        else if (expect == 0)
            t->never_ran += r == 0;
        else if (r)
            t->maybe_ran++;
        else
            t->maybe_not++;
    }
    free(direct);
    free(m);
}

/* The pool's own counters agree with the soak's records (idle pool). */
static void check_stats(const fut_pool_stats *st, const tally *t)
{
    long calls = atomic_load(&chunk_calls), all = atomic_load(&chunks_accepted);
    uint64_t spawned = (uint64_t)(t->task_nodes + t->then_nodes + all);
    uint64_t completed = (uint64_t)(t->runs + calls);
    uint64_t cancelled = (uint64_t)(t->not_run + all - calls);
    uint64_t failed = (uint64_t)(t->eio_runs + atomic_load(&chunk_fails));
    if (st->spawned != spawned || st->completed != completed ||
        st->cancelled != cancelled || st->failed != failed || st->queued != 0 ||
        st->timers_pending != 0) {
        if (fail("the pool's stats disagree with the soak's records", -1, 0))
            fprintf(stderr,
                    "soak:   stats: spawned %llu completed %llu cancelled %llu "
                    "failed %llu queued %llu timers %llu; records: %llu %llu "
                    "%llu %llu 0 0\n",
                    (unsigned long long)st->spawned,
                    (unsigned long long)st->completed,
                    (unsigned long long)st->cancelled,
                    (unsigned long long)st->failed,
                    (unsigned long long)st->queued,
                    (unsigned long long)st->timers_pending,
                    (unsigned long long)spawned, (unsigned long long)completed,
                    (unsigned long long)cancelled, (unsigned long long)failed);
    }
}

/* ---- Racers: outside threads adding work while destroy runs ------------ */

typedef struct racer {
    uint64_t seed;
    fut_future *f[RACER_CAP];
    long id[RACER_CAP];
    int n;
    atomic_long ops;
    long accepted, refused, promises, pf_accepted, pf_refused;
} racer;

static racer racers[RACERS];
static atomic_bool destroy_returned;

static void *racer_main(void *arg)
{
    racer *r = arg;
    bool refused = false;
    /* Until refused, and 16 more; a pool that never refuses (a bug) is
     * given up on 1000 operations after destroy returned. */
    for (int after = 0, late = 0;
         after < 16 && !(atomic_load(&destroy_returned) && ++late > 1000);) {
        /* The first is a promise: a future made on the pool, kept, which
         * keeps the handle valid for the calls that race destroy. */
        int op = r->n == 0          ? 2
                 : r->n < RACER_CAP ? (int)(rnd(&r->seed) % 4)
                                    : 3;
        bool ref = false;
        void *v;
        switch (op) {
        case 0:
        case 1: {
            long id = new_node(op ? SLEEP : TASK, F_RACER, 0, NULL);
            fut_future *f = op ? fut_sleep(pool, rnd(&r->seed) % 3)
                               : fut_spawn(pool, task_body, ARG(id));
            /* a refused one is complete with ESHUTDOWN on return */
            ref = fut_await_for(f, 0, &v) == ESHUTDOWN;
            nodes[id].refused = ref;
            r->f[r->n] = f;
            r->id[r->n++] = id;
            ref ? r->refused++ : r->accepted++;
            break;
        }
        case 2: { /* a promise is not work: it works throughout */
            fut_promise *p;
            fut_future *f;
            long id = new_node(PROMISE, F_RACER, 0, NULL);
            int rc = fut_promise_create(pool, &p, &f);
            if (rc != 0) {
                fail("fut_promise_create while destroying", id, rc);
                break;
            }
            atomic_store(&nodes[id].intent, I_RESOLVE);
            if ((rc = fut_promise_resolve(p, VAL(id))) != 0)
                fail("resolve while destroying", id, rc);
            r->f[r->n] = f;
            r->id[r->n++] = id;
            r->promises++;
            break;
        }
        default:
            ref = pf_check(&r->seed, true);
            ref ? r->pf_refused++ : r->pf_accepted++;
        }
        if (op != 2) {
            if (refused && !ref)
                fail("work accepted after a refusal", -1, 0);
            refused = refused || ref;
        }
        after += refused;
        atomic_fetch_add(&r->ops, 1);
    }
    return NULL;
}

/* ---- Destroy, under a watchdog ------------------------------------------ */

/* Destroy must return: past WATCHDOG_S seconds it has hung (a timer left
 * behind waits an hour), and the soak says so instead of hanging. */
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
            fflush(NULL);
            _exit(3);
        }
    pthread_mutex_unlock(&dog_lock);
    return NULL;
}

/* The actors must make progress (invariant 10). */
static atomic_bool actors_done;

static void *stall_watch(void *arg)
{
    (void)arg;
    long last = LONG_MIN;
    for (int still = 0; !atomic_load(&actors_done); nap_us(100000)) {
        long now = atomic_load(&checked) - atomic_load(&ops_left);
        if (now != last) {
            last = now;
            still = 0;
        } else if (++still >= STALL_S * 10) {
            fprintf(stderr, "soak: no progress for %d s: a hang\n", STALL_S);
            fflush(NULL);
            _exit(1);
        }
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- The trace ---------------------------------------------------------- */

/* How many times what occurs in s[0..len) (not strstr: under the
 * sanitizers each call measures the whole rest of s). */
static long count_of(const char *s, size_t len, const char *what)
{
    size_t w = strlen(what);
    long k = 0;
    for (size_t i = 0; i + w <= len; i++)
        if (s[i] == what[0] && !memcmp(s + i, what, w)) {
            k++;
            i += w - 1;
        }
    return k;
}

/* The file destroy wrote: Chrome trace JSON, one "X" event per unit. */
static void check_trace(const char *path, long units)
{
    FILE *in = fopen(path, "rb");
    if (!in) {
        fail("no trace written", -1, errno);
        return;
    }
    size_t cap = 1 << 16, len = 0, got;
    char *s = malloc(cap + 1);
    while (s && (got = fread(s + len, 1, cap - len, in)) > 0) {
        len += got;
        if (len == cap) {
            char *t = realloc(s, 2 * cap + 1);
            if (!t)
                free(s);
            s = t;
            cap *= 2;
        }
    }
    fclose(in);
    if (!s) {
        fail("no memory to read the trace", -1, ENOMEM);
        return;
    }
    s[len] = '\0';
    const char *tail = strstr(s, "\"dropped_events\":");
    long dropped = tail ? strtol(tail + 17, NULL, 10) : -1;
    long events = count_of(s, len, "\"ph\":\"X\"");
    if (len == 0)
        fail("the trace is empty", -1, 0);
    else if (strncmp(s, "{\"traceEvents\":[", 16) != 0)
        fail("the trace does not start as Chrome trace JSON", -1, 0);
    else if (!tail || len < 3 || strcmp(s + len - 3, "}}\n") != 0)
        fail("the trace does not end as Chrome trace JSON", -1, 0);
    else if (dropped == 0 && events != units) {
        if (fail("trace events are not the units run", -1, 0))
            fprintf(stderr, "soak:   %ld events, %ld units\n", events, units);
    }
    free(s);
}

/* ---- Arguments ---------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fut-soak [OPTIONS] [OPS [SEED [THREADS]]]  (defaults: "
            "20000 1 2)\n"
            "  --trace FILE  the pool writes its Chrome trace to FILE, "
            "checked after destroy\n"
            "  --help        this text\n"
            "A seeded random mix of every operation from %d outside threads "
            "and the tasks, each outcome checked against a model, then "
            "destroy raced by %d threads adding work. Exits 0 when every "
            "invariant held, 1 when one did not, 2 on a bad argument, 3 when "
            "destroy hung.\n",
            ACTORS, RACERS);
}

static void bad_argument(const char *arg, const char *why)
{
    fprintf(stderr, "fut-soak: bad argument '%s' (%s; see --help)\n", arg, why);
    exit(2);
}

/* arg as a whole decimal number in [lo, hi], else a usage error. */
static unsigned long number(const char *arg, unsigned long lo, unsigned long hi)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(arg, &end, 10);
    if (errno || end == arg || *end || arg[0] == '-' || n < lo || n > hi) {
        char why[64];
        snprintf(why, sizeof(why), "want %lu..%lu", lo, hi);
        bad_argument(arg, why);
    }
    return n;
}

/* ---- Main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *trace = NULL;
    const char *pos[3];
    int npos = 0;
    bool options = true;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (options && (!strcmp(s, "--help") || !strcmp(s, "-h"))) {
            usage(stdout);
            return 0;
        } else if (options && !strcmp(s, "--trace")) {
            if (i + 1 >= argc || !argv[i + 1][0])
                bad_argument(s, "needs a FILE");
            trace = argv[++i];
        } else if (options && !strncmp(s, "--trace=", 8)) {
            if (!s[8])
                bad_argument(s, "needs a FILE");
            trace = s + 8;
        } else if (options && !strcmp(s, "--")) {
            options = false;
        } else if (options && s[0] == '-' && s[1] &&
                   !(s[1] >= '0' && s[1] <= '9')) {
            bad_argument(s, "unknown option");
        } else if (npos == 3) {
            bad_argument(s, "too many arguments");
        } else {
            pos[npos++] = s;
        }
    }
    long ops = npos > 0 ? (long)number(pos[0], 1, MAX_OPS) : 20000;
    unsigned long seed = npos > 1 ? number(pos[1], 0, ULONG_MAX) : 1;
    fut_pool_config cfg = {.threads = npos > 2 ? number(pos[2], 1, 4096) : 2,
                           .name = "soak",
                           .trace_path = trace};
    base_seed = seed;
    /* Per operation at most 3 nodes (a task, its timeout, the task's
     * child); the settlers; the racers' futures and their children. */
    max_ids = 3 * ops + SETTLERS + 2L * RACERS * RACER_CAP + 1000;
    nodes = calloc((size_t)max_ids, sizeof(*nodes));
    actor *actors = calloc(ACTORS, sizeof(*actors));
    if (trace && unlink(trace) != 0 && errno != ENOENT) {
        fprintf(stderr, "soak: cannot remove the old trace %s\n", trace);
        return 2;
    }
    if (!nodes || !actors || fut_pool_create(&pool, &cfg) != 0) {
        fprintf(stderr, "soak: setup failed\n");
        return 2;
    }
    double t0 = now_s();
    atomic_store(&ops_left, ops);

    pthread_t th[ACTORS], stall;
    pthread_create(&stall, NULL, stall_watch, NULL);
    for (int a = 0; a < ACTORS; a++) {
        actors[a].seed = mix(seed * ACTORS + (uint64_t)a);
        pthread_create(&th[a], NULL, actor_main, &actors[a]);
    }
    /* Tasks keep promises too, from the workers. */
    for (int k = 0; k < SETTLERS; k++) {
        long id = new_node(TASK, F_SETTLER, 0, NULL);
        fut_release(fut_spawn(pool, task_body, ARG(id)));
    }
    for (int a = 0; a < ACTORS; a++)
        pthread_join(th[a], NULL);
    atomic_store(&actors_done, true);
    pthread_join(stall, NULL);
    uint64_t s = mix(seed);
    for (int k = 0; k < 2 * MAILBOX; k++)
        settle_one(&s, true);

    /* Released futures' work may still run: wait (sleeping) until idle. */
    fut_pool_stats st;
    for (double start = now_s();; nap_us(1000)) {
        fut_pool_stats_get(pool, &st);
        if (st.queued == 0 && st.spawned == st.completed + st.cancelled &&
            st.timers_pending == 0)
            break;
        if (now_s() - start > IDLE_S) {
            fail("the pool never went idle", -1, 0);
            break;
        }
    }
    tally idle, end;
    walk("once idle", &idle);
    check_stats(&st, &idle);

    /* Destroy, raced by outside threads adding work until refused. */
    pthread_t rt[RACERS];
    for (int r = 0; r < RACERS; r++) {
        racers[r].seed = mix(seed + 1000003u * (uint64_t)(r + 1));
        pthread_create(&rt[r], NULL, racer_main, &racers[r]);
    }
    for (int r = 0; r < RACERS; r++)
        while (atomic_load(&racers[r].ops) < 64)
            nap_us(50);
    pthread_t dog;
    pthread_create(&dog, NULL, watchdog, NULL);
    int rc = fut_pool_destroy(pool);
    atomic_store(&destroy_returned, true);
    pthread_mutex_lock(&dog_lock);
    destroyed = true;
    pthread_cond_signal(&dog_cv);
    pthread_mutex_unlock(&dog_lock);
    pthread_join(dog, NULL);
    if (rc != 0)
        fail("fut_pool_destroy", -1, rc);
    long r_acc = 0, r_ref = 0, r_prom = 0, r_pfa = 0, r_pfr = 0;
    memo *m = calloc(1, sizeof(*m));
    for (int r = 0; r < RACERS; r++) {
        pthread_join(rt[r], NULL);
        racer *x = &racers[r];
        for (int k = 0; k < x->n; k++) {
            /* accepted work is done once destroy returns; refused work
             * and promises were complete already */
            if (!fut_is_ready(x->f[k])) {
                fail("a racer's future pending after destroy", x->id[k], 0);
                continue; /* leaked: awaiting it would hang */
            }
            void *v;
            int got = fut_await(x->f[k], &v);
            check(m, x->id[k], got, v);
            fut_release(x->f[k]);
        }
        r_acc += x->accepted;
        r_ref += x->refused;
        r_prom += x->promises;
        r_pfa += x->pf_accepted;
        r_pfr += x->pf_refused;
    }
    free(m);
    if (r_ref == 0 && r_pfr == 0)
        fail("the racers were never refused", -1, 0);
    walk("after destroy", &end);
    if (trace)
        check_trace(trace, end.runs + atomic_load(&chunk_calls));
    double took = now_s() - t0;
    free(actors);
    free(nodes);

    printf("soak: %ld operations (seed %lu, %zu threads, %d outside threads%s) "
           "in %.1f s: %ld outcomes checked (%ld exact); units: %ld ran as "
           "they had to, %ld never ran as expected, %ld maybe cancelled (%ld "
           "ran, %ld did not); cancels: %ld took, %ld busy, %ld already "
           "complete; one-hour sleeps cancelled: %ld, one-hour "
           "timeouts: %ld; parallel_for: %ld calls (%ld on workers, %ld "
           "failing on purpose); racing destroy: %ld spawns and sleeps "
           "accepted, %ld refused, "
           "%ld promises, parallel_for %ld accepted, %ld refused; stats: "
           "%llu spawned, %llu completed, %llu cancelled, %llu failed, %llu "
           "stolen; invariant failures: %ld\n",
           ops, seed, cfg.threads, ACTORS, trace ? ", traced" : "", took,
           atomic_load(&checked), atomic_load(&exact), end.must_ran,
           end.never_ran, end.maybe_ran + end.maybe_not, end.maybe_ran,
           end.maybe_not, atomic_load(&cancels[0]), atomic_load(&cancels[1]),
           atomic_load(&cancels[2]), atomic_load(&hour_sleeps),
           atomic_load(&hour_timeouts), atomic_load(&pf_calls),
           atomic_load(&pf_on_workers), atomic_load(&pf_failed), r_acc, r_ref,
           r_prom, r_pfa, r_pfr, (unsigned long long)st.spawned,
           (unsigned long long)st.completed, (unsigned long long)st.cancelled,
           (unsigned long long)st.failed, (unsigned long long)st.stolen,
           atomic_load(&failures));
    return atomic_load(&failures) == 0 ? 0 : 1;
}
