/*
 * Futures: their state, completion, continuations, fut_all, sleeps and
 * timeouts, cancellation and promises, built on the scheduler's work and
 * timer items.
 *
 * A future completes exactly once: the thread whose compare-and-swap
 * moves its phase out of WAITING or QUEUED (a runner, a canceller, a
 * promise, a timer, a combiner) owns the completion (the state word and
 * its transitions are described in internal.h). complete() writes
 * value and error and sets DONE; when no listener was ever attached that
 * is one compare-and-swap, which also drops the completer's reference;
 * otherwise it detaches the listener list under the future's stripe
 * lock, so a listener is either attached before completion and fired, or
 * refused and handled by its owner. Listeners fire through a per-thread
 * trampoline: a completion caused by another completion (a failure
 * flowing down a chain of a million links) is queued, not recursed into.
 *
 * References: a spawned or attached unit, a timer and a promise each hold
 * a "task reference" on their future until they are finished with it, so
 * the future lives while it is queued, waiting or running, whatever the
 * user releases. A continuation owns the reference it consumed on its
 * input and drops it once it has run (or was cancelled); others may only
 * borrow the input after retaining it under the stripe lock.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#ifdef FUT_CHECKED
#define LIVE_MARK .magic = FUT_MAGIC_LIVE,
#else
#define LIVE_MARK
#endif
#define STATIC_FUTURE(err)                                                     \
    {                                                                          \
        .state = PHASE_CLAIMED | F_DONE | F_REF, .kind = KIND_STATIC,          \
        .error = (err), LIVE_MARK                                              \
    }

static fut_future s_einval = STATIC_FUTURE(EINVAL);
static fut_future s_enomem = STATIC_FUTURE(ENOMEM);
static fut_future s_inherited = STATIC_FUTURE(EOWNERDEAD);
static fut_future s_empty = STATIC_FUTURE(0);

/* One thread-local word (see internal.h), so that marking a unit costs
 * one load and one store of it. */
FUT_TLS const fut_user_mark *fut__tl_mark;

/* The unit running here (NULL: none, or not a future's). */
static inline fut_future *cur_unit(void)
{
    return fut__tl_mark ? fut__tl_mark->current : NULL;
}

/* A group child's group flag, when a group child runs here. */
static inline const atomic_bool *cur_cancelled(void)
{
    return fut__tl_mark ? fut__tl_mark->cancelled : NULL;
}

static bool has_extra(const fut_future *f);

/* Shows name (not NULL) as the name of unit id on worker share l: the
 * words, then the id they belong to (a dump shows them beside that id
 * only). */
static void show_name(fut_local *l, const char *name, uint64_t id)
{
    uint64_t words[4] = {0, 0, 0, 0};
    strncpy((char *)words, name, sizeof(words) - 1);
    atomic_store_explicit(&l->name_id, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (int i = 0; i < 4; i++)
        atomic_store_explicit(&l->name[i], words[i], memory_order_relaxed);
    atomic_store_explicit(&l->name_id, id, memory_order_release);
}

/* The calling worker's share of its pool (fut_local), or NULL: kept in
 * this thread's own storage, so that marking each unit reads no line of
 * the worker's scheduler record (which wakers write). */
static FUT_TLS fut_sched_worker *tl_local_of;
static FUT_TLS fut_local *tl_local;

static inline fut_local *my_local(void)
{
    fut_sched_worker *w = fut__sched_any_self();
    if (__builtin_expect(w != tl_local_of, 0)) {
        tl_local_of = w;
        tl_local = w ? w->data : NULL;
    }
    return tl_local;
}

/* A unit on a worker (fut__wait_frame checks) about to wait: pushes a
 * frame for it (for dumps, and the cycle checks of waits). NULL when the
 * worker is FUT_FRAMES waits deep: counted, not shown. The frame is
 * published by a release store of depth; the cycle check that reads
 * others' frames starts with a seq_cst fence (see cycle_once). */
fut_frame *fut__frame_push(const void *target, fut_future *const futs[],
                           size_t n)
{
    fut_local *l = my_local();
    unsigned d = atomic_load_explicit(&l->depth, memory_order_relaxed);
    fut_frame *fr = d < FUT_FRAMES ? &l->frame[d] : NULL;
    if (fr) {
        atomic_store_explicit(&fr->fn,
                              atomic_load_explicit(&l->running,
                                                   memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&fr->id,
                              atomic_load_explicit(&l->running_id,
                                                   memory_order_relaxed),
                              memory_order_relaxed);
        /* a group's child stands for its group (its cancel flag), which
         * is what fut_group_wait waits for */
        const void *unit = cur_unit() ? (const void *)cur_unit()
                                      : (const void *)cur_cancelled();
        atomic_store_explicit(&l->frame_unit[d], unit, memory_order_relaxed);
        unsigned k = !futs ? 1 : n <= FUT_FRAME_ANY ? (unsigned)n : 0;
        for (unsigned i = 0; i < k; i++)
            atomic_store_explicit(&fr->waits[i],
                                  futs ? (const void *)futs[i] : target,
                                  memory_order_relaxed);
        atomic_store_explicit(&fr->nwaits, k, memory_order_relaxed);
        atomic_store_explicit(&fr->waits_id,
                              futs && n == 1 ? fut__id_of(futs[0]) : 0,
                              memory_order_relaxed);
    }
    atomic_store_explicit(&l->depth, d + 1, memory_order_release);
    return fr;
}

void fut__frame_pop(void)
{
    fut_local *l = my_local();
    /* release, no fence: a check that misses the pop sees a frame that
     * is going, which lasts no longer than a moment (the check looks
     * twice, see fut__wait_closes_cycle) */
    atomic_store_explicit(
        &l->depth, atomic_load_explicit(&l->depth, memory_order_relaxed) - 1,
        memory_order_release);
}

/* Shows, for fut_pool_dump and the watchdog, that worker share l runs
 * fn, unit id (0: none), with name (NULL: none), from now on; keeps in m
 * what to give unshow() once it has returned. A unit without a name
 * writes no name: the dump shows one only beside the id it belongs to. */
static inline __attribute__((always_inline)) void
show(fut_local *l, fut_user_mark *m, fut_fn fn, uint64_t id, const char *name)
{
    if (!FUT_SHOW)
        return;
    m->fn = atomic_load_explicit(&l->running, memory_order_relaxed);
    if (__builtin_expect(m->fn != NULL, 0)) { /* on top of a unit's wait */
        m->id = atomic_load_explicit(&l->running_id, memory_order_relaxed);
        m->since = atomic_load_explicit(&l->since, memory_order_relaxed);
        /* nothing shown while this unit's id and start go in */
        atomic_store_explicit(&l->running, NULL, memory_order_release);
    }
    if (FUT_NAMES && __builtin_expect(name != NULL, 0))
        show_name(l, name, id);
    /* since, then id, then fn, each released: a reader that sees this fn
     * (acquire) sees its id and since, and one that sees this id sees its
     * since; it reads them the other way round, then fn and id again
     * (fut__worker_running), so it never pairs a unit with an older
     * start */
    atomic_store_explicit(&l->since, fut__coarse_ns(), memory_order_relaxed);
    FUT_HOOK(FUT_HOOK_SHOW, l);
    if (FUT_NAMES)
        atomic_store_explicit(&l->running_id, id, memory_order_release);
    atomic_store_explicit(&l->running, fn, memory_order_release);
}

/* After the unit has returned, and the mark below is the innermost
 * again: a worker back in the unit below shows that unit again. */
static inline __attribute__((always_inline)) void
unshow(fut_local *l, const fut_user_mark *m)
{
    if (!FUT_SHOW)
        return;
    /* Back in the unit below: nothing shown while its older id and start
     * go back, then its fn, as show() does. */
    atomic_store_explicit(&l->running, NULL, memory_order_release);
    if (__builtin_expect(m->fn != NULL, 0)) {
        const fut_future *below = cur_unit();
        if (FUT_NAMES && below && has_extra(below) && below->extra->name &&
            atomic_load_explicit(&l->name_id, memory_order_relaxed) !=
                below->id) /* a named unit above wrote over its name */
            show_name(l, below->extra->name, below->id);
        atomic_store_explicit(&l->since, m->since, memory_order_relaxed);
        atomic_store_explicit(&l->running_id, m->id, memory_order_release);
        atomic_store_explicit(&l->running, m->fn, memory_order_release);
    }
}

/* fut__user_begin and _end, inlined into this file's hot paths (which
 * show their unit themselves). m lives in the caller's frame until
 * user_end. */
static inline __attribute__((always_inline)) void
user_begin(fut_user_mark *m, fut_future *current, const atomic_bool *cancelled)
{
    m->current = current;
    m->cancelled = cancelled;
    m->outer = fut__tl_mark;
    fut__tl_mark = m;
}

static inline __attribute__((always_inline)) void
user_end(const fut_user_mark *m)
{
    fut__tl_mark = m->outer;
}

bool fut__mine(const void *target)
{
    for (const fut_user_mark *m = fut__tl_mark; m; m = m->outer)
        if ((const void *)m->current == target ||
            (const void *)m->cancelled == target)
            return true;
    return false;
}

uint64_t fut__mine_filter(void)
{
    uint64_t bits = 0;
    for (const fut_user_mark *m = fut__tl_mark; m; m = m->outer) {
        if (m->current)
            bits |= fut__mine_bit(m->current);
        if (m->cancelled)
            bits |= fut__mine_bit(m->cancelled);
    }
    return bits;
}

uint64_t fut__id_of(const fut_future *f)
{
    return f->kind == KIND_TASK || f->kind == KIND_THEN ? f->id : 0;
}

uint64_t fut_id(const fut_future *f)
{
    if (!f)
        return 0;
    FUT_CHECK_FUTURE(f, "fut_id");
    return fut__id_of(f);
}

uint64_t fut_current_id(void)
{
    const fut_user_mark *m = fut__tl_mark;
    return !m ? 0 : m->current ? m->current->id : m->unit_id;
}

/* For group.c's units: no future's, and not among the hottest. */
void fut__user_begin(fut_user_mark *m, const atomic_bool *cancelled,
                     fut_fn fn, uint64_t id)
{
    fut_local *l = my_local();
    if (l)
        show(l, m, fn, id, NULL);
    user_begin(m, NULL, cancelled);
    m->unit_id = id;
}

void fut__user_end(const fut_user_mark *m)
{
    user_end(m);
    fut_local *l = my_local();
    if (l)
        unshow(l, m);
}

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

#define CONTAINER(ptr, type, member)                                           \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static uint64_t refs_of(uint64_t state)
{
    return state / F_REF;
}

/* ---- Memory -------------------------------------------------------------- */

/* The all_state of fut_all, and the io item of an fd wait, sit right
 * after the header. */
#define ALL_OFFSET offsetof(fut_future, work)

static fut_io_item *io_item(fut_future *f)
{
    return (fut_io_item *)(void *)((char *)f + ALL_OFFSET);
}

static size_t future_size(enum fut_kind kind, unsigned flags, size_t extra)
{
    switch (kind) {
    case KIND_TASK: return offsetof(fut_future, input);
    case KIND_THEN: return sizeof(fut_future);
    case KIND_SLEEP:
        return flags & FLAG_TRACED ? offsetof(fut_future, arg)
                                   : offsetof(fut_future, fn);
    case KIND_TIMEOUT: return offsetof(fut_future, qnext);
    case KIND_ALL: return ALL_OFFSET + extra;
    case KIND_FD: return ALL_OFFSET + sizeof(fut_io_item);
    case KIND_PLAIN: return offsetof(fut_future, fn);
    default: return ALL_OFFSET;
    }
}

/* Coverage builds (scripts/coverage.py) define HOT as plain static, so
 * that gcov counts each of these functions once, not once per call site. */
#ifndef HOT
#define HOT static inline __attribute__((always_inline))
#endif

HOT fut_future *future_new(fut_pool *pool, enum fut_kind kind, unsigned flags,
                           size_t extra, unsigned refs)
{
    size_t size = future_size(kind, flags, extra);
    fut_future *f = fut__alloc(size);
    if (!f)
        return NULL;
    atomic_init(&f->state, PHASE_WAITING + refs * F_REF);
#ifdef FUT_CHECKED
    atomic_store_explicit(&f->magic, FUT_MAGIC_LIVE, memory_order_relaxed);
#endif
    f->error = 0;
    f->kind = (unsigned char)kind;
    f->flags = (unsigned char)flags;
    f->size = kind == KIND_ALL ? 0 : (unsigned char)size;
    f->on_pending = 0;
    f->value = NULL;
    f->listeners = NULL;
    f->pool = pool;
    if (kind == KIND_THEN || kind == KIND_TIMEOUT)
        f->input = NULL;
    if (kind == KIND_TASK || kind == KIND_THEN)
        f->id = FUT_NAMES ? fut__new_id() : 0;
    if (pool)
        fut__pool_ref_take(pool);
    return f;
}

/* ---- The checked build's handles --------------------------------------- */

#ifdef FUT_CHECKED
void fut__check_future(const fut_future *f, const char *call)
{
    if ((uintptr_t)f % sizeof(void *))
        fut__misuse(call, f, "not a future (a pointer no future has)");
    uint32_t magic = atomic_load_explicit(&((fut_future *)f)->magic,
                                          memory_order_relaxed);
    if (magic == FUT_MAGIC_DEAD)
        fut__misuse(call, f,
                    "a future already freed: released once too often, or "
                    "used after a call consumed it (fut_then, fut_timeout, "
                    "...) and its work was done with it");
    if (magic != FUT_MAGIC_LIVE)
        fut__misuse(call, f, "not a future (garbage, or freed long ago)");
}

/* Freed futures wait here, marked DEAD, before their memory goes back:
 * a late use finds the mark instead of another future. Not in the fault
 * build, which counts every allocation back. */
#if !defined(FUT_FAULT_INJECTION)
#define QUARANTINE 4096
static pthread_mutex_t quarantine_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    void *p;
    size_t size;
} quarantined[QUARANTINE];
static size_t quarantine_next;

static void quarantine(void *p, size_t size)
{
    pthread_mutex_lock(&quarantine_lock);
    void *old = quarantined[quarantine_next].p;
    size_t old_size = quarantined[quarantine_next].size;
    quarantined[quarantine_next].p = p;
    quarantined[quarantine_next].size = size;
    quarantine_next = (quarantine_next + 1) % QUARANTINE;
    pthread_mutex_unlock(&quarantine_lock);
    if (old)
        fut__free(old, old_size);
}
#else
static void quarantine(void *p, size_t size)
{
    fut__free(p, size);
}
#endif
#endif

void fut__futures_fork(bool after, bool child)
{
    (void)after; /* the checked build's quarantine lock only */
    /* The stripes guard listener lists: in a child, those of the parent's
     * pools' futures are never used (waits on them fail at once), so a
     * stripe a parent's thread held at fork is simply made new. */
    for (int i = 0; child && i < LOCK_STRIPES; i++)
        stripes[i] = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    if (child) { /* the forking thread is no worker in the child */
        tl_local_of = NULL;
        tl_local = NULL;
    }
#if defined(FUT_CHECKED) && !defined(FUT_FAULT_INJECTION)
    if (after)
        pthread_mutex_unlock(&quarantine_lock);
    else
        pthread_mutex_lock(&quarantine_lock);
#endif
}

/* ---- Options and owned values ----------------------------------------- */

HOT bool has_opts(const fut_task_opts *o)
{
    return o && (o->name || o->value_free || o->arg_free || o->arg_size);
}

/* A call given arg_free failed before its unit could own arg. */
static void arg_drop(const fut_task_opts *o, void *arg)
{
    if (o && o->arg_free && arg)
        o->arg_free(arg);
}

/* The block for options o, with the argument copied (*arg then points to
 * the copy); NULL: no memory. */
static fut_extra *extra_new(const fut_task_opts *o, void **arg)
{
    size_t align = sizeof(max_align_t);
    size_t name = o->name ? strlen(o->name) + 1 : 0;
    if (o->arg_size > SIZE_MAX / 4 || name > SIZE_MAX / 4)
        return NULL;
    size_t copy = (o->arg_size + align - 1) / align * align;
    fut_extra *x = malloc(sizeof(*x) + copy + name);
    if (!x)
        return NULL;
    x->value_free = o->value_free;
    atomic_init(&x->arg_free, o->arg_free);
    if (o->arg_size)
        *arg = memcpy(x->copy, *arg, o->arg_size);
    x->arg = *arg;
    x->name = name ? memcpy((char *)x->copy + copy, o->name, name) : NULL;
    return x;
}

static bool has_extra(const fut_future *f)
{
    return atomic_load_explicit(&f->state, memory_order_relaxed) & F_EXTRA;
}

/* The unit (with EXTRA) is finished with its argument: arg_free runs,
 * once, on the first of the threads that get here (the runner, the
 * completer). */
static __attribute__((noinline)) void arg_done(fut_future *f)
{
    fut_extra *x = f->extra;
    fut_free_fn d = atomic_load_explicit(&x->arg_free, memory_order_relaxed)
                        ? atomic_exchange(&x->arg_free, NULL)
                        : NULL;
    if (d && x->arg)
        d(x->arg);
}

/* Frees options' block x, made for a unit that will not be. */
static void extra_drop(fut_extra *x)
{
    fut_free_fn d = atomic_load_explicit(&x->arg_free, memory_order_relaxed);
    if (d && x->arg)
        d(x->arg);
    free(x);
}

/* The destructor of f's own value, if it has one. */
static fut_free_fn destructor(const fut_future *f)
{
    if (!has_extra(f))
        return NULL;
    return f->kind == KIND_PLAIN ? f->value_free : f->extra->value_free;
}

static bool gathers(const fut_future *f);

/* Whether completed f's value is freed by f (a destructor, or the array
 * of a gathering fut_all, which goes with it) or by an input f keeps. */
static bool frees_value(const fut_future *f)
{
    return (atomic_load_explicit(&f->state, memory_order_acquire) &
            F_BORROWS) ||
           destructor(f) || gathers(f);
}

/* c is about to complete with value; when that is its complete input's
 * value and the input frees it, c keeps the input (the reference c holds
 * in c->input stays there until c is freed), so the value lives as long
 * as c, is freed once, by the input, and a take goes to the input. */
static bool pass_on(fut_future *c, fut_future *in, const void *value)
{
    if (!value || !in || in->value != value || !frees_value(in))
        return false;
    atomic_fetch_or_explicit(&c->state, F_BORROWS, memory_order_relaxed);
    return true;
}

/* future_free's part for a future with EXTRA: its value, when it still
 * owns it, and its options' block (whose argument went at completion). */
static __attribute__((noinline)) void free_owned(fut_future *f, uint64_t s)
{
    fut_free_fn d = destructor(f);
    if (d && f->value && (s & (F_DONE | F_TAKEN | F_BORROWS)) == F_DONE)
        d(f->value);
    if (f->kind != KIND_PLAIN)
        free(f->extra);
}

struct all_state;
static struct all_state *all_state(fut_future *f);
static void all_release_inputs(struct all_state *st);

/* Frees f, whose last reference is gone, with its value when it owns it;
 * returns the input whose reference f held, for the caller to drop (a
 * chain of futures each keeping its input is freed in a loop, not by
 * recursion). */
HOT fut_future *future_free(fut_future *f)
{
    uint64_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    fut_future *in = NULL;
    if (f->kind == KIND_THEN || f->kind == KIND_TIMEOUT)
        in = f->input; /* NULL unless a unit never got to drop it, or it
                          keeps it for its value */
    if (__builtin_expect((s & F_EXTRA) != 0, 0))
        free_owned(f, s);
    size_t size = f->size;
    if (!size) { /* fut_all: its all_state.bytes */
        size = ALL_OFFSET + *(size_t *)((char *)f + ALL_OFFSET);
        all_release_inputs(all_state(f));
    }
    if (f->pool)
        fut__pool_ref_drop(f->pool);
#ifdef FUT_CHECKED
    atomic_store_explicit(&f->magic, FUT_MAGIC_DEAD, memory_order_relaxed);
    quarantine(f, size);
#else
    fut__free(f, size);
#endif
    return in;
}

fut_future *fut_retain(fut_future *f)
{
    FUT_CHECK_FUTURE(f, "fut_retain");
    if (f && f->kind != KIND_STATIC)
        atomic_fetch_add_explicit(&f->state, F_REF, memory_order_relaxed);
    return f;
}

/* Drops one reference of f; whether it was the last. */
HOT bool unref(fut_future *f)
{
    if (!f || f->kind == KIND_STATIC)
        return false;
    /* acq_rel: the last releaser sees every write of the other owners.
     * When ours is the only reference left (seen with acquire), nobody
     * else can reach f: free it without a locked instruction. */
    FUT_HAPPENS_BEFORE(&f->state);
    uint64_t old = atomic_load_explicit(&f->state, memory_order_acquire);
    if (refs_of(old) != 1)
        old = atomic_fetch_sub_explicit(&f->state, F_REF, memory_order_acq_rel);
    FUT_ASSERT(refs_of(old) != 0, "a future's reference count below zero");
    if (refs_of(old) != 1)
        return false;
    FUT_HAPPENS_AFTER(&f->state);
    FUT_FORGET(&f->state);
    return true;
}

/* Frees f, whose last reference is gone, and each input whose last
 * reference it held. */
HOT void destroy(fut_future *f)
{
    do
        f = future_free(f);
    while (unref(f));
}

void fut_release(fut_future *f)
{
    FUT_CHECK_FUTURE(f, "fut_release");
    if (unref(f))
        destroy(f);
}

bool fut_is_ready(const fut_future *f)
{
    FUT_CHECK_FUTURE(f, "fut_is_ready");
    if (!f || !(atomic_load_explicit(&f->state, memory_order_acquire) & F_DONE))
        return false;
    FUT_HAPPENS_AFTER(&f->state);
    return true;
}

static unsigned phase_of(const fut_future *f)
{
    return (unsigned)(atomic_load_explicit(&f->state, memory_order_relaxed) &
                      F_PHASE);
}

/* Moves f's phase from `from` to `to`; false when it was not `from`. */
static bool claim_to(fut_future *f, unsigned from, unsigned to)
{
    uint64_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    while ((s & F_PHASE) == from)
        if (atomic_compare_exchange_weak_explicit(
                &f->state, &s, (s & ~F_PHASE) | to, memory_order_acq_rel,
                memory_order_relaxed))
            return true;
    return false;
}

static bool claim(fut_future *f, unsigned from)
{
    return claim_to(f, from, PHASE_CLAIMED);
}

/* ---- Completion -------------------------------------------------------- */

/* Futures whose listeners wait to fire on this thread: a FIFO that only
 * grows while a fire completes another future. */
static FUT_TLS struct {
    fut_future **q;
    size_t head, len, cap;
    bool draining;
} tl_fire;

static void fire_all(fut_future *f)
{
    FUT_HOOK(FUT_HOOK_FIRE, f);
    fut_listener *l = f->listeners; /* detached: ours alone */
    f->listeners = NULL;
    while (l) {
        fut_listener *next = l->next; /* l may be gone once fired */
        l->fire(l, f);
        l = next;
    }
}

/* Fires f's detached listeners now, or after the fires this thread is
 * already in (then f is kept alive until its turn). */
static void fire_or_defer(fut_future *f)
{
    if (tl_fire.draining) {
        if (tl_fire.len == tl_fire.cap) {
            size_t cap = tl_fire.cap ? 2 * tl_fire.cap : 16;
            fut_future **q = malloc(cap * sizeof(*q));
            if (!q) { /* no memory to defer: fire here, recursing once */
                fire_all(f);
                return;
            }
            for (size_t i = 0; i < tl_fire.len; i++)
                q[i] = tl_fire.q[(tl_fire.head + i) % tl_fire.cap];
            free(tl_fire.q);
            tl_fire.q = q;
            tl_fire.head = 0;
            tl_fire.cap = cap;
        }
        tl_fire.q[(tl_fire.head + tl_fire.len++) % tl_fire.cap] = fut_retain(f);
        return;
    }
    tl_fire.draining = true;
    fire_all(f);
    while (tl_fire.len) {
        fut_future *g = tl_fire.q[tl_fire.head];
        tl_fire.head = (tl_fire.head + 1) % tl_fire.cap;
        tl_fire.len--;
        fire_all(g);
        fut_release(g);
    }
    free(tl_fire.q);
    tl_fire.q = NULL;
    tl_fire.head = tl_fire.cap = 0;
    tl_fire.draining = false;
}

/* complete()'s half for a future with listeners. */
static __attribute__((noinline)) void complete_listened(fut_future *f,
                                                        bool drop)
{
    atomic_fetch_or_explicit(&f->state, F_DONE, memory_order_acq_rel);
    lock_future(f); /* after a listener's unlock: we see its node */
    unlock_future(f);
    fire_or_defer(f);
    if (drop)
        fut_release(f);
}

/* Completes f, whose completion the caller owns; drops one reference of
 * the caller's when `drop` (the caller must hold one either way). A unit
 * with options is finished with its argument first, run or not. */
HOT void complete(fut_future *f, void *value, int error, bool drop)
{
    f->value = error ? NULL : value;
    f->error = error;
    FUT_HAPPENS_BEFORE(&f->state);
    uint64_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (__builtin_expect((s & F_EXTRA) != 0, 0) && f->kind != KIND_PLAIN)
        arg_done(f);
    while (!(s & F_LISTENED)) {
        uint64_t to = (s | F_DONE) - (drop ? F_REF : 0);
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, to,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            if (drop && refs_of(s) == 1)
                destroy(f);
            return;
        }
    }
    complete_listened(f, drop);
}

bool fut__listen(fut_future *f, fut_listener *l)
{
    lock_future(f);
    uint64_t old =
        atomic_fetch_or_explicit(&f->state, F_LISTENED, memory_order_acq_rel);
    bool pending = !(old & F_DONE);
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
    if (!(atomic_load_explicit(&f->state, memory_order_relaxed) & F_DONE)) {
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

/* The unit, timer or listener is finished with f (and with its input,
 * unless f keeps it for its value). */
static void drop_task_ref(fut_future *f)
{
    if ((f->kind == KIND_THEN || f->kind == KIND_TIMEOUT) &&
        !(atomic_load_explicit(&f->state, memory_order_relaxed) & F_BORROWS))
        fut_release(take_input(f));
    fut_release(f);
}

/* ---- Running ----------------------------------------------------------- */

static int call(fut_future *f, void **value)
{
    if (f->kind == KIND_TASK)
        return f->fn.task(f->arg, value);
    if (f->flags & (FLAG_ON_ERROR | FLAG_ON_ANY))
        return f->fn.recover(f->arg, f->input->error, f->input->value, value);
    if (f->flags & FLAG_CHAIN) {
        fut_future *next = NULL;
        int error = f->fn.chain(f->arg, f->input->value, &next);
        *value = next;
        return error;
    }
    return f->fn.then(f->arg, f->input->value, value);
}

/* The function a unit runs, for the trace. */
static fut_fn unit_fn(const fut_future *f)
{
    fut_fn fn; /* every member is a function pointer, at the same place */
    memcpy(&fn, &f->fn, sizeof(fn));
    return fn;
}

/* Whether continuation c runs after an input that ended with error. */
static bool runs_after(const fut_future *c, int error)
{
    if (c->flags & FLAG_ON_ANY)
        return true;
    return c->flags & FLAG_ON_ERROR ? error != 0 : error == 0;
}

/* In a traced unit whose function has returned: a moment before the end
 * of its slice, where the arrows to the continuations its completion
 * makes ready start; 0 elsewhere. */
static FUT_TLS uint64_t tl_flow_at;

/* call(), timed into the trace; out of the way of the untraced path,
 * which pays only the branch that picks it. */
static __attribute__((noinline, cold)) int
call_traced(fut_future *f, void **value, fut_trace_lane *lane)
{
    uint64_t start = fut__now_ns();
    if (f->kind == KIND_THEN) /* the arrow's end, inside this slice */
        fut__trace_flow(f->pool, TRACE_FLOW_IN, (uintptr_t)f, start + 1);
    int error = call(f, value);
    uint64_t end = fut__now_ns();
    fut__trace_record(lane, unit_fn(f), has_extra(f) ? f->extra->name : NULL,
                      f->id, f->kind, start, end + 2);
    tl_flow_at = end + 1; /* the completion's arrows start in the slice */
    return error;
}

/* The inner future completed: the chain takes its outcome. */
static void follow_fire(fut_listener *l, fut_future *inner)
{
    fut_future *f = CONTAINER(l, fut_future, node);
    if (claim(f, PHASE_WAITING)) {
        void *value = inner->error ? NULL : inner->value;
        pass_on(f, inner, value);
        complete(f, value, inner->error, false);
    }
    drop_task_ref(f); /* and the inner future, unless f keeps it */
}

/* A chain's function returned `inner` (its reference now ours): f, which
 * ran, waits for it holding no worker, as a continuation waits for its
 * input, and can be cancelled meanwhile (cancelling inner too). A cancel
 * asked while the function ran goes on to inner. */
static void follow(fut_future *f, fut_future *inner)
{
    lock_future(f);
    f->input = inner;
    unlock_future(f);
    f->node.fire = follow_fire;
    f->flags |= FLAG_FOLLOWING;
    claim_to(f, PHASE_RUNNING, PHASE_WAITING); /* only we move it on */
    /* A cancel before that claim found f running and left its mark; one
     * after it cancels f, and inner with it. Until f listens, inner is
     * held by f->input, which only follow_fire lets go of. */
    if (atomic_load(&f->state) & F_CANCEL)
        fut_cancel(inner);
    if (!fut__listen(inner, &f->node)) /* from here, f may be gone */
        follow_fire(&f->node, inner);
}

/* A unit with options has run: its argument goes, and so does a value
 * it stored but cannot give (it failed), unless that is its input's. */
static __attribute__((noinline)) void after_options(fut_future *f,
                                                    void **value, int error)
{
    arg_done(f);
    bool inputs = f->kind == KIND_THEN && *value == f->input->value;
    if (error && *value && !inputs && !(f->flags & FLAG_CHAIN) &&
        f->extra->value_free) {
        f->extra->value_free(*value);
        *value = NULL;
    }
}

/* Runs a claimed task or continuation and completes it; drops the task
 * reference (and a continuation's input, unless it keeps it). shown: it
 * shows itself as what its worker runs (fut_pool_dump); a child its
 * awaiter takes back and runs in place (the hot path of fork-join) does
 * not, and is shown as that awaiter. */
HOT void execute(fut_future *f, bool shown)
{
    void *value = NULL;
    fut_pool *pool = f->pool;
    fut_local *l = shown ? fut__local(pool) : NULL;
    fut_user_mark saved;
    if (l && __builtin_expect(has_extra(f), 0))
        show(l, &saved, unit_fn(f), f->id, f->extra->name);
    else if (l)
        show(l, &saved, unit_fn(f), f->id, NULL);
    user_begin(&saved, f, NULL);
    fut_trace_lane *lane = fut__trace_lane(pool);
    int error = __builtin_expect(lane != NULL, 0) ? call_traced(f, &value, lane)
                                                  : call(f, &value);
    user_end(&saved);
    if (l)
        unshow(l, &saved);
    if (pool) {
        if (!shown)
            l = fut__local(pool);
        fut__stat_to(pool, l, STAT_COMPLETED, 1);
        if (error)
            fut__stat_to(pool, l, STAT_FAILED, 1);
    }
    if (__builtin_expect(has_extra(f), 0)) /* see fut_task_opts */
        after_options(f, &value, error);
    if (f->kind == KIND_THEN && ((f->flags & FLAG_CHAIN) || error ||
                                 !pass_on(f, f->input, value)))
        fut_release(take_input(f));
    if (f->flags & FLAG_CHAIN) {
        if (value && !error) {
            follow(f, value);
            if (__builtin_expect(lane != NULL, 0))
                tl_flow_at = 0;
            return;
        }
        fut_release(value); /* a future given with an error */
        value = NULL;
        error = error ? error : EINVAL; /* no future to follow */
    }
    complete(f, value, error, true);
    if (__builtin_expect(lane != NULL, 0))
        tl_flow_at = 0; /* its arrows are drawn: none from what follows */
}

/* A claimed unit that will not run: its pool is shutting down past its
 * deadline (fut_pool_shutdown). */
static __attribute__((noinline, cold)) void cancel_claimed(fut_future *f)
{
    fut__stat_add(f->pool, STAT_CANCELLED, 1);
    if (f->kind == KIND_THEN)
        fut_release(take_input(f));
    complete(f, NULL, ECANCELED, true);
}

/* Claims and runs f, or drops it when a canceller got there first. */
HOT void claim_and_run(fut_future *f, bool shown)
{
    if (claim_to(f, PHASE_QUEUED, PHASE_RUNNING)) {
        fut__stat_add(f->pool, STAT_QUEUED, -1);
        /* a shutdown past its deadline: units taken from a queue are
         * cancelled; a child its awaiter takes back still runs */
        if (shown && __builtin_expect(atomic_load_explicit(
                                          &f->pool->cancel_all,
                                          memory_order_relaxed),
                                      0)) {
            cancel_claimed(f);
            return;
        }
        execute(f, shown);
    } else { /* cancelled while queued, and counted then */
        drop_task_ref(f);
    }
}

/* The scheduler runs a queued task or continuation. */
static void run_unit(fut_work *w)
{
    claim_and_run(CONTAINER(w, fut_future, work), true);
}

/* A worker about to wait for f, which it queued itself and nobody has
 * taken yet: takes it back and runs it here, with no listener and no
 * wakeup. Returns whether it did. */
bool fut__run_own(fut_future *f)
{
    if ((f->kind != KIND_TASK && f->kind != KIND_THEN) || !f->pool ||
        phase_of(f) != PHASE_QUEUED ||
        !fut__sched_take_back(&f->pool->sched, &f->work))
        return false;
    claim_and_run(f, false); /* shown as its awaiter: the hot path */
    return true;
}

bool fut__waits_for_itself(const fut_future *f)
{
    return f == cur_unit();
}

bool fut_cancel_requested(void)
{
    const fut_user_mark *m = fut__tl_mark;
    if (m && m->cancelled) /* a group child */
        return atomic_load(m->cancelled);
    fut_future *current = m ? m->current : NULL;
    if (current && current->pool &&
        atomic_load_explicit(&current->pool->cancel_all,
                             memory_order_relaxed))
        return true; /* its pool's shutdown is past its deadline */
    if (!current ||
        !(atomic_load_explicit(&current->state, memory_order_relaxed) &
          F_CANCEL))
        return false;
    FUT_HAPPENS_AFTER(&current->state);
    return true;
}

/* ---- fut_spawn --------------------------------------------------------- */

/* Options (has_opts) checked before anything is made: EINVAL, ENOMEM or
 * 0, with *x the options' block and *arg maybe moved to its copy. */
static int opts_take(const fut_task_opts *o, fut_extra **x, void **arg)
{
    if (o->arg_size && !*arg)
        return EINVAL;
    *x = extra_new(o, arg);
    return *x ? 0 : ENOMEM;
}

/* A future for a call that failed before its unit was made. */
static fut_future *refused(const fut_task_opts *o, void *arg, int error)
{
    arg_drop(o, arg);
    return error == ENOMEM       ? &s_enomem
           : error == EOWNERDEAD ? &s_inherited
                                 : &s_einval;
}

HOT fut_future *spawn(fut_pool *pool, const fut_task_opts *o, fut_task_fn fn,
                      void *arg)
{
    fut_extra *x = NULL;
    int err = !pool || !fn ? EINVAL : 0; /* the parent's: the submit says */
    if (!err && has_opts(o)) /* folded away for fut_spawn */
        err = opts_take(o, &x, &arg);
    if (err)
        return refused(o, arg, err);
    fut_future *f = future_new(pool, KIND_TASK, 0, 0, 2); /* + task ref */
    if (!f) {
        if (x)
            extra_drop(x);
        else
            arg_drop(o, arg);
        return &s_enomem;
    }
    f->fn.task = fn;
    f->arg = arg;
    uint64_t state = PHASE_QUEUED + 2 * F_REF;
    if (x) {
        f->extra = x;
        state |= F_EXTRA;
    }
    f->work.run = run_unit;
    atomic_store_explicit(&f->state, state, memory_order_relaxed);
    fut_local *l = fut__local(pool);
    fut__stat_to(pool, l, STAT_SPAWNED, 1);
    fut__stat_to(pool, l, STAT_QUEUED, 1);
    err = fut__sched_submit(&pool->sched, &f->work, SUBMIT_NEW);
    if (err) {
        fut__stat_to(pool, l, STAT_SPAWNED, -1);
        fut__stat_to(pool, l, STAT_QUEUED, -1);
        claim(f, PHASE_QUEUED);
        complete(f, NULL, err, true);
    }
    return f;
}

fut_future *fut_spawn(fut_pool *pool, fut_task_fn fn, void *arg)
{
    return spawn(pool, NULL, fn, arg);
}

fut_future *fut_spawn_with(fut_pool *pool, const fut_task_opts *opts,
                           fut_task_fn fn, void *arg)
{
    return spawn(pool, opts, fn, arg);
}

/* ---- fut_then ---------------------------------------------------------- */

/* ---- Pending continuations -------------------------------------------
 * A continuation whose input may never complete by itself (a promise,
 * fut_all, a timeout) waits on its pool's pending list, for destroy to
 * cancel if nothing ever completes its input. */

void fut__pending_add(fut_pool *pool, fut_future *c)
{
    pthread_mutex_lock(&pool->pending_lock);
    c->qnext = NULL;
    c->qprev = pool->pending.tail;
    if (pool->pending.tail)
        pool->pending.tail->qnext = c;
    else
        pool->pending.head = c;
    pool->pending.tail = c;
    c->on_pending = 1;
    pthread_mutex_unlock(&pool->pending_lock);
}

static void pending_unlink(fut_pool *pool, fut_future *c)
{
    if (c->qprev)
        c->qprev->qnext = c->qnext;
    else
        pool->pending.head = c->qnext;
    if (c->qnext)
        c->qnext->qprev = c->qprev;
    else
        pool->pending.tail = c->qprev;
    c->on_pending = 0;
}

void fut__pending_remove(fut_pool *pool, fut_future *c)
{
    pthread_mutex_lock(&pool->pending_lock);
    if (c->on_pending)
        pending_unlink(pool, c);
    pthread_mutex_unlock(&pool->pending_lock);
}

int fut__pending_visit(fut_pool *pool, fut_visit_fn visit, void *ctx)
{
    if (pthread_mutex_trylock(&pool->pending_lock) != 0)
        return EBUSY; /* held: perhaps by a thread a debugger stopped */
    for (fut_future *c = pool->pending.head; c; c = c->qnext) /* alive */
        visit(ctx, unit_fn(c), has_extra(c) ? c->extra->name : NULL,
              c->input ? c->input->kind : KIND_STATIC, 0);
    pthread_mutex_unlock(&pool->pending_lock);
    return 0;
}

struct timer_visit {
    fut_visit_fn visit;
    void *ctx;
};

static void timer_seen(void *ctx, fut_timer *t)
{
    struct timer_visit *tv = ctx;
    fut_future *f = CONTAINER(t, fut_future, timer); /* in the heap: alive */
    tv->visit(tv->ctx, NULL, NULL, f->kind, t->deadline);
}

int fut__timers_visit(fut_pool *pool, fut_visit_fn visit, void *ctx)
{
    struct timer_visit tv = {visit, ctx};
    return fut__timer_visit(&pool->sched, timer_seen, &tv);
}

/* Pool destroy: c waited on its pool's pending list; cancel it if it is
 * still listening to its input. Whether it did. */
static bool then_cancel_pending(fut_future *c)
{
    bool cancelled = false;
    fut_future *in = borrow_input(c);
    if (in && fut__unlisten(in, &c->node)) {
        if ((cancelled = claim(c, PHASE_WAITING))) {
            fut__stat_add(c->pool, STAT_CANCELLED, 1);
            complete(c, NULL, ECANCELED, false);
        }
        drop_task_ref(c);
    }
    fut_release(in);
    return cancelled;
}

/* Destroy: nothing can run any more; whatever still waits on an input is
 * a continuation of a promise nobody kept (yet). */
size_t fut__cancel_pending(fut_pool *pool)
{
    size_t n = 0;
    pthread_mutex_lock(&pool->pending_lock);
    fut_future *c;
    while ((c = pool->pending.head)) {
        pending_unlink(pool, c);
        fut_retain(c);
        pthread_mutex_unlock(&pool->pending_lock);
        n += then_cancel_pending(c);
        fut_release(c);
        pthread_mutex_lock(&pool->pending_lock);
    }
    pthread_mutex_unlock(&pool->pending_lock);
    return n;
}

/* c's input has completed successfully: queue c, unless it was cancelled
 * meanwhile or the pool refuses it (then it is cancelled). On a worker,
 * outside a unit's own code, c runs next on the same worker. */
static void then_ready(fut_future *c)
{
    fut_pool *pool = c->pool;
    if (__builtin_expect(tl_flow_at != 0, 0) && pool->trace_path)
        fut__trace_flow(pool, TRACE_FLOW_OUT, (uintptr_t)c, tl_flow_at);
    fut__stat_add(pool, STAT_QUEUED, 1);
    FUT_HOOK(FUT_HOOK_THEN_READY, c);
    if (!claim_to(c, PHASE_WAITING, PHASE_QUEUED)) {
        fut__stat_add(pool, STAT_QUEUED, -1); /* cancelled meanwhile */
        drop_task_ref(c);
        return;
    }
    int err = fut__in_unit()
                  ? fut__sched_submit(&pool->sched, &c->work, SUBMIT_READY)
                  : fut__sched_submit_next(&pool->sched, &c->work);
    if (!err)
        return; /* queued: the runner drops the task reference */
    fut__stat_add(pool, STAT_QUEUED, -1);
    if (claim(c, PHASE_QUEUED)) {
        fut__stat_add(pool, STAT_CANCELLED, 1);
        complete(c, NULL, ECANCELED, false);
    }
    drop_task_ref(c);
}

static void then_fire(fut_listener *l, fut_future *in)
{
    fut_future *c = CONTAINER(l, fut_future, node);
    int error = in->error;
    bool orphan = c->flags & FLAG_ORPHAN, runs = runs_after(c, error);
    if (c->flags & FLAG_LISTED)
        fut__pending_remove(c->pool, c);
    if (!orphan && runs) {
        then_ready(c);
        return;
    }
    if (claim(c, PHASE_WAITING)) {
        if (runs)
            error = ESHUTDOWN; /* orphan: it would have had to run */
        if (!orphan)
            fut__stat_add(c->pool, STAT_CANCELLED, 1);
        /* it does not run: the input's outcome passes through */
        void *value = error ? NULL : in->value;
        pass_on(c, in, value);
        complete(c, value, error, false);
    }
    drop_task_ref(c);
}

/* fut_then, fut_chain, fut_catch and fut_finally: consumes f and makes
 * the continuation that runs fn when runs_after() says so (how: its
 * flags); runs it here when f has no pool, else listens to f. */
HOT fut_future *continuation(fut_future *f, const fut_task_opts *o,
                             unsigned char how, fut_unit_fn fn, bool no_fn,
                             void *arg)
{
    fut_extra *x = NULL;
    int err = !f || no_fn                      ? EINVAL
              : f->pool && fut__inherited(f->pool) ? EOWNERDEAD
                                                   : 0;
    if (!err && has_opts(o)) /* folded away without options */
        err = opts_take(o, &x, &arg);
    if (err) {
        fut_release(f);
        return refused(o, arg, err);
    }
    fut_pool *pool = f->pool; /* f may be gone once c is listening */
    bool listed =
        f->kind == KIND_PLAIN || f->kind == KIND_ALL || f->kind == KIND_TIMEOUT;
    fut_future *c = future_new(pool, KIND_THEN,
                               (listed ? FLAG_LISTED : 0) | how, 0,
                               2); /* + task ref */
    if (!c) {
        fut_release(f);
        if (x)
            extra_drop(x);
        else
            arg_drop(o, arg);
        return &s_enomem;
    }
    c->fn = fn;
    c->arg = arg;
    if (x) { /* c is ours alone until it listens */
        c->extra = x;
        atomic_store_explicit(&c->state, PHASE_WAITING + 2 * F_REF + F_EXTRA,
                              memory_order_relaxed);
    }
    c->input = f;
    c->node.fire = then_fire;
    c->work.run = run_unit;
    if (!pool) { /* no pool: f is complete; run here */
        claim_to(c, PHASE_WAITING, PHASE_RUNNING);
        if (!runs_after(c, f->error)) {
            void *value = f->error ? NULL : f->value;
            pass_on(c, f, value);
            complete(c, value, f->error, false);
            drop_task_ref(c);
        } else {
            execute(c, false); /* on the caller's thread, no pool */
        }
        return c;
    }
    /* An outside thread counts itself busy until c listens, so destroy
     * cannot close the pool in between (c's input may complete then). */
    bool outside = !fut__sched_self(&pool->sched); /* a worker: accepted */
    if (outside && fut__sched_enter(&pool->sched) != 0) {
        c->flags |= FLAG_ORPHAN;
        c->flags &= (unsigned char)~FLAG_LISTED;
        outside = false;
    } else {
        fut__stat_add(pool, STAT_SPAWNED, 1);
        if (listed)
            fut__pending_add(pool, c);
    }
    if (!fut__listen(f, &c->node))
        then_fire(&c->node, f);
    if (outside)
        fut__sched_leave(&pool->sched);
    return c;
}

fut_future *fut_then(fut_future *f, fut_then_fn fn, void *arg)
{
    FUT_CHECK_FUTURE(f, "fut_then");
    return continuation(f, NULL, 0, (fut_unit_fn){.then = fn}, !fn, arg);
}

fut_future *fut_then_with(fut_future *f, const fut_task_opts *opts,
                          fut_then_fn fn, void *arg)
{
    FUT_CHECK_FUTURE(f, "fut_then_with");
    return continuation(f, opts, 0, (fut_unit_fn){.then = fn}, !fn, arg);
}

fut_future *fut_chain(fut_future *f, fut_chain_fn fn, void *arg)
{
    return fut_chain_with(f, NULL, fn, arg);
}

fut_future *fut_chain_with(fut_future *f, const fut_task_opts *opts,
                           fut_chain_fn fn, void *arg)
{
    FUT_CHECK_FUTURE(f, "fut_chain");
    return continuation(f, opts, FLAG_CHAIN, (fut_unit_fn){.chain = fn}, !fn,
                        arg);
}

fut_future *fut_catch(fut_future *f, fut_recover_fn fn, void *arg)
{
    return fut_catch_with(f, NULL, fn, arg);
}

fut_future *fut_catch_with(fut_future *f, const fut_task_opts *opts,
                           fut_recover_fn fn, void *arg)
{
    FUT_CHECK_FUTURE(f, "fut_catch");
    return continuation(f, opts, FLAG_ON_ERROR, (fut_unit_fn){.recover = fn},
                        !fn, arg);
}

fut_future *fut_finally(fut_future *f, fut_recover_fn fn, void *arg)
{
    return fut_finally_with(f, NULL, fn, arg);
}

fut_future *fut_finally_with(fut_future *f, const fut_task_opts *opts,
                             fut_recover_fn fn, void *arg)
{
    FUT_CHECK_FUTURE(f, "fut_finally");
    return continuation(f, opts, FLAG_ON_ANY, (fut_unit_fn){.recover = fn},
                        !fn, arg);
}

/* ---- fut_sleep and fut_timeout ---------------------------------------- */

static unsigned timer_flags(fut_pool *pool)
{
    return pool->trace_path ? FLAG_TRACED : 0;
}

static int timer_add(fut_future *f, uint64_t ms)
{
    uint64_t now = fut__sched_now(&f->pool->sched); /* virtual, or not */
    uint64_t limit = (UINT64_MAX - now) / 1000000u;
    if (f->flags & FLAG_TRACED)
        f->fn.armed = fut__now_ns(); /* traces keep the real clock */
    f->timer.deadline = ms < limit ? now + ms * 1000000u : UINT64_MAX;
    f->timer.index = 0;
    return fut__sched_timer_add(&f->pool->sched, &f->timer);
}

fut_future *fut_sleep(fut_pool *pool, uint64_t ms)
{
    if (!pool)
        return &s_einval;
    if (fut__inherited(pool))
        return &s_inherited;
    fut_future *f = future_new(pool, KIND_SLEEP, timer_flags(pool), 0,
                               2); /* + the timer's */
    if (!f)
        return &s_enomem;
    int err = timer_add(f, ms);
    if (err) {
        claim(f, PHASE_WAITING);
        complete(f, NULL, err, true);
    }
    return f;
}

/* Takes f's timer (a sleep's or a timeout's) out of the heap before it
 * fires; a traced pool records it as it would a timer that fired. false:
 * it is firing or has fired. */
static bool timer_take_back(fut_future *f)
{
    if (!fut__timer_remove(&f->pool->sched, &f->timer))
        return false;
    if (f->flags & FLAG_TRACED)
        fut__trace_unit(f->pool, NULL, 0, f->kind, f->fn.armed, fut__now_ns());
    return true;
}

/* The timeout's input completed: carry its outcome, unless the timer or
 * a cancel got there first. */
static void timeout_fire(fut_listener *l, fut_future *in)
{
    fut_future *t = CONTAINER(l, fut_future, node);
    if (timer_take_back(t))
        fut_release(t); /* the timer's reference; ours remains */
    if (claim(t, PHASE_WAITING)) {
        pass_on(t, in, in->value);
        complete(t, in->value, in->error, false);
    }
    drop_task_ref(t);
}

/* Timer thread: a sleep is done, or a timeout has expired. */
void fut__timer_fired(fut_timer *timer)
{
    fut_future *f = CONTAINER(timer, fut_future, timer);
    fut_pool *pool = f->pool;
    if (pool->trace_path)
        fut__trace_record(&pool->timer_trace, NULL, NULL, 0, f->kind,
                          f->fn.armed, fut__now_ns());
    if (claim(f, PHASE_WAITING)) {
        bool timeout = f->kind == KIND_TIMEOUT;
        bool cancelled = atomic_load_explicit(&pool->cancel_all,
                                              memory_order_relaxed);
        /* NULL when the input completed just now and dropped it. */
        fut_future *in = timeout ? borrow_input(f) : NULL;
        if (in) { /* a timeout that fires cancels its input, first */
            fut_cancel(in);
            fut_release(in);
        }
        if (cancelled) /* fut_pool_shutdown past its deadline */
            atomic_fetch_add(&pool->timers_cancelled, 1);
        complete(f, NULL, cancelled ? ECANCELED : timeout ? ETIMEDOUT : 0,
                 true);
        return;
    }
    fut_release(f); /* the timer's reference */
}

fut_future *fut_timeout(fut_future *f, uint64_t ms)
{
    if (!f)
        return &s_einval;
    FUT_CHECK_FUTURE(f, "fut_timeout");
    if (fut_is_ready(f) || !f->pool)
        return f; /* a complete future needs no timer */
    if (fut__inherited(f->pool)) {
        fut_release(f);
        return &s_inherited;
    }
    /* + the timer's reference, + the listener's (the task reference) */
    fut_future *t =
        future_new(f->pool, KIND_TIMEOUT, timer_flags(f->pool), 0, 3);
    if (!t) { /* f can no longer be bounded, nor reached: stop it */
        fut_cancel(f);
        fut_release(f);
        return &s_enomem;
    }
    t->input = f;
    t->node.fire = timeout_fire;
    int err = timer_add(t, ms);
    if (err) {
        if (err == ENOMEM)
            fut_cancel(f); /* as above; t still holds f */
        claim(t, PHASE_WAITING);
        complete(t, NULL, err, true); /* the timer's reference */
        drop_task_ref(t);
        return t;
    }
    if (!fut__listen(f, &t->node))
        timeout_fire(&t->node, f);
    return t;
}

/* ---- fut_fd_wait -------------------------------------------------------- */

/* The epoll flags of a wait, and the FUT_FD_ flags of what happened. */
static uint32_t epoll_events(unsigned events)
{
    return (events & FUT_FD_READ ? EPOLLIN | EPOLLRDHUP : 0) |
           (events & FUT_FD_WRITE ? EPOLLOUT : 0);
}

static unsigned fd_flags(uint32_t revents)
{
    return (revents & EPOLLIN ? FUT_FD_READ : 0) |
           (revents & EPOLLOUT ? FUT_FD_WRITE : 0) |
           (revents & EPOLLERR ? FUT_FD_ERROR : 0) |
           (revents & (EPOLLHUP | EPOLLRDHUP) ? FUT_FD_HANGUP : 0);
}

void fut__io_fired(fut_io_item *it)
{
    fut_future *f = (fut_future *)(void *)((char *)it - ALL_OFFSET);
    if (claim(f, PHASE_WAITING)) {
        complete(f, (void *)(uintptr_t)fd_flags(it->revents), 0, true);
        return;
    }
    fut_release(f); /* the registration's reference */
}

fut_future *fut_fd_wait(fut_pool *pool, int fd, unsigned events)
{
    if (!pool || fd < 0 || !(events & (FUT_FD_READ | FUT_FD_WRITE)) ||
        (events & ~(unsigned)(FUT_FD_READ | FUT_FD_WRITE)))
        return &s_einval;
    if (fut__inherited(pool))
        return &s_inherited;
    /* + the registration's reference */
    fut_future *f = future_new(pool, KIND_FD, 0, 0, 2);
    if (!f)
        return &s_enomem;
    /* An outside thread counts itself busy until the wait is armed, so
     * that destroy, which cancels armed waits, cannot miss it. */
    bool outside = !fut__sched_privileged(&pool->sched);
    int err = outside ? fut__sched_enter(&pool->sched) : 0;
    bool entered = outside && !err;
    if (!err)
        err = fut__io_add(&pool->io, io_item(f), fd, epoll_events(events));
    if (entered)
        fut__sched_leave(&pool->sched);
    if (err) {
        claim(f, PHASE_WAITING);
        complete(f, NULL, err, true);
    }
    return f;
}

size_t fut__cancel_fd_waits(fut_pool *pool)
{
    size_t n = 0;
    fut_io_item *it;
    while ((it = fut__io_take_one(&pool->io))) {
        fut_future *f = (fut_future *)(void *)((char *)it - ALL_OFFSET);
        if (claim(f, PHASE_WAITING)) {
            complete(f, NULL, ECANCELED, true);
            n++;
        } else {
            fut_release(f); /* a cancel got there first */
        }
    }
    return n;
}

/* ---- fut_all ----------------------------------------------------------- */

struct all_node {
    fut_listener l;
    fut_future *all;
};

struct all_state {
    size_t bytes; /* of this state and its arrays: first, see future_free */
    atomic_size_t remaining;
    size_t n;
    fut_future **in;
    struct all_node *nodes;
    void **values; /* fut_all_values: the value, n of them; else NULL */
};

static struct all_state *all_state(fut_future *f)
{
    return (struct all_state *)(void *)((char *)f + ALL_OFFSET);
}

/* Whether f is a gathering fut_all (fut_all_values): its value is an
 * array inside it. */
static bool gathers(const fut_future *f)
{
    return f->kind == KIND_ALL && all_state((fut_future *)f)->values;
}

/* A gathering fut_all keeps its inputs while it lives, as the values in
 * its array are theirs; the others let go of them once complete. */
static void all_release_inputs(struct all_state *st)
{
    for (size_t i = 0; i < st->n; i++) {
        fut_future *in = st->in[i];
        st->in[i] = NULL;
        fut_release(in);
    }
}

/* fut_any: the first input to complete wins; the others may be
 * cancelled. Our count of `remaining` keeps `all` alive meanwhile. */
static void any_fire(fut_future *all, struct all_state *st, size_t index)
{
    if (!claim(all, PHASE_WAITING))
        return; /* another input won, or fut_any was cancelled */
    complete(all, (void *)(uintptr_t)index, 0, false);
    if (all->flags & FLAG_CANCEL_REST)
        for (size_t i = 0; i < st->n; i++)
            if (i != index)
                fut_cancel(st->in[i]);
}

static void all_fire(fut_listener *l, fut_future *in)
{
    (void)in;
    struct all_node *node = (struct all_node *)l;
    fut_future *all = node->all;
    struct all_state *st = all_state(all);
    if (all->flags & FLAG_FIRST)
        any_fire(all, st, (size_t)(node - st->nodes));
    FUT_HAPPENS_BEFORE(&st->remaining);
    if (atomic_fetch_sub_explicit(&st->remaining, 1, memory_order_acq_rel) != 1)
        return;
    FUT_HAPPENS_AFTER(&st->remaining);
    FUT_FORGET(&st->remaining);
    int error = 0;
    for (size_t i = 0; i < st->n && !error; i++)
        error = st->in[i]->error;
    if (!(all->flags & FLAG_FIRST) && claim(all, PHASE_WAITING)) {
        for (size_t i = 0; st->values && !error && i < st->n; i++)
            st->values[i] = st->in[i]->value;
        complete(all, error ? NULL : st->values, error, false);
    }
    if (!st->values)
        all_release_inputs(st);
    fut_release(all); /* the task reference */
}

/* fut_all, fut_all_values (gather) and fut_any (how: FLAG_FIRST and
 * maybe FLAG_CANCEL_REST). */
static fut_future *combine(fut_future *const futs[], size_t n,
                           unsigned char how, bool gather)
{
    if (n && !futs)
        return &s_einval;
    /* A count too large to track fails before any entry is read. */
    size_t per = sizeof(fut_future *) + sizeof(struct all_node) +
                 (gather ? sizeof(void *) : 0);
    if (n > (SIZE_MAX / 2 - sizeof(struct all_state)) / per)
        return &s_enomem;
    fut_pool *pool = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!futs[i])
            return &s_einval;
        FUT_CHECK_FUTURE(futs[i], how ? "fut_any" : "fut_all");
        if (!pool)
            pool = futs[i]->pool;
    }
    if (n == 0)
        return how ? &s_einval : &s_empty;
    size_t bytes = sizeof(struct all_state) + n * per;
    fut_future *all = future_new(pool, KIND_ALL, how, bytes, 2); /* + task */
    if (!all)
        return &s_enomem;
    struct all_state *st = all_state(all);
    st->bytes = bytes;
    st->n = n;
    st->nodes = (struct all_node *)(st + 1);
    st->in = (fut_future **)(st->nodes + n);
    st->values = gather ? (void **)(st->in + n) : NULL;
    atomic_init(&st->remaining, n);
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

fut_future *fut_all(fut_future *const futs[], size_t n)
{
    return combine(futs, n, 0, false);
}

fut_future *fut_all_values(fut_future *const futs[], size_t n)
{
    return combine(futs, n, 0, true);
}

fut_future *fut_any(fut_future *const futs[], size_t n, bool cancel_rest)
{
    return combine(futs, n, FLAG_FIRST | (cancel_rest ? FLAG_CANCEL_REST : 0),
                   false);
}

/* ---- Cancellation ------------------------------------------------------ */

/* Cancels f alone. On success with a continuation or timeout, *input is
 * its input, retained, for the caller to cancel next. */
static int cancel_one(fut_future *f, fut_future **input)
{
    *input = NULL;
    for (;;) {
        unsigned phase = phase_of(f);
        switch (phase) {
        case PHASE_WAITING:
        case PHASE_QUEUED:
            FUT_HOOK(FUT_HOOK_CANCEL_CLAIM, f);
            if (!claim(f, phase))
                continue; /* it moved on: look again */
            if (phase == PHASE_QUEUED)
                fut__stat_add(f->pool, STAT_QUEUED, -1);
            if (phase == PHASE_QUEUED ||
                (f->kind == KIND_THEN &&
                 !(f->flags & (FLAG_ORPHAN | FLAG_FOLLOWING))))
                fut__stat_add(f->pool, STAT_CANCELLED, 1);
            if (f->kind == KIND_THEN || f->kind == KIND_TIMEOUT)
                *input = borrow_input(f);
            if ((f->kind == KIND_SLEEP || f->kind == KIND_TIMEOUT) &&
                timer_take_back(f))
                fut_release(f); /* the timer's reference; ours remains */
            if (f->kind == KIND_FD &&
                fut__io_remove(&f->pool->io, io_item(f)))
                fut_release(f); /* the registration's; ours remains */
            complete(f, NULL, ECANCELED, false);
            return 0;
        case PHASE_RUNNING:
            FUT_HAPPENS_BEFORE(&f->state);
            atomic_fetch_or_explicit(&f->state, F_CANCEL, memory_order_relaxed);
            return fut_is_ready(f) ? EALREADY : EBUSY;
        default: return EALREADY;
        }
    }
}

int fut_cancel(fut_future *f)
{
    if (!f)
        return EINVAL;
    FUT_CHECK_FUTURE(f, "fut_cancel");
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
    if (fut__inherited(pool))
        return EOWNERDEAD;
    fut_future *f = future_new(pool, KIND_PLAIN, 0, 0, 2); /* + promise */
    if (!f)
        return ENOMEM;
    *promise = (fut_promise *)f;
    *future = f;
    return 0;
}

/* The promise's first use marks it (KEPT): a second is misuse, which must
 * not drop a reference that is not the promise's any more. */
static bool promise_first_use(fut_future *f, const char *call)
{
    (void)call;
    FUT_CHECK_FUTURE(f, call);
    if (f->pool && fut__inherited(f->pool))
        return false; /* the parent's: the caller says EOWNERDEAD */
    if (f->kind != KIND_PLAIN ||
        (atomic_fetch_or_explicit(&f->state, F_KEPT, memory_order_relaxed) &
         F_KEPT)) {
#ifdef FUT_CHECKED
        fut__misuse(call, f,
                    f->kind != KIND_PLAIN ? "not a promise"
                                          : "a promise kept (or rejected) "
                                            "already");
#endif
        return false;
    }
    return true;
}

static int promise_settle(fut_promise *promise, void *value, int error)
{
    fut_future *f = (fut_future *)promise;
    if (!promise_first_use(f, error ? "fut_promise_reject"
                                    : "fut_promise_resolve"))
        return f->pool && fut__inherited(f->pool) ? EOWNERDEAD : EINVAL;
    if (claim(f, PHASE_WAITING)) {
        complete(f, value, error, true);
        return 0;
    }
    fut_release(f);
    return EALREADY;
}

int fut_promise_resolve(fut_promise *promise, void *value)
{
    return promise ? promise_settle(promise, value, 0) : EINVAL;
}

int fut_promise_resolve_with(fut_promise *promise, void *value,
                             fut_free_fn value_free)
{
    fut_future *f = (fut_future *)promise;
    int rc = EINVAL;
    if (f && !promise_first_use(f, "fut_promise_resolve_with")) {
        rc = f->pool && fut__inherited(f->pool) ? EOWNERDEAD : EINVAL;
        f = NULL; /* and the value goes */
    }
    if (f && claim(f, PHASE_WAITING)) {
        if (value_free) { /* the completion is ours: nobody reads it yet */
            f->value_free = value_free;
            atomic_fetch_or_explicit(&f->state, F_EXTRA, memory_order_relaxed);
        }
        complete(f, value, 0, true);
        return 0;
    }
    if (f) {
        fut_release(f);
        rc = EALREADY;
    }
    if (value_free && value)
        value_free(value);
    return rc;
}

int fut__take(fut_future *f)
{
    fut_future *h = f; /* the future that frees the value, if any */
    while (atomic_load_explicit(&h->state, memory_order_acquire) & F_BORROWS)
        h = h->input;
    if (gathers(h))
        return EINVAL; /* the array is the future's */
    if (h->kind != KIND_STATIC &&
        (atomic_fetch_or_explicit(&h->state, F_TAKEN, memory_order_acq_rel) &
         F_TAKEN))
        return EALREADY;
    return 0;
}

int fut_promise_reject(fut_promise *promise, int error)
{
    return promise && error ? promise_settle(promise, NULL, error) : EINVAL;
}
