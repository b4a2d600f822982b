/*
 * Fault injection, for test builds only (FUT_FAULT_INJECTION): the
 * library's allocations and its thread, mutex and condition variable
 * creation are counted, and the one fut__fault_at names fails with what
 * the system would return (NULL, EAGAIN, ENOMEM). See internal.h.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#undef malloc
#undef calloc
#undef realloc
#undef aligned_alloc
#undef strdup
#undef pthread_create
#undef pthread_mutex_init
#undef pthread_cond_init

static atomic_long target; /* the call that fails; 0: none */
static atomic_long calls;  /* counted since target was set */

void fut__fault_at(long n)
{
    atomic_store(&calls, 0);
    atomic_store(&target, n);
}

long fut__fault_calls(void)
{
    return atomic_load(&calls);
}

static bool fails(void)
{
    long t = atomic_load(&target);
    return t > 0 && atomic_fetch_add(&calls, 1) + 1 == t;
}

void *fut__fault_malloc(size_t size)
{
    return fails() ? NULL : malloc(size);
}

void *fut__fault_calloc(size_t n, size_t size)
{
    return fails() ? NULL : calloc(n, size);
}

void *fut__fault_realloc(void *p, size_t size)
{
    return fails() ? NULL : realloc(p, size);
}

void *fut__fault_aligned_alloc(size_t align, size_t size)
{
    return fails() ? NULL : aligned_alloc(align, size);
}

char *fut__fault_strdup(const char *s)
{
    return fails() ? NULL : strdup(s);
}

int fut__fault_thread(pthread_t *t, const pthread_attr_t *a,
                      void *(*fn)(void *), void *arg)
{
    return fails() ? EAGAIN : pthread_create(t, a, fn, arg);
}

int fut__fault_mutex(pthread_mutex_t *m, const pthread_mutexattr_t *a)
{
    return fails() ? ENOMEM : pthread_mutex_init(m, a);
}

int fut__fault_cond(pthread_cond_t *c, const pthread_condattr_t *a)
{
    return fails() ? ENOMEM : pthread_cond_init(c, a);
}
