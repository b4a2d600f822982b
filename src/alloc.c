/*
 * Per-thread caches of small blocks. Each thread has one free list per
 * size class (56, 88 and 120 bytes: the sizes that fill glibc's 64-, 96-
 * and 128-byte chunks exactly); fut__free pushes on the freeing thread's
 * list, fut__alloc pops from the allocating thread's list, so a block
 * made on one thread and freed on another simply changes hands (the path
 * for remote frees), and neither side takes a lock or a locked
 * instruction. Bounds: a list holds at most CACHE_MAX blocks (beyond
 * that, free() at once); a worker that parks trims its lists to nothing,
 * so an idle pool gives its memory back; a thread's lists are freed when
 * it exits (a pthread key destructor).
 *
 * Builds for AddressSanitizer and fault injection cache nothing, so ASan
 * sees every use after free and every allocation is counted.
 */
#include "alloc.h"
#include "base.h"

#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__) || defined(FUT_FAULT_INJECTION)
#define CACHE_MAX 0
#else
#define CACHE_MAX 512
#endif

enum { CLASSES = 3 };
static const size_t class_size[CLASSES] = {56, 88, 120};

typedef struct block {
    struct block *next;
} block;

typedef struct cache {
    block *head[CLASSES];
    unsigned count[CLASSES];
    bool registered; /* with the key, for its destructor */
} cache;

static FUT_TLS cache tl_cache;
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_ok;

static int class_of(size_t size)
{
    for (int c = 0; c < CLASSES; c++)
        if (size <= class_size[c])
            return c;
    return -1;
}

static void drain(cache *c)
{
    for (int k = 0; k < CLASSES; k++) {
        while (c->head[k]) {
            block *b = c->head[k];
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

void *fut__alloc(size_t size)
{
    int k = class_of(size);
    if (k < 0)
        return malloc(size);
    cache *c = &tl_cache;
    block *b = c->head[k];
    if (b) {
        c->head[k] = b->next;
        c->count[k]--;
        return b;
    }
    return malloc(class_size[k]);
}

void fut__free(void *p, size_t size)
{
    int k = class_of(size);
    cache *c = &tl_cache;
    if (!p || k < 0 || c->count[k] + 1 > CACHE_MAX) {
        free(p);
        return;
    }
    if (!c->registered) {
        pthread_once(&key_once, make_key);
        if (!key_ok || pthread_setspecific(key, c) != 0) {
            free(p);
            return;
        }
        c->registered = true;
    }
    block *b = p;
    b->next = c->head[k];
    c->head[k] = b;
    c->count[k]++;
}

void fut__alloc_trim(void)
{
    drain(&tl_cache);
}
