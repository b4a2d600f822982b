/*
 * Fault injection, for test builds only (FUT_FAULT_INJECTION): every
 * allocation, free, and thread, mutex and condition variable creation
 * the library makes goes through here (base.h's macros), counted by its
 * call site (file and line). fut__fault_arm(site, k) makes that site's
 * call after the next k fail with what the system would return (NULL,
 * EAGAIN, ENOMEM), so a test can fail every call of every site; the live allocation count
 * shows a leak in any build. It also runs the test hooks of src/base.h.
 * It is test scaffolding, compiled into the fault build only (fut_faulty).
 */
#include "../src/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifdef FUT_FAULT_INJECTION
#undef malloc
#undef calloc
#undef realloc
#undef aligned_alloc
#undef strdup
#undef free
#undef pthread_create
#undef pthread_mutex_init
#undef pthread_cond_init

enum { MAX_SITES = 256 };
static struct {
    const char *file;
    int line;
} sites[MAX_SITES];
static atomic_int nsites;
static pthread_mutex_t sites_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int armed = -1; /* the site whose call fails, after */
static atomic_int skip;        /* this many of its calls succeed   */
static atomic_bool fired;
static atomic_long live;

/* The index of a call site, added on first sight. */
static int site_of(const char *file, int line)
{
    int n = atomic_load(&nsites);
    for (int i = 0; i < n; i++)
        if (sites[i].line == line && !strcmp(sites[i].file, file))
            return i;
    pthread_mutex_lock(&sites_lock);
    n = atomic_load(&nsites);
    int i = 0;
    while (i < n && !(sites[i].line == line && !strcmp(sites[i].file, file)))
        i++;
    if (i == n && n < MAX_SITES) {
        sites[n].file = file;
        sites[n].line = line;
        atomic_store(&nsites, n + 1);
    }
    pthread_mutex_unlock(&sites_lock);
    return i;
}

/* Whether this call, at file:line, is the armed one (it fails once). */
static bool fails(const char *file, int line)
{
    int site = site_of(file, line);
    int want = site;
    if (atomic_load(&armed) != site || atomic_fetch_sub(&skip, 1) > 0 ||
        !atomic_compare_exchange_strong(&armed, &want, -1))
        return false;
    atomic_store(&fired, true);
    return true;
}

void fut__fault_arm(int site, int calls_to_skip)
{
    atomic_store(&fired, false);
    atomic_store(&skip, calls_to_skip);
    atomic_store(&armed, site);
}

bool fut__fault_fired(void)
{
    return atomic_load(&fired);
}

int fut__fault_sites(void)
{
    return atomic_load(&nsites);
}

const char *fut__fault_site(int site, int *line)
{
    *line = sites[site].line;
    return sites[site].file;
}

long fut__fault_live(void)
{
    return atomic_load(&live);
}

static void (*_Atomic hooks[FUT_HOOKS])(void *);

void fut__hook_set(enum fut_hook hook, void (*fn)(void *arg))
{
    atomic_store(&hooks[hook], fn);
}

void fut__hook(enum fut_hook hook, void *arg)
{
    void (*fn)(void *) = atomic_load(&hooks[hook]);
    if (fn)
        fn(arg);
}

static void *counted(void *p)
{
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

void *fut__fault_malloc(size_t size, const char *file, int line)
{
    return fails(file, line) ? NULL : counted(malloc(size));
}

void *fut__fault_calloc(size_t n, size_t size, const char *file, int line)
{
    return fails(file, line) ? NULL : counted(calloc(n, size));
}

void *fut__fault_realloc(void *p, size_t size, const char *file, int line)
{
    if (fails(file, line))
        return NULL;
    void *q = realloc(p, size);
    return p ? q : counted(q);
}

void *fut__fault_aligned_alloc(size_t align, size_t size, const char *file,
                               int line)
{
    return fails(file, line) ? NULL : counted(aligned_alloc(align, size));
}

char *fut__fault_strdup(const char *s, const char *file, int line)
{
    return fails(file, line) ? NULL : counted(strdup(s));
}

void fut__fault_free(void *p)
{
    if (p)
        atomic_fetch_sub(&live, 1);
    free(p);
}

int fut__fault_thread(pthread_t *t, const pthread_attr_t *a,
                      void *(*fn)(void *), void *arg, const char *file,
                      int line)
{
    return fails(file, line) ? EAGAIN : pthread_create(t, a, fn, arg);
}

int fut__fault_mutex(pthread_mutex_t *m, const pthread_mutexattr_t *a,
                     const char *file, int line)
{
    return fails(file, line) ? ENOMEM : pthread_mutex_init(m, a);
}

int fut__fault_cond(pthread_cond_t *c, const pthread_condattr_t *a,
                    const char *file, int line)
{
    return fails(file, line) ? ENOMEM : pthread_cond_init(c, a);
}
#else
typedef int fut__no_fault_injection; /* ISO C: no empty translation unit */
#endif
