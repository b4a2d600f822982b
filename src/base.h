/*
 * What every module of fut shares, the scheduler's included: the test
 * builds' fault injection, the valgrind annotations, and the clock.
 *
 * pthread return values, the rule for every module: calls that can fail
 * for reasons outside the program (pthread_create, the _init functions,
 * pthread_key_create, membarrier) are checked, and their error is
 * returned or a fallback taken. Lock, unlock, wait, signal, broadcast,
 * join and destroy on objects this library made, with default attributes,
 * from the thread that may make them, have no failure POSIX allows there:
 * one would mean corrupted memory. The checked build (FUT_CHECKED, which
 * the test builds use) checks them all and stops the program with a
 * message naming the call and where it was made; other builds do not.
 */
#ifndef FUT_BASE_H
#define FUT_BASE_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Happens-before edges that helgrind cannot see, because they are made by
 * C11 atomics (a release store read by an acquire load, a reference count
 * reaching zero), and counters whose relaxed races are by design. Only in
 * builds for valgrind (FUT_VALGRIND, scripts/valgrind.sh); no code
 * otherwise. */
#ifdef FUT_VALGRIND
#include <valgrind/helgrind.h>
#define FUT_HAPPENS_BEFORE(a) ANNOTATE_HAPPENS_BEFORE(a)
#define FUT_HAPPENS_AFTER(a)  ANNOTATE_HAPPENS_AFTER(a)
#define FUT_FORGET(a)         ANNOTATE_HAPPENS_BEFORE_FORGET_ALL(a)
#define FUT_RACY(a, n)        VALGRIND_HG_DISABLE_CHECKING(a, n)
#define FUT_UNRACY(a, n)      VALGRIND_HG_ENABLE_CHECKING(a, n)
#else
#define FUT_HAPPENS_BEFORE(a) ((void)0)
#define FUT_HAPPENS_AFTER(a)  ((void)0)
#define FUT_FORGET(a)         ((void)0)
#define FUT_RACY(a, n)        ((void)0)
#define FUT_UNRACY(a, n)      ((void)0)
#endif

#ifdef FUT_FAULT_INJECTION
/* Test builds only (tests/fault.c, tests/test_faults.c): every allocation, free
 * and thread, mutex and condition variable the library makes is counted
 * by call site (file and line), and the site fut__fault_arm names fails
 * one call as the system would. The system headers come first, so
 * the macros rename only our calls. */
#include <stdlib.h>
#include <string.h>
#define FUT_FAULT_SITE const char *file, int line
void fut__fault_arm(int site, int skip); /* its call after skip more fails */
bool fut__fault_fired(void);   /* the armed call has failed           */
int fut__fault_sites(void);    /* call sites seen so far              */
const char *fut__fault_site(int site, int *line);
long fut__fault_live(void); /* allocations not freed yet           */
void *fut__fault_malloc(size_t size, FUT_FAULT_SITE);
void *fut__fault_calloc(size_t n, size_t size, FUT_FAULT_SITE);
void *fut__fault_realloc(void *p, size_t size, FUT_FAULT_SITE);
void *fut__fault_aligned_alloc(size_t align, size_t size, FUT_FAULT_SITE);
char *fut__fault_strdup(const char *s, FUT_FAULT_SITE);
void fut__fault_free(void *p);
int fut__fault_thread(pthread_t *t, const pthread_attr_t *a,
                      void *(*fn)(void *), void *arg, FUT_FAULT_SITE);
int fut__fault_mutex(pthread_mutex_t *m, const pthread_mutexattr_t *a,
                     FUT_FAULT_SITE);
int fut__fault_cond(pthread_cond_t *c, const pthread_condattr_t *a,
                    FUT_FAULT_SITE);
#define FUT_HERE                   __FILE__, __LINE__
#define malloc(s)                  fut__fault_malloc(s, FUT_HERE)
#define calloc(n, s)               fut__fault_calloc(n, s, FUT_HERE)
#define realloc(p, s)              fut__fault_realloc(p, s, FUT_HERE)
#define aligned_alloc(a, s)        fut__fault_aligned_alloc(a, s, FUT_HERE)
#define strdup(s)                  fut__fault_strdup(s, FUT_HERE)
#define free(p)                    fut__fault_free(p)
#define pthread_create(t, a, f, x) fut__fault_thread(t, a, f, x, FUT_HERE)
#define pthread_mutex_init(m, a)   fut__fault_mutex(m, a, FUT_HERE)
#define pthread_cond_init(c, a)    fut__fault_cond(c, a, FUT_HERE)
/* Test hooks: at these points a test may run code of its own, to put the
 * losing side of a race there every time (fut__hook_set, tests/fault.c). */
enum fut_hook {
    FUT_HOOK_THEN_READY,   /* a continuation's input succeeded; c not claimed */
    FUT_HOOK_CANCEL_CLAIM, /* fut_cancel is about to claim f                  */
    FUT_HOOK_POOL_CLOSED,  /* destroy: closed, continuations not cancelled    */
    FUT_HOOK_FIRE,         /* f complete, its listeners detached, not fired   */
    FUT_HOOK_SHOW,         /* a worker showing its unit: its start stored,
                              not its id and function                      */
    FUT_HOOKS
};
void fut__hook_set(enum fut_hook hook, void (*fn)(void *arg));
void fut__hook(enum fut_hook hook, void *arg);
#define FUT_HOOK(hook, arg) fut__hook(hook, arg)
#else
#define FUT_HOOK(hook, arg) ((void)0)
#endif

#ifdef FUT_CHECKED
/* rc, when it is 0 (or `allowed`); otherwise prints what failed, where,
 * and aborts. */
int fut__checked(int rc, int allowed, const char *call, const char *file,
                 int line);
#define FUT_CHECK_(call, name, allowed)                                        \
    fut__checked(call, allowed, name, __FILE__, __LINE__)
/* Each macro calls the function of its own name: a macro is not expanded
 * inside its own expansion. */
#define pthread_mutex_lock(m)   FUT_CHECK_(pthread_mutex_lock(m), "pthread_mutex_lock", 0)
#define pthread_mutex_unlock(m) FUT_CHECK_(pthread_mutex_unlock(m), "pthread_mutex_unlock", 0)
#define pthread_mutex_destroy(m)                                               \
    FUT_CHECK_(pthread_mutex_destroy(m), "pthread_mutex_destroy", 0)
#define pthread_cond_wait(c, m) FUT_CHECK_(pthread_cond_wait(c, m), "pthread_cond_wait", 0)
#define pthread_cond_timedwait(c, m, t)                                        \
    FUT_CHECK_(pthread_cond_timedwait(c, m, t), "pthread_cond_timedwait", ETIMEDOUT)
#define pthread_cond_clockwait(c, m, k, t)                                     \
    FUT_CHECK_(pthread_cond_clockwait(c, m, k, t), "pthread_cond_clockwait",   \
               ETIMEDOUT)
#define pthread_cond_signal(c)  FUT_CHECK_(pthread_cond_signal(c), "pthread_cond_signal", 0)
#define pthread_cond_broadcast(c)                                              \
    FUT_CHECK_(pthread_cond_broadcast(c), "pthread_cond_broadcast", 0)
#define pthread_cond_destroy(c) FUT_CHECK_(pthread_cond_destroy(c), "pthread_cond_destroy", 0)
#define pthread_join(t, r)      FUT_CHECK_(pthread_join(t, r), "pthread_join", 0)
/* Misuse of a handle, or a broken invariant: prints what, in which call,
 * and aborts. */
_Noreturn void fut__misuse(const char *call, const void *handle,
                           const char *what);
/* An internal invariant: stops the program when it does not hold. */
#define FUT_ASSERT(cond, what)                                                     ((cond) ? (void)0 : fut__misuse(__func__, NULL, what))
#else
#define FUT_ASSERT(cond, what) ((void)0)
#endif

/* Thread-local variables of the library. initial-exec: one load off the
 * thread pointer instead of a __tls_get_addr call per access in the
 * shared library (the few bytes fit the static TLS glibc keeps for
 * libraries, dlopen included). */
#define FUT_TLS _Thread_local __attribute__((tls_model("initial-exec")))

/* CLOCK_MONOTONIC, in nanoseconds. */
uint64_t fut__now_ns(void);
/* The same clock as the kernel last ticked it (CLOCK_MONOTONIC_COARSE:
 * a few ms behind, and a fifth of the cost): when a unit started, for
 * dumps and the watchdog. */
static inline uint64_t fut__coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Unit ids: unique in the process, never 0 (0: none). Each thread takes
 * a block of FUT_ID_BLOCK at a time from one shared counter, so ids are
 * increasing on each thread, and a new one costs no shared write but
 * once per block. A block starts at a multiple of FUT_ID_BLOCK, which is
 * not given out: reaching it means the block is used up (and a new
 * thread's 0 means it has none yet). */
#define FUT_ID_BLOCK 1024
extern FUT_TLS uint64_t fut__tl_id;
uint64_t fut__id_block(void);
static inline uint64_t fut__new_id(void)
{
    uint64_t id = fut__tl_id;
    if (__builtin_expect(id % FUT_ID_BLOCK == 0, 0))
        id = fut__id_block();
    fut__tl_id = id + 1;
    return id;
}
/* A condition variable whose timed waits use CLOCK_MONOTONIC. */
int fut__cond_init_monotonic(pthread_cond_t *cv);
/* "<name><suffix>" cut at a character boundary to fit a thread name. */
void fut__thread_name(char out[16], const char *name, const char *suffix);
/* The CPUs this process may run on. */
size_t fut__cpu_count(void);
/* Runs fn(arg) when the calling thread exits (a pthread key destructor;
 * a few per thread). false: it cannot be arranged. */
bool fut__at_thread_exit(void (*fn)(void *), void *arg);

#endif /* FUT_BASE_H */
