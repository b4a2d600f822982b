/*
 * The Chase-Lev work-stealing deque (src/deque.h): its order and growth
 * on one thread, then an owner against thieves, where every item must be
 * taken exactly once: by the owner's pop or by one thief's steal.
 *
 * Items are distinct integers i + 1 encoded as pointers (never NULL);
 * taken[i] counts how often item i + 1 came out of the deque.
 *
 * DEQUE_ITEMS sets the hammer's item count and DEQUE_ROUNDS the rounds of
 * the last-item race (defaults below); DEQUE_VERBOSE=1 prints how the
 * items were taken.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include "../src/deque.h"

#include <sched.h>
#include <stdio.h>

/* Ten million items in every build: even under ThreadSanitizer on two
 * cores the hammer took 12 to 29 s of the 120 s a test may run. */
#define DEQUE_ITEMS_DEFAULT  10000000
#define DEQUE_ROUNDS_DEFAULT 2000000

enum { THIEVES = 3 };

/* Check's ck_assert records its line on every success (a write to the
 * runner's file), far too slow for millions of operations and a lock
 * shared by the threads: hot loops check with this, which only calls
 * into Check on failure. */
#define REQUIRE(expr, ...)                                                     \
    do {                                                                       \
        if (!(expr))                                                           \
            ck_abort_msg(__VA_ARGS__);                                         \
    } while (0)

static void *item(size_t i)
{
    return (void *)(uintptr_t)(i + 1);
}

static size_t index_of(void *p)
{
    return (size_t)(uintptr_t)p - 1;
}

static size_t env_count(const char *name, size_t dflt)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return dflt;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    ck_assert_msg(*end == '\0' && v > 0, "%s=%s: not a positive count", name,
                  s);
    return (size_t)v;
}

/* The capacity of the current buffer (owner only). */
static size_t capacity(fut_deque *d)
{
    return atomic_load_explicit(&d->buf, memory_order_relaxed)->mask + 1;
}

static fut_deque deque_new(size_t cap)
{
    fut_deque d;
    ck_assert_int_eq(fut__deque_init(&d, cap), 0);
    return d;
}

/* ------------------------------------------------------------------ */
/* One thread                                                          */

START_TEST(empty)
{
    fut_deque d = deque_new(2);
    ck_assert_uint_eq(fut__deque_size(&d), 0);
    ck_assert_ptr_null(fut__deque_pop(&d));
    ck_assert_ptr_null(fut__deque_steal(&d));
    ck_assert(fut__deque_push(&d, item(0), false));
    ck_assert_uint_eq(fut__deque_size(&d), 1);
    ck_assert_ptr_eq(fut__deque_pop(&d), item(0));
    ck_assert_ptr_null(fut__deque_pop(&d));
    ck_assert_ptr_null(fut__deque_steal(&d));
    ck_assert(fut__deque_push(&d, item(1), false));
    ck_assert_ptr_eq(fut__deque_steal(&d), item(1));
    ck_assert_ptr_null(fut__deque_steal(&d));
    ck_assert_ptr_null(fut__deque_pop(&d));
    ck_assert_uint_eq(fut__deque_size(&d), 0);
    fut__deque_destroy(&d);
}
END_TEST

START_TEST(pop_lifo_steal_fifo)
{
    fut_deque d = deque_new(8);
    for (size_t i = 0; i < 5; i++)
        ck_assert(fut__deque_push(&d, item(i), false));
    ck_assert_uint_eq(fut__deque_size(&d), 5);
    ck_assert_ptr_eq(fut__deque_pop(&d), item(4));
    ck_assert_ptr_eq(fut__deque_steal(&d), item(0));
    ck_assert_ptr_eq(fut__deque_pop(&d), item(3));
    ck_assert_ptr_eq(fut__deque_steal(&d), item(1));
    ck_assert_uint_eq(fut__deque_size(&d), 1);
    ck_assert_ptr_eq(fut__deque_pop(&d), item(2));
    ck_assert_uint_eq(fut__deque_size(&d), 0);
    ck_assert_ptr_null(fut__deque_pop(&d));
    ck_assert_ptr_null(fut__deque_steal(&d));
    fut__deque_destroy(&d);
}
END_TEST

/* From capacity 2 to 100,000 items: nothing lost, order kept, the
 * oldest half stolen in FIFO order and the rest popped in LIFO order. */
START_TEST(growth_keeps_every_item)
{
    enum { N = 100000 };
    fut_deque d = deque_new(2);
    for (size_t i = 0; i < N; i++) {
        ck_assert(fut__deque_push(&d, item(i), false));
        ck_assert_uint_eq(fut__deque_size(&d), i + 1);
    }
    for (size_t i = 0; i < N / 2; i++)
        ck_assert_ptr_eq(fut__deque_steal(&d), item(i));
    ck_assert_uint_eq(fut__deque_size(&d), N - N / 2);
    for (size_t i = N; i-- > N / 2;)
        ck_assert_ptr_eq(fut__deque_pop(&d), item(i));
    ck_assert_uint_eq(fut__deque_size(&d), 0);
    ck_assert_ptr_null(fut__deque_pop(&d));
    ck_assert_ptr_null(fut__deque_steal(&d));
    fut__deque_destroy(&d);
}
END_TEST

/* Growth when top is not 0 and the live items wrap around the end of
 * the buffer; and a deque of capacity 1. */
START_TEST(growth_after_wraparound)
{
    fut_deque d = deque_new(4);
    size_t next = 0, oldest = 0;
    /* Walk the indices around the buffer many times without growing. */
    for (int round = 0; round < 1001; round++) {
        for (int k = 0; k < 3; k++)
            ck_assert(fut__deque_push(&d, item(next++), false));
        for (int k = 0; k < 3; k++)
            ck_assert_ptr_eq(fut__deque_steal(&d), item(oldest++));
    }
    /* Items from index 3003 (slot 3) on: the buffer holds slots 3, 0, 1,
     * 2 when full and grows with top not at slot 0, and again later. */
    for (int k = 0; k < 3; k++)
        ck_assert(fut__deque_push(&d, item(next++), false));
    for (int k = 0; k < 100; k++)
        ck_assert(fut__deque_push(&d, item(next++), false));
    ck_assert_uint_eq(fut__deque_size(&d), next - oldest);
    while (oldest < next)
        ck_assert_ptr_eq(fut__deque_steal(&d), item(oldest++));
    ck_assert_ptr_null(fut__deque_steal(&d));
    fut__deque_destroy(&d);

    d = deque_new(1);
    for (size_t i = 0; i < 3; i++)
        ck_assert(fut__deque_push(&d, item(i), false));
    ck_assert_ptr_eq(fut__deque_steal(&d), item(0));
    ck_assert_ptr_eq(fut__deque_pop(&d), item(2));
    ck_assert_ptr_eq(fut__deque_pop(&d), item(1));
    ck_assert_ptr_null(fut__deque_pop(&d));
    fut__deque_destroy(&d);
}
END_TEST

/* ------------------------------------------------------------------ */
/* An owner against thieves                                            */

typedef struct arena {
    fut_deque d;
    size_t n;               /* items */
    atomic_uchar *taken;    /* per item: how often it came out */
    atomic_bool done;       /* the owner pushes no more and has drained */
    atomic_int started;     /* thieves running */
    atomic_size_t steals;   /* items taken by thieves */
    atomic_size_t attempts; /* steal calls, empty or not */
    atomic_size_t bogus;    /* values taken that were never pushed */
    struct {
        _Alignas(64) atomic_size_t n; /* thief i's steal calls begun */
    } tries[THIEVES];
} arena;

static void arena_init(arena *a, size_t n, size_t cap)
{
    a->d = deque_new(cap);
    a->n = n;
    a->taken = calloc(n, sizeof(a->taken[0]));
    ck_assert_ptr_nonnull(a->taken);
    atomic_init(&a->done, false);
    atomic_init(&a->started, 0);
    atomic_init(&a->steals, 0);
    atomic_init(&a->attempts, 0);
    atomic_init(&a->bogus, 0);
    for (int i = 0; i < THIEVES; i++)
        atomic_init(&a->tries[i].n, 0);
}

static void take(arena *a, void *p)
{
    size_t i = index_of(p);
    /* A value that was never pushed (or a torn read): counted here, on
     * whichever thread took it, and failed by arena_check on the test's
     * own thread (Check's asserts are for that thread only). */
    if (i >= a->n) {
        atomic_fetch_add(&a->bogus, 1);
        return;
    }
    atomic_fetch_add_explicit(&a->taken[i], 1, memory_order_relaxed);
}

/* Steals until the owner is done and the deque is empty. */
static void *thief(void *arg)
{
    arena *a = arg;
    size_t stolen = 0, attempts = 0;
    int id = atomic_fetch_add(&a->started, 1);
    for (;;) {
        atomic_store_explicit(&a->tries[id].n, ++attempts,
                              memory_order_relaxed);
        void *p = fut__deque_steal(&a->d);
        if (p) {
            take(a, p);
            stolen++;
        } else if (atomic_load(&a->done) && fut__deque_size(&a->d) == 0) {
            break;
        }
    }
    atomic_fetch_add(&a->steals, stolen);
    atomic_fetch_add(&a->attempts, attempts);
    return NULL;
}

static void thieves_start(arena *a, pthread_t *t)
{
    for (int i = 0; i < THIEVES; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, thief, a), 0);
    while (atomic_load(&a->started) < THIEVES)
        sched_yield();
}

static void thieves_join(arena *a, pthread_t *t)
{
    atomic_store(&a->done, true);
    for (int i = 0; i < THIEVES; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
}

/* Every item taken exactly once; frees the arena. */
static void arena_check(arena *a, size_t pops)
{
    size_t missing = 0, twice = 0, first_missing = 0, first_twice = 0;
    for (size_t i = 0; i < a->n; i++) {
        unsigned c = atomic_load_explicit(&a->taken[i], memory_order_relaxed);
        if (c == 0 && missing++ == 0)
            first_missing = i;
        if (c > 1 && twice++ == 0)
            first_twice = i;
    }
    size_t steals = atomic_load(&a->steals);
    ck_assert_msg(atomic_load(&a->bogus) == 0,
                  "%zu values taken that were never pushed",
                  atomic_load(&a->bogus));
    ck_assert_msg(missing == 0,
                  "%zu items never taken, the first item %zu (pops %zu, "
                  "steals %zu)",
                  missing, first_missing + 1, pops, steals);
    ck_assert_msg(twice == 0,
                  "%zu items taken more than once, the first item %zu "
                  "(pops %zu, steals %zu)",
                  twice, first_twice + 1, pops, steals);
    ck_assert_uint_eq(pops + atomic_load(&a->steals), a->n);
    ck_assert_uint_eq(fut__deque_size(&a->d), 0);
    ck_assert_ptr_null(fut__deque_steal(&a->d));
    ck_assert_ptr_null(fut__deque_pop(&a->d));
    fut__deque_destroy(&a->d);
    free(a->taken);
}

/* Spins until some thief begins a steal call, or gives up after a few
 * thousand looks: this only makes the race likelier, and the result is
 * checked either way. A thief running on another core gets there in
 * nanoseconds. Waiting on with sched_yield when none is running cost the
 * owner a time slice behind the spinning thieves each time (2 cores:
 * 0.5 s became 30 s), so the owner goes on without. */
static void try_await_steal_call(arena *a)
{
    size_t seen[THIEVES];
    for (int k = 0; k < THIEVES; k++)
        seen[k] = atomic_load_explicit(&a->tries[k].n, memory_order_relaxed);
    for (int spins = 0; spins < 4096; spins++)
        for (int k = 0; k < THIEVES; k++)
            if (atomic_load_explicit(&a->tries[k].n, memory_order_relaxed) !=
                seen[k])
                return;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* The owner pushes bursts of 1..64 items and pops 0..64 times, from
 * capacity 4 (so the deque grows while thieves steal), against three
 * thieves stealing all along; then drains with pop. */
START_TEST(owner_against_thieves)
{
    arena a;
    arena_init(&a, env_count("DEQUE_ITEMS", DEQUE_ITEMS_DEFAULT), 4);
    pthread_t t[THIEVES];
    thieves_start(&a, t);

    uint64_t rng = 0x9e3779b97f4a7c15u;
    size_t next = 0, pops = 0, max_size = 0;
    while (next < a.n) {
        size_t burst = 1 + xorshift(&rng) % 64;
        for (size_t k = 0; k < burst && next < a.n; k++, next++) {
            bool sc = next & 1; /* both ways of publishing */
            REQUIRE(fut__deque_push(&a.d, item(next), sc), "push failed");
        }
        size_t size = fut__deque_size(&a.d);
        if (size > max_size)
            max_size = size;
        size_t npop = xorshift(&rng) % 65;
        for (size_t k = 0; k < npop; k++) {
            void *p = fut__deque_pop(&a.d);
            if (!p)
                break; /* empty, or a thief took the last one */
            take(&a, p);
            pops++;
        }
    }
    for (void *p; (p = fut__deque_pop(&a.d));) {
        take(&a, p);
        pops++;
    }
    /* pop's NULL: empty, or a thief won the last item; empty either way,
     * and only the owner could add more. */
    ck_assert_uint_eq(fut__deque_size(&a.d), 0);
    thieves_join(&a, t);
    if (getenv("DEQUE_VERBOSE"))
        fprintf(stderr,
                "deque hammer: %zu items, %zu popped, %zu stolen in %zu "
                "steal calls, largest size %zu, capacity %zu\n",
                a.n, pops, atomic_load(&a.steals), atomic_load(&a.attempts),
                max_size, capacity(&a.d));
    /* The deque outgrew its first buffer while the thieves ran (bursts
     * of up to 64 from capacity 4: with as many items as by default,
     * thieves cannot keep it that small). */
    if (a.n >= 100000)
        ck_assert_uint_gt(capacity(&a.d), 4);
    arena_check(&a, pops);
}
END_TEST

/* The owner pushes one item and pops it, so every pop is a pop of the
 * last item, while three thieves try to steal it. On odd rounds the owner
 * pops at once; on even rounds it first lets a thief begin a new steal
 * call, so that the steal and the pop overlap even where sanitizers make
 * the window narrow. */
START_TEST(last_item_race)
{
    arena a;
    arena_init(&a, env_count("DEQUE_ROUNDS", DEQUE_ROUNDS_DEFAULT), 2);
    pthread_t t[THIEVES];
    thieves_start(&a, t);

    size_t pops = 0;
    for (size_t i = 0; i < a.n; i++) {
        REQUIRE(fut__deque_push(&a.d, item(i), false), "push failed");
        if (i % 2 == 0)
            try_await_steal_call(&a);
        void *p = fut__deque_pop(&a.d);
        if (p) {
            REQUIRE(p == item(i), "round %zu: popped %p", i, p);
            take(&a, p);
            pops++;
        }
        /* Won or lost, the one item is gone. */
        REQUIRE(fut__deque_size(&a.d) == 0, "round %zu: size %zu", i,
                fut__deque_size(&a.d));
        REQUIRE(fut__deque_pop(&a.d) == NULL, "round %zu: popped twice", i);
    }
    thieves_join(&a, t);
    if (getenv("DEQUE_VERBOSE"))
        fprintf(stderr,
                "deque last-item race: %zu rounds, %zu popped, %zu stolen "
                "in %zu steal calls\n",
                a.n, pops, atomic_load(&a.steals), atomic_load(&a.attempts));
    arena_check(&a, pops);
}
END_TEST

static Suite *deque_suite(void)
{
    Suite *s = suite_create("deque");
    FUT_TCASE(s, "one thread", empty, pop_lifo_steal_fifo,
              growth_keeps_every_item, growth_after_wraparound);
    FUT_TCASE(s, "thieves", owner_against_thieves, last_item_race);
    return s;
}

FUT_TEST_MAIN(deque_suite)
