/*
 * The scheduler's workers: queues, searching, parking, helping waits and
 * shutdown. See sched.h for what it offers and the lock table.
 *
 * Queues. A worker pushes what it submits on its own deque and pops it
 * back newest first; a free worker takes, in order: its `next` slot, its
 * deque, the injection queue, then the oldest item of another worker
 * (starting at a random one). Every 64th look takes the injection queue
 * first, so outside work starts within 64 units of a busy worker, even
 * on a pool of one thread (fairness).
 *
 * Waking. A submitter wakes a parked worker only when none is already
 * searching; a woken worker, or one that left park() because it saw
 * work, counts as searching until it finds work, and the last searcher to
 * find work wakes the next parked worker if more is queued, so a burst of
 * work brings workers in one at a time. Workers spin (searching) for up
 * to SPIN_NS before parking: all of them when the pool has fewer workers
 * than CPUs, one fewer when as many, one when more.
 *
 * No lost wakeup. An outside submitter publishes its item with a seq_cst
 * exchange and then reads idle_count and searching (seq_cst); a parking
 * worker raises idle_count (seq_cst, under sleep_lock) and then looks at
 * every queue. In any order one sees the other. A worker's push to its own
 * deque has no store-load fence (it would cost a locked instruction per
 * spawn); instead the parking worker, between raising idle_count and
 * looking, runs a heavy fence: membarrier(2), which makes every thread of
 * the process pass a full barrier. So the pusher's store is either seen
 * by the parker, or comes after that barrier, and then the pusher's load
 * of idle_count sees the parker (the asymmetric fence of liburcu and
 * folly). Where membarrier is missing, pushes use a seq_cst store of
 * bottom instead (fut__push_seq_cst). Before a worker blocks in a wait,
 * it hands the queued work it will not run (its own, or others' it
 * declined because a worker is idle) to a parked worker under sleep_lock.
 * One race is left on purpose: a worker's own push against the last
 * searcher's pass-on check; it costs parallelism only, since the pusher
 * runs or hands off its item itself.
 *
 * Waits on a worker run other queued work while they wait (help), own
 * items first; they take injected or stolen work only while no worker is
 * idle or searching, so new work goes to idle workers first. Helping
 * nests at most FUT_HELP_DEPTH_MAX deep; deeper waits block, so a queue
 * of waiting tasks cannot overflow the stack (on a pool of one thread,
 * where nobody else could run it, a deeper wait still runs the worker's
 * own queued work). A blocked helping waiter is on the `waiting` list and
 * is woken for work when no worker is idle.
 *
 * Shutdown. Outside submitters count themselves in outside_busy (seq_cst)
 * and then read closing/closed; drain stores closing, then reads
 * outside_busy: so every submission is either refused or waited for.
 * drain waits (quiet_cv) until every worker is parked idle, no queue holds
 * an item, no timer is pending and no outside thread is busy; then sets
 * closed and waits for that again (work made ready from outside in
 * between is run, not dropped). Workers and the timer thread are never
 * refused: they run only while something accepted is unfinished.
 */
#define _GNU_SOURCE
#include "sched.h"
#include "alloc.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

FUT_TLS fut_sched_worker *fut__tl_self;
atomic_uint fut__fork_gen;

void fut__sched_forked(void)
{
    fut__tl_self = NULL; /* a worker that forked: not one in the child */
    atomic_fetch_add(&fut__fork_gen, 1);
}
FUT_TLS fut_sched *fut__tl_timer_sched; /* on a timer thread */
atomic_bool fut__push_seq_cst;          /* relaxed: see heavy_fence */
static pthread_once_t fence_once = PTHREAD_ONCE_INIT;

static void heavy_fence_setup(void)
{
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0,
                0) != 0)
        atomic_store_explicit(&fut__push_seq_cst, true, memory_order_relaxed);
}

/* Every thread of the process passes a full barrier (see the top). Where
 * membarrier fails, pushes from then on are seq_cst stores, which with
 * the parker's seq_cst loads need no barrier; the pushes made before are
 * the pushers' own to run. */
static void heavy_fence(void)
{
    if (!atomic_load_explicit(&fut__push_seq_cst, memory_order_relaxed) &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
        atomic_store_explicit(&fut__push_seq_cst, true, memory_order_relaxed);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ---- The injection queue ------------------------------------------------
 * Vyukov's intrusive multi-producer queue: a producer exchanges the tail
 * (seq_cst: this is what a parking worker sees, see the top) and then
 * links the old tail to its item (release); consumers, one at a time,
 * follow the links from head. A consumer takes the queue with an atomic
 * flag it only ever tries (a worker that finds it taken looks elsewhere
 * and comes back; nobody blocks on it). The stub keeps it never empty of
 * nodes. A producer between its exchange and its link makes the queue
 * look non-empty but yield nothing for a moment (pop returns NULL), so
 * nobody parks on it meanwhile. */

static void inject_init(fut_inject *q)
{
    atomic_init(&q->stub.next, NULL);
    atomic_init(&q->tail, &q->stub);
    atomic_init(&q->head, &q->stub);
    atomic_init(&q->taken, false);
}

static void inject_push(fut_inject *q, fut_work *w)
{
    atomic_store_explicit(&w->next, NULL, memory_order_relaxed);
    fut_work *prev =
        atomic_exchange_explicit(&q->tail, w, memory_order_seq_cst);
    atomic_store_explicit(&prev->next, w, memory_order_release);
}

static void set_head(fut_inject *q, fut_work *w)
{
    atomic_store_explicit(&q->head, w, memory_order_relaxed);
}

/* The caller holds q->taken. */
static fut_work *inject_pop_locked(fut_inject *q)
{
    fut_work *head = atomic_load_explicit(&q->head, memory_order_relaxed);
    fut_work *next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (head == &q->stub) {
        if (!next)
            return NULL;
        set_head(q, head = next);
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (!next) {
        if (atomic_load_explicit(&q->tail, memory_order_acquire) != head)
            return NULL; /* a producer is linking after head */
        inject_push(q, &q->stub);
        next = atomic_load_explicit(&head->next, memory_order_acquire);
        if (!next)
            return NULL;
    }
    set_head(q, next);
    return head;
}

/* Whether the queue may hold an item: an item past the stub, or a
 * producer under way (seq_cst, for the wake handshake). */
static bool inject_busy(fut_inject *q)
{
    /* head first: the consumers' own line; the tail, which every push
     * exchanges, only when the queue looked drained */
    return atomic_load(&q->head) != &q->stub ||
           atomic_load(&q->tail) != &q->stub;
}

static fut_work *inject_take(fut_sched *s)
{
    fut_inject *q = &s->inject;
    if (!inject_busy(q) ||
        atomic_exchange_explicit(&q->taken, true, memory_order_acquire))
        return NULL; /* empty, or another worker is taking */
    fut_work *w = inject_pop_locked(q);
    atomic_store_explicit(&q->taken, false, memory_order_release);
    return w;
}

/* Any queue holds an item (a snapshot; seq_cst loads). */
static bool work_visible(fut_sched *s)
{
    if (inject_busy(&s->inject))
        return true;
    for (size_t i = 0; i < s->threads; i++)
        if (fut__deque_size(&s->workers[i].deque))
            return true;
    return false;
}

/* ---- Waking (sleep_lock) --------------------------------------------- */

static void list_add(fut_sched_worker **head, fut_sched_worker *w)
{
    w->prev = NULL;
    w->link = *head;
    if (*head)
        (*head)->prev = w;
    *head = w;
    w->listed = true;
}

static void list_remove(fut_sched_worker **head, fut_sched_worker *w)
{
    if (w->prev)
        w->prev->link = w->link;
    else
        *head = w->link;
    if (w->link)
        w->link->prev = w->prev;
    w->listed = false;
}

/* Takes the first worker off the idle (else, when `waiting`, the waiting)
 * list and wakes it to search. sleep_lock held. */
static bool wake_locked(fut_sched *s, bool waiting)
{
    fut_sched_worker *w = s->idle;
    if (w) {
        list_remove(&s->idle, w);
        atomic_fetch_sub(&s->idle_count, 1);
    } else if (waiting && (w = s->waiting)) {
        list_remove(&s->waiting, w);
        atomic_fetch_sub(&s->waiting_count, 1);
    } else {
        return false;
    }
    w->woken = true;
    atomic_fetch_add(&s->searching, 1); /* the woken worker's, until found */
    pthread_cond_signal(&w->cv);
    return true;
}

/* The slow half of fut__sched_notify (sched.h): an idle worker first; a
 * helping waiter only when none is idle. */
void fut__sched_wake(fut_sched *s)
{
    pthread_mutex_lock(&s->sleep_lock);
    if (atomic_load(&s->searching) == 0)
        wake_locked(s, true);
    pthread_mutex_unlock(&s->sleep_lock);
}

static void start_searching(fut_sched_worker *self)
{
    self->searching = true;
    atomic_fetch_add(&self->sched->searching, 1);
}

/* The worker found work or gives up. The last searcher to find work
 * brings the next worker in when more is queued. */
static void stop_searching(fut_sched_worker *self, bool found)
{
    fut_sched *s = self->sched;
    self->searching = false;
    if (atomic_fetch_sub(&s->searching, 1) == 1 && found &&
        (atomic_load(&s->idle_count) > 0 ||
         atomic_load(&s->waiting_count) > 0) &&
        work_visible(s))
        fut__sched_notify(s);
}

/* ---- Finding work ------------------------------------------------------ */

static uint32_t next_rand(fut_sched_worker *self)
{
    uint32_t x = self->rng; /* xorshift32 */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return self->rng = x;
}

static fut_work *steal(fut_sched_worker *self)
{
    fut_sched *s = self->sched;
    size_t n = s->threads;
    if (n < 2)
        return NULL;
    size_t start = next_rand(self) % n;
    for (size_t i = 0; i < n; i++) {
        fut_sched_worker *v = &s->workers[(start + i) % n];
        if (v == self)
            continue;
        fut_work *w = fut__deque_steal(&v->deque);
        if (w) {
            atomic_store_explicit(
                &self->stolen,
                atomic_load_explicit(&self->stolen, memory_order_relaxed) + 1,
                memory_order_relaxed);
            return w;
        }
    }
    return NULL;
}

/* A waiting worker may take others' work only while no worker is idle or
 * searching (besides itself): new work goes to idle workers first. */
static bool may_take_foreign(fut_sched_worker *self)
{
    fut_sched *s = self->sched;
    return atomic_load(&s->idle_count) == 0 &&
           atomic_load(&s->searching) == (int)self->searching;
}

static fut_work *find_work(fut_sched_worker *self, bool waiting)
{
    fut_sched *s = self->sched;
    fut_work *w = self->next;
    if (w) {
        self->next = NULL;
        return w;
    }
    bool fair_turn = (++self->tick & 63) == 0;
    if (fair_turn && (!waiting || may_take_foreign(self)) &&
        (w = inject_take(s)))
        return w;
    if ((w = fut__deque_pop(&self->deque)))
        return w;
    if (waiting && !may_take_foreign(self))
        return NULL;
    if ((w = inject_take(s)))
        return w;
    return steal(self);
}

/* ---- Submitting -------------------------------------------------------- */

bool fut__sched_privileged(const fut_sched *s)
{
    return fut__sched_self(s) || fut__tl_timer_sched == s;
}

int fut__sched_enter(fut_sched *s)
{
    atomic_fetch_add(&s->outside_busy, 1); /* then closing: see drain */
    if (atomic_load(&s->closing)) {
        fut__sched_leave(s);
        return ESHUTDOWN;
    }
    return 0;
}

void fut__sched_leave(fut_sched *s)
{
    if (atomic_fetch_sub(&s->outside_busy, 1) == 1 &&
        (atomic_load(&s->closing) || atomic_load(&s->watchers)))
        fut__sched_check_quiet(s);
}

int fut__sched_submit_slow(fut_sched *s, fut_work *w, enum fut_submit kind)
{
    if (fut__sched_inherited(s))
        return EOWNERDEAD; /* the parent's: nobody here would run it */
    bool outside = !fut__sched_privileged(s);
    if (outside) {
        atomic_fetch_add(&s->outside_busy, 1); /* then the flag: see drain */
        if (atomic_load(kind == SUBMIT_NEW ? &s->closing : &s->closed)) {
            fut__sched_leave(s);
            return ESHUTDOWN;
        }
    }
    inject_push(&s->inject, w);
    fut__sched_notify(s);
    if (outside)
        fut__sched_leave(s);
    return 0;
}

int fut__sched_submit_next(fut_sched *s, fut_work *w)
{
    fut_sched_worker *self = fut__sched_self(s);
    if (self && !self->next) {
        self->next = w;
        return 0;
    }
    return fut__sched_submit(s, w, SUBMIT_READY);
}

void fut__sched_fair_turn(fut_sched_worker *self)
{
    if (self->depth >= FUT_HELP_DEPTH_MAX)
        return;
    fut_work *x = inject_take(self->sched); /* fairness: see the top */
    if (x) {
        self->depth++;
        x->run(x);
        self->depth--;
    }
}

/* ---- Parking and waiting ----------------------------------------------- */

/* Something that drain, shutdown or a virtual clock may be waiting for
 * changed: sleep_lock held. */
static void quiet_changed(fut_sched *s)
{
    s->quiet_gen++;
    pthread_cond_broadcast(&s->quiet_cv);
}

/* The timer count dropped to 0 (timer.c's hook), or a timer has fired
 * (with watchers, see fut__sched_advance). */
static void timers_done(fut_sched *s)
{
    if (atomic_load(&s->closing) || atomic_load(&s->watchers))
        fut__sched_check_quiet(s);
}

int fut__sched_timer_add(fut_sched *s, fut_timer *t)
{
    /* An outside thread counts itself busy while it adds (see the top). */
    bool outside = !fut__sched_privileged(s);
    if (outside && fut__sched_enter(s))
        return ESHUTDOWN;
    int rc = fut__timer_add(s, t);
    if (outside)
        fut__sched_leave(s);
    return rc;
}

void fut__sched_check_quiet(fut_sched *s)
{
    pthread_mutex_lock(&s->sleep_lock);
    quiet_changed(s);
    pthread_mutex_unlock(&s->sleep_lock);
}

/* Looks for work for up to SPIN_NS before parking, yielding the CPU
 * between looks so that a busy thread that shares it runs first; at most
 * as many workers spin as there are CPUs. true: some work is visible. */
#define SPIN_NS 200000
static bool spin(fut_sched_worker *self)
{
    fut_sched *s = self->sched;
    /* A virtual clock waits for the pool to settle: parking at once lets
     * it move on (spinning would only hold it back). */
    if (s->virt && atomic_load_explicit(&s->watchers, memory_order_relaxed))
        return false; /* park() looks once more before it parks */
    /* Fewer workers than CPUs may all spin. As many: one fewer (at
     * least one), leaving a CPU to the thread that submits the work. More
     * workers than CPUs: one, so that spinning never takes a CPU from a
     * worker that has work. */
    size_t cap = s->threads < s->cpus    ? s->threads
                 : s->threads == s->cpus ? (s->cpus > 1 ? s->cpus - 1 : 1)
                                         : 1;
    if (!self->searching) {
        if ((size_t)atomic_load(&s->searching) >= cap)
            return false;
        start_searching(self);
    }
    uint64_t until = fut__now_ns() + SPIN_NS;
    for (unsigned round = 0;; round++) {
        if (work_visible(s))
            return true;
        if (round % 4 == 3) {
            if (fut__now_ns() > until)
                return false;
            sched_yield();
        } else {
            for (int i = 0; i < 64; i++)
                cpu_relax();
        }
    }
}

/* Parks until woken for work, work shows up, or the pool stops. false:
 * stop. sleep_lock taken here. */
static bool park(fut_sched_worker *self)
{
    fut_sched *s = self->sched;
    /* Work in sight (a worker kept from spinning by the cap, say): look
     * again instead of paying for the announcement, the heavy fence (an
     * interrupt on every CPU of the process) and a trim of the caches. */
    if (work_visible(s))
        return true;
    fut__alloc_trim(); /* an idle pool gives its cached memory back */
    pthread_mutex_lock(&s->sleep_lock);
    list_add(&s->idle, self);
    atomic_fetch_add(&s->idle_count, 1); /* then look: see the top */
    if (self->searching) /* after: a submitter sees it idle or searching */
        stop_searching(self, false);
    heavy_fence(); /* then look at the deques: see the top */
    if (atomic_load(&s->closing) || atomic_load(&s->watchers))
        quiet_changed(s);
    while (!s->stop && !self->woken && !work_visible(s))
        pthread_cond_wait(&self->cv, &s->sleep_lock);
    if (self->listed) {
        list_remove(&s->idle, self);
        atomic_fetch_sub(&s->idle_count, 1);
    }
    if (self->woken) { /* the waker counted us as searching */
        self->woken = false;
        self->searching = true;
    } else if (!s->stop) { /* saw work: search, so that finding it passes
                              the wakeup on (stop_searching) */
        start_searching(self);
    }
    bool stop = s->stop;
    pthread_mutex_unlock(&s->sleep_lock);
    return !stop;
}

static bool past(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

void fut__sched_wait_init(fut_sched_worker *self, fut_wait_ctx *ctx)
{
    ctx->lock = &self->sched->sleep_lock;
    ctx->cv = &self->cv;
}

void fut__sched_wake_waiter(pthread_cond_t *cv)
{
    pthread_cond_signal(cv);
}

/* A worker blocks in a wait until ctx->done(), a deadline, or (helping)
 * work it may take. Before it blocks, its queued items go to a worker
 * that can run them. 0 or ETIMEDOUT. */
static int worker_block(fut_sched_worker *self, fut_wait_ctx *ctx,
                        const struct timespec *deadline, bool helping)
{
    fut_sched *s = self->sched;
    if (self->next) {
        fut_work *w = self->next;
        self->next = NULL;
        if (!fut__deque_push(&self->deque, w, true))
            inject_push(&s->inject, w);
    }
    int rc = 0;
    pthread_mutex_lock(&s->sleep_lock);
    if (helping) {
        list_add(&s->waiting, self);
        atomic_fetch_add(&s->waiting_count, 1); /* then look: see top */
    }
    if (self->searching)
        stop_searching(self, false);
    if (helping)
        heavy_fence(); /* then look at the deques, as park() does */
    /* Queued work this waiter will not run now, its own or (declined
     * because a worker is idle) others': make sure a worker comes for it. */
    if (atomic_load(&s->searching) == 0 &&
        (fut__deque_size(&self->deque) ||
         (helping && atomic_load(&s->idle_count) > 0 && work_visible(s))))
        wake_locked(s, true);
    self->blocked_on = ctx; /* for settled(): virtual time */
    s->blocked++;
    if (atomic_load(&s->watchers))
        quiet_changed(s);
    while (!ctx->done(ctx->arg) && !self->woken &&
           !(helping && may_take_foreign(self) && work_visible(s))) {
        if (!deadline) {
            pthread_cond_wait(&self->cv, &s->sleep_lock);
        } else if (pthread_cond_timedwait(&self->cv, &s->sleep_lock,
                                          deadline) == ETIMEDOUT) {
            rc = ETIMEDOUT;
            break;
        }
    }
    self->blocked_on = NULL;
    s->blocked--;
    if (self->listed) {
        list_remove(&s->waiting, self);
        atomic_fetch_sub(&s->waiting_count, 1);
    }
    if (self->woken) {
        self->woken = false;
        self->searching = true;
    }
    pthread_mutex_unlock(&s->sleep_lock);
    return rc;
}

#define WAIT_LOOKS 16 /* about 16 x 64 pauses, some 10-20 us */
/* The worker's own next item or newest queued one. */
static fut_work *take_own(fut_sched_worker *self)
{
    fut_work *w = self->next;
    if (w) {
        self->next = NULL;
        return w;
    }
    return fut__deque_pop(&self->deque);
}

static int worker_wait(fut_sched_worker *self, fut_wait_ctx *ctx,
                       const struct timespec *deadline, bool help)
{
    bool helping = help && self->depth < FUT_HELP_DEPTH_MAX;
    /* Beyond the bound, a worker with no other worker to hand its own
     * queued work to still runs that (the awaited item may be behind
     * it), and nothing else. */
    bool own_only = help && !helping && self->sched->threads == 1;
    int rc = 0, looked = 0;
    self->depth++;
    while (!ctx->done(ctx->arg)) {
        if (deadline && past(deadline)) {
            rc = ETIMEDOUT; /* stop helping once the time is up */
            break;
        }
        fut_work *w = helping    ? find_work(self, true)
                      : own_only ? take_own(self)
                                 : NULL;
        if (w) {
            if (self->searching)
                stop_searching(self, true);
            w->run(w);
            looked = 0;
            continue;
        }
        /* Nothing to run: look again for a few microseconds (the awaited
         * unit is often about to finish) before blocking. */
        if (helping && self->sched->threads <= self->sched->cpus &&
            looked++ < WAIT_LOOKS) {
            for (int i = 0; i < 64; i++)
                cpu_relax();
            continue;
        }
        looked = 0;
        if (ctx->before_block) { /* once, then look again: it took time */
            int (*check)(void *) = ctx->before_block;
            ctx->before_block = NULL;
            if ((rc = check(ctx->before_arg)))
                break;
            continue;
        }
        if ((rc = worker_block(self, ctx, deadline, helping)))
            break;
    }
    self->depth--;
    if (self->searching) /* woken for work it will not take: pass it on */
        stop_searching(self, true);
    return ctx->done(ctx->arg) ? 0 : rc;
}

int fut__sched_wait(fut_sched_worker *self, fut_wait_ctx *ctx,
                    const struct timespec *deadline, bool help)
{
    if (self)
        return worker_wait(self, ctx, deadline, help);
    int rc = 0;
    pthread_mutex_lock(ctx->lock);
    while (!ctx->done(ctx->arg) && rc == 0) {
        if (deadline)
            rc = pthread_cond_clockwait(ctx->cv, ctx->lock, CLOCK_MONOTONIC,
                                        deadline);
        else
            pthread_cond_wait(ctx->cv, ctx->lock);
    }
    bool done = ctx->done(ctx->arg);
    pthread_mutex_unlock(ctx->lock);
    return done ? 0 : rc;
}

/* ---- Workers ----------------------------------------------------------- */

static void *worker_main(void *arg)
{
    fut_sched_worker *self = arg;
    fut__tl_self = self;
    unsigned misses = 0; /* looks that saw work but could not take it */
    for (;;) {
        fut_work *w = find_work(self, false);
        if (w) {
            if (self->searching)
                stop_searching(self, true);
            misses = 0;
            w->run(w);
            continue;
        }
        /* Work that is visible but not takeable yet (a producer between
         * its exchange and its link, a taker preempted): give the CPU up
         * rather than loop through spin and park at full speed. */
        if (misses++ > 2)
            sched_yield();
        if (spin(self))
            continue;
        if (!park(self))
            break;
    }
    fut__tl_self = NULL;
    fut__alloc_trim();
    return NULL;
}

static void join_workers(fut_sched *s, size_t started)
{
    pthread_mutex_lock(&s->sleep_lock);
    s->stop = true;
    for (size_t i = 0; i < started; i++)
        pthread_cond_signal(&s->workers[i].cv);
    pthread_mutex_unlock(&s->sleep_lock);
    for (size_t i = 0; i < started; i++)
        pthread_join(s->workers[i].thread, NULL);
}

/* Frees the first n workers' resources and the array. */
static void free_workers(fut_sched *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fut__deque_destroy(&s->workers[i].deque);
        pthread_cond_destroy(&s->workers[i].cv);
    }
    free(s->workers);
    s->workers = NULL;
}

static int worker_init(fut_sched *s, size_t i)
{
    fut_sched_worker *w = &s->workers[i];
    int rc = fut__deque_init(&w->deque, 256);
    if (rc)
        return rc;
    rc = fut__cond_init_monotonic(&w->cv);
    if (rc) {
        fut__deque_destroy(&w->deque);
        return rc;
    }
    w->sched = s;
    w->index = i;
    w->rng = (uint32_t)(i * 0x9E3779B9u) | 1u;
    w->searching = true; /* until it first finds work or parks */
    atomic_fetch_add(&s->searching, 1);
    atomic_init(&w->stolen, 0);
    return 0;
}

int fut__sched_start(fut_sched *s, size_t threads, const char *name,
                     void (*timer_fire)(fut_timer *), char *data,
                     size_t data_stride)
{
    pthread_once(&fence_once, heavy_fence_setup);
    size_t bytes = (threads * sizeof(fut_sched_worker) + 63) / 64 * 64;
    s->workers = aligned_alloc(64, bytes);
    if (!s->workers)
        return ENOMEM;
    memset(s->workers, 0, bytes);
    s->threads = threads;
    s->fork_gen = atomic_load(&fut__fork_gen);
    s->cpus = fut__cpu_count();
    s->timer_fire = timer_fire;
    s->timers_done = timers_done;
    inject_init(&s->inject);
    int rc = pthread_mutex_init(&s->sleep_lock, NULL);
    if (rc)
        goto free_array;
    rc = fut__cond_init_monotonic(&s->quiet_cv); /* timed: shutdown */
    if (rc)
        goto destroy_sleep;
    size_t inited = 0, started = 0;
    for (; inited < threads; inited++) {
        if ((rc = worker_init(s, inited)))
            goto free_all;
        s->workers[inited].data = data + inited * data_stride;
    }
    if ((rc = fut__timer_start(s, name)))
        goto free_all;
    for (; started < threads; started++) {
        fut_sched_worker *w = &s->workers[started];
        if ((rc = pthread_create(&w->thread, NULL, worker_main, w)))
            goto stop_all;
        char tname[16], suffix[24];
        snprintf(suffix, sizeof(suffix), "-%zu", started);
        fut__thread_name(tname, name, suffix);
        pthread_setname_np(w->thread, tname); /* named before we return */
    }
    return 0;

stop_all:
    join_workers(s, started);
    fut__timer_stop(s);
    fut__timer_fini(s);
free_all:
    free_workers(s, inited);
    pthread_cond_destroy(&s->quiet_cv);
destroy_sleep:
    pthread_mutex_destroy(&s->sleep_lock);
free_array:
    free(s->workers);
    return rc;
}

static bool quiet(fut_sched *s)
{
    return (size_t)atomic_load(&s->idle_count) == s->threads &&
           atomic_load(&s->outside_busy) == 0 && atomic_load(&s->timers) == 0 &&
           !work_visible(s);
}

void fut__sched_drain(fut_sched *s)
{
    pthread_mutex_lock(&s->sleep_lock);
    atomic_store(&s->closing, true); /* then outside_busy: see the top */
    while (!quiet(s))
        pthread_cond_wait(&s->quiet_cv, &s->sleep_lock);
    atomic_store(&s->closed, true);
    while (!quiet(s))
        pthread_cond_wait(&s->quiet_cv, &s->sleep_lock);
    pthread_mutex_unlock(&s->sleep_lock);
}

/* ---- Virtual time ---------------------------------------------------------
 * The pool is settled when nothing in it can move until the clock does:
 * every worker is parked idle or blocked in a wait that is not satisfied,
 * nothing is queued, no outside thread is adding work, and no timer is
 * firing or due. Every change that can make that true broadcasts
 * quiet_cv while someone watches (park, worker_block, a timer fired,
 * an outside adder leaving), under sleep_lock, so a watcher that checks
 * under sleep_lock misses none. Threads outside the pool that may still
 * complete something (keep a promise) are not seen: a settled pool may
 * still be moved by them. */
static bool settled(fut_sched *s)
{
    if ((size_t)atomic_load(&s->idle_count) + s->blocked != s->threads ||
        atomic_load(&s->outside_busy) || work_visible(s))
        return false;
    for (size_t i = 0; i < s->threads; i++) {
        fut_sched_worker *w = &s->workers[i];
        if (w->blocked_on && (w->woken || w->blocked_on->done(w->blocked_on->arg)))
            return false; /* about to go on */
    }
    pthread_mutex_lock(&s->timer_lock); /* sleep_lock, then timer_lock */
    bool due = s->heap_len && s->heap[0]->deadline <= atomic_load(&s->vnow);
    bool firing = atomic_load(&s->timers) != s->heap_len;
    pthread_mutex_unlock(&s->timer_lock);
    return !due && !firing;
}

static void wait_settled(fut_sched *s)
{
    pthread_mutex_lock(&s->sleep_lock);
    while (!settled(s))
        pthread_cond_wait(&s->quiet_cv, &s->sleep_lock);
    pthread_mutex_unlock(&s->sleep_lock);
}

/* The auto-advancing clock's thread: whenever the pool settles with
 * timers pending, the clock jumps to the earliest deadline; settled with
 * none while units wait, it says so once (nothing inside the pool can
 * move it on). */
static void *clock_main(void *arg)
{
    fut_sched *s = arg;
    bool told = false;
    pthread_mutex_lock(&s->sleep_lock);
    while (!s->clock_stop) {
        unsigned long gen = s->quiet_gen;
        if (settled(s)) {
            pthread_mutex_lock(&s->timer_lock);
            if (s->heap_len) {
                uint64_t next = s->heap[0]->deadline;
                if (next > atomic_load(&s->vnow))
                    atomic_store(&s->vnow, next);
                pthread_cond_signal(&s->timer_cv);
                told = false;
            }
            bool stuck = !s->heap_len && s->blocked > 0;
            pthread_mutex_unlock(&s->timer_lock);
            if (stuck && !told && s->stuck) {
                told = true;
                pthread_mutex_unlock(&s->sleep_lock);
                s->stuck(s);
                pthread_mutex_lock(&s->sleep_lock);
            }
        }
        while (!s->clock_stop && gen == s->quiet_gen)
            pthread_cond_wait(&s->quiet_cv, &s->sleep_lock);
    }
    pthread_mutex_unlock(&s->sleep_lock);
    return NULL;
}

int fut__sched_clock_start(fut_sched *s, void (*stuck)(fut_sched *s))
{
    s->stuck = stuck;
    atomic_fetch_add(&s->watchers, 1); /* for good: it always watches */
    int rc = pthread_create(&s->clock_thread, NULL, clock_main, s);
    if (rc) {
        atomic_fetch_sub(&s->watchers, 1);
        return rc;
    }
    s->clock_started = true;
    return 0;
}

void fut__sched_clock_stop(fut_sched *s)
{
    if (!s->clock_started)
        return;
    pthread_mutex_lock(&s->sleep_lock);
    s->clock_stop = true;
    quiet_changed(s);
    pthread_mutex_unlock(&s->sleep_lock);
    pthread_join(s->clock_thread, NULL);
    s->clock_started = false;
    atomic_fetch_sub(&s->watchers, 1);
}

void fut__sched_advance(fut_sched *s, uint64_t ns)
{
    atomic_fetch_add(&s->watchers, 1);
    wait_settled(s);
    pthread_mutex_lock(&s->timer_lock);
    uint64_t now = atomic_load(&s->vnow);
    uint64_t target = ns < UINT64_MAX - now ? now + ns : UINT64_MAX;
    pthread_mutex_unlock(&s->timer_lock);
    for (;;) { /* one deadline at a time, each one's work run before */
        pthread_mutex_lock(&s->timer_lock);
        uint64_t next = s->heap_len ? s->heap[0]->deadline : UINT64_MAX;
        bool last = !s->heap_len || next > target;
        if (next > atomic_load(&s->vnow))
            atomic_store(&s->vnow, last ? target : next);
        pthread_cond_signal(&s->timer_cv);
        pthread_mutex_unlock(&s->timer_lock);
        wait_settled(s);
        if (last)
            break;
    }
    atomic_fetch_sub(&s->watchers, 1);
}

bool fut__sched_close_until(fut_sched *s, const struct timespec *deadline)
{
    pthread_mutex_lock(&s->sleep_lock);
    atomic_store(&s->closing, true); /* as drain: see the top */
    int rc = 0;
    while (!quiet(s) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->quiet_cv, &s->sleep_lock, deadline);
    bool q = quiet(s);
    pthread_mutex_unlock(&s->sleep_lock);
    return q;
}

void fut__sched_stop(fut_sched *s)
{
    join_workers(s, s->threads);
    fut__timer_stop(s);
    free_workers(s, s->threads);
}

void fut__sched_fini(fut_sched *s)
{
    fut__timer_fini(s);
    pthread_cond_destroy(&s->quiet_cv);
    pthread_mutex_destroy(&s->sleep_lock);
}
