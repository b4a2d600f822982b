/*
 * fut_pool_dump: what a pool is doing at one moment, as text or JSON:
 * each worker and the unit it runs, the pool's counters, the soonest
 * timers and the continuations waiting on inputs that may never complete
 * by themselves.
 *
 * Workers publish what they run with relaxed stores (fut__user_begin):
 * the dump reads them without stopping anyone, so it is a snapshot, not
 * one instant across workers. It takes no lock it cannot have at once
 * (trylock): a debugger may have stopped the thread holding one, and
 * `call fut_pool_dump(pool, stderr, 0)` must not hang; what it skips for
 * that reason it says.
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define SHOWN_MAX 16 /* timers and continuations listed one by one */

typedef struct shown {
    fut_fn fn;
    char name[32];
    int kind;
    uint64_t deadline;
} shown;

typedef struct shown_list {
    shown item[SHOWN_MAX];
    size_t n, total;
    bool by_deadline; /* keep the soonest, in order */
    int rc;           /* EBUSY: the list's lock was held */
} shown_list;

static void seen(void *ctx, fut_fn fn, const char *name, int kind,
                 uint64_t deadline)
{
    shown_list *l = ctx;
    l->total++;
    size_t at = l->n;
    if (l->by_deadline) /* insertion into the SHOWN_MAX soonest */
        while (at > 0 && l->item[at - 1].deadline > deadline)
            at--;
    if (at >= SHOWN_MAX)
        return;
    size_t keep = l->n < SHOWN_MAX ? l->n : SHOWN_MAX - 1;
    memmove(&l->item[at + 1], &l->item[at], (keep - at) * sizeof(shown));
    shown *s = &l->item[at];
    s->fn = fn;
    s->kind = kind;
    s->deadline = deadline;
    s->name[0] = '\0';
    if (name)
        strncat(s->name, name, sizeof(s->name) - 1);
    if (l->n < SHOWN_MAX)
        l->n++;
}

static const char *kind_name(int kind)
{
    switch (kind) {
    case KIND_PLAIN: return "promise";
    case KIND_TASK: return "task";
    case KIND_THEN: return "continuation";
    case KIND_ALL: return "fut_all";
    case KIND_SLEEP: return "sleep";
    case KIND_TIMEOUT: return "timeout";
    case KIND_FD: return "fd wait";
    default: return "completed future";
    }
}

/* What one worker is doing. */
#define WAITS_MAX 8 /* waits shown per worker */

typedef struct wait_view {
    fut_fn fn;            /* the waiting unit's function */
    uint64_t id, waits_id; /* its id, and the id of what it waits for */
    unsigned nwaits;      /* what it waits for: see fut_frame */
} wait_view;

typedef struct worker_view {
    fut_fn fn;
    uint64_t id;
    wait_view waiting[WAITS_MAX]; /* units in a wait, the innermost first */
    unsigned nwaiting, depth;
    char name[32];
    uint64_t units; /* completed on this worker */
    long long queued;
    const char *state;
    double running_ms; /* how long it has run fn; -1: nothing */
} worker_view;

void fut__worker_running(fut_pool *pool, size_t i, fut_fn *fn, uint64_t *id,
                         uint64_t *since, char name[32])
{
    fut_local *l = &pool->local[i];
    /* fn, id, since: the reverse of show()'s stores; then fn and id once
     * more, unchanged, or the worker moved meanwhile: look again. Torn
     * four times in a row: shown as running nothing, this time. */
    for (int tries = 0;; tries++) {
        *fn = atomic_load_explicit(&l->running, memory_order_acquire);
        *id = atomic_load_explicit(&l->running_id, memory_order_acquire);
        *since = atomic_load_explicit(&l->since, memory_order_acquire);
        if (atomic_load_explicit(&l->running, memory_order_acquire) == *fn &&
            atomic_load_explicit(&l->running_id, memory_order_relaxed) == *id)
            break;
        if (tries == 3) {
            *fn = NULL;
            break;
        }
    }
    /* the name, when it is this unit's: its id before and after the
     * words (show_name writes 0, the words, then the id) */
    uint64_t words[4] = {0, 0, 0, 0};
    if (*id && atomic_load_explicit(&l->name_id, memory_order_acquire) == *id) {
        for (int k = 0; k < 4; k++)
            words[k] = atomic_load_explicit(&l->name[k], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&l->name_id, memory_order_relaxed) != *id)
            memset(words, 0, sizeof(words));
    }
    memcpy(name, words, 32);
    name[31] = '\0';
}

static void view_worker(fut_pool *pool, size_t i, const bool *parked,
                        const bool *blocked, worker_view *v)
{
    fut_local *l = &pool->local[i];
    fut_sched_worker *w = &pool->sched.workers[i];
    uint64_t since;
    fut__worker_running(pool, i, &v->fn, &v->id, &since, v->name);
    unsigned d = atomic_load_explicit(&l->depth, memory_order_acquire);
    v->depth = d;
    v->nwaiting = 0;
    for (unsigned k = d < FUT_FRAMES ? d : FUT_FRAMES;
         k-- > 0 && v->nwaiting < WAITS_MAX;) {
        const fut_frame *fr = &l->frame[k];
        v->waiting[v->nwaiting++] = (wait_view){
            atomic_load_explicit(&fr->fn, memory_order_relaxed),
            atomic_load_explicit(&fr->id, memory_order_relaxed),
            atomic_load_explicit(&fr->waits_id, memory_order_relaxed),
            atomic_load_explicit(&fr->nwaits, memory_order_relaxed)};
    }
    long long done = atomic_load_explicit(&l->stat[STAT_COMPLETED],
                                          memory_order_relaxed);
    v->units = done < 0 ? 0 : (uint64_t)done;
    size_t t = atomic_load_explicit(&w->deque.top, memory_order_relaxed);
    size_t b = atomic_load_explicit(&w->deque.bottom, memory_order_relaxed);
    v->queued = (long long)(b - t) < 0 ? 0 : (long long)(b - t);
    v->running_ms = -1;
    if (v->fn) {
        uint64_t now = fut__coarse_ns();
        v->running_ms = now > since ? (double)(now - since) / 1e6 : 0.0;
    }
    v->state = parked && parked[i]     ? "idle"
               : blocked && blocked[i] ? "blocked in a wait"
               : v->fn                 ? "running"
                                       : "looking for work";
}

static void write_text(FILE *out, fut_pool *pool, const fut_pool_stats *st,
                       const char *state, const worker_view *v,
                       const shown_list *timers, const shown_list *pending,
                       bool lists)
{
    uint64_t now = fut__now_ns();
    fprintf(out, "fut pool \"%s\": %zu worker%s, %s\n", pool->name,
            st->threads, st->threads == 1 ? "" : "s", state);
    fprintf(out,
            "  units: %llu spawned, %llu completed (%llu failed), %llu "
            "cancelled, %llu stolen; %llu queued; %llu timers pending\n",
            (unsigned long long)st->spawned, (unsigned long long)st->completed,
            (unsigned long long)st->failed, (unsigned long long)st->cancelled,
            (unsigned long long)st->stolen, (unsigned long long)st->queued,
            (unsigned long long)st->timers_pending);
    for (size_t i = 0; i < st->threads; i++) {
        fprintf(out, "  worker %zu (%s-%zu): %s", i, pool->name, i,
                v[i].state);
        if (v[i].fn) {
            fputs(", in ", out);
            fut__write_fn_name(out, v[i].fn);
            if (v[i].name[0])
                fprintf(out, " \"%s\"", v[i].name);
            if (v[i].id)
                fprintf(out, " #%llu", (unsigned long long)v[i].id);
            fprintf(out, " for %.0f ms", v[i].running_ms);
        }
        fprintf(out, "; %llu unit%s completed here, %lld queued on it\n",
                (unsigned long long)v[i].units, v[i].units == 1 ? "" : "s",
                v[i].queued);
        for (unsigned k = 0; k < v[i].nwaiting; k++) {
            const wait_view *wv = &v[i].waiting[k];
            fputs(k ? "    under it, in a wait: " : "    in a wait: ", out);
            fut__write_fn_name(out, wv->fn);
            if (wv->id)
                fprintf(out, " #%llu", (unsigned long long)wv->id);
            if (wv->waits_id)
                fprintf(out, ", for #%llu", (unsigned long long)wv->waits_id);
            else if (wv->nwaits > 1)
                fprintf(out, ", for any of %u", wv->nwaits);
            fputc('\n', out);
        }
        if (v[i].depth > v[i].nwaiting)
            fprintf(out, "    ... %u waits in all\n", v[i].depth);
    }
    if (!lists)
        fputs("  (worker states unknown: a scheduler lock was held)\n", out);
    if (timers->rc)
        fputs("  timers: not listed (their lock was held)\n", out);
    else if (timers->total)
        fprintf(out, "  timers (%zu, soonest first):", timers->total);
    for (size_t i = 0; i < timers->n; i++) {
        const shown *t = &timers->item[i];
        double in_ms =
            t->deadline > now ? (double)(t->deadline - now) / 1e6 : 0.0;
        fprintf(out, "%s %s due in %.0f ms", i ? ";" : "", kind_name(t->kind),
                in_ms);
    }
    if (timers->total)
        fprintf(out, "%s\n", timers->total > timers->n ? "; ..." : "");
    if (pending->rc)
        fputs("  continuations: not listed (their lock was held)\n", out);
    else if (pending->total)
        fprintf(out,
                "  continuations waiting on a promise, fut_all or timeout "
                "(%zu):\n",
                pending->total);
    for (size_t i = 0; i < pending->n; i++) {
        const shown *c = &pending->item[i];
        fputs("    ", out);
        fut__write_fn_name(out, c->fn);
        if (c->name[0])
            fprintf(out, " \"%s\"", c->name);
        fprintf(out, ", on a %s\n", kind_name(c->kind));
    }
    if (pending->total > pending->n)
        fputs("    ...\n", out);
}

static void write_json(FILE *out, fut_pool *pool, const fut_pool_stats *st,
                       const char *state, const worker_view *v,
                       const shown_list *timers, const shown_list *pending,
                       bool lists)
{
    uint64_t now = fut__now_ns();
    fputs("{\"pool\":\"", out);
    fut__write_escaped(out, pool->name);
    fprintf(out,
            "\",\"threads\":%zu,\"state\":\"%s\",\"units\":{\"spawned\":%llu,"
            "\"completed\":%llu,\"failed\":%llu,\"cancelled\":%llu,"
            "\"stolen\":%llu,\"queued\":%llu,\"timers_pending\":%llu},"
            "\"worker_states_known\":%s,\"workers\":[",
            st->threads, state, (unsigned long long)st->spawned,
            (unsigned long long)st->completed, (unsigned long long)st->failed,
            (unsigned long long)st->cancelled, (unsigned long long)st->stolen,
            (unsigned long long)st->queued,
            (unsigned long long)st->timers_pending, lists ? "true" : "false");
    for (size_t i = 0; i < st->threads; i++) {
        fprintf(out, "%s{\"index\":%zu,\"state\":\"%s\",\"function\":",
                i ? "," : "", i, v[i].state);
        if (v[i].fn) {
            fputc('"', out);
            fut__write_fn_name(out, v[i].fn);
            fputs("\",\"name\":\"", out);
            fut__write_escaped(out, v[i].name);
            fprintf(out, "\",\"id\":%llu,\"running_ms\":%.0f",
                    (unsigned long long)v[i].id, v[i].running_ms);
        } else {
            fputs("null,\"name\":null,\"id\":0", out);
        }
        fprintf(out, ",\"units\":%llu,\"queued\":%lld,\"waits\":%u,"
                     "\"waiting\":[",
                (unsigned long long)v[i].units, v[i].queued, v[i].depth);
        for (unsigned k = 0; k < v[i].nwaiting; k++) {
            const wait_view *wv = &v[i].waiting[k];
            fputs(k ? ",{\"function\":\"" : "{\"function\":\"", out);
            fut__write_fn_name(out, wv->fn);
            fprintf(out, "\",\"id\":%llu,\"for_id\":%llu,\"for_any_of\":%u}",
                    (unsigned long long)wv->id,
                    (unsigned long long)wv->waits_id, wv->nwaits);
        }
        fputs("]}", out);
    }
    fprintf(out, "],\"timers\":{\"listed\":%s,\"total\":%zu,\"soonest\":[",
            timers->rc ? "false" : "true", timers->total);
    for (size_t i = 0; i < timers->n; i++) {
        const shown *t = &timers->item[i];
        fprintf(out, "%s{\"kind\":\"%s\",\"due_ms\":%.3f}", i ? "," : "",
                kind_name(t->kind),
                t->deadline > now ? (double)(t->deadline - now) / 1e6 : 0.0);
    }
    fprintf(out,
            "]},\"continuations\":{\"listed\":%s,\"total\":%zu,\"first\":[",
            pending->rc ? "false" : "true", pending->total);
    for (size_t i = 0; i < pending->n; i++) {
        const shown *c = &pending->item[i];
        fprintf(out, "%s{\"function\":\"", i ? "," : "");
        fut__write_fn_name(out, c->fn);
        fputs("\",\"name\":\"", out);
        fut__write_escaped(out, c->name);
        fprintf(out, "\",\"input\":\"%s\"}", kind_name(c->kind));
    }
    fputs("]}}\n", out);
}

int fut_pool_dump(fut_pool *pool, FILE *out, unsigned flags)
{
    if (!pool || !out || (flags & ~(unsigned)FUT_DUMP_JSON))
        return EINVAL;
    if (fut__inherited(pool))
        return EOWNERDEAD;
    fut_pool_stats st;
    fut_pool_stats_get(pool, &st);
    fut_sched *s = &pool->sched;
    const char *state = atomic_load(&s->closed)    ? "closed (being destroyed)"
                        : atomic_load(&s->closing) ? "closing (being destroyed)"
                                                   : "accepting work";
    /* Parked workers, and workers blocked in a wait: the scheduler's lists. */
    bool *parked = calloc(2 * st.threads, sizeof(bool));
    bool *blocked = parked ? parked + st.threads : NULL;
    bool lists = parked && pthread_mutex_trylock(&s->sleep_lock) == 0;
    if (lists) {
        for (fut_sched_worker *w = s->idle; w; w = w->link)
            parked[w->index] = true;
        for (fut_sched_worker *w = s->waiting; w; w = w->link)
            blocked[w->index] = true;
        pthread_mutex_unlock(&s->sleep_lock);
    }
    worker_view *v = malloc(st.threads * sizeof(*v));
    shown_list *timers = calloc(2, sizeof(shown_list));
    if (!v || !timers) {
        free(parked);
        free(v);
        free(timers);
        return ENOMEM;
    }
    shown_list *pending = timers + 1;
    for (size_t i = 0; i < st.threads; i++)
        view_worker(pool, i, lists ? parked : NULL, lists ? blocked : NULL,
                    &v[i]);
    timers->by_deadline = true;
    timers->rc = fut__timers_visit(pool, seen, timers);
    pending->rc = fut__pending_visit(pool, seen, pending);
    if (flags & FUT_DUMP_JSON)
        write_json(out, pool, &st, state, v, timers, pending, lists);
    else
        write_text(out, pool, &st, state, v, timers, pending, lists);
    free(parked);
    free(v);
    free(timers);
    return fflush(out) == 0 && !ferror(out) ? 0 : EIO;
}

/* ---- Cycles of waits -------------------------------------------------- */

/* The question: would the caller's wait (its frame `me`, the top one on
 * its worker) never end? A frame cannot resume while the frame above it
 * on its worker has not returned, nor before what it waits for
 * completes: one future or group (fut_join_all shows a frame per future
 * it waits for), or any one of several (fut_await_any). A future cannot
 * complete while the unit running it is stuck in a frame; the caller's
 * own unit, and the units it runs below it, not before the caller
 * returns. The frames that can never resume are the largest set S in
 * which every frame has the frame above it in S, or waits for a target
 * held in S (for an any-of wait: every one of its targets); a target is
 * held in S when a frame of a unit running it is in S (or, for the
 * caller's own units, when me is). The walk starts with every frame in S
 * and takes out, until nothing changes, each frame that has neither;
 * the wait never ends when me is left. What cannot be known counts as
 * able to move on: a target no frame runs (queued, running, a promise,
 * a continuation not run yet, another pool's unit), a wait for something
 * else, more than FUT_FRAME_ANY futures, or more than WALK_MAX frames in
 * all. Frames are read once, each field as it is at that moment; their
 * pointers are only compared.
 *
 * Cost: the frames' units are read once and indexed; then only what the
 * caller's wait depends on is followed. Unless that reaches a wait for
 * one of the caller's own units, no chain leads back to it, and there is
 * no cycle to look for (a deadlock among other units, which the caller's
 * wait would join, is not reported to it): in nested fork-join, where
 * every wait is for units further down, the walk ends there. */
#define WALK_MAX 256
#define WALK_SMALL 32 /* frames a walk holds in the stack; more: malloc */
#define NONE 0xffff

typedef struct walk_node {
    const fut_frame *frame;
    const void *unit;
    const void *waits[FUT_FRAME_ANY];
    unsigned nwaits;
    uint16_t same;   /* the next node running the same unit, or NONE */
    bool above;      /* the next node is the frame above it, on its worker */
    bool reached;    /* a chain of waits leads here from the caller's */
    bool in;         /* in S */
} walk_node;

typedef struct walk {
    walk_node *node;
    uint16_t *slot; /* unit -> its first node (open addressing) */
    uint16_t *todo;
    size_t n, nslots, ntodo, me;
    uint64_t mine; /* fut__mine_filter() */
    bool mine_reached;
} walk;

static size_t slot_of(const walk *w, const void *unit)
{
    uintptr_t a = (uintptr_t)unit;
    size_t i = (a >> 4 ^ a >> 13) & (w->nslots - 1);
    while (w->slot[i] != NONE && w->node[w->slot[i]].unit != unit)
        i = (i + 1) & (w->nslots - 1);
    return i;
}

/* The first node running unit, or NONE. */
static uint16_t runners(const walk *w, const void *unit)
{
    return unit ? w->slot[slot_of(w, unit)] : NONE;
}

static bool mine(const walk *w, const void *t)
{
    return (w->mine & fut__mine_bit(t)) && fut__mine(t);
}

static void reach(walk *w, size_t x)
{
    if (!w->node[x].reached) {
        w->node[x].reached = true;
        w->todo[w->ntodo++] = (uint16_t)x;
    }
}

/* Reads a node's wait (once it is reached: only those are needed). */
static void load_waits(walk_node *x)
{
    unsigned n = atomic_load_explicit(&x->frame->nwaits, memory_order_relaxed);
    x->nwaits = n <= FUT_FRAME_ANY ? n : 0;
    for (unsigned j = 0; j < x->nwaits; j++)
        x->waits[j] =
            atomic_load_explicit(&x->frame->waits[j], memory_order_relaxed);
}

/* Whether target t is held in S: run by a node in S, or the caller's own
 * while the caller's node is in S. */
static bool held(const walk *w, const void *t)
{
    if (mine(w, t))
        return w->node[w->me].in;
    for (uint16_t r = runners(w, t); r != NONE; r = w->node[r].same)
        if (w->node[r].in)
            return true;
    return false;
}

/* The walk over w->n nodes (their units read): whether the caller's node
 * is stuck. */
static bool walk_frames(walk *w)
{
    memset(w->slot, 0xff, w->nslots * sizeof(*w->slot));
    for (size_t m = 0; m < w->n; m++) {
        walk_node *x = &w->node[m];
        size_t at = slot_of(w, x->unit);
        x->same = w->slot[at];
        if (x->unit)
            w->slot[at] = (uint16_t)m;
    }
    /* What the caller's wait depends on, from its own node on: a node
     * depends on the node above it and on those running its targets. */
    reach(w, w->me);
    while (w->ntodo) {
        walk_node *x = &w->node[w->todo[--w->ntodo]];
        load_waits(x);
        for (unsigned j = 0; j < x->nwaits; j++) {
            if (mine(w, x->waits[j]))
                w->mine_reached = true;
            for (uint16_t r = runners(w, x->waits[j]); r != NONE;
                 r = w->node[r].same)
                reach(w, r);
        }
        if (x->above)
            reach(w, (size_t)(x - w->node) + 1);
    }
    if (!w->mine_reached)
        return false; /* no chain leads back: the common case */
    /* The largest S among the reached nodes: start with all of them, take
     * out each that has neither a node above it in S nor its targets
     * held, until nothing changes. */
    for (size_t m = 0; m < w->n; m++)
        w->node[m].in = w->node[m].reached;
    for (bool changed = true; changed && w->node[w->me].in;) {
        changed = false;
        for (size_t m = w->n; m-- > 0;) { /* top frames first: a worker's
                                             stack clears in one pass */
            walk_node *x = &w->node[m];
            if (!x->in || (x->above && w->node[m + 1].in))
                continue;
            bool stuck = x->nwaits > 0;
            for (unsigned j = 0; j < x->nwaits && stuck; j++)
                stuck = held(w, x->waits[j]);
            if (!stuck)
                x->in = false, changed = true;
        }
    }
    return w->node[w->me].in;
}

static bool cycle_once(fut_pool *pool, const fut_frame *me_frame)
{
    size_t threads = pool->sched.threads, total = 0;
    unsigned depth[WALK_MAX]; /* per worker, as read once */
    if (threads > WALK_MAX)
        return false; /* too many to look at: no cycle found */
    /* Each unit pushed its frame before it got here (a store of depth);
     * of two units that push and then check, at least one sees the
     * other's frame: their fences are ordered, and the later one's loads
     * come after the earlier one's store. */
    atomic_thread_fence(memory_order_seq_cst);
    for (size_t i = 0; i < threads; i++) {
        unsigned d =
            atomic_load_explicit(&pool->local[i].depth, memory_order_acquire);
        depth[i] = d < FUT_FRAMES ? d : FUT_FRAMES;
        total += depth[i];
    }
    if (total > WALK_MAX)
        return false;
    walk_node small_nodes[WALK_SMALL];
    uint16_t small_slots[2 * WALK_SMALL], small_todo[WALK_SMALL];
    walk w = {small_nodes, small_slots, small_todo, 0, 2 * WALK_SMALL, 0,
              NONE, fut__mine_filter(), false};
    void *block = NULL;
    if (total > WALK_SMALL) {
        w.nslots = 2 * WALK_MAX;
        block = malloc(WALK_MAX * sizeof(walk_node) +
                       (w.nslots + WALK_MAX) * sizeof(uint16_t));
        if (!block) /* a walk that cannot get memory finds no cycle */
            return false;
        w.node = block;
        w.slot = (uint16_t *)(void *)(w.node + WALK_MAX);
        w.todo = w.slot + w.nslots;
    }
    for (size_t i = 0; i < threads; i++) {
        for (unsigned k = 0; k < depth[i]; k++) {
            walk_node *x = &w.node[w.n];
            x->frame = &pool->local[i].frame[k];
            x->unit = atomic_load_explicit(&pool->local[i].frame_unit[k],
                                           memory_order_relaxed);
            x->above = k + 1 < depth[i];
            x->reached = x->in = false;
            x->nwaits = 0;
            if (x->frame == me_frame)
                w.me = w.n;
            w.n++;
        }
    }
    /* not seen (too deep to show): no cycle found */
    bool cycle = w.me != NONE && walk_frames(&w);
    free(block);
    return cycle;
}

static bool all_pending(fut_future *const futs[], size_t n)
{
    for (size_t j = 0; futs && j < n; j++)
        if (fut__is_ready(futs[j]))
            return false;
    return true;
}

bool fut__wait_closes_cycle(fut_frame *me, fut_future *const futs[], size_t n)
{
    fut_sched_worker *w = fut__sched_any_self();
    fut_pool *pool = (fut_pool *)(void *)w->sched; /* sched is its first */
    if (!cycle_once(pool, me))
        return false;
    /* Seen again a moment later, with the futures still pending: the
     * units of a real cycle cannot move, while a chain read from frames
     * changing under us (a wait ending, a unit returning) does not last. */
    sched_yield();
    return all_pending(futs, n) && cycle_once(pool, me);
}
