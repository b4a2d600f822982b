/*
 * Structured scopes: fut_group and fut_parallel_for.
 *
 * A group counts its children that have not finished. The child that
 * brings the count to zero completes the group's "done" future, made when
 * the count left zero; fut_group_wait awaits that future, so a wait on a
 * worker runs queued work (the children among it) and a wait elsewhere
 * blocks on a condition variable. A child that spawns into its own group
 * does so before it finishes, so the count cannot touch zero early.
 *
 * fut_parallel_for hands out chunks from one atomic counter: the caller
 * and up to one helper task per other worker (left out of the stats: the
 * chunks are the units) each claim the next chunk until none is left, so
 * the caller helps to the end whether or not it is a worker, and no task
 * is made per chunk. Whoever finishes the last chunk keeps a promise the
 * caller awaits, so the caller never waits for a helper that has not
 * started; the range is reference counted, and a late helper finds no
 * chunk and lets go of it. Once a chunk fails, the rest are skipped.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

struct fut_group {
    fut_pool *pool; /* holds a pool reference                 */
    pthread_mutex_t lock;
    size_t pending;   /* children not finished: lock            */
    fut_future *done; /* completes when pending drops to 0: lock */
    atomic_int error; /* the first child error; 0 until then     */
};

int fut_group_create(fut_pool *pool, fut_group **group)
{
    if (!pool || !group)
        return EINVAL;
    fut_group *g = calloc(1, sizeof(*g));
    if (!g)
        return ENOMEM;
    int rc = pthread_mutex_init(&g->lock, NULL);
    if (rc) {
        free(g);
        return rc;
    }
    atomic_init(&g->error, 0);
    g->pool = pool;
    fut__pool_retain(pool);
    *group = g;
    return 0;
}

int fut_group_spawn(fut_group *g, fut_task_fn fn, void *arg)
{
    if (!g || !fn)
        return EINVAL;
    pthread_mutex_lock(&g->lock);
    if (g->pending == 0) {
        fut_promise *p;
        fut_future *done;
        /* A promise on no pool would do, but promises need one. */
        int rc = fut_promise_create(g->pool, &p, &done);
        if (rc) {
            pthread_mutex_unlock(&g->lock);
            return rc;
        }
        fut_release(done); /* the promise's reference remains */
        g->done = (fut_future *)p;
    }
    g->pending++;
    pthread_mutex_unlock(&g->lock);

    int rc = fut__spawn_child(g->pool, fn, arg, g, false);
    if (rc) /* never queued: count it out again */
        fut__group_child_done(g, 0);
    return rc;
}

void fut__group_child_done(fut_group *g, int error)
{
    if (error) {
        int none = 0;
        atomic_compare_exchange_strong(&g->error, &none, error);
    }
    pthread_mutex_lock(&g->lock);
    fut_future *done = --g->pending == 0 ? g->done : NULL;
    if (done)
        g->done = NULL;
    pthread_mutex_unlock(&g->lock); /* g may be gone from here on */
    if (done)
        fut_promise_resolve((fut_promise *)done, NULL);
}

int fut_group_wait(fut_group *group)
{
    if (!group)
        return EINVAL;
    pthread_mutex_lock(&group->lock);
    fut_future *done = fut_retain(group->done);
    pthread_mutex_unlock(&group->lock);
    if (done) {
        fut_await(done, NULL);
        fut_release(done);
    }
    return atomic_load(&group->error);
}

void fut_group_destroy(fut_group *group)
{
    if (!group)
        return;
    fut_group_wait(group);
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
    atomic_size_t next;     /* the next chunk to claim        */
    atomic_size_t finished; /* chunks run or skipped          */
    atomic_int error;       /* the first chunk error          */
    fut_promise *all_done;  /* kept when finished == chunks   */
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
    if (atomic_load_explicit(&r->error, memory_order_relaxed)) {
        fut__stat_cancelled(pool); /* skipped after a failure */
        return;
    }
    size_t lo = r->begin + i * r->grain;
    size_t hi = r->end - lo > r->grain ? lo + r->grain : r->end;
    uint64_t start = pool->trace_path ? fut__now_ns() : 0;
    int rc = r->fn(r->arg, lo, hi);
    if (pool->trace_path) {
        fut_worker *w = fut__current_worker();
        if (w && w->pool == pool)
            fut__trace_record(&w->trace, (fut_fn)r->fn, KIND_TASK, start,
                              fut__now_ns());
        else
            fut__trace_outside(pool, (fut_fn)r->fn, KIND_TASK, start,
                               fut__now_ns());
    }
    fut__stat_ran(pool, rc);
    if (rc) {
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

static int chunk_helper(void *arg, void **value)
{
    (void)value;
    run_chunks(arg);
    range_release(arg);
    return 0;
}

int fut_parallel_for(fut_pool *pool, size_t begin, size_t end, size_t grain,
                     fut_range_fn fn, void *arg)
{
    if (!pool || !fn || begin > end)
        return EINVAL;
    if (!fut__pool_accepts(pool))
        return ESHUTDOWN;
    if (begin == end)
        return 0;
    if (grain == 0)
        grain = 1;
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
                        .chunks = n / grain + (n % grain != 0)};
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
     * caller's; with no memory for one, the caller does more itself. */
    fut_worker *self = fut__current_worker();
    size_t helpers = fut_pool_threads(pool) - (self && self->pool == pool);
    if (helpers > r->chunks - 1)
        helpers = r->chunks - 1;
    fut__stat_spawned(pool, r->chunks);
    for (size_t h = 0; h < helpers; h++) {
        atomic_fetch_add(&r->refs, 1);
        if (fut__spawn_child(pool, chunk_helper, r, NULL, true) != 0) {
            range_release(r);
            break;
        }
    }
    run_chunks(r);
    fut_await(done, NULL); /* every chunk finished, wherever it ran */
    fut_release(done);
    rc = atomic_load(&r->error);
    range_release(r);
    return rc;
}

/* ---- fut_join ------------------------------------------------------------ */

struct join_b {
    fut_join_fn fn;
    void *arg;
};

static int join_b_task(void *arg, void **value)
{
    (void)value;
    struct join_b *b = arg;
    return b->fn(b->arg);
}

int fut_join(fut_pool *pool, fut_join_fn fn_a, void *arg_a, fut_join_fn fn_b,
             void *arg_b)
{
    if (!pool || !fn_a || !fn_b)
        return EINVAL;
    if (!fut__pool_accepts(pool))
        return ESHUTDOWN;
    struct join_b b = {fn_b, arg_b};
    fut_future *fb = fut_spawn(pool, join_b_task, &b);
    int ea = fn_a(arg_a);
    int eb = fut_await(fb, NULL);
    fut_release(fb);
    return ea ? ea : eb;
}
