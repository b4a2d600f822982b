/*
 * Waiting: fut_await, fut_await_for, fut_join_all, fut_await_any.
 *
 * Every wait is "any of these futures": the waiter hangs one listener on
 * each pending future, then blocks until one fires (a worker runs its
 * pool's units meanwhile, see fut__sched_wait). Afterwards it takes its
 * listeners back; one it cannot find was detached by a completer that is about
 * to fire it, so the waiter waits for exactly those fires before its stack
 * frame, which holds the listeners, goes away.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#define STACK_NODES 4

/* A thread waiting for futures: it sleeps on ctx (its own lock and
 * condition variable, or on a worker its scheduler's) until fired
 * reaches want. fired is raised under ctx.lock. */
typedef struct fut_waiter {
    fut_wait_ctx ctx;
    atomic_size_t fired;
    atomic_size_t want; /* stored by the waiter before it blocks */
} fut_waiter;

struct wait_node {
    fut_listener l;
    fut_waiter *w;
    fut_future *f; /* what it listens to */
};

static bool satisfied(void *arg)
{
    fut_waiter *w = arg;
    return atomic_load(&w->fired) >= atomic_load(&w->want);
}

static void wait_fire(fut_listener *l, fut_future *done)
{
    (void)done;
    fut_waiter *w = ((struct wait_node *)l)->w;
    /* A waiting worker checks fired without the lock and may return (its
     * stack frame, and w, gone) the moment fired is raised: so the raise
     * is the last touch of *w. The lock and cv outlive it: the
     * scheduler's lock and the worker's cv, or an outside waiter's own
     * pair, which it only leaves after taking that lock. */
    pthread_mutex_t *lock = w->ctx.lock;
    pthread_cond_t *cv = w->ctx.cv;
    pthread_mutex_lock(lock);
    size_t want = atomic_load(&w->want);
    /* Wake the waiter only when it has what it wants: joining n futures
     * costs one wakeup, not n. */
    if (atomic_fetch_add(&w->fired, 1) + 1 >= want)
        fut__sched_wake_waiter(cv);
    pthread_mutex_unlock(lock);
}

static bool valid(fut_future *const futs[], size_t n, const char *call)
{
    (void)call;
    if (n && !futs)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!futs[i])
            return false;
        FUT_CHECK_FUTURE(futs[i], call);
    }
    return true;
}

/* Whether one of futs is pending on a pool of the parent process (made
 * before fork): nothing here can complete it. */
static bool inherited(fut_future *const futs[], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!fut__is_ready(futs[i]) && futs[i]->pool &&
            fut__inherited(futs[i]->pool))
            return true;
    return false;
}

static bool first_ready(fut_future *const futs[], size_t n, size_t *index)
{
    for (size_t i = 0; i < n; i++) {
        if (fut__is_ready(futs[i])) {
            *index = i;
            return true;
        }
    }
    return false;
}

static size_t pending_count(fut_future *const futs[], size_t n)
{
    size_t pending = 0;
    for (size_t i = 0; i < n; i++)
        pending += !fut__is_ready(futs[i]);
    return pending;
}

/* Blocks on w with listeners on futs until one has fired (all == false)
 * or every one that was pending has (all == true): 0, or ETIMEDOUT. The
 * pending ones use nodes in order (as many as were pending at first). */
static int block_on(fut_waiter *w, fut_future *const futs[], size_t n, bool all,
                    struct wait_node *nodes, const struct timespec *deadline)
{
    size_t listening = 0;
    bool done = false;
    for (size_t i = 0; i < n && !done; i++) {
        if (all && fut__is_ready(futs[i])) /* no lock needed */
            continue;
        struct wait_node *node = &nodes[listening];
        node->l.fire = wait_fire;
        node->w = w;
        node->f = futs[i];
        if (fut__listen(futs[i], &node->l))
            listening++;
        else
            done = !all; /* complete already: one is enough for "any" */
    }
    fut_sched_worker *self = fut__sched_any_self();
    atomic_store(&w->want, all ? listening : 1);
    int rc = done || listening == 0
                 ? 0
                 : fut__sched_wait(self, &w->ctx, deadline, true);

    /* Take back what has not fired; wait for the fires on their way. */
    w->ctx.before_block = NULL; /* that wait looks for no cycle */
    size_t firing = 0;
    for (size_t i = 0; i < listening; i++)
        if (!fut__unlisten(nodes[i].f, &nodes[i].l))
            firing++;
    atomic_store(&w->want, firing);
    fut__sched_wait(self, &w->ctx, NULL, false);
    return rc;
}

/* Waits for any (all == false) or all of futs. 0 when satisfied, with
 * *index the lowest complete one; ETIMEDOUT; ENOMEM; EDEADLK (check, when
 * not NULL, found a cycle as the wait was about to block). */
static int wait_for(fut_future *const futs[], size_t n, bool all,
                    const struct timespec *deadline, size_t *index,
                    fut_cycle_check *check)
{
    if (!all && first_ready(futs, n, index))
        return 0;

    /* a node each: those pending now, at most (none comes back) */
    size_t pending = all ? pending_count(futs, n) : n;
    struct wait_node stack_nodes[STACK_NODES];
    struct wait_node *nodes = stack_nodes;
    if (pending > STACK_NODES) {
        nodes = malloc(pending * sizeof(*nodes));
        if (!nodes)
            return ENOMEM;
    }
    /* Made with the static initializers, which cannot fail: a wait never
     * fails for want of resources (timed waits use pthread_cond_clockwait
     * on CLOCK_MONOTONIC, so the condition variable needs no attribute). */
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    fut_waiter w = {.ctx = {.lock = &lock, .cv = &cv, .done = satisfied}};
    w.ctx.arg = &w;
    if (check && check->me) {
        w.ctx.before_block = fut__cycle_check;
        w.ctx.before_arg = check;
    }
    atomic_init(&w.fired, 0);
    atomic_init(&w.want, 1);
    fut_sched_worker *worker = fut__sched_any_self();
    if (worker)
        fut__sched_wait_init(worker, &w.ctx);
    int rc = block_on(&w, futs, n, all, nodes, deadline);
    pthread_cond_destroy(&cv);
    pthread_mutex_destroy(&lock);
    if (!all)
        rc = first_ready(futs, n, index) ? 0 : rc == EDEADLK ? rc : ETIMEDOUT;
    else if (rc == EDEADLK && pending_count(futs, n) == 0)
        rc = 0; /* all complete meanwhile: no cycle to report */
    if (nodes != stack_nodes)
        free(nodes);
    return rc;
}

static void deadline_after(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int outcome(fut_future *f, void **value)
{
    if (value)
        *value = f->value;
    return f->error;
}

bool fut__wait_frame(const void *target, fut_future *const futs[], size_t n,
                     fut_frame **me)
{
    *me = NULL;
    if (!FUT_NAMES || !fut__in_unit() || !fut__sched_any_self())
        return false;
    *me = fut__frame_push(target, futs, n); /* NULL: too deep */
    return true;
}

int fut__cycle_check(void *arg)
{
    const fut_cycle_check *c = arg;
    return c->me && fut__wait_closes_cycle(c->me, c->futs, c->n) ? EDEADLK
                                                                 : 0;
}

/* A unit about to wait for f: EDEADLK when f is its own future or one
 * this thread runs below it (taken back); else 0, with its frame pushed
 * when it has one (*pushed: pop it after, wait_end), *me the frame for
 * the cycle check that runs if the wait blocks. */
static int wait_begin(fut_future *f, bool *pushed, fut_frame **me)
{
    *pushed = false;
    *me = NULL;
    if (!fut__in_unit()) /* no unit here: no cycle */
        return 0;
    if (fut__mine(f))
        return EDEADLK;
    *pushed = fut__wait_frame(NULL, &f, 1, me);
    return 0;
}

static void wait_end(bool pushed)
{
    if (pushed)
        fut__frame_pop();
}

/* fut_await once f is still pending after a take-back: out of line, so
 * that the path of a child taken back and run in place (fork-join) stays
 * short. 0, or why it did not wait. */
static __attribute__((noinline)) int await_pending(fut_future *f)
{
    size_t i;
    if (inherited(&f, 1)) /* the parent's: nothing here completes it */
        return EOWNERDEAD;
    bool pushed;
    fut_cycle_check check = {NULL, &f, 1};
    if (wait_begin(f, &pushed, &check.me))
        return EDEADLK;
    /* one, no deadline: fails only for a cycle */
    int rc = wait_for(&f, 1, false, NULL, &i, &check);
    wait_end(pushed);
    return rc;
}

int fut_await(fut_future *f, void **value)
{
    if (!f)
        return EINVAL;
    FUT_CHECK_FUTURE(f, "fut_await");
    if (!fut__is_ready(f))
        fut__run_own(f); /* on a worker: our child, run it here */
    if (!fut__is_ready(f)) {
        int rc = await_pending(f);
        if (rc)
            return rc;
    }
    return outcome(f, value);
}

int fut_await_for(fut_future *f, uint64_t ms, void **value)
{
    /* Past ~292 years the deadline would overflow time_t: wait forever. */
    const uint64_t forever = (uint64_t)1 << 53;
    struct timespec deadline;
    size_t i;
    if (!f)
        return EINVAL;
    FUT_CHECK_FUTURE(f, "fut_await_for");
    if (inherited(&f, 1)) {
        if (value)
            *value = NULL;
        return EOWNERDEAD;
    }
    bool cycle = false, pushed = false;
    fut_cycle_check check = {NULL, &f, 1};
    if (!fut__is_ready(f) && ms > 0)
        cycle = wait_begin(f, &pushed, &check.me) != 0;
    else if (!fut__is_ready(f))
        cycle = fut__waits_for_itself(f); /* a poll looks no further */
    if (cycle)
        return EDEADLK;
    if (ms < forever)
        deadline_after(&deadline, ms);
    int rc = wait_for(&f, 1, false, ms < forever ? &deadline : NULL, &i,
                      &check);
    wait_end(pushed);
    if (rc) {
        if (value)
            *value = NULL;
        return rc;
    }
    return outcome(f, value);
}

/* A unit about to wait for all of futs: a frame for each pending one (as
 * wait_begin), the first of them check->me (stuck when any one above it,
 * this join's, is). Returns how many frames to pop, or sets *cycle (one
 * of them is its own: none left). */
static size_t join_begin(fut_future *const futs[], size_t n, bool *cycle,
                         fut_cycle_check *check)
{
    size_t pushed = 0;
    *cycle = false;
    *check = (fut_cycle_check){NULL, NULL, 0};
    for (size_t i = 0; i < n && !*cycle && fut__in_unit(); i++) {
        bool one = false;
        fut_frame *me = NULL;
        if (!fut__is_ready(futs[i]))
            *cycle = wait_begin(futs[i], &one, &me) != 0;
        if (one && !pushed)
            check->me = me;
        pushed += one;
    }
    if (*cycle)
        while (pushed--)
            fut__frame_pop();
    return *cycle ? 0 : pushed;
}

/* Waits until every one of futs (valid) has completed: 0, EOWNERDEAD
 * (one is pending on a pool of the parent process) or EDEADLK (one of
 * them waits, through a cycle, for the caller); then nothing is awaited. */
static int join_wait(fut_future *const futs[], size_t n)
{
    size_t i, first = 0;
    while (first < n && fut__is_ready(futs[first]))
        first++; /* complete already: nothing to listen to */
    if (first == n)
        return 0;
    if (inherited(futs + first, n - first))
        return EOWNERDEAD;
    bool cycle;
    fut_cycle_check check;
    size_t frames = join_begin(futs + first, n - first, &cycle, &check);
    if (cycle)
        return EDEADLK;
    /* The last pending one first: units run about in the order they were
     * queued, so once it is done most of the others are too, and those
     * cost no listener (nor their completion a lock). Then the rest at
     * once, which wakes this thread once, at the end; with no memory for
     * that, one at a time. The cycle check runs in whichever first blocks
     * (again in the second: at most twice). */
    size_t last = n - 1;
    while (fut__is_ready(futs[last]) && last > first)
        last--;
    int rc = wait_for(&futs[last], 1, false, NULL, &i, &check);
    if (!rc && last > first &&
        (rc = wait_for(futs + first, last - first, true, NULL, &i, &check)) ==
            ENOMEM) {
        rc = 0; /* one at a time: on the stack, fails only for a cycle */
        for (size_t k = first; k < last && !rc; k++)
            if (!fut__is_ready(futs[k]))
                rc = wait_for(&futs[k], 1, false, NULL, &i, &check);
    }
    while (frames--)
        fut__frame_pop();
    return rc;
}

int fut_join_all(fut_future *const futs[], size_t n)
{
    if (!valid(futs, n, "fut_join_all"))
        return EINVAL;
    int rc = join_wait(futs, n);
    if (rc)
        return rc;
    int error = 0;
    for (size_t i = 0; i < n && !error; i++)
        error = futs[i]->error;
    return error;
}

int fut_join_settled(fut_future *const futs[], size_t n, int errors[])
{
    if (!valid(futs, n, "fut_join_settled") || (n && !errors))
        return EINVAL;
    int rc = join_wait(futs, n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        errors[i] = futs[i]->error;
    return 0;
}

/* fut_await_any's wait_begin: EDEADLK when every one of futs (none
 * complete) is the caller's own unit or one it runs below it; else its
 * frame, for the cycle check that runs if the wait blocks. */
static int any_begin(fut_future *const futs[], size_t n, bool *pushed,
                     fut_cycle_check *check)
{
    *pushed = false;
    *check = (fut_cycle_check){NULL, futs, n};
    if (!fut__in_unit())
        return 0;
    bool mine = true;
    for (size_t i = 0; i < n && mine; i++)
        mine = fut__mine(futs[i]);
    if (mine)
        return EDEADLK;
    *pushed = fut__wait_frame(NULL, futs, n, &check->me);
    return 0;
}

int fut_await_any(fut_future *const futs[], size_t n, size_t *index)
{
    size_t i;
    if (n == 0 || !valid(futs, n, "fut_await_any"))
        return EINVAL;
    if (inherited(futs, n))
        return EOWNERDEAD; /* even if another could complete: say so */
    bool pushed = false;
    fut_cycle_check check = {NULL, NULL, 0};
    if (!first_ready(futs, n, &i) && any_begin(futs, n, &pushed, &check))
        return EDEADLK;
    int rc = wait_for(futs, n, false, NULL, &i, &check);
    wait_end(pushed);
    if (!rc && index)
        *index = i;
    return rc;
}

int fut_take(fut_future *f, void **value)
{
    if (!value)
        return EINVAL;
    FUT_CHECK_FUTURE(f, "fut_take");
    *value = NULL;
    void *v;
    int rc = fut_await(f, &v);
    if (!rc)
        rc = fut__take(f);
    if (!rc)
        *value = v;
    return rc;
}
