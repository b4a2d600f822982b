/*
 * The pool's memory: reference counted, because a future keeps its pool
 * alive (it may still ask, after destroy, whether the pool accepts work).
 * The count is the handle, one per future made outside the pool's
 * workers, and the workers' budgets (see pool.c and fut__pool_ref_take).
 * The last reference frees what create made and the scheduler's locks.
 */
#include "internal.h"

#include <stdlib.h>

void fut__pool_retain(fut_pool *pool)
{
    atomic_fetch_add_explicit(&pool->refs, 1, memory_order_relaxed);
}

static void pool_free(fut_pool *pool)
{
    FUT_FORGET(&pool->refs);
    fut__sched_fini(&pool->sched);
    pthread_mutex_destroy(&pool->pending_lock);
    pthread_mutex_destroy(&pool->trace_lock);
    free(pool->trace_path);
    free(pool->local);
    free(pool);
}

void fut__pool_release(fut_pool *pool)
{
    FUT_HAPPENS_BEFORE(&pool->refs);
    if (atomic_fetch_sub_explicit(&pool->refs, 1, memory_order_acq_rel) == 1) {
        FUT_HAPPENS_AFTER(&pool->refs);
        pool_free(pool);
    }
}
