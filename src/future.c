/*
 * Futures: their state, completion, continuations, fut_all, cancellation
 * and promises.
 *
 * A future completes exactly once. Its phase word decides who completes
 * it: the thread whose compare-and-swap moves it out of WAITING or QUEUED
 * (a runner, a canceller, a promise, a combiner) owns the completion.
 * fut__complete writes value and error, release-sets done and detaches
 * the listener list under the future's lock, so a listener is either
 * attached before completion and fired, or refused and handled inline.
 * Listeners fire through a per-thread trampoline: a completion caused by
 * another completion (a failure flowing down a chain of a million links)
 * is queued, not recursed into.
 *
 * References: a spawned or attached unit holds a "task reference" on its
 * future from acceptance until fut__drop_task_ref, so the future lives
 * while it is queued, waiting on its input or running, whatever the user
 * releases. A continuation owns the reference it consumed on its input
 * and drops it with its task reference; others may only borrow the input
 * after retaining it under the continuation's lock.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#define STATIC_FUTURE(err)                                                     \
    {                                                                          \
        .refs = 1, .phase = PHASE_CLAIMED, .done = true, .kind = KIND_STATIC,  \
        .error = (err),                                                        \
    }

static fut_future s_einval = STATIC_FUTURE(EINVAL);
static fut_future s_enomem = STATIC_FUTURE(ENOMEM);
static fut_future s_empty = STATIC_FUTURE(0);

static _Thread_local fut_future *tl_current; /* the unit running here */

/* A future's lock is one of a fixed set of mutexes, picked by address:
 * no code path holds two future locks at once, so sharing cannot
 * deadlock, and a future needs no mutex of its own. */
#define LOCK_STRIPES 128
#define STRIPE       PTHREAD_MUTEX_INITIALIZER
#define STRIPES8     STRIPE, STRIPE, STRIPE, STRIPE, STRIPE, STRIPE, STRIPE, STRIPE
static pthread_mutex_t stripes[LOCK_STRIPES] = {
    STRIPES8, STRIPES8, STRIPES8, STRIPES8, STRIPES8, STRIPES8,
    STRIPES8, STRIPES8, STRIPES8, STRIPES8, STRIPES8, STRIPES8,
    STRIPES8, STRIPES8, STRIPES8, STRIPES8};

static pthread_mutex_t *stripe(const fut_future *f)
{
    uintptr_t a = (uintptr_t)f;
    return &stripes[(a >> 6 ^ a >> 13) % LOCK_STRIPES];
}

static void lock_future(const fut_future *f)
{
    pthread_mutex_lock(stripe(f));
}

static void unlock_future(const fut_future *f)
{
    pthread_mutex_unlock(stripe(f));
}

/* Futures whose listeners wait to fire on this thread. */
static _Thread_local struct {
    fut_future *head, *tail;
    bool draining;
} tl_fire;

static fut_future *future_new(fut_pool *pool, enum fut_kind kind, size_t extra)
{
    fut_future *f = calloc(1, sizeof(*f) + extra);
    if (!f)
        return NULL;
    atomic_init(&f->refs, 1);
    atomic_init(&f->phase, PHASE_WAITING);
    atomic_init(&f->done, false);
    atomic_init(&f->cancel_req, false);
    FUT_RACY(&f->done, sizeof(f->done) + sizeof(f->cancel_req)); /* atomics */
    f->kind = (unsigned char)kind;
    f->pool = pool;
    if (pool)
        fut__pool_retain(pool);
    return f;
}

fut_future *fut_retain(fut_future *f)
{
    if (f && f->kind != KIND_STATIC)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void fut_release(fut_future *f)
{
    if (!f || f->kind == KIND_STATIC)
        return;
    /* acq_rel: the last releaser sees every write of the other owners. */
    FUT_HAPPENS_BEFORE(&f->refs);
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    FUT_HAPPENS_AFTER(&f->refs);
    FUT_FORGET(&f->refs);
    FUT_FORGET(&f->done);
    FUT_UNRACY(&f->done, sizeof(f->done) + sizeof(f->cancel_req));
    fut_release(f->input); /* NULL unless a unit never got to drop it */
    if (f->pool)
        fut__pool_release(f->pool);
    free(f);
}

bool fut_is_ready(const fut_future *f)
{
    if (!f || !atomic_load_explicit(&f->done, memory_order_acquire))
        return false;
    FUT_HAPPENS_AFTER(&f->done);
    return true;
}

static bool claim(fut_future *f, int from)
{
    return atomic_compare_exchange_strong(&f->phase, &from, PHASE_CLAIMED);
}

/* ---- Completion -------------------------------------------------------- */

static void fire_all(fut_future *f)
{
    fut_listener *l = f->listeners;
    f->listeners = NULL;
    while (l) {
        fut_listener *next = l->next; /* l may be gone once fired */
        l->fire(l, f);
        l = next;
    }
}

void fut__complete(fut_future *f, void *value, int error)
{
    lock_future(f);
    f->value = error ? NULL : value;
    f->error = error;
    FUT_HAPPENS_BEFORE(&f->done);
    atomic_store_explicit(&f->done, true, memory_order_release);
    bool any = f->listeners != NULL; /* now detached: ours alone */
    unlock_future(f);
    if (!any)
        return;

    fut_retain(f);
    f->defer_next = NULL;
    if (tl_fire.tail)
        tl_fire.tail->defer_next = f;
    else
        tl_fire.head = f;
    tl_fire.tail = f;
    if (tl_fire.draining)
        return; /* the loop below, further up this stack, fires it */
    tl_fire.draining = true;
    fut_future *g;
    while ((g = tl_fire.head)) {
        tl_fire.head = g->defer_next;
        if (!tl_fire.head)
            tl_fire.tail = NULL;
        fire_all(g);
        fut_release(g);
    }
    tl_fire.draining = false;
}

bool fut__listen(fut_future *f, fut_listener *l)
{
    lock_future(f);
    bool pending = !atomic_load_explicit(&f->done, memory_order_relaxed);
    if (pending) {
        l->next = f->listeners;
        f->listeners = l;
    }
    unlock_future(f);
    return pending;
}

bool fut__unlisten(fut_future *f, fut_listener *l)
{
    bool found = false;
    lock_future(f);
    if (!atomic_load_explicit(&f->done, memory_order_relaxed)) {
        for (fut_listener **p = &f->listeners; *p; p = &(*p)->next) {
            if (*p == l) {
                *p = l->next;
                found = true;
                break;
            }
        }
    }
    unlock_future(f);
    return found;
}

/* Takes the continuation's input reference, if it still has one. */
static fut_future *take_input(fut_future *f)
{
    lock_future(f);
    fut_future *in = f->input;
    f->input = NULL;
    unlock_future(f);
    return in;
}

static fut_future *borrow_input(fut_future *f)
{
    lock_future(f);
    fut_future *in = fut_retain(f->input);
    unlock_future(f);
    return in;
}

void fut__drop_task_ref(fut_future *f)
{
    if (f->kind == KIND_THEN || f->kind == KIND_TIMEOUT)
        fut_release(take_input(f));
    fut_release(f);
}

/* ---- Running ----------------------------------------------------------- */

static int call(fut_future *f, void **value)
{
    if (f->kind == KIND_TASK)
        return f->fn.task(f->arg, value);
    return f->fn.then(f->arg, f->input->value, value);
}

/* call(), timed into the worker's trace lane; out of the way of the
 * untraced path, which pays only the branch that picks it. */
static __attribute__((noinline, cold)) int
call_traced(fut_future *f, void **value, fut_trace_lane *lane)
{
    uint64_t start = fut__now_ns();
    int error = call(f, value);
    fut__trace_record(
        lane, f->kind == KIND_TASK ? (fut_fn)f->fn.task : (fut_fn)f->fn.then,
        f->kind, start, fut__now_ns());
    return error;
}

static void execute(fut_future *f)
{
    fut_future *saved = tl_current;
    void *value = NULL;
    tl_current = f;
    fut_trace_lane *lane = f->quiet ? NULL : fut__trace_lane(f->pool);
    int error = __builtin_expect(lane != NULL, 0) ? call_traced(f, &value, lane)
                                                  : call(f, &value);
    tl_current = saved;
    if (!f->quiet)
        fut__stat_ran(f->pool, error);
    if (f->group)
        fut__group_child_done(f->group, error);
    fut__complete(f, value, error);
}

void fut__run(fut_future *f)
{
    int queued = PHASE_QUEUED;
    if (atomic_compare_exchange_strong(&f->phase, &queued, PHASE_RUNNING)) {
        if (!f->quiet)
            fut__stat_dequeued(f->pool);
        execute(f);
    } /* else cancelled while queued, and counted then */
    fut__drop_task_ref(f);
}

/* Whether this thread is inside a unit's own code (not only completing
 * one). */
bool fut__in_unit(void)
{
    return tl_current != NULL;
}

bool fut_cancel_requested(void)
{
    if (!tl_current ||
        !atomic_load_explicit(&tl_current->cancel_req, memory_order_relaxed))
        return false;
    FUT_HAPPENS_AFTER(&tl_current->cancel_req);
    return true;
}

/* ---- fut_spawn --------------------------------------------------------- */

fut_future *fut_spawn(fut_pool *pool, fut_task_fn fn, void *arg)
{
    if (!pool || !fn)
        return &s_einval;
    fut_future *f = future_new(pool, KIND_TASK, 0);
    if (!f)
        return &s_enomem;
    f->fn.task = fn;
    f->arg = arg;
    atomic_store_explicit(&f->phase, PHASE_QUEUED, memory_order_relaxed);
    atomic_store_explicit(&f->refs, 2, memory_order_relaxed); /* + task */
    int err = fut__pool_submit(pool, f);
    if (err) {
        atomic_store_explicit(&f->phase, PHASE_CLAIMED, memory_order_relaxed);
        fut__complete(f, NULL, err);
        fut__drop_task_ref(f);
    }
    return f;
}

/* A task with no handle for the caller: a group child, or a quiet helper
 * of fut_parallel_for. Returns 0 once it is queued, or the error. */
int fut__spawn_child(fut_pool *pool, fut_task_fn fn, void *arg,
                     fut_group *group, bool quiet)
{
    fut_future *f = future_new(pool, KIND_TASK, 0);
    if (!f)
        return ENOMEM;
    f->fn.task = fn;
    f->arg = arg;
    f->group = group;
    f->quiet = quiet;
    atomic_store_explicit(&f->phase, PHASE_QUEUED, memory_order_relaxed);
    int err = fut__pool_submit(pool, f); /* the one reference: the task's */
    if (err)
        fut_release(f);
    return err;
}

/* ---- fut_then ---------------------------------------------------------- */

static void then_fire(fut_listener *l, fut_future *in)
{
    fut_future *c = (fut_future *)((char *)l - offsetof(fut_future, node));
    int error = in->error;
    if (!c->orphan && fut__pool_then_ready(c->pool, c, error != 0))
        return; /* queued: the runner drops the task reference */
    if (claim(c, PHASE_WAITING)) {
        if (!error)
            error = c->orphan ? ESHUTDOWN : ECANCELED;
        if (!c->orphan)
            fut__stat_cancelled(c->pool);
        fut__complete(c, NULL, error);
    }
    fut__drop_task_ref(c);
}

fut_future *fut_then(fut_future *f, fut_then_fn fn, void *arg)
{
    if (!f)
        return &s_einval;
    if (!fn) {
        fut_release(f);
        return &s_einval;
    }
    fut_future *c = future_new(f->pool, KIND_THEN, 0);
    if (!c) {
        fut_release(f);
        return &s_enomem;
    }
    c->fn.then = fn;
    c->arg = arg;
    c->input = f;
    c->node.fire = then_fire;
    atomic_store_explicit(&c->refs, 2, memory_order_relaxed); /* + task */
    if (!f->pool) { /* no pool: f is complete; run here */
        atomic_store_explicit(&c->phase, PHASE_RUNNING, memory_order_relaxed);
        if (f->error)
            fut__complete(c, NULL, f->error);
        else
            execute(c);
        fut__drop_task_ref(c);
        return c;
    }
    fut_pool *pool = f->pool; /* f may be gone once c is listening */
    c->listed =
        f->kind == KIND_PLAIN || f->kind == KIND_ALL || f->kind == KIND_TIMEOUT;
    c->orphan = fut__pool_admit_then(pool, c) != 0;
    if (!fut__listen(f, &c->node))
        then_fire(&c->node, f);
    if (!c->orphan)
        fut__pool_attached(pool);
    return c;
}

/* Pool destroy: c waited on its pool's pending list; cancel it if it is
 * still listening to its input. */
void fut__then_cancel_pending(fut_future *c)
{
    fut_future *in = borrow_input(c);
    if (in && fut__unlisten(in, &c->node)) {
        if (claim(c, PHASE_WAITING)) {
            fut__stat_cancelled(c->pool);
            fut__complete(c, NULL, ECANCELED);
        }
        fut__drop_task_ref(c);
    }
    fut_release(in);
}

/* ---- fut_sleep and fut_timeout ---------------------------------------- */

fut_future *fut_sleep(fut_pool *pool, uint64_t ms)
{
    if (!pool)
        return &s_einval;
    fut_future *f = future_new(pool, KIND_SLEEP, 0);
    if (!f)
        return &s_enomem;
    atomic_store_explicit(&f->refs, 2, memory_order_relaxed); /* + timer */
    int err = fut__timer_add(pool, f, ms);
    if (err) {
        claim(f, PHASE_WAITING);
        fut__complete(f, NULL, err);
        fut_release(f);
    }
    return f;
}

/* The timeout's input completed: carry its outcome, unless the timer or
 * a cancel got there first. */
static void timeout_fire(fut_listener *l, fut_future *in)
{
    fut_future *t = (fut_future *)((char *)l - offsetof(fut_future, node));
    if (fut__timer_remove(t->pool, t))
        fut_release(t); /* the timer's reference; ours remains */
    if (claim(t, PHASE_WAITING))
        fut__complete(t, in->value, in->error);
    fut__drop_task_ref(t);
}

/* Timer thread: a sleep is done, or a timeout has expired. */
void fut__timer_fire(fut_future *f)
{
    if (claim(f, PHASE_WAITING)) {
        bool timeout = f->kind == KIND_TIMEOUT;
        /* NULL when the input completed just now and dropped it. */
        fut_future *in = timeout ? borrow_input(f) : NULL;
        if (in) { /* a timeout that fires cancels its input, first */
            fut_cancel(in);
            fut_release(in);
        }
        fut__complete(f, NULL, timeout ? ETIMEDOUT : 0);
    }
    fut_release(f); /* the timer's reference */
}

fut_future *fut_timeout(fut_future *f, uint64_t ms)
{
    if (!f)
        return &s_einval;
    if (fut_is_ready(f) || !f->pool)
        return f; /* a complete future needs no timer */
    fut_future *t = future_new(f->pool, KIND_TIMEOUT, 0);
    if (!t) { /* f can no longer be bounded, nor reached: stop it */
        fut_cancel(f);
        fut_release(f);
        return &s_enomem;
    }
    t->input = f;
    t->node.fire = timeout_fire;
    /* + the timer's reference, + the listener's (the task reference) */
    atomic_store_explicit(&t->refs, 3, memory_order_relaxed);
    int err = fut__timer_add(f->pool, t, ms);
    if (err) {
        if (err == ENOMEM)
            fut_cancel(f); /* as above; t still holds f */
        claim(t, PHASE_WAITING);
        fut__complete(t, NULL, err);
        fut_release(t);
        fut__drop_task_ref(t);
        return t;
    }
    if (!fut__listen(f, &t->node))
        timeout_fire(&t->node, f);
    return t;
}

/* ---- fut_all ----------------------------------------------------------- */

struct all_node {
    fut_listener l;
    fut_future *all;
};

struct all_state {
    atomic_size_t remaining;
    size_t n;
    fut_future **in;
    struct all_node *nodes;
};

static struct all_state *all_state(fut_future *f)
{
    return (struct all_state *)(f + 1);
}

static void all_fire(fut_listener *l, fut_future *in)
{
    (void)in;
    fut_future *all = ((struct all_node *)l)->all;
    struct all_state *st = all_state(all);
    FUT_HAPPENS_BEFORE(&st->remaining);
    if (atomic_fetch_sub_explicit(&st->remaining, 1, memory_order_acq_rel) != 1)
        return;
    FUT_HAPPENS_AFTER(&st->remaining);
    FUT_FORGET(&st->remaining);
    int error = 0;
    for (size_t i = 0; i < st->n && !error; i++)
        error = st->in[i]->error;
    if (claim(all, PHASE_WAITING))
        fut__complete(all, NULL, error);
    for (size_t i = 0; i < st->n; i++)
        fut_release(st->in[i]);
    fut__drop_task_ref(all);
}

fut_future *fut_all(fut_future *const futs[], size_t n)
{
    if (n && !futs)
        return &s_einval;
    fut_pool *pool = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!futs[i])
            return &s_einval;
        if (!pool)
            pool = futs[i]->pool;
    }
    if (n == 0)
        return &s_empty;
    size_t per = sizeof(fut_future *) + sizeof(struct all_node);
    if (n > (SIZE_MAX - sizeof(struct all_state)) / per)
        return &s_enomem;
    fut_future *all =
        future_new(pool, KIND_ALL, sizeof(struct all_state) + n * per);
    if (!all)
        return &s_enomem;
    struct all_state *st = all_state(all);
    st->n = n;
    st->nodes = (struct all_node *)(st + 1);
    st->in = (fut_future **)(st->nodes + n);
    atomic_init(&st->remaining, n);
    atomic_store_explicit(&all->refs, 2, memory_order_relaxed); /* + task */
    for (size_t i = 0; i < n; i++) {
        st->in[i] = fut_retain(futs[i]);
        st->nodes[i].all = all;
        st->nodes[i].l.fire = all_fire;
    }
    /* From the first listen on, all may complete and drop its task ref;
     * our own reference keeps it alive through the loop. */
    for (size_t i = 0; i < n; i++)
        if (!fut__listen(st->in[i], &st->nodes[i].l))
            all_fire(&st->nodes[i].l, st->in[i]);
    return all;
}

/* ---- Cancellation ------------------------------------------------------ */

/* Cancels f alone. On success with a continuation, *input is its input,
 * retained, for the caller to cancel next. */
static int cancel_one(fut_future *f, fut_future **input)
{
    *input = NULL;
    for (;;) {
        int phase = atomic_load(&f->phase);
        switch (phase) {
        case PHASE_WAITING:
        case PHASE_QUEUED:
            if (!claim(f, phase))
                continue;
            if (phase == PHASE_QUEUED)
                fut__stat_dequeued(f->pool);
            if (phase == PHASE_QUEUED || (f->kind == KIND_THEN && !f->orphan))
                fut__stat_cancelled(f->pool);
            if (f->kind == KIND_THEN || f->kind == KIND_TIMEOUT)
                *input = borrow_input(f);
            if ((f->kind == KIND_SLEEP || f->kind == KIND_TIMEOUT) &&
                fut__timer_remove(f->pool, f))
                fut_release(f); /* the timer's reference; ours remains */
            fut__complete(f, NULL, ECANCELED);
            return 0;
        case PHASE_RUNNING:
            FUT_HAPPENS_BEFORE(&f->cancel_req);
            atomic_store_explicit(&f->cancel_req, true, memory_order_relaxed);
            return fut_is_ready(f) ? EALREADY : EBUSY;
        default: return EALREADY;
        }
    }
}

int fut_cancel(fut_future *f)
{
    if (!f)
        return EINVAL;
    fut_future *in;
    int rc = cancel_one(f, &in);
    while (in) { /* iterative: a chain may be a million links long */
        fut_future *next;
        cancel_one(in, &next);
        fut_release(in);
        in = next;
    }
    return rc;
}

/* ---- Promises ---------------------------------------------------------- */

int fut_promise_create(fut_pool *pool, fut_promise **promise,
                       fut_future **future)
{
    if (!pool || !promise || !future)
        return EINVAL;
    fut_future *f = future_new(pool, KIND_PLAIN, 0);
    if (!f)
        return ENOMEM;
    atomic_store_explicit(&f->refs, 2, memory_order_relaxed); /* + promise */
    *promise = (fut_promise *)f;
    *future = f;
    return 0;
}

static int promise_settle(fut_promise *promise, void *value, int error)
{
    fut_future *f = (fut_future *)promise;
    int rc = EALREADY;
    if (claim(f, PHASE_WAITING)) {
        fut__complete(f, value, error);
        rc = 0;
    }
    fut_release(f);
    return rc;
}

int fut_promise_resolve(fut_promise *promise, void *value)
{
    return promise ? promise_settle(promise, value, 0) : EINVAL;
}

int fut_promise_reject(fut_promise *promise, int error)
{
    return promise && error ? promise_settle(promise, NULL, error) : EINVAL;
}
