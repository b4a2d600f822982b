/*
 * What every module shares: the clock, condition variables on it, thread
 * names, the CPU count, work to do when a thread exits. Calls nothing
 * else of fut.
 */
#define _GNU_SOURCE
#include "base.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fut__cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!rc)
        rc = pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

#ifdef FUT_CHECKED
int fut__checked(int rc, int allowed, const char *call, const char *file,
                 int line)
{
    if (rc == 0 || rc == allowed)
        return rc;
    fprintf(stderr, "fut: %s failed at %s:%d: %s (corrupted memory?)\n", call,
            file, line, strerror(rc));
    abort();
}

void fut__misuse(const char *call, const void *handle, const char *what)
{
    if (handle)
        fprintf(stderr, "fut: misuse in %s(%p): %s\n", call, handle, what);
    else
        fprintf(stderr, "fut: broken invariant in %s: %s\n", call, what);
    abort();
}
#endif

uint64_t fut__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

FUT_TLS uint64_t fut__tl_id;

/* The first id of a new block for the calling thread. */
uint64_t fut__id_block(void)
{
    static atomic_uint_least64_t next = 0;
    return atomic_fetch_add_explicit(&next, FUT_ID_BLOCK,
                                     memory_order_relaxed) +
           1;
}

/* "<name>-<suffix>", the name cut at a character boundary so that the
 * whole fits the 15 bytes a thread name may have. */
void fut__thread_name(char out[16], const char *name, const char *suffix)
{
    size_t room = 15 - strlen(suffix);
    size_t keep = strnlen(name, room);
    if (keep == room) /* cut: step back to the start of a UTF-8 character */
        while (keep > 0 && ((unsigned char)name[keep] & 0xC0) == 0x80)
            keep--;
    memcpy(out, name, keep);
    strcpy(out + keep, suffix);
}

size_t fut__cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (size_t)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

/* ---- Work at thread exit ------------------------------------------------ */

#define EXIT_HOOKS 4

static FUT_TLS struct {
    void (*fn[EXIT_HOOKS])(void *);
    void *arg[EXIT_HOOKS];
    int n;
} tl_hooks;
static pthread_key_t hooks_key;
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;
static bool hooks_ok;

static void run_hooks(void *unused)
{
    (void)unused;
    for (int i = 0; i < tl_hooks.n; i++)
        tl_hooks.fn[i](tl_hooks.arg[i]);
    tl_hooks.n = 0;
}

static void make_hooks_key(void)
{
    hooks_ok = pthread_key_create(&hooks_key, run_hooks) == 0;
}

bool fut__at_thread_exit(void (*fn)(void *), void *arg)
{
    pthread_once(&hooks_once, make_hooks_key);
    if (!hooks_ok || tl_hooks.n == EXIT_HOOKS ||
        (tl_hooks.n == 0 && pthread_setspecific(hooks_key, &tl_hooks) != 0))
        return false;
    tl_hooks.fn[tl_hooks.n] = fn;
    tl_hooks.arg[tl_hooks.n++] = arg;
    return true;
}
