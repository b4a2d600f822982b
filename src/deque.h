/*
 * A Chase-Lev work-stealing deque of pointers: one owner pushes and pops
 * at the bottom, any thread steals from the top. Lock-free; it grows when
 * full, and keeps the buffers it outgrew until it is destroyed, because a
 * thief may still be reading one (total memory stays under twice the
 * largest buffer).
 *
 * The memory orders follow Lê, Pop, Cohen and Zappa Nardelli, "Correct
 * and efficient work-stealing for weak memory models" (PPoPP 2013), with
 * one change: where the paper puts a seq_cst fence next to a relaxed
 * access (pop's store of bottom, steal's loads of top and bottom), the
 * access itself is seq_cst. That gives the same store-load ordering
 * (on x86 a locked exchange instead of mfence, as cheap or cheaper), and
 * ThreadSanitizer, which does not model fences, sees every edge the proof
 * relies on, so it still checks the deque.
 *
 * Why each order is enough:
 *  - push: the slot is written relaxed, then bottom is stored with release;
 *    a thief that reads the new bottom (acquire, part of seq_cst) reads
 *    the slot and what the item points to as the owner wrote them. The
 *    owner reads top (acquire) only when the deque looks full by the top
 *    it read last (top_seen): top only grows, so a stale top overstates
 *    the items and never lets a push overwrite a slot a thief has not
 *    taken, and the acquire that read it ordered those thieves' reads of
 *    the slots before the owner's writes. Every other push leaves the
 *    thieves' cache line alone.
 *  - pop: bottom = b - 1 (seq_cst store) then top (seq_cst load): with
 *    steal's top-then-bottom seq_cst loads, the owner and a thief cannot
 *    both miss each other's claim; when one item is left, they race for
 *    it with a CAS on top.
 *  - steal: the CAS on top (seq_cst) claims index t; the slot read before
 *    it is only used when the CAS wins, i.e. when nobody took t before.
 *  - growth: the new buffer is published with a release store and read
 *    with acquire by thieves, so they see the copied slots.
 *
 * Indices are unbounded size_t counters (they wrap after 2^64 pushes);
 * bottom - top is the number of items.
 */
#ifndef FUT_DEQUE_H
#define FUT_DEQUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct fut_deque_buf fut_deque_buf;
struct fut_deque_buf {
    size_t mask;            /* capacity - 1, capacity a power of two */
    fut_deque_buf *older;   /* the buffer this one replaced: owner only */
    _Atomic(void *) slot[]; /* relaxed: ordered by top and bottom */
};

typedef struct fut_deque {
    _Alignas(64) atomic_size_t top;    /* next to steal; CAS by all   */
    _Alignas(64) atomic_size_t bottom; /* next free; stored by owner */
    _Atomic(fut_deque_buf *) buf;      /* release by owner, acquire  */
    size_t top_seen; /* owner only: top when last read, <= top */
} fut_deque;

static inline fut_deque_buf *fut__deque_buf_new(size_t cap)
{
    fut_deque_buf *b = malloc(sizeof(*b) + cap * sizeof(b->slot[0]));
    if (b) {
        b->mask = cap - 1;
        b->older = NULL;
    }
    return b;
}

/* cap: a power of two. Returns 0 or ENOMEM (12). */
static inline int fut__deque_init(fut_deque *d, size_t cap)
{
    fut_deque_buf *b = fut__deque_buf_new(cap);
    if (!b)
        return 12;
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    atomic_init(&d->buf, b);
    d->top_seen = 0;
    return 0;
}

/* No thread may use the deque any more. Items still in it are forgotten. */
static inline void fut__deque_destroy(fut_deque *d)
{
    fut_deque_buf *b = atomic_load_explicit(&d->buf, memory_order_relaxed);
    while (b) {
        fut_deque_buf *older = b->older;
        free(b);
        b = older;
    }
}

/* Owner: copies [t, b) into a buffer twice as large. */
static inline fut_deque_buf *fut__deque_grow(fut_deque *d, fut_deque_buf *old,
                                             size_t t, size_t b)
{
    fut_deque_buf *nb = fut__deque_buf_new(2 * (old->mask + 1));
    if (!nb)
        return NULL;
    for (size_t i = t; i != b; i++)
        atomic_store_explicit(&nb->slot[i & nb->mask],
                              atomic_load_explicit(&old->slot[i & old->mask],
                                                   memory_order_relaxed),
                              memory_order_relaxed);
    nb->older = old;
    atomic_store_explicit(&d->buf, nb, memory_order_release);
    return nb;
}

/* Owner only. false when the deque was full and could not grow (no
 * memory): the item was not pushed. seq_cst: publish it with a seq_cst
 * store instead of a release one (for a store-load handshake after it). */
static inline bool fut__deque_push(fut_deque *d, void *item, bool seq_cst)
{
    size_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    fut_deque_buf *buf = atomic_load_explicit(&d->buf, memory_order_relaxed);
    if (b - d->top_seen > buf->mask) { /* looks full: read top again */
        d->top_seen = atomic_load_explicit(&d->top, memory_order_acquire);
        if (b - d->top_seen > buf->mask &&
            !(buf = fut__deque_grow(d, buf, d->top_seen, b)))
            return false;
    }
    atomic_store_explicit(&buf->slot[b & buf->mask], item,
                          memory_order_relaxed);
    if (seq_cst)
        atomic_store_explicit(&d->bottom, b + 1, memory_order_seq_cst);
    else
        atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    return true;
}

/* Owner only: the newest item, or NULL when empty. */
static inline void *fut__deque_pop(fut_deque *d)
{
    size_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    size_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    if (b == t) /* empty; only the owner raises bottom, thieves only top */
        return NULL;
    b--;
    atomic_store_explicit(&d->bottom, b, memory_order_seq_cst);
    t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    if ((ptrdiff_t)(b - t) < 0) { /* a thief took the last one */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        return NULL;
    }
    fut_deque_buf *buf = atomic_load_explicit(&d->buf, memory_order_relaxed);
    void *item =
        atomic_load_explicit(&buf->slot[b & buf->mask], memory_order_relaxed);
    if (b == t) { /* the last one: race the thieves for it */
        if (!atomic_compare_exchange_strong_explicit(
                &d->top, &t, t + 1, memory_order_seq_cst, memory_order_relaxed))
            item = NULL;
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
    return item;
}

/* Any thread: the oldest item, or NULL when empty or when another thread
 * took it first (the caller may try again). */
static inline void *fut__deque_steal(fut_deque *d)
{
    size_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    size_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    if ((ptrdiff_t)(b - t) <= 0)
        return NULL;
    fut_deque_buf *buf = atomic_load_explicit(&d->buf, memory_order_acquire);
    void *item =
        atomic_load_explicit(&buf->slot[t & buf->mask], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(
            &d->top, &t, t + 1, memory_order_seq_cst, memory_order_relaxed))
        return NULL;
    return item;
}

/* Owner only: pops the newest item if it is `item`. false when the
 * newest is another item, or when a thief took `item` first. */
static inline bool fut__deque_pop_if(fut_deque *d, void *item)
{
    size_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    size_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    if (b == t)
        return false;
    fut_deque_buf *buf = atomic_load_explicit(&d->buf, memory_order_relaxed);
    if (atomic_load_explicit(&buf->slot[(b - 1) & buf->mask],
                             memory_order_relaxed) != item)
        return false; /* (a slot a thief emptied still names its item) */
    return fut__deque_pop(d) == item;
}

/* Any thread: how many items it holds; exact for the owner, a snapshot
 * for others. */
static inline size_t fut__deque_size(fut_deque *d)
{
    size_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    size_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    return (ptrdiff_t)(b - t) > 0 ? b - t : 0;
}

#endif /* FUT_DEQUE_H */
