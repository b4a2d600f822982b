/*
 * Structured scopes: fut_group, fut_parallel_for and fut_join, built on
 * the scheduler's work items (no future per child).
 *
 * A group child is a 40-byte work item (alloc.c recycles it). The group
 * counts its unfinished children in `pending`, two per child: the child
 * that would bring it to 0 first makes it 1 ("the last child is
 * finishing"), then, under the group's lock, takes the list of waiters
 * and sets 0, and only then, with no lock held, wakes the waiters it
 * took. A waiter adds itself under the lock unless pending is 0, so it is
 * either on the list the last child takes or sees 0. After setting 0 the
 * last child touches the group only to unlock it; fut_group_destroy
 * takes the lock once before freeing it. A child that spawns into its
 * own group does so before it finishes, so pending cannot touch 0 early.
 *
 * fut_parallel_for hands out chunks from one atomic counter: the caller
 * and up to one helper item per other worker (left out of the stats: the
 * chunks are the units) each claim the next chunk until none is left, so
 * the caller helps to the end whether or not it is a worker, and no item
 * is made per chunk. Whoever finishes the last chunk keeps a promise the
 * caller awaits, so the caller never waits for a helper that has not
 * started; the range is reference counted, and a late helper finds no
 * chunk and lets go of it. Once a chunk fails, the rest are skipped. An
 * outside caller counts itself busy on the pool while it runs chunks, so
 * destroy waits for them.
 *
 * fut_join keeps b's work item in the caller's stack frame: pushed on
 * the worker's deque, popped back and run inline when nobody stole it;
 * when stolen, the thief marks it done under the waiter's lock. With no
 * memory to grow the deque, a and b simply run one after the other. A
 * caller that is not a worker of the pool hands the whole join to it and
 * waits, so that joins nested in a and b take the worker's path.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#define CONTAINER(ptr, type, member)                                           \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* A thread in fut_group_wait, on the group's list until the last child
 * wakes it. */
typedef struct group_waiter {
    struct group_waiter *next;
    fut_wait_ctx ctx;
    atomic_bool woken; /* raised under ctx.lock: the last touch */
} group_waiter;

struct fut_group {
    fut_pool *pool;        /* holds a pool reference                      */
    atomic_size_t pending; /* 2 per unfinished child; 1 while the last
                              one finishes                          */
    atomic_int error;      /* the first child error (or ECANCELED from
                              fut_group_cancel); 0 until then       */
    atomic_bool cancelled; /* fut_group_cancel: children not started
                              are skipped, spawns refused           */
    pthread_mutex_t lock;
    group_waiter *waiters; /* lock                                  */
};

struct group_child {
    fut_work work;
    fut_task_fn fn;
    void *arg;
    fut_group *group;
    uint64_t id;
};

int fut_group_create(fut_pool *pool, fut_group **group)
{
    if (!pool || !group)
        return EINVAL;
    if (fut__inherited(pool))
        return EOWNERDEAD;
    fut_group *g = malloc(sizeof(*g));
    if (!g)
        return ENOMEM;
    int rc = pthread_mutex_init(&g->lock, NULL);
    if (rc) {
        free(g);
        return rc;
    }
    atomic_init(&g->pending, 0);
    atomic_init(&g->error, 0);
    atomic_init(&g->cancelled, false);
    g->waiters = NULL;
    g->pool = pool;
    fut__pool_retain(pool);
    *group = g;
    return 0;
}

static void wake_group_waiter(group_waiter *w)
{
    pthread_mutex_t *lock = w->ctx.lock; /* outlives w: see wait.c */
    pthread_cond_t *cv = w->ctx.cv;
    pthread_mutex_lock(lock);
    atomic_store(&w->woken, true);
    fut__sched_wake_waiter(cv);
    pthread_mutex_unlock(lock);
}

static void child_done(fut_group *g, int error)
{
    if (error) {
        int none = 0;
        atomic_compare_exchange_strong(&g->error, &none, error);
    }
    size_t s = atomic_load_explicit(&g->pending, memory_order_relaxed);
    for (;;) {
        size_t to = s == 2 ? 1 : s - 2;
        if (atomic_compare_exchange_weak_explicit(&g->pending, &s, to,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    if (s != 2)
        return;
    /* Children spawned since the CAS keep the group going: their last
     * one wakes the waiters. */
    pthread_mutex_lock(&g->lock);
    group_waiter *w = NULL;
    if (atomic_fetch_sub_explicit(&g->pending, 1, memory_order_acq_rel) == 1) {
        w = g->waiters;
        g->waiters = NULL;
    }
    pthread_mutex_unlock(&g->lock); /* g may be gone from here on */
    while (w) {
        group_waiter *next = w->next;
        wake_group_waiter(w);
        w = next;
    }
}

static void child_run(fut_work *w)
{
    struct group_child *c = CONTAINER(w, struct group_child, work);
    fut_group *g = c->group;
    fut_task_fn fn = c->fn;
    uint64_t id = c->id;
    void *arg = c->arg, *value = NULL;
    fut__free(c, sizeof(*c)); /* before the call: a spawn inside reuses it */
    fut_pool *pool = g->pool;
    fut__stat_add(pool, STAT_QUEUED, -1);
    if (atomic_load(&g->cancelled) ||
        atomic_load_explicit(&pool->cancel_all, memory_order_relaxed)) {
        /* fut_group_cancel, or a shutdown past its deadline: never runs */
        fut__stat_add(pool, STAT_CANCELLED, 1);
        child_done(g, 0);
        return;
    }
    fut_user_mark saved;
    fut__user_begin(&saved, &g->cancelled, (fut_fn)fn, id);
    fut_trace_lane *lane = fut__trace_lane(pool);
    uint64_t start = lane ? fut__now_ns() : 0;
    int rc = fn(arg, &value);
    if (lane)
        fut__trace_record(lane, (fut_fn)fn, NULL, id, KIND_TASK, start,
                          fut__now_ns());
    fut__user_end(&saved);
    fut__stat_add(pool, STAT_COMPLETED, 1);
    if (rc)
        fut__stat_add(pool, STAT_FAILED, 1);
    child_done(g, rc);
}

int fut_group_spawn(fut_group *g, fut_task_fn fn, void *arg)
{
    if (!g || !fn)
        return EINVAL;
    if (fut__inherited(g->pool))
        return EOWNERDEAD;
    if (atomic_load(&g->cancelled))
        return ECANCELED;
    struct group_child *c = fut__alloc(sizeof(*c));
    if (!c)
        return ENOMEM;
    *c = (struct group_child){
        .work.run = child_run, .fn = fn, .arg = arg, .group = g,
        .id = FUT_NAMES ? fut__new_id() : 0};
    fut_pool *pool = g->pool;
    atomic_fetch_add_explicit(&g->pending, 2, memory_order_relaxed);
    fut__stat_add(pool, STAT_SPAWNED, 1);
    fut__stat_add(pool, STAT_QUEUED, 1);
    int rc = fut__sched_submit(&pool->sched, &c->work, SUBMIT_NEW);
    if (rc) { /* never queued: count it out again */
        fut__stat_add(pool, STAT_SPAWNED, -1);
        fut__stat_add(pool, STAT_QUEUED, -1);
        fut__free(c, sizeof(*c));
        child_done(g, 0);
    }
    return rc;
}

int fut_group_cancel(fut_group *g)
{
    if (!g)
        return EINVAL;
    int none = 0; /* the cancel is the group's error unless one came first */
    atomic_compare_exchange_strong(&g->error, &none, ECANCELED);
    atomic_store(&g->cancelled, true);
    return 0;
}

static bool group_waiter_woken(void *arg)
{
    return atomic_load(&((group_waiter *)arg)->woken);
}

int fut_group_wait(fut_group *group)
{
    if (!group)
        return EINVAL;
    if (fut__inherited(group->pool))
        return EOWNERDEAD;
    if (fut__mine(&group->cancelled))
        return EDEADLK; /* a child waiting for its own group */
    if (atomic_load_explicit(&group->pending, memory_order_acquire) == 0)
        return atomic_load(&group->error);
    /* A unit shows what it waits for, and, should the wait block, looks
     * for a cycle back to it through the group's children (as fut_await
     * does). */
    fut_cycle_check check = {NULL, NULL, 0};
    bool framed = fut__wait_frame(&group->cancelled, NULL, 0, &check.me);
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    group_waiter w = {.ctx = {&lock, &cv, group_waiter_woken, NULL, NULL,
                              NULL}};
    w.ctx.arg = &w;
    if (check.me) {
        w.ctx.before_block = fut__cycle_check;
        w.ctx.before_arg = &check;
    }
    atomic_init(&w.woken, false);
    fut_sched_worker *self = fut__sched_any_self();
    if (self)
        fut__sched_wait_init(self, &w.ctx);
    pthread_mutex_lock(&group->lock);
    bool wait = atomic_load(&group->pending) != 0;
    if (wait) {
        w.next = group->waiters;
        group->waiters = &w;
    }
    pthread_mutex_unlock(&group->lock);
    int rc = wait ? fut__sched_wait(self, &w.ctx, NULL, true) : 0;
    if (rc) { /* EDEADLK, found as the wait was about to block */
        pthread_mutex_lock(&group->lock);
        group_waiter **at = &group->waiters;
        while (*at && *at != &w)
            at = &(*at)->next;
        bool listed = *at != NULL;
        if (listed)
            *at = w.next;
        pthread_mutex_unlock(&group->lock);
        if (!listed) { /* the last child took the list: its wake for us
                          is on its way, and the group is done */
            fut__sched_wait(self, &w.ctx, NULL, false);
            rc = 0;
        }
    }
    if (framed)
        fut__frame_pop();
    pthread_cond_destroy(&cv);
    pthread_mutex_destroy(&lock);
    return rc ? rc : atomic_load(&group->error);
}

void fut_group_destroy(fut_group *group)
{
    if (!group)
        return;
    if (fut_group_wait(group) == EDEADLK &&
        atomic_load_explicit(&group->pending, memory_order_acquire) != 0) {
        /* Called from a unit the group waits for (one of its own
         * children, or one in a cycle of waits through them): it cannot
         * wait, and its children still run. Kept, not freed under them. */
#ifdef FUT_CHECKED
        fut__misuse("fut_group_destroy", group,
                    "called from a unit the group waits for (one of its own "
                    "children, or one in a cycle of waits through them): the "
                    "group cannot be waited for, so it is not freed");
#endif
        return;
    }
    /* The last child's unlock may still be in flight: take the lock once
     * so that it is over before the mutex goes. */
    pthread_mutex_lock(&group->lock);
    pthread_mutex_unlock(&group->lock);
    pthread_mutex_destroy(&group->lock);
    fut__pool_release(group->pool);
    free(group);
}

/* ---- fut_parallel_for --------------------------------------------------- */

struct range {
    atomic_uint refs; /* the caller and each queued helper */
    fut_pool *pool;
    fut_range_fn fn;
    void *arg;
    size_t begin, end, grain, chunks;
    uint64_t id;            /* the calling unit's (fut_current_id) */
    atomic_size_t next;     /* the next chunk to claim        */
    atomic_size_t finished; /* chunks run or skipped          */
    atomic_int error;       /* the first chunk error          */
    fut_promise *all_done;  /* kept when finished == chunks   */
};

struct range_helper {
    fut_work work;
    struct range *range;
};

static void range_release(struct range *r)
{
    FUT_HAPPENS_BEFORE(&r->refs);
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
        FUT_HAPPENS_AFTER(&r->refs);
        FUT_FORGET(&r->refs);
        free(r);
    }
}

static void run_chunk(struct range *r, size_t i)
{
    fut_pool *pool = r->pool;
    if (atomic_load_explicit(&pool->cancel_all, memory_order_relaxed)) {
        int none = 0; /* a shutdown past its deadline: the loop's error */
        atomic_compare_exchange_strong(&r->error, &none, ECANCELED);
    }
    if (atomic_load_explicit(&r->error, memory_order_relaxed)) {
        fut__stat_add(pool, STAT_CANCELLED, 1); /* skipped after a failure */
        return;
    }
    size_t lo = r->begin + i * r->grain;
    size_t hi = r->end - lo > r->grain ? lo + r->grain : r->end;
    uint64_t start = pool->trace_path ? fut__now_ns() : 0;
    fut_user_mark saved;
    fut__user_begin(&saved, NULL, (fut_fn)r->fn, r->id);
    int rc = r->fn(r->arg, lo, hi);
    fut__user_end(&saved);
    if (pool->trace_path)
        fut__trace_unit(pool, (fut_fn)r->fn, r->id, KIND_TASK, start,
                        fut__now_ns());
    fut__stat_add(pool, STAT_COMPLETED, 1);
    if (rc) {
        fut__stat_add(pool, STAT_FAILED, 1);
        int none = 0;
        atomic_compare_exchange_strong(&r->error, &none, rc);
    }
}

/* Claims and runs chunks until none is left. */
static void run_chunks(struct range *r)
{
    size_t i;
    while ((i = atomic_fetch_add(&r->next, 1)) < r->chunks) {
        run_chunk(r, i);
        if (atomic_fetch_add(&r->finished, 1) + 1 == r->chunks)
            fut_promise_resolve(r->all_done, NULL);
    }
}

static void helper_run(fut_work *w)
{
    struct range_helper *h = CONTAINER(w, struct range_helper, work);
    struct range *r = h->range;
    fut__free(h, sizeof(*h));
    run_chunks(r);
    range_release(r);
}

/* Queues up to n helpers; with no memory for one, the caller does more
 * itself. */
static void start_helpers(struct range *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct range_helper *h = fut__alloc(sizeof(*h));
        if (!h)
            return;
        *h = (struct range_helper){.work.run = helper_run, .range = r};
        atomic_fetch_add(&r->refs, 1);
        /* the caller is a worker of the pool, or counted busy on it */
        if (fut__sched_submit(&r->pool->sched, &h->work, SUBMIT_READY)) {
            atomic_fetch_sub(&r->refs, 1);
            fut__free(h, sizeof(*h));
            return;
        }
    }
}

static int run_range(fut_pool *pool, size_t begin, size_t end, size_t grain,
                     fut_range_fn fn, void *arg)
{
    size_t n = end - begin;
    struct range *r = malloc(sizeof(*r));
    if (!r)
        return ENOMEM;
    *r = (struct range){.pool = pool,
                        .fn = fn,
                        .arg = arg,
                        .begin = begin,
                        .end = end,
                        .grain = grain,
                        .chunks = n / grain + (n % grain != 0),
                        .id = fut_current_id()};
    atomic_init(&r->refs, 1);
    atomic_init(&r->next, 0);
    atomic_init(&r->finished, 0);
    atomic_init(&r->error, 0);
    fut_future *done;
    int rc = fut_promise_create(pool, &r->all_done, &done);
    if (rc) {
        free(r);
        return rc;
    }
    /* One helper per other worker, at most one per chunk but the
     * caller's. */
    size_t helpers =
        pool->sched.threads - (fut__sched_self(&pool->sched) != NULL);
    if (helpers > r->chunks - 1)
        helpers = r->chunks - 1;
    fut__stat_add(pool, STAT_SPAWNED, (long long)r->chunks);
    start_helpers(r, helpers);
    run_chunks(r);
    fut_await(done, NULL); /* every chunk finished, wherever it ran */
    fut_release(done);
    rc = atomic_load(&r->error);
    range_release(r);
    return rc;
}

int fut_parallel_for(fut_pool *pool, size_t begin, size_t end, size_t grain,
                     fut_range_fn fn, void *arg)
{
    if (!pool || !fn || begin > end)
        return EINVAL;
    if (fut__inherited(pool))
        return EOWNERDEAD;
    if (fut__sched_self(&pool->sched)) /* a worker: always accepted */
        return begin == end
                   ? 0
                   : run_range(pool, begin, end, grain ? grain : 1, fn, arg);
    /* The reference keeps the pool's memory until after leave: once the
     * last chunk is done, destroy may finish while this thread leaves. */
    fut__pool_retain(pool);
    int rc = fut__sched_enter(&pool->sched);
    if (!rc) {
        if (begin != end)
            rc = run_range(pool, begin, end, grain ? grain : 1, fn, arg);
        fut__sched_leave(&pool->sched);
    }
    fut__pool_release(pool);
    return rc;
}

/* ---- fut_join ------------------------------------------------------------ */

struct join_job {
    fut_work work;
    fut_join_fn fn;
    void *arg;
    pthread_mutex_t *lock; /* where the caller waits, should b be taken: */
    pthread_cond_t *cv;    /* they outlive the job (see wait.c)        */
    atomic_bool done;      /* raised under *lock: the thief's last touch */
    int error;
};

static bool join_done(void *arg)
{
    return atomic_load(&((struct join_job *)arg)->done);
}

/* b, run by a worker that took it from the caller's queue. */
static void join_run(fut_work *w)
{
    struct join_job *job = CONTAINER(w, struct join_job, work);
    fut_user_mark saved;
    fut__user_begin(&saved, NULL, (fut_fn)job->fn, 0);
    job->error = job->fn(job->arg);
    fut__user_end(&saved);
    pthread_mutex_t *lock = job->lock;
    pthread_cond_t *cv = job->cv;
    pthread_mutex_lock(lock);
    atomic_store(&job->done, true);
    fut__sched_wake_waiter(cv);
    pthread_mutex_unlock(lock);
}

/* Waits for a b that another thread took; its error. */
static int join_wait(fut_sched_worker *self, struct join_job *job)
{
    fut_wait_ctx ctx = {.lock = job->lock, .cv = job->cv, .done = join_done,
                        .arg = job};
    fut__sched_wait(self, &ctx, NULL, true);
    return job->error;
}

/* The whole join, carried to a worker for a caller that is not one. */
struct join_call {
    fut_pool *pool;
    fut_join_fn fn_a, fn_b;
    void *arg_a, *arg_b;
};

static int join_on_worker(void *arg)
{
    struct join_call *c = arg;
    return fut_join(c->pool, c->fn_a, c->arg_a, c->fn_b, c->arg_b);
}

int fut_join(fut_pool *pool, fut_join_fn fn_a, void *arg_a, fut_join_fn fn_b,
             void *arg_b)
{
    if (!pool || !fn_a || !fn_b)
        return EINVAL;
    if (fut__inherited(pool))
        return EOWNERDEAD;
    struct join_job job = {.work.run = join_run, .fn = fn_b, .arg = arg_b};
    atomic_init(&job.done, false);
    fut_sched_worker *self = fut__sched_any_self();
    if (self && self->sched == &pool->sched) { /* the fast path */
        job.lock = &pool->sched.sleep_lock;
        job.cv = &self->cv;
        if (!fut__sched_push_own(self, &job.work)) { /* no memory */
            int ea = fn_a(arg_a), eb = fn_b(arg_b);
            return ea ? ea : eb;
        }
        int ea = fn_a(arg_a);
        int eb = fut__sched_take_back_own(self, &job.work)
                     ? fn_b(arg_b) /* nobody took it: run it here */
                     : join_wait(self, &job);
        return ea ? ea : eb;
    }
    /* Another thread: the whole join goes to the pool, where a and b (and
     * the joins nested in them) take the path above; the caller waits. */
    struct join_call call = {pool, fn_a, fn_b, arg_a, arg_b};
    job.fn = join_on_worker;
    job.arg = &call;
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    job.lock = &lock;
    job.cv = &cv;
    if (self) { /* a worker of another pool helps its own while it waits */
        fut_wait_ctx ctx;
        fut__sched_wait_init(self, &ctx);
        job.lock = ctx.lock;
        job.cv = ctx.cv;
    }
    fut__pool_retain(pool); /* the submit's leave may outlive destroy */
    int rc = fut__sched_submit(&pool->sched, &job.work, SUBMIT_NEW);
    fut__pool_release(pool);
    if (!rc)
        rc = join_wait(self, &job);
    pthread_cond_destroy(&cv);
    pthread_mutex_destroy(&lock);
    return rc;
}
