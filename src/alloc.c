/*
 * Per-thread caches of small blocks. Each thread has one free list per
 * size class (56, 88 and 120 bytes: the sizes that fill glibc's 64-, 96-
 * and 128-byte chunks exactly); fut__free pushes on the freeing thread's
 * list, fut__alloc pops from the allocating thread's list, so a block
 * made on one thread and freed on another simply changes hands (the path
 * for remote frees), and neither side takes a lock or a locked
 * instruction. Bounds: a list holds at most FUT_CACHE_MAX blocks (beyond
 * that, free() at once); a worker that parks trims its lists to nothing,
 * so an idle pool gives its memory back; a thread's lists are freed when
 * it exits (a pthread key destructor).
 *
 * Builds for AddressSanitizer and fault injection cache nothing, so ASan
 * sees every use after free and every allocation is counted.
 */
#include "alloc.h"

static const size_t class_size[FUT_CLASSES] = {56, 88, 120};

FUT_TLS fut_cache fut__tl_cache;
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_ok;

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

static void on_thread_exit(void *arg)
{
    drain(arg);
}

static void make_key(void)
{
    key_ok = pthread_key_create(&key, on_thread_exit) == 0;
}

void *fut__alloc_slow(size_t size)
{
    int k = fut__alloc_class(size);
    return malloc(k < 0 ? size : class_size[k]);
}

/* The first free on a thread registers its cache for the destructor. */
void fut__free_slow(void *p, size_t size)
{
    int k = fut__alloc_class(size);
    fut_cache *c = &fut__tl_cache;
    if (!p || k < 0 || FUT_CACHE_MAX == 0 || c->registered) {
        free(p);
        return;
    }
    pthread_once(&key_once, make_key);
    if (!key_ok || pthread_setspecific(key, c) != 0) {
        free(p);
        return;
    }
    c->registered = true;
    fut__free(p, size);
}

void fut__alloc_trim(void)
{
    drain(&fut__tl_cache);
}
