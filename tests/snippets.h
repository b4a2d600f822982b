/* What the documentation's code blocks take as given (tests/snippets.awk
 * builds them into programs): the headers, a pool, and the simulated
 * operations the guide's patterns call. */
#ifndef FUT_SNIPPETS_H
#define FUT_SNIPPETS_H

#include <fut/fut.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

fut_pool *pool;

/* README: load a file, then parse it. */
static inline int load(void *arg, void **value)
{
    *value = arg; /* the file's name stands for its text */
    return 0;
}

static inline int parse(void *arg, void *input, void **value)
{
    (void)arg;
    *value = input;
    return strlen(input) > 0 ? 0 : EINVAL;
}

static inline int after_sleep(void *arg, void *input, void **value)
{
    (void)input;
    *value = arg;
    return 0;
}

/* The guide: a task that takes ms milliseconds, and one item's processing. */
static inline fut_future *async_task(fut_pool *p, int id, uint64_t ms)
{
    return fut_then(fut_sleep(p, ms), after_sleep, (void *)(intptr_t)id);
}

static inline fut_future *process_item(fut_pool *p, int i)
{
    return fut_then(fut_sleep(p, 50), after_sleep, (void *)(intptr_t)i);
}

#endif
