/*
 * Internal structures shared by the modules of fut.
 *
 * Locks: a future's lock (one of a fixed set of stripes), a deque's or
 * the injection queue's lock, a group's lock and a pool's lock are never
 * held two at a time, so there is no lock order to keep; and no library
 * lock is held while user code runs or while a future's listeners fire.
 * The waiter's lock (its own, or its worker's pool lock) is taken only to
 * count a wakeup.
 */
#ifndef FUT_INTERNAL_H
#define FUT_INTERNAL_H

#include <fut/fut.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

/* Happens-before edges that helgrind cannot see, because they are made by
 * C11 atomics (a release store read by an acquire load, a reference count
 * reaching zero), and counters whose relaxed races are by design. Only in
 * builds for valgrind (FUT_VALGRIND, scripts/valgrind.sh); no code
 * otherwise. */
#ifdef FUT_VALGRIND
#include <valgrind/helgrind.h>
#define FUT_HAPPENS_BEFORE(a) ANNOTATE_HAPPENS_BEFORE(a)
#define FUT_HAPPENS_AFTER(a)  ANNOTATE_HAPPENS_AFTER(a)
#define FUT_FORGET(a)         ANNOTATE_HAPPENS_BEFORE_FORGET_ALL(a)
#define FUT_RACY(a, n)        VALGRIND_HG_DISABLE_CHECKING(a, n)
#define FUT_UNRACY(a, n)      VALGRIND_HG_ENABLE_CHECKING(a, n)
#else
#define FUT_HAPPENS_BEFORE(a) ((void)0)
#define FUT_HAPPENS_AFTER(a)  ((void)0)
#define FUT_FORGET(a)         ((void)0)
#define FUT_RACY(a, n)        ((void)0)
#define FUT_UNRACY(a, n)      ((void)0)
#endif

#ifdef FUT_FAULT_INJECTION
/* Test builds only (fault.c, tests/test_faults.c): every allocation and
 * every thread, mutex and condition variable the library makes is
 * counted, and the call fut__fault_at(n) names fails as the system would.
 * The system headers come first, so the macros rename only our calls. */
#include <stdlib.h>
#include <string.h>
void fut__fault_at(long n);  /* the nth counted call from now fails; 0: off */
long fut__fault_calls(void); /* calls counted since the last fut__fault_at */
void *fut__fault_malloc(size_t size);
void *fut__fault_calloc(size_t n, size_t size);
void *fut__fault_realloc(void *p, size_t size);
char *fut__fault_strdup(const char *s);
int fut__fault_thread(pthread_t *t, const pthread_attr_t *a,
                      void *(*fn)(void *), void *arg);
int fut__fault_mutex(pthread_mutex_t *m, const pthread_mutexattr_t *a);
int fut__fault_cond(pthread_cond_t *c, const pthread_condattr_t *a);
#define malloc(s)                  fut__fault_malloc(s)
#define calloc(n, s)               fut__fault_calloc(n, s)
#define realloc(p, s)              fut__fault_realloc(p, s)
#define strdup(s)                  fut__fault_strdup(s)
#define pthread_create(t, a, f, x) fut__fault_thread(t, a, f, x)
#define pthread_mutex_init(m, a)   fut__fault_mutex(m, a)
#define pthread_cond_init(c, a)    fut__fault_cond(c, a)
#endif

typedef struct fut_listener fut_listener;
typedef struct fut_worker fut_worker;

/* Something to tell when a future completes. fire() runs once, with no
 * library lock held, after the future's outcome is published; it must not
 * touch the listener after it has handed it on (its memory may go). */
struct fut_listener {
    fut_listener *next;
    void (*fire)(fut_listener *self, fut_future *done);
};

/* Where a future is in its life. Moves forward only, by compare-and-swap:
 * the thread whose CAS leaves WAITING/QUEUED owns the completion. */
enum fut_phase {
    PHASE_WAITING, /* a continuation or promise: not ready to run       */
    PHASE_QUEUED,  /* in a pool queue                                   */
    PHASE_RUNNING, /* claimed by the thread that runs it                */
    PHASE_CLAIMED, /* claimed by a canceller or a completer             */
};

enum fut_kind {
    KIND_STATIC,  /* a preallocated complete future, never freed         */
    KIND_PLAIN,   /* completed on creation, or by a promise               */
    KIND_TASK,    /* fut_spawn                                           */
    KIND_THEN,    /* fut_then                                            */
    KIND_ALL,     /* fut_all                                          */
    KIND_SLEEP,   /* fut_sleep: completed by its timer                */
    KIND_TIMEOUT, /* fut_timeout: its input's outcome, or ETIMEDOUT   */
};

struct fut_future {
    atomic_uint refs;
    atomic_int phase;          /* enum fut_phase                            */
    atomic_bool done;          /* release-set after value/error are written;
                                  acquire-read before reading them          */
    atomic_bool cancel_req;    /* polled by fut_cancel_requested; relaxed:
                                  a hint, ordered by nothing else           */
    unsigned char kind;        /* enum fut_kind, set at creation            */
    bool orphan;               /* THEN made after its pool closed: gives
                                  ESHUTDOWN instead of running; set at
                                  creation                                  */
    bool quiet;                /* TASK helping fut_parallel_for: not a unit
                                  of its own, left out of the stats; set at
                                  creation                                  */
    bool listed;               /* THEN whose input may never complete by
                                  itself (a promise, fut_all, a timeout):
                                  kept on the pool's pending list while it
                                  waits; set at creation                    */
    bool on_pending;           /* THEN on its pool's pending list: pool lock */
    int error;                 /* written once before done                  */
    void *value;               /* written once before done                  */
    fut_listener *listeners;   /* pending: who to tell (the future's lock);
                                  done: the detached list, owned by the
                                  completer                                 */
    fut_future *defer_next;    /* completion trampoline link: its thread    */
    fut_pool *pool;            /* holds a pool reference; NULL: no pool     */
    fut_future *input;         /* THEN, TIMEOUT: the consumed input; the
                                  future's lock                             */
    fut_listener node;         /* THEN, TIMEOUT: on input's listeners       */
    fut_future *qnext, *qprev; /* queue or pending-list links: their lock */
    _Atomic(fut_worker *) deque_owner; /* whose deque holds it, or NULL;
                                          written under that deque's qlock,
                                          read under another: relaxed */
    union {
        struct { /* TASK and THEN: the work, set at creation */
            union {
                fut_task_fn task;
                fut_then_fn then;
            } fn;
            void *arg;
            fut_group *group; /* TASK: the group it is a child of */
        };
        struct {               /* SLEEP and TIMEOUT: the timer */
            uint64_t armed;    /* when added, for traces */
            uint64_t deadline; /* CLOCK_MONOTONIC ns; set before the
                                  timer is added */
            size_t heap_index; /* 1 + place in the timer heap, 0 when out
                                  of it: pool lock */
        };
    };
};

/* A thread waiting for futures. fired counts the listeners that fired;
 * it is guarded by *lock, and the waiter sleeps on *cv. On a worker, lock
 * is the pool lock and cv the worker's own, so spawns wake it too. */
typedef struct fut_waiter {
    pthread_mutex_t *lock;
    pthread_cond_t *cv;
    fut_worker *worker;  /* non-NULL when the waiter helps its pool */
    atomic_size_t fired; /* written under *lock; read without it too */
    atomic_size_t want;  /* wake when fired >= want; stored by the waiter
                            before it takes *lock to check and sleep     */
} fut_waiter;

/* One thread's trace buffer (trace.c); written only by that thread. */
typedef struct fut_trace_event fut_trace_event;
typedef struct fut_trace_lane {
    fut_trace_event *events;
    size_t len, cap;
    uint64_t dropped;
} fut_trace_lane;

#define MAX_TRACE_LANES 4098 /* workers, the timer thread, outsiders */

typedef struct fut_list {
    fut_future *head, *tail;
} fut_list;

/* The pool's counters, kept per worker and written only by that worker
 * (a plain relaxed load and store, no locked instruction), plus one set
 * shared by every other thread (atomic adds). fut_pool_stats_get sums
 * them; queued may be negative in one set and is right in the sum. */
enum fut_stat {
    STAT_SPAWNED,
    STAT_COMPLETED,
    STAT_FAILED,
    STAT_CANCELLED,
    STAT_STOLEN,
    STAT_QUEUED,
    STAT_COUNT
};
typedef struct fut_counters {
    _Alignas(64) atomic_llong n[STAT_COUNT];
} fut_counters;

struct fut_worker {
    fut_pool *pool;
    size_t index;
    pthread_t thread;
    pthread_cond_t cv;     /* parked here; signalled under pool->lock */
    bool parked;           /* on the idle list: pool->lock            */
    bool woken;            /* taken off it by wake_one: pool->lock    */
    fut_worker *idle_next; /* pool->lock                              */
    fut_worker *idle_prev; /* pool->lock                              */
    fut_future *next;      /* a unit made ready by the completion of
                              the one this worker just ran: taken
                              first, never stolen; this worker's own  */
    pthread_mutex_t qlock; /* guards deque; never held with another  */
    fut_list deque;        /* own units, newest at head: qlock        */
    fut_trace_lane trace;  /* this worker's own                       */
    fut_counters stats;    /* this worker's own                       */
};

struct fut_pool {
    atomic_uint refs; /* the handle, plus one per future on it   */
    pthread_mutex_t lock;
    pthread_cond_t quiet_cv; /* destroy waits for active == 0           */
    fut_worker *workers;
    size_t threads;
    pthread_mutex_t inject_lock; /* guards inject; held alone            */
    fut_list inject;       /* units from outside threads: inject_lock     */
    fut_list pending;      /* continuations waiting on input: lock        */
    fut_worker *idle;      /* parked workers, idle ones first: lock       */
    fut_worker *idle_tail; /* the last; waiting (helping) ones last       */
    /* Scheduling words, read without the lock; see pool.c for the two
     * store-then-load handshakes (seq_cst) they take part in. */
    atomic_long ready;     /* units in the queues, not yet reserved    */
    atomic_int idle_count; /* workers on the idle list; written under
                              lock                                     */
    atomic_int waking;     /* workers signalled by wake_one that have
                              not resumed yet                          */
    atomic_size_t active;  /* units admitted and not yet finished      */
    atomic_bool closing;   /* destroy has begun                        */
    atomic_bool closed;    /* destroy saw no work left; under lock     */
    bool stop;             /* workers exit: lock                       */
    /* Timers (timer.c): a min-heap of deadlines, fired by their thread. */
    fut_future **heap;         /* lock                                      */
    size_t heap_len, heap_cap; /* lock                                   */
    size_t timers;             /* in the heap or firing now: lock           */
    bool timer_stop;           /* lock                                      */
    pthread_cond_t timer_cv;   /* the timer thread sleeps here: lock       */
    pthread_t timer_thread;
    char *trace_path;             /* NULL: tracing off; set at create        */
    fut_trace_lane timer_trace;   /* the timer thread's own                */
    fut_trace_lane outside_trace; /* units run by helping outside threads:
                                     lock                                 */
    char name[16];
    fut_counters outside_stats; /* counts of threads that are not its
                                   workers                            */
};

/* future.c */
void fut__complete(fut_future *f, void *value, int error);
bool fut__listen(fut_future *f, fut_listener *l);
bool fut__unlisten(fut_future *f, fut_listener *l);
void fut__drop_task_ref(fut_future *f);
void fut__run(fut_future *f);
void fut__then_cancel_pending(fut_future *c);
bool fut__in_unit(void);

int fut__spawn_child(fut_pool *pool, fut_task_fn fn, void *arg,
                     fut_group *group, bool quiet);

/* group.c */
void fut__group_child_done(fut_group *group, int error);

/* pool.c */
void fut__pool_retain(fut_pool *pool);
void fut__pool_release(fut_pool *pool);
int fut__pool_submit(fut_pool *pool, fut_future *f);
int fut__pool_admit_then(fut_pool *pool, fut_future *c);
void fut__pool_attached(fut_pool *pool);
bool fut__pool_then_ready(fut_pool *pool, fut_future *c, bool input_failed);
extern _Thread_local fut_worker *fut__tl_worker; /* NULL off the pool */
fut_worker *fut__current_worker(void);

/* The calling worker's trace buffer when pool traces, else NULL. A unit
 * of a pool always runs on one of that pool's workers. */
static inline fut_trace_lane *fut__trace_lane(const fut_pool *pool)
{
#ifdef FUT_NO_TRACE /* only to measure what the branch costs: fut-bench */
    (void)pool;
    return NULL;
#else
    return pool && pool->trace_path ? &fut__tl_worker->trace : NULL;
#endif
}
void fut__waiter_init_worker(fut_waiter *w, fut_worker *worker);
void fut__waiter_notify(fut_waiter *w);
bool fut__run_own_child(fut_future *f);
int fut__waiter_block(fut_waiter *w, const struct timespec *deadline,
                      bool help);
void fut__stat_cancelled(fut_pool *pool);
void fut__stat_ran(fut_pool *pool, int error);
void fut__stat_dequeued(fut_pool *pool);
void fut__stat_spawned(fut_pool *pool, uint64_t n);
bool fut__pool_refuses(const fut_pool *pool);
bool fut__pool_accepts(fut_pool *pool);
void fut__pool_check_quiet(fut_pool *pool);

/* trace.c */
typedef void (*fut_fn)(void); /* any function, for traces */
void fut__trace_record(fut_trace_lane *lane, fut_fn fn, int kind,
                       uint64_t start, uint64_t end);
void fut__trace_write(fut_pool *pool);
void fut__trace_outside(fut_pool *pool, fut_fn fn, int kind, uint64_t start,
                        uint64_t end);

/* timer.c */
uint64_t fut__now_ns(void);
int fut__cond_init_monotonic(pthread_cond_t *cv);
int fut__timer_start(fut_pool *pool);
void fut__timer_stop(fut_pool *pool);
int fut__timer_add(fut_pool *pool, fut_future *f, uint64_t ms);
bool fut__timer_remove(fut_pool *pool, fut_future *f);
void fut__timer_fire(fut_future *f); /* future.c */

#endif /* FUT_INTERNAL_H */
