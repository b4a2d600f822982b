/*
 * fut-demo, minimal edition: spawn, continue, join, a promise, a failure.
 * (The four-pattern tokio demo replaces this once timers land.)
 */
#include <fut/fut.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

static int square(void *arg, void **value)
{
    uintptr_t x = (uintptr_t)arg;
    *value = (void *)(x * x);
    return 0;
}

static int plus_one(void *arg, void *input, void **value)
{
    (void)arg;
    *value = (void *)((uintptr_t)input + 1);
    return 0;
}

static int fails(void *arg, void **value)
{
    (void)arg;
    (void)value;
    return EIO;
}

int main(void)
{
    fut_pool *pool;
    int rc = fut_pool_create(&pool, NULL);
    if (rc) {
        fprintf(stderr, "fut_pool_create: %s\n", fut_strerror(rc));
        return 1;
    }
    printf("pool of %zu workers\n", fut_pool_threads(pool));

    fut_future *squares[5];
    for (uintptr_t i = 0; i < 5; i++)
        squares[i] =
            fut_then(fut_spawn(pool, square, (void *)(i + 1)), plus_one, NULL);
    int bad = 0;
    for (uintptr_t i = 0; i < 5; i++) {
        void *v;
        rc = fut_await(squares[i], &v);
        printf("(%lu^2)+1 = %lu\n", (unsigned long)(i + 1),
               (unsigned long)(uintptr_t)v);
        bad |= rc != 0 || (uintptr_t)v != (i + 1) * (i + 1) + 1;
    }
    fut_future *all = fut_all(squares, 5);
    rc = fut_await(all, NULL);
    printf("all five: %s\n", fut_strerror(rc));
    bad |= rc != 0;

    fut_promise *promise;
    fut_future *kept;
    if (fut_promise_create(pool, &promise, &kept) == 0) {
        fut_future *next = fut_then(kept, plus_one, NULL);
        fut_promise_resolve(promise, (void *)41);
        void *v;
        rc = fut_await(next, &v);
        printf("promise kept with 41, continuation gives %lu\n",
               (unsigned long)(uintptr_t)v);
        bad |= rc != 0 || (uintptr_t)v != 42;
        fut_release(next);
    }

    fut_future *failing =
        fut_then(fut_spawn(pool, fails, NULL), plus_one, NULL);
    rc = fut_await(failing, NULL);
    printf("a failing task's error reaches its continuation: %s\n",
           fut_strerror(rc));
    bad |= rc != EIO;

    fut_release(failing);
    fut_release(all);
    for (int i = 0; i < 5; i++)
        fut_release(squares[i]);
    fut_pool_destroy(pool);
    return bad;
}
