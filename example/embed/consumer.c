/* The smallest program that uses fut: one task, one continuation. The
 * three embedding examples build this same file. */
#include <fut/fut.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int answer(void *arg, void **value)
{
    (void)arg;
    *value = (void *)(uintptr_t)41;
    return 0;
}

static int plus_one(void *arg, void *input, void **value)
{
    (void)arg;
    *value = (void *)((uintptr_t)input + 1);
    return 0;
}

int main(void)
{
    fut_pool *pool;
    int rc = fut_pool_create(&pool, NULL);
    if (rc) {
        fprintf(stderr, "fut_pool_create: %s\n", fut_strerror(rc));
        return 1;
    }
    fut_future *f = fut_then(fut_spawn(pool, answer, NULL), plus_one, NULL);
    void *value;
    rc = fut_await(f, &value);
    fut_release(f);
    fut_pool_destroy(pool);
    printf("fut %s: %lu\n", fut_version(), (unsigned long)(uintptr_t)value);
    return rc == 0 && (uintptr_t)value == 42 ? 0 : 1;
}
