/*
 * The scheduler: a fixed set of worker threads that run work items, and
 * a timer thread that fires timer items. It knows nothing of futures,
 * continuations or groups; those are built on it (future.c, group.c,
 * wait.c), as libuv's thread pool knows only its work requests.
 *
 * A work item is a link and a run function. Submitted on a worker, it goes
 * on that worker's Chase-Lev deque (deque.h), newest first for the owner,
 * oldest first for thieves; submitted elsewhere, on the injection queue,
 * a lock-free multi-producer queue that workers take from under a lock of
 * their own. A worker with nothing to do looks in every queue for a while
 * (searching), then parks on its condition variable. A waiting thread
 * (wait.c) blocks on a condition variable too; on a worker it first runs
 * other queued work, up to a bounded nesting depth.
 *
 * Locks (the lock table; no two are ever held at once, and none while a
 * run or fire function runs):
 *   sleep_lock   the idle and waiting lists, each worker's `woken`,
 *                `stop`, and the condition variables of workers; destroy's
 *                quiet_cv
 *   (the injection queue has no lock: producers exchange its tail,
 *   and the one consumer at a time is whoever sets its `taken` flag)
 *   timer_lock   the timer heap, `timers`, `timer_stop`, timer_cv
 */
#ifndef FUT_SCHED_H
#define FUT_SCHED_H

#include "base.h"
#include "deque.h"

/* How deep a worker nests waits that run other queued work: a wait at
 * this depth blocks instead (see fut__sched_help). */
#define FUT_HELP_DEPTH_MAX 64

typedef struct fut_work fut_work;
typedef struct fut_timer fut_timer;
typedef struct fut_sched fut_sched;
typedef struct fut_sched_worker fut_sched_worker;
typedef struct fut_wait_ctx fut_wait_ctx;

/* A unit of work. run() is called exactly once, on a worker (or on a
 * thread helping the scheduler), with no scheduler lock held; it may free
 * the item. */
struct fut_work {
    _Atomic(fut_work *) next; /* injection queue link: the queue's */
    void (*run)(fut_work *self);
};

/* A timer: fired once, by the timer thread, at or after its deadline,
 * unless removed first. */
struct fut_timer {
    uint64_t deadline; /* CLOCK_MONOTONIC ns; set before it is added  */
    uint32_t index;    /* 1 + heap position, 0 when out: timer_lock   */
};

/* Where a submission comes from, for the shutdown rules (see sched.c). */
enum fut_submit {
    SUBMIT_NEW,   /* new work: refused from outside once closing      */
    SUBMIT_READY, /* work made ready by an outside event (a promise):
                     refused from outside once closed                 */
};

struct fut_sched_worker {
    fut_deque deque;               /* own pushes and pops; others steal  */
    fut_work *next;                /* run next, never stolen: own         */
    fut_sched *sched;              /* set at start                        */
    size_t index;                  /* set at start                        */
    pthread_t thread;              /* set at start                        */
    pthread_cond_t cv;             /* parks and blocked waits: sleep_lock */
    bool woken;                    /* taken off a list by a waker: sleep_lock */
    fut_wait_ctx *blocked_on;      /* while blocked in a wait: sleep_lock */
    bool listed;                   /* on the idle or waiting list: sleep_lock */
    bool searching;                /* counted in sched->searching: own    */
    fut_sched_worker *prev, *link; /* idle or waiting list: sleep_lock */
    unsigned depth;                /* nested helping waits: own           */
    unsigned tick;                 /* units run, for fairness: own        */
    uint32_t rng;                  /* victim choice: own                  */
    atomic_ullong stolen;          /* written by the worker alone; relaxed */
    void *data; /* the layer above's, for this worker: set at start */
};

typedef struct fut_inject {
    _Alignas(64) _Atomic(fut_work *) tail; /* exchanged by producers  */
    _Alignas(64) atomic_bool taken;        /* a consumer is popping: acquire
                                              to take, release to give back */
    _Atomic(fut_work *) head; /* written by the taker; read by others
                                 as a hint                          */
    _Alignas(64) fut_work stub; /* linked to by producers: a line of its
                                   own, away from the consumers'     */
} fut_inject;

struct fut_sched {
    fut_sched_worker *workers; /* 64-byte aligned array        */
    size_t threads, cpus;
    fut_inject inject;
    void (*timer_fire)(fut_timer *t);  /* set at start              */
    void (*timers_done)(fut_sched *s); /* timer.c's hook: the count of
                                          timers dropped to 0          */
    _Alignas(64) pthread_mutex_t sleep_lock;
    fut_sched_worker *idle;    /* parked idle workers: sleep_lock */
    fut_sched_worker *waiting; /* blocked helping waiters, which
                                  may take work: sleep_lock       */
    pthread_cond_t quiet_cv;   /* destroy: sleep_lock             */
    bool stop;                 /* workers exit: sleep_lock        */
    /* Read by submitters without the lock; written (seq_cst) under it,
     * except searching and outside_busy. */
    _Alignas(64) atomic_int idle_count; /* workers on the idle list     */
    atomic_int waiting_count;           /* workers on the waiting list  */
    atomic_int searching;               /* workers awake, looking       */
    /* Written by outside submitters, read by destroy (seq_cst). */
    _Alignas(64) atomic_int outside_busy; /* outside threads submitting,
                                             or running chunks          */
    atomic_bool closing, closed;
    unsigned fork_gen; /* fut__fork_gen at start: see fut__sched_forked */
    /* Virtual time (fut_pool_config.virtual_time): the clock timers use
     * is vnow, moved by fut__sched_advance only. */
    bool virt;                /* set at start                         */
    _Atomic uint64_t vnow;    /* ns; written under timer_lock          */
    atomic_int watchers;      /* threads waiting for the pool to settle:
                                 state changes broadcast quiet_cv      */
    size_t blocked;           /* workers blocked in a wait: sleep_lock */
    unsigned long quiet_gen;  /* changes broadcast on quiet_cv: sleep_lock */
    bool clock_started, clock_stop; /* the auto clock: sleep_lock       */
    pthread_t clock_thread;
    void (*stuck)(fut_sched *s);    /* the auto clock found it stuck   */
    /* Timers (timer.c). */
    _Alignas(64) pthread_mutex_t timer_lock;
    pthread_cond_t timer_cv;
    fut_timer **heap;          /* a binary min-heap: timer_lock   */
    size_t heap_len, heap_cap; /* timer_lock                      */
    atomic_size_t timers;      /* in the heap or firing: written under
                                  timer_lock, read by drain (seq_cst) */
    bool timer_stop;           /* timer_lock                      */
    bool expire_all;           /* fire every timer now: timer_lock */
    pthread_t timer_thread;
};

/* How many times this process is a child of fork since it started. A
 * scheduler started before the last fork is its parent's: its threads do
 * not exist here, and it refuses all work (EOWNERDEAD). */
extern atomic_uint fut__fork_gen;
static inline bool fut__sched_inherited(const fut_sched *s)
{
    return s->fork_gen !=
           atomic_load_explicit(&fut__fork_gen, memory_order_relaxed);
}
/* In the child of fork (its pthread_atfork child handler): the calling
 * thread is no worker any more, and every scheduler started before is
 * the parent's. */
void fut__sched_forked(void);

/* The scheduler whose timer thread this is, or NULL. */
extern FUT_TLS fut_sched *fut__tl_timer_sched;

/* The calling thread's worker, or NULL; sched.c sets it. */
extern FUT_TLS fut_sched_worker *fut__tl_self;

/* The calling thread's worker of s, or NULL. */
static inline fut_sched_worker *fut__sched_self(const fut_sched *s)
{
    fut_sched_worker *w = fut__tl_self;
    return w && w->sched == s ? w : NULL;
}

/* The calling thread's worker of any scheduler, or NULL. */
static inline fut_sched_worker *fut__sched_any_self(void)
{
    return fut__tl_self;
}

/* Starts threads workers and the timer thread (named "<name>-<i>" and
 * "<name>-timer"), named before this returns. Worker i's `data` is
 * data + i * data_stride (what the layer above keeps per worker). 0, or
 * an error with nothing left behind. */
int fut__sched_start(fut_sched *s, size_t threads, const char *name,
                     void (*timer_fire)(fut_timer *), char *data,
                     size_t data_stride);
/* Closes s: refuses new outside work, waits until nothing is queued,
 * running or pending on a timer, then refuses all outside work and waits
 * again. Not from a worker of s. */
void fut__sched_drain(fut_sched *s);
/* Closes s to new outside work, as drain does, and waits until it is
 * quiet or the deadline (CLOCK_MONOTONIC) passes: whether it is quiet. */
bool fut__sched_close_until(fut_sched *s, const struct timespec *deadline);
/* The clock of s's timers: virtual (ns from 0) or CLOCK_MONOTONIC ns. */
static inline uint64_t fut__sched_now(const fut_sched *s)
{
    return s->virt ? atomic_load(&((fut_sched *)s)->vnow) : fut__now_ns();
}
/* Virtual time: moves s's clock on by ns, firing every timer due up to
 * the new time in deadline order, and returns once the work they made
 * ready has run and the pool is settled again (see sched.c). Not from a
 * worker of s. */
void fut__sched_advance(fut_sched *s, uint64_t ns);
/* Virtual time that moves by itself: a thread that, whenever the pool
 * settles with timers pending, moves the clock to the earliest deadline,
 * and calls stuck (once per episode) when it settles with none pending
 * while units wait. 0, or pthread_create's error. Stop it before the
 * workers. */
int fut__sched_clock_start(fut_sched *s, void (*stuck)(fut_sched *s));
void fut__sched_clock_stop(fut_sched *s);
/* Stops and joins the threads and frees the workers. The locks stay
 * usable (a late submission is refused, a late timer removal finds
 * nothing) until fut__sched_fini. */
void fut__sched_stop(fut_sched *s);
void fut__sched_fini(fut_sched *s);

/* Whether the calling thread is a worker or the timer thread of s: its
 * submissions are never refused. */
bool fut__sched_privileged(const fut_sched *s);
/* Whether a worker's push needs its own store-load fence (membarrier(2)
 * is missing): see sched.c. Set before any worker starts. */
extern atomic_bool fut__push_seq_cst;

/* Work was queued: brings a worker in, unless one is searching already
 * or none is parked. */
void fut__sched_wake(fut_sched *s);
static inline void fut__sched_notify(fut_sched *s)
{
    if (atomic_load(&s->searching) == 0 &&
        (atomic_load(&s->idle_count) > 0 || atomic_load(&s->waiting_count) > 0))
        fut__sched_wake(s);
}

/* Pushes w on the calling worker's own deque: false (nothing done) only
 * when the deque could not grow. */
static inline bool fut__sched_push_own(fut_sched_worker *self, fut_work *w)
{
    if (!fut__deque_push(
            &self->deque, w,
            atomic_load_explicit(&fut__push_seq_cst, memory_order_relaxed)))
        return false;
    fut__sched_notify(self->sched);
    return true;
}

int fut__sched_submit_slow(fut_sched *s, fut_work *w, enum fut_submit kind);
/* Queues w; 0 or ESHUTDOWN (refused: w is untouched). On a worker of s,
 * on its own deque (no locked instruction). */
static inline int fut__sched_submit(fut_sched *s, fut_work *w,
                                    enum fut_submit kind)
{
    fut_sched_worker *self = fut__sched_self(s);
    if (self && fut__sched_push_own(self, w))
        return 0;
    return fut__sched_submit_slow(s, w, kind);
}
/* On a worker of s, outside any run function's user code: runs w next on
 * this worker, ahead of its queue. Elsewhere, as fut__sched_submit(READY). */
int fut__sched_submit_next(fut_sched *s, fut_work *w);
/* Counts the calling outside thread as busy on s (destroy waits), unless
 * s is closing: 0 or ESHUTDOWN. */
int fut__sched_enter(fut_sched *s);
void fut__sched_leave(fut_sched *s);

/* fut__sched_take_back's fast half, for the calling worker self and an
 * item it pushed on its deque; every 64th call first runs one item of
 * the injection queue (fairness, see sched.c). */
void fut__sched_fair_turn(fut_sched_worker *self);
static inline bool fut__sched_take_back_own(fut_sched_worker *self, fut_work *w)
{
    if (__builtin_expect((++self->tick & 63) == 0, 0))
        fut__sched_fair_turn(self);
    return fut__deque_pop_if(&self->deque, w);
}

/* On a worker of s: if w is the newest item of this worker's deque (or
 * its next slot), takes it back and returns true (the caller runs it). */
static inline bool fut__sched_take_back(fut_sched *s, fut_work *w)
{
    fut_sched_worker *self = fut__sched_self(s);
    if (!self)
        return false;
    if (self->next == w) {
        self->next = NULL;
        return true;
    }
    return fut__sched_take_back_own(self, w);
}

/* A blocked wait: lock and cv are where the waiting thread sleeps; done()
 * says whether it may return. */
struct fut_wait_ctx {
    pthread_mutex_t *lock;
    pthread_cond_t *cv;
    bool (*done)(void *arg);
    void *arg;
    /* NULL, or called once on a worker, without the lock, when the wait is
     * about to block (it found nothing to help with): nonzero ends the
     * wait with that error. It is cleared once called. */
    int (*before_block)(void *before_arg);
    void *before_arg;
};
/* The calling worker's lock and condition variable, for a wait. */
void fut__sched_wait_init(fut_sched_worker *self, fut_wait_ctx *ctx);
/* Waits until ctx->done(): on a worker (self non-NULL), runs queued work
 * meanwhile (help), unless nested FUT_HELP_DEPTH_MAX deep; else blocks.
 * deadline: NULL, or CLOCK_MONOTONIC. 0, ETIMEDOUT, or what
 * ctx->before_block returned. */
int fut__sched_wait(fut_sched_worker *self, fut_wait_ctx *ctx,
                    const struct timespec *deadline, bool help);
/* Wakes the thread of a wait; call with *ctx->lock held. */
void fut__sched_wake_waiter(pthread_cond_t *cv);

/* Adds a timer: 0, ESHUTDOWN (refused as SUBMIT_NEW) or ENOMEM; the
 * caller set t->deadline. */
int fut__sched_timer_add(fut_sched *s, fut_timer *t);

/* Timers (timer.c, below the rest of the scheduler). add: 0 or ENOMEM.
 * remove: true when t was in the heap (it will not fire). */
int fut__timer_add(fut_sched *s, fut_timer *t);
bool fut__timer_remove(fut_sched *s, fut_timer *t);
size_t fut__timer_pending(fut_sched *s);
/* Makes the timer thread fire every timer now, and any added later. */
void fut__timer_expire_all(fut_sched *s);
/* Calls visit for each timer in the heap, under its lock: 0, or EBUSY
 * when the lock is held (nothing is visited). */
int fut__timer_visit(fut_sched *s, void (*visit)(void *ctx, fut_timer *t),
                     void *ctx);
int fut__timer_start(fut_sched *s, const char *name);
void fut__timer_stop(fut_sched *s); /* joins the thread       */
void fut__timer_fini(fut_sched *s); /* then frees the rest  */
/* Wakes drain to look again. */
void fut__sched_check_quiet(fut_sched *s);

#endif /* FUT_SCHED_H */
