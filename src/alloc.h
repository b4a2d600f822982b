/*
 * Recycled memory for small fixed-size blocks (futures, work items): each
 * thread keeps a free list per size class, so a block freed and made
 * again on one thread costs no malloc and no locked instruction. See
 * alloc.c.
 */
#ifndef FUT_ALLOC_H
#define FUT_ALLOC_H

#include <stddef.h>

/* A block of size bytes (any size; classes up to 120 bytes are cached),
 * uninitialized; NULL when out of memory. */
void *fut__alloc(size_t size);
/* Frees a block from fut__alloc of the same size, on any thread. */
void fut__free(void *p, size_t size);
/* Gives the calling thread's cached blocks back to malloc. */
void fut__alloc_trim(void);

#endif /* FUT_ALLOC_H */
