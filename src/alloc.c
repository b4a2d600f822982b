/*
 * Per-thread caches of small blocks. Each thread has one free list per
 * size class (56, 88, 120 and 136 bytes: the sizes that fill glibc's
 * 64-, 96-, 128- and 144-byte chunks exactly); fut__free pushes on the freeing thread's
 * list and fut__alloc pops from the allocating thread's list, with no
 * lock and no locked instruction.
 *
 * Frees from other threads: blocks made on one thread are often freed on
 * another (a spawner's work items, run and freed by a thief). When a
 * thread's list reaches FUT_CACHE_MAX, half of it goes, as one batch, to
 * a central list per class (one lock per batch); a thread whose list is
 * empty takes a whole batch from there before it calls malloc. So blocks
 * flow back to the thread that makes them at one lock per BATCH blocks.
 *
 * Bounds: a thread's list holds at most FUT_CACHE_MAX blocks, the central
 * list at most CENTRAL_MAX batches (beyond that, free() at once); a worker
 * that parks gives its list and the central lists back to malloc, so an
 * idle pool holds no cached memory; a thread's list is freed when it
 * exits (a pthread key destructor).
 *
 * Builds for AddressSanitizer and fault injection cache nothing, so ASan
 * sees every use after free and every allocation is counted.
 */
#include "alloc.h"

FUT_TLS fut_cache fut__tl_cache;

static void drain(fut_cache *c)
{
    for (int k = 0; k < FUT_CLASSES; k++) {
        while (c->head[k]) {
            fut_block *b = c->head[k];
            c->head[k] = b->next;
            free(b);
        }
        c->count[k] = 0;
    }
}

#if FUT_CACHE_MAX
static const size_t class_size[FUT_CLASSES] = {56, 88, 120, 136};

#define BATCH       (FUT_CACHE_MAX / 2)
#define CENTRAL_MAX 64
static pthread_mutex_t central_lock = PTHREAD_MUTEX_INITIALIZER;
static fut_block *central[FUT_CLASSES];      /* batches: central_lock */
static atomic_uint central_len[FUT_CLASSES]; /* written under the lock;
                                                read without it as a hint */
static void on_thread_exit(void *arg)
{
    fut_cache *c = arg;
    drain(c);
    c->registered = false; /* later frees on this thread (other */
    c->exited = true;      /* destructors): straight to free()  */
}

/* A thread's cache is registered for its exit before it first holds a
 * block. false: it cannot be, and caches nothing. */
static bool register_cache(fut_cache *c)
{
    if (!c->registered && !c->exited)
        c->registered = fut__at_thread_exit(on_thread_exit, c);
    return c->registered;
}

/* The thread's list of class k is empty: take a batch, else malloc. */
void *fut__alloc_slow(size_t size)
{
    int k = fut__alloc_class(size);
    if (k < 0)
        return malloc(size);
    fut_block *b = NULL;
    if (atomic_load_explicit(&central_len[k], memory_order_relaxed) &&
        register_cache(&fut__tl_cache)) {
        pthread_mutex_lock(&central_lock);
        if ((b = central[k])) {
            central[k] = b->batch;
            atomic_fetch_sub_explicit(&central_len[k], 1, memory_order_relaxed);
        }
        pthread_mutex_unlock(&central_lock);
    }
    if (!b)
        return malloc(class_size[k]);
    fut__tl_cache.head[k] = b->next;
    fut__tl_cache.count[k] = BATCH - 1;
    return b;
}

/* Moves BATCH blocks of the full list of class k to the central list, or
 * frees them when that is full. */
static void give_batch(fut_cache *c, int k)
{
    fut_block *first = c->head[k], *last = first;
    for (unsigned i = 1; i < BATCH; i++)
        last = last->next;
    c->head[k] = last->next;
    c->count[k] -= BATCH;
    last->next = NULL;
    pthread_mutex_lock(&central_lock);
    bool keep = atomic_load_explicit(&central_len[k], memory_order_relaxed) <
                CENTRAL_MAX;
    if (keep) {
        first->batch = central[k];
        central[k] = first;
        atomic_fetch_add_explicit(&central_len[k], 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&central_lock);
    while (!keep && first) {
        fut_block *next = first->next;
        free(first);
        first = next;
    }
}

/* The list is full, or not registered yet. */
void fut__free_slow(void *p, size_t size)
{
    int k = fut__alloc_class(size);
    fut_cache *c = &fut__tl_cache;
    if (!p || k < 0 || !register_cache(c)) {
        free(p);
        return;
    }
    if (c->count[k] >= FUT_CACHE_MAX)
        give_batch(c, k);
    fut__free(p, size);
}

#endif

#if FUT_CACHE_MAX == 0 && !defined(FUT_FAULT_INJECTION)
void *fut__alloc(size_t size)
{
    return malloc(size);
}

void fut__free(void *p, size_t size)
{
    (void)size;
    free(p);
}
#endif

void fut__alloc_fork(bool after)
{
#if FUT_CACHE_MAX
    if (after)
        pthread_mutex_unlock(&central_lock);
    else
        pthread_mutex_lock(&central_lock);
#else
    (void)after;
#endif
}

void fut__alloc_trim(void)
{
    drain(&fut__tl_cache);
#if FUT_CACHE_MAX
    fut_block *batches[FUT_CLASSES];
    pthread_mutex_lock(&central_lock);
    for (int k = 0; k < FUT_CLASSES; k++) {
        batches[k] = central[k];
        central[k] = NULL;
        atomic_store_explicit(&central_len[k], 0, memory_order_relaxed);
    }
    pthread_mutex_unlock(&central_lock);
    for (int k = 0; k < FUT_CLASSES; k++) {
        for (fut_block *b = batches[k]; b;) {
            fut_block *next_batch = b->batch;
            while (b) {
                fut_block *next = b->next;
                free(b);
                b = next;
            }
            b = next_batch;
        }
    }
#endif
}
