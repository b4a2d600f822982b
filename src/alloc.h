/*
 * Recycled memory for small fixed-size blocks (futures, work items): each
 * thread keeps a free list per size class, so a block freed and made
 * again on one thread costs no malloc and no locked instruction. See
 * alloc.c.
 */
#ifndef FUT_ALLOC_H
#define FUT_ALLOC_H

#include "base.h"

#include <stdlib.h>

/* No caching under ASan (it sees every use after free) nor with fault
 * injection (every allocation is counted). */
#if defined(__SANITIZE_ADDRESS__) || defined(FUT_FAULT_INJECTION)
#define FUT_CACHE_MAX 0
#else
#define FUT_CACHE_MAX 512
#endif

/* The size classes: the sizes that fill glibc's 64-, 96-, 128- and
 * 144-byte chunks exactly. */
#define FUT_CLASSES 4
static inline int fut__alloc_class(size_t size)
{
    return size <= 56    ? 0
           : size <= 88  ? 1
           : size <= 120 ? 2
           : size <= 136 ? 3
                         : -1;
}

typedef struct fut_block {
    struct fut_block *next;  /* in a list                            */
    struct fut_block *batch; /* first block of a batch: the next batch
                                on the central list (alloc.c)          */
} fut_block;

typedef struct fut_cache {
    fut_block *head[FUT_CLASSES];
    unsigned count[FUT_CLASSES];
    bool registered; /* with the key, for its destructor */
    bool exited;     /* the destructor ran: cache nothing any more */
} fut_cache;

extern FUT_TLS fut_cache fut__tl_cache;

void *fut__alloc_slow(size_t size);
void fut__free_slow(void *p, size_t size);

#if defined(FUT_FAULT_INJECTION)
/* malloc and free (base.h's counted ones), each caller a call site of
 * its own, so that the fault tests fail each of them. */
#define fut__alloc(size)   malloc(size)
#define fut__free(p, size) ((void)(size), free(p))
#elif FUT_CACHE_MAX == 0
/* malloc and free, out of line: a caller that sees malloc's size would
 * take a kind's shorter future for an out-of-bounds access (gcc's
 * -Warray-bounds). */
void *fut__alloc(size_t size);
void fut__free(void *p, size_t size);
#else
/* A block of size bytes (any size; classes up to 136 bytes are cached),
 * uninitialized; NULL when out of memory. */
static inline void *fut__alloc(size_t size)
{
    int k = fut__alloc_class(size);
    fut_block *b = k >= 0 ? fut__tl_cache.head[k] : NULL;
    if (!b)
        return fut__alloc_slow(size);
    fut__tl_cache.head[k] = b->next;
    fut__tl_cache.count[k]--;
    return b;
}

/* Frees a block from fut__alloc of the same size, on any thread. */
static inline void fut__free(void *p, size_t size)
{
    int k = fut__alloc_class(size);
    fut_cache *c = &fut__tl_cache;
    if (k < 0 || !c->registered || c->count[k] + 1 > FUT_CACHE_MAX) {
        fut__free_slow(p, size);
        return;
    }
    fut_block *b = p;
    b->next = c->head[k];
    c->head[k] = b;
    c->count[k]++;
}
#endif

/* Gives the calling thread's cached blocks back to malloc. */
void fut__alloc_trim(void);

#endif /* FUT_ALLOC_H */
