/*
 * The future layer's structures, built on the scheduler (sched.h), which
 * knows nothing of them.
 *
 * Locks of this layer (none is held with another, nor while user code
 * runs or listeners fire; see sched.h for the scheduler's):
 *   a future's stripe lock   its listener list (future.c)
 *   pool->pending_lock       the pool's pending continuations
 *   pool->trace_lock         the trace lane of outside threads
 *   group->lock              the group's "done" promise (group.c)
 */
#ifndef FUT_INTERNAL_H
#define FUT_INTERNAL_H

#include <fut/fut.h>

#include "alloc.h"
#include "io.h"
#include "sched.h"

#include <stdio.h>

typedef struct fut_listener fut_listener;

/* Something to tell when a future completes. fire() runs once, with no
 * library lock held, after the future's outcome is published; it must not
 * touch the listener after it has handed it on (its memory may go). */
struct fut_listener {
    fut_listener *next;
    void (*fire)(fut_listener *self, fut_future *done);
};

/* A future's state word (64 bits, one atomic):
 *
 *   bits 0-1  the phase, which moves forward only, by compare-and-swap:
 *             WAITING (a continuation, promise, sleep, timeout or all: not
 *             ready to run) -> QUEUED (a task or continuation in a queue)
 *             -> RUNNING (claimed by its runner); or WAITING/QUEUED ->
 *             CLAIMED (by a canceller or a completer). Whoever moves it out
 *             of WAITING or QUEUED owns the completion.
 *   DONE      set once, by the owner of the completion, after value and
 *             error are written (release); read with acquire.
 *   LISTENED  set (under the stripe lock) by the first fut__listen; a
 *             completer that sees it takes the stripe lock to detach the
 *             listeners, one that does not sets DONE with one CAS.
 *   CANCEL    fut_cancel asked a running task to stop (a hint, relaxed).
 *   TAKEN     fut_take took the value: its destructor no longer runs.
 *   BORROWS   set before DONE, by a future completed with its input's
 *             value when the input frees that value (see pass_on in
 *             future.c): it keeps its input, so the value lives as long
 *             as it does, and a take goes to the input.
 *   KEPT      a promise's future: the promise was used (resolve or
 *             reject), so a second use is misuse, not a second keep.
 *   EXTRA     set before the future is shared (a promise's: before DONE):
 *             a task's or continuation's `extra` holds its options, a
 *             promise's `value_free` its value's destructor. Without it,
 *             those fields are not even initialized.
 *   bits 32+  the reference count: the caller's handles, plus one "task
 *             reference" held from acceptance until the unit, timer or
 *             promise is finished with the future.
 */
enum fut_phase {
    PHASE_WAITING,
    PHASE_QUEUED,
    PHASE_RUNNING,
    PHASE_CLAIMED,
};
#define F_PHASE    3ull
#define F_DONE     4ull
#define F_LISTENED 8ull
#define F_CANCEL   16ull
#define F_TAKEN    32ull
#define F_BORROWS  64ull
#define F_EXTRA    128ull
#define F_KEPT     256ull /* PLAIN: its promise was kept or rejected      */
#define F_REF      (1ull << 32)

enum fut_kind {
    KIND_STATIC,  /* a preallocated complete future, never freed */
    KIND_PLAIN,   /* completed on creation, or by a promise       */
    KIND_TASK,    /* fut_spawn                                   */
    KIND_THEN,    /* fut_then                                    */
    KIND_ALL,     /* fut_all, fut_any                            */
    KIND_SLEEP,   /* fut_sleep: completed by its timer           */
    KIND_TIMEOUT, /* fut_timeout: its input's outcome, or ETIMEDOUT */
    KIND_FD,      /* fut_fd_wait: completed by the pool's epoll thread */
};

enum fut_flag {
    FLAG_ORPHAN = 1, /* THEN made after its pool closed: gives ESHUTDOWN
                        instead of running                            */
    FLAG_LISTED = 2, /* THEN whose input may never complete by itself (a
                        promise, fut_all, a timeout): kept on the pool's
                        pending list while it waits                   */
    FLAG_TRACED = 4, /* SLEEP/TIMEOUT: `armed` is kept, for traces     */
    FLAG_ON_ERROR = 8, /* THEN of fut_catch: runs fn.recover when the input
                          failed; a success passes through            */
    FLAG_ON_ANY = 16,  /* THEN of fut_finally: runs fn.recover always  */
    FLAG_FIRST = 32,       /* ALL of fut_any: completes at the first fire */
    FLAG_CANCEL_REST = 64, /* ALL of fut_any: then cancels the others    */
    FLAG_CHAIN = 128,      /* THEN of fut_chain: fn.chain gives a future
                              to follow                               */
    FLAG_FOLLOWING = 32,   /* THEN of fut_chain whose function ran: input
                              is the future it follows, and the unit is
                              done (not counted again if cancelled).
                              FIRST's bit: that one is ALL's only      */
};

/* What a unit runs (its kind and flags tell which), or when a traced
 * timer was armed. */
typedef union fut_unit_fn {
    fut_task_fn task;       /* TASK                                 */
    fut_then_fn then;       /* THEN                                 */
    fut_recover_fn recover; /* THEN with ON_ERROR or ON_ANY         */
    fut_chain_fn chain;     /* THEN with CHAIN                      */
    uint64_t armed;         /* SLEEP, TIMEOUT when traced: when added */
} fut_unit_fn;

/* What fut_task_opts asks of a task or continuation, in one block. */
typedef struct fut_extra {
    fut_free_fn value_free; /* the future's value, when it frees it    */
    _Atomic(fut_free_fn) arg_free; /* the argument's; NULL once run    */
    void *arg;              /* what arg_free gets: the copy, else arg   */
    char *name;             /* NULL: none; else in this block          */
    max_align_t copy[];     /* arg_size bytes of the argument, then the
                               name                                    */
} fut_extra;

/* 40 bytes of header, then what the kind needs: a promise's is 48 bytes,
 * a sleep 56, a task 88, a timeout 112, a continuation 128 (alloc.c's
 * classes). */
/* The checked build's marks of a future handle (FUT_CHECKED): LIVE from
 * creation until freed, then DEAD (and the memory is kept a while, see
 * future.c's quarantine, so that a late use still finds DEAD). */
#define FUT_MAGIC_LIVE 0x7f07f07fu
#define FUT_MAGIC_DEAD 0xdeadf07fu

struct fut_future {
    _Atomic uint64_t state;   /* see above                               */
#ifdef FUT_CHECKED
    _Atomic uint32_t magic; /* FUT_MAGIC_LIVE, then FUT_MAGIC_DEAD:
                               relaxed, as misuse may race with the free */
#endif
    int error;                /* written once before DONE               */
    unsigned char kind;       /* enum fut_kind, set at creation         */
    unsigned char flags;      /* enum fut_flag, set at creation        */
    unsigned char on_pending; /* on its pool's pending list: pending_lock
                                 (a byte of its own: flags are read
                                 without the lock)                      */
    unsigned char size;       /* bytes allocated (at most 136), for
                                 fut__free; 0 for a fut_all, which keeps
                                 its size itself                         */
    void *value;              /* written once before DONE               */
    fut_listener *listeners;  /* pending: the stripe lock; after DONE:
                                 the completer's                         */
    fut_pool *pool;           /* holds a pool reference; NULL: no pool   */
    union {
        fut_work work;          /* TASK, THEN: its unit in the scheduler */
        fut_timer timer;        /* SLEEP, TIMEOUT                        */
        fut_free_fn value_free; /* PLAIN with EXTRA: the value's        */
    };
    fut_unit_fn fn;            /* TASK, THEN: set at creation; SLEEP,
                                  TIMEOUT: armed                      */
    void *arg;                 /* TASK, THEN (the copy, with arg_size) */
    fut_extra *extra;          /* TASK, THEN with EXTRA: its options  */
    uint64_t id;               /* TASK, THEN: the unit's (fut_id)     */
    fut_future *input;         /* THEN, TIMEOUT: the consumed input (for a
                                  chain that ran, the future it follows);
                                  the stripe lock once listening              */
    fut_listener node;         /* THEN, TIMEOUT: on input's listeners         */
    fut_future *qnext, *qprev; /* THEN, listed: pending list links     */
};

/* One thread's trace buffer (trace.c); written only by that thread. */
typedef struct fut_trace_event fut_trace_event;
typedef struct fut_trace_lane {
    pthread_mutex_t lock;    /* its thread, and a write of the trace */
    fut_trace_event *events; /* a ring: [head, head + len) mod cap  */
    size_t head, len, cap;
    size_t max; /* events kept at most (trace_events); 0: no bound */
    uint64_t dropped;
} fut_trace_lane;

typedef struct fut_list {
    fut_future *head, *tail;
} fut_list;

/* The pool's counters, kept per worker and written only by that worker
 * (a relaxed load and store, no locked instruction), plus one set shared
 * by every other thread (atomic adds). fut_pool_stats_get sums them;
 * queued may be negative in one set and is right in the sum. */
enum fut_stat {
    STAT_SPAWNED,
    STAT_COMPLETED,
    STAT_FAILED,
    STAT_CANCELLED,
    STAT_QUEUED,
    STAT_COUNT
};

typedef void (*fut_fn)(void); /* any function, for traces and dumps */

/* A unit in a wait (fut_await, fut_await_for, fut_join_all and
 * fut_join_settled: one per future; fut_await_any, fut_group_wait) on a
 * worker: the frames of a worker stack up as waits nest (a unit run
 * while another waits may wait in turn); the unit of each is kept apart
 * (fut_local.frame_unit). Written by its worker only; read by
 * fut_pool_dump, the monitor and the cycle check of waits, from any
 * thread (pointers there are compared, never followed). */
#define FUT_FRAME_ANY 4 /* fut_await_any targets a frame keeps */
typedef struct fut_frame {
    _Atomic(fut_fn) fn;          /* what the waiting unit runs          */
    atomic_ullong id;            /* its id; 0: none                     */
    atomic_ullong waits_id;      /* the id of waits[0] when a unit's    */
    atomic_uint nwaits;          /* 1: waits for waits[0]; more: for any
                                    one of waits[0..nwaits) (fut_await_any);
                                    0: for something no unit completes  */
    _Atomic(const void *) waits[FUT_FRAME_ANY]; /* futures, or a group's
                                                   flag                */
} fut_frame;

#define FUT_FRAMES 64 /* waits kept per worker; deeper ones not shown */

/* What the pool keeps per worker; written by that worker only, and read
 * by fut_pool_dump from any thread (the atomics: a snapshot). */
typedef struct fut_local {
    _Alignas(64) atomic_llong stat[STAT_COUNT];
    _Atomic(fut_fn) running;      /* the unit it runs now, or NULL      */
    atomic_ullong running_id;     /* its id (0: none)                   */
    atomic_ullong since;          /* when it started (fut__coarse_ns)   */
    size_t ref_budget; /* pool references held for futures made here */
    atomic_ullong name_id;        /* the unit whose name `name` holds
                                     (0: none); a unit without a name
                                     writes neither                     */
    _Atomic uint64_t name[4];     /* its name (fut_task_opts), cut to 31
                                     bytes                              */
    fut_trace_lane trace;
    atomic_uint depth;            /* waits in progress (may pass
                                     FUT_FRAMES)                        */
    fut_frame frame[FUT_FRAMES];  /* [depth - 1]: the innermost wait    */
    /* frame k's unit: its future; a group child's: its group's flag;
     * NULL: a loop chunk, a fut_join branch. Apart from the frames, so
     * that the cycle check reads eight to a cache line. */
    _Atomic(const void *) frame_unit[FUT_FRAMES];
} fut_local;

struct fut_pool {
    fut_sched sched;  /* first: 64-byte aligned                      */
    fut_local *local; /* one per worker, 64-byte aligned            */
    _Alignas(64) atomic_llong outside_stat[STAT_COUNT];
    /* References: the handle, one per future made outside the workers,
     * and the workers' budgets (see pool.c). */
    _Alignas(64) atomic_ullong refs;
    pthread_mutex_t pending_lock;
    fut_list pending; /* continuations waiting on input: pending_lock */
    char *trace_path; /* NULL: tracing off; set at create          */
    fut_trace_lane timer_trace;   /* the timer thread's own           */
    fut_trace_lane outside_trace; /* threads outside the pool         */
    struct fut_monitor *monitor;  /* NULL unless asked (monitor.c)    */
    fut_io io;                    /* fut_fd_wait's thread (io.c)      */
    /* fut_pool_shutdown past its deadline: queued units are cancelled
     * when a worker comes to them, timers fire as cancelled, running
     * units see fut_cancel_requested(). Read on each unit (relaxed). */
    _Alignas(64) atomic_bool cancel_all;
    atomic_ullong timers_cancelled; /* by cancel_all, for the report */
    char name[16];
};

/* A pool made before the last fork is its parent's (its threads do not
 * exist here), and every call on it fails with EOWNERDEAD. */
static inline bool fut__inherited(const fut_pool *pool)
{
    return fut__sched_inherited(&pool->sched);
}

/* Around fork (pool.c's pthread_atfork handlers): each module takes its
 * global locks before (after == false), and gives them back after, in
 * the parent and in the child (child: what it need not hold across fork
 * it makes new there). */
void fut__futures_fork(bool after, bool child);
void fut__alloc_fork(bool after);
void fut__monitor_fork(bool after);

/* The checked build stops the program, naming the call, when f (not
 * NULL) is not a live future handle. */
#ifdef FUT_CHECKED
void fut__check_future(const fut_future *f, const char *call);
#define FUT_CHECK_FUTURE(f, call)                                              \
    ((f) ? fut__check_future((f), (call)) : (void)0)
#else
#define FUT_CHECK_FUTURE(f, call) ((void)0)
#endif

/* Whether f has completed (fut_is_ready without the NULL check). */
static inline bool fut__is_ready(const fut_future *f)
{
    return atomic_load_explicit(&f->state, memory_order_acquire) & F_DONE;
}

/* future.c */
/* Around user code (a unit's function): which future, or which flag (a
 * group child's), fut_cancel_requested() answers for (NULL: none), and
 * that this thread
 * is inside user code (see then_ready). */
typedef struct fut_user_mark {
    fut_future *current;          /* the unit, or NULL                  */
    const atomic_bool *cancelled; /* a group child's: its group's flag  */
    const struct fut_user_mark *outer; /* the mark below, or NULL       */
    fut_fn fn;                    /* what the worker showed before      */
    uint64_t id, since;           /* ... its id, since when (when fn)   */
    uint64_t unit_id;             /* fut__user_begin's: the unit's id   */
} fut_user_mark;
/* Around a unit that is not a future's (a group child, a loop chunk, a
 * fut_join branch); also shows, for fut_pool_dump, that the calling
 * worker runs fn. m stays in the caller's frame until fut__user_end. */
void fut__user_begin(fut_user_mark *m, const atomic_bool *cancelled,
                     fut_fn fn, uint64_t id);
void fut__user_end(const fut_user_mark *m);
bool fut__listen(fut_future *f, fut_listener *l);
bool fut__unlisten(fut_future *f, fut_listener *l);
void fut__pending_add(fut_pool *pool, fut_future *c);
void fut__pending_remove(fut_pool *pool, fut_future *c);
/* Destroy: cancels the continuations still waiting on inputs that
 * nothing in the pool will complete; returns how many. */
size_t fut__cancel_pending(fut_pool *pool);
/* Destroy and shutdown: cancels every pending fut_fd_wait; how many. */
size_t fut__cancel_fd_waits(fut_pool *pool);
/* The epoll thread: an fd wait is ready (io.c's fire). */
void fut__io_fired(fut_io_item *it);
/* The innermost mark of this thread (future.c), NULL outside user code:
 * the units it runs, nested (one run on top of another's wait, or taken
 * back by its awaiter), are the chain of marks, from it outward. */
extern FUT_TLS const fut_user_mark *fut__tl_mark;
/* Whether this thread is inside a unit's own code (not only completing
 * one). */
static inline bool fut__in_unit(void)
{
    return fut__tl_mark != NULL;
}
/* Whether f is the very unit this thread runs (fut__mine also answers
 * for the units it runs below it, and for groups). */
bool fut__waits_for_itself(const fut_future *f);
bool fut__run_own(fut_future *f);
/* fut_take's half once f has succeeded: marks its value taken, in the
 * future that frees it. 0; EALREADY; EINVAL (a fut_all_values' array). */
int fut__take(fut_future *f);
void fut__timer_fired(fut_timer *t);

/* pool_mem.c */
void fut__pool_retain(fut_pool *pool);
void fut__pool_release(fut_pool *pool);
/* A future's reference on its pool, on a thread that is not one of its
 * workers: from that thread's budget (see pool_mem.c). */
void fut__pool_ref_take_outside(fut_pool *pool);
void fut__pool_ref_drop_outside(fut_pool *pool);
/* Gives the calling thread's budget for pool back (destroy). */
void fut__pool_ref_flush_outside(fut_pool *pool);

/* The calling worker's share of pool, or NULL on other threads. */
static inline fut_local *fut__local(fut_pool *pool)
{
    fut_sched_worker *w = fut__sched_self(&pool->sched);
    return w ? (fut_local *)w->data : NULL;
}

/* Adds delta to a counter: the worker's own (l, from fut__local: a
 * relaxed load and store, as only it writes them), else (l NULL) the
 * outside set (an atomic add). */
static inline void fut__stat_to(fut_pool *pool, fut_local *l, enum fut_stat k,
                                long long delta)
{
    if (l)
        atomic_store_explicit(
            &l->stat[k],
            atomic_load_explicit(&l->stat[k], memory_order_relaxed) + delta,
            memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&pool->outside_stat[k], delta,
                                  memory_order_relaxed);
}

static inline void fut__stat_add(fut_pool *pool, enum fut_stat k,
                                 long long delta)
{
    fut__stat_to(pool, fut__local(pool), k, delta);
}
/* A future's reference on its pool: from the worker's budget when made
 * on one of the pool's workers, else on the count (see pool.c). */
#define FUT_REF_BATCH 1024
static inline void fut__pool_ref_take(fut_pool *pool)
{
    fut_local *l = fut__local(pool);
    if (!l) {
        fut__pool_ref_take_outside(pool);
        return;
    }
    if (l->ref_budget == 0) {
        atomic_fetch_add_explicit(&pool->refs, FUT_REF_BATCH,
                                  memory_order_relaxed);
        l->ref_budget = FUT_REF_BATCH;
    }
    l->ref_budget--;
}

static inline void fut__pool_ref_drop(fut_pool *pool)
{
    fut_local *l = fut__local(pool);
    if (!l) {
        fut__pool_ref_drop_outside(pool);
        return;
    }
    if (++l->ref_budget > 2 * FUT_REF_BATCH) { /* more than it will use */
        l->ref_budget -= FUT_REF_BATCH;
        atomic_fetch_sub_explicit(&pool->refs, FUT_REF_BATCH,
                                  memory_order_relaxed);
    }
}

/* 0 only to measure what seeing inside costs (fut-bench-noinspect and
 * fut-bench-nonames, see BENCHMARKS.md). FUT_SHOW 0: no worker shows
 * what it runs nor since when (FUT_NO_INSPECT, which also sets
 * FUT_NAMES 0). FUT_NAMES 0: no id is made or shown, no name shown, no
 * wait pushes a frame or looks for a cycle among other units (a wait for
 * the caller's own unit is still refused) (FUT_NO_NAMES). */
#ifdef FUT_NO_INSPECT
#define FUT_SHOW 0
#else
#define FUT_SHOW 1
#endif
#if defined(FUT_NO_INSPECT) || defined(FUT_NO_NAMES)
#define FUT_NAMES 0
#else
#define FUT_NAMES 1
#endif

/* The calling worker's trace buffer when the pool traces, else NULL. A
 * unit of a pool always runs on one of that pool's workers. */
static inline fut_trace_lane *fut__trace_lane(fut_pool *pool)
{
#ifdef FUT_NO_TRACE /* only to measure what the branch costs: fut-bench */
    (void)pool;
    return NULL;
#else
    if (!pool || !pool->trace_path)
        return NULL;
    fut_sched_worker *w = fut__sched_self(&pool->sched);
    return w ? &pool->local[w->index].trace : NULL;
#endif
}

/* What a continuation waiting on the pool's pending list, or a timer,
 * is (for fut_pool_dump): its function (NULL for a timer), its name from
 * its options, and the kind of its input (a continuation) or its own (a
 * timer, with its deadline). Called under the list's or the heap's
 * lock, where the futures are alive. */
typedef void (*fut_visit_fn)(void *ctx, fut_fn fn, const char *name,
                             int kind, uint64_t deadline);
/* 0, or EBUSY when the list's lock could not be had. */
int fut__pending_visit(fut_pool *pool, fut_visit_fn visit, void *ctx);
int fut__timers_visit(fut_pool *pool, fut_visit_fn visit, void *ctx);

/* dump.c: what worker i shows it runs (NULL: nothing), its id, since
 * when (fut__coarse_ns) and its name. */
void fut__worker_running(fut_pool *pool, size_t i, fut_fn *fn, uint64_t *id,
                         uint64_t *since, char name[32]);
/* A unit on a worker about to wait pushes a frame (fut_frame) that shows
 * what for: futs[0] (n == 1) or any one of futs[0..n) (fut_await_any),
 * or, futs NULL, target (a group's cancel flag); it pops it after. push
 * returns NULL when the worker is too deep to show it (pop is still
 * called). A group's child's frame has its group's flag as its unit. */
fut_frame *fut__frame_push(const void *target, fut_future *const futs[],
                           size_t n);
void fut__frame_pop(void);
/* wait.c: a unit on a worker about to wait (target, futs and n as for
 * fut__frame_push) pushes its frame: true (pop it after the wait), with
 * *me the frame (NULL: too deep to show). Elsewhere false: no frame. */
bool fut__wait_frame(const void *target, fut_future *const futs[], size_t n,
                     fut_frame **me);
/* The cycle check of a wait, run only when the wait is about to block
 * (fut_wait_ctx.before_block, with a fut_cycle_check as its argument):
 * EDEADLK when the unit of frame me (the wait's first frame) would wait
 * for itself, else 0. A cycle is confirmed only while futs (when not
 * NULL) are all pending. */
typedef struct fut_cycle_check {
    fut_frame *me;
    fut_future *const *futs;
    size_t n;
} fut_cycle_check;
int fut__cycle_check(void *check);
/* Whether the unit of frame me (the caller's) would wait for itself: a
 * cycle of waits among the units its pool's workers run (dump.c). */
bool fut__wait_closes_cycle(fut_frame *me, fut_future *const futs[], size_t n);
/* Whether target (a future, or a group's cancel flag) is the unit this
 * thread runs, or one it runs below it, or a group of which one of those
 * is a child: it cannot complete before the caller returns. */
bool fut__mine(const void *target);
/* A 64-bit filter of what fut__mine says yes to: bit fut__mine_bit(p) is
 * set for each of them (a bit clear: p is not mine). */
uint64_t fut__mine_filter(void);
static inline uint64_t fut__mine_bit(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return 1ull << ((a >> 4 ^ a >> 10) & 63);
}
/* The unit id of f (a task's or continuation's), else 0. */
uint64_t fut__id_of(const fut_future *f);

/* monitor.c: the thread of stall_ms and dump_signal (fut_pool_config). */
typedef struct fut_monitor fut_monitor;
int fut__monitor_start(fut_pool *pool, uint64_t stall_ms, int sig);
void fut__monitor_stop(fut_pool *pool);

/* trace.c */
/* name: NULL, or a name given in the unit's options (copied). */
/* id: the unit's (0: none). */
void fut__trace_record(fut_trace_lane *lane, fut_fn fn, const char *name,
                       uint64_t id, int kind, uint64_t start, uint64_t end);
void fut__trace_write(fut_pool *pool);
int fut__trace_write_to(fut_pool *pool, const char *path);
void fut__trace_lane_init(fut_trace_lane *lane, size_t max);
void fut__trace_lane_fini(fut_trace_lane *lane);
/* Kinds of trace events that are not units: the two ends of an arrow
 * from a unit to a continuation it made ready (id: the continuation). */
enum { TRACE_FLOW_OUT = 100, TRACE_FLOW_IN = 101 };
void fut__trace_flow(fut_pool *pool, int kind, uint64_t id, uint64_t at);
/* fn's symbol where the binary exports it, else its address; escaped
 * for a JSON string. */
void fut__write_fn_name(FILE *out, fut_fn fn);
/* s, escaped as the inside of a JSON string. */
void fut__write_escaped(FILE *out, const char *s);
/* A unit's event on the caller's lane: its worker's, else the outside one. */
void fut__trace_unit(fut_pool *pool, fut_fn fn, uint64_t id, int kind,
                     uint64_t start, uint64_t end);

#endif /* FUT_INTERNAL_H */
