/*
 * The monitor: a thread of its own that a pool starts only when its
 * config asks (stall_ms, dump_signal). It dumps the pool to stderr when
 * the signal arrives, and writes its trace so far when it traces (the
 * handler only posts a semaphore, which is async-signal-safe; the work
 * runs here, never in the handler), and
 * every stall_ms / 4 it looks at what each worker runs and since when
 * (each worker shows it, see show() in future.c), to report on stderr:
 *  - a unit that has run for stall_ms or longer (once per unit);
 *  - a pool whose every worker is blocked in a wait while nothing is
 *    queued and no timer is pending: nothing inside the pool can end
 *    those waits. Only a thread outside the pool could (keeping a
 *    promise), which the monitor cannot see: the report says so.
 * The workers pay nothing for it beyond what fut_pool_dump needs.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "internal.h"

#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

enum { SLOTS = 64 };

/* A semaphore per monitored pool, in static storage, so that the signal
 * handler never touches freed memory. */
static struct {
    atomic_bool used;
    atomic_int signal; /* the pool's dump_signal, 0: none */
    sem_t sem;         /* posted by the handler and by stop */
    bool made;         /* sem_init done: slots_lock          */
} slots[SLOTS];
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static bool installed[NSIG]; /* slots_lock */

static void on_signal(int sig)
{
    int saved = errno;
    for (int i = 0; i < SLOTS; i++)
        if (atomic_load(&slots[i].used) && atomic_load(&slots[i].signal) == sig)
            sem_post(&slots[i].sem);
    errno = saved;
}

/* The last unit reported on a worker, so that it is reported once. */
typedef struct sample {
    uint64_t id, since;
} sample;

struct fut_monitor {
    fut_pool *pool;
    pthread_t thread;
    int slot;
    atomic_bool stop;
    uint64_t stall_ns; /* 0: no stall checks */
    sample *told;      /* per worker: the monitor thread's */
    int all_blocked;   /* checks in a row that saw it */
};

/* Reports workers that have run one unit for stall_ms or more, and a
 * pool stuck in waits. */
static void check(fut_monitor *m)
{
    fut_pool *pool = m->pool;
    fut_sched *s = &pool->sched;
    uint64_t now = fut__coarse_ns();
    bool told = false;
    for (size_t i = 0; i < s->threads; i++) {
        fut_fn fn;
        uint64_t id, since;
        char name[32];
        fut__worker_running(pool, i, &fn, &id, &since, name);
        sample *x = &m->told[i];
        if (!fn || now < since || now - since < m->stall_ns ||
            (x->id == id && x->since == since))
            continue;
        *x = (sample){id, since};
        told = true;
        fprintf(stderr, "fut: pool %s: worker %zu has run ", pool->name, i);
        fut__write_fn_name(stderr, fn);
        fprintf(stderr, "%s%s%s", name[0] ? " \"" : "", name,
                name[0] ? "\"" : "");
        if (id)
            fprintf(stderr, " #%llu", (unsigned long long)id);
        fprintf(stderr, " for %.0f ms (stall_ms %.0f)\n",
                (double)(now - since) / 1e6, (double)m->stall_ns / 1e6);
    }
    size_t blocked = 0;
    if (pthread_mutex_trylock(&s->sleep_lock) == 0) {
        blocked = s->blocked;
        pthread_mutex_unlock(&s->sleep_lock);
    }
    fut_pool_stats st;
    fut_pool_stats_get(pool, &st);
    if (blocked < s->threads || st.queued || st.timers_pending) {
        m->all_blocked = 0;
    } else if (++m->all_blocked == 2) { /* seen twice in a row: say it once */
        told = true;
        fprintf(stderr,
                "fut: pool %s: every worker is blocked in a wait, and nothing "
                "is queued and no timer is pending: a deadlock, unless a "
                "thread outside the pool completes what they wait for (a "
                "promise)\n",
                pool->name);
    }
    if (told)
        fut_pool_dump(pool, stderr, FUT_DUMP_TEXT);
}

static void *monitor_main(void *arg)
{
    fut_monitor *m = arg;
    sem_t *sem = &slots[m->slot].sem;
    uint64_t period = m->stall_ns / 4 > 1000000 ? m->stall_ns / 4 : 1000000;
    for (;;) {
        int rc;
        if (m->stall_ns) {
            struct timespec at;
            clock_gettime(CLOCK_REALTIME, &at);
            uint64_t ns = (uint64_t)at.tv_nsec + period;
            at.tv_sec += (time_t)(ns / 1000000000u);
            at.tv_nsec = (long)(ns % 1000000000u);
            rc = sem_timedwait(sem, &at);
        } else {
            rc = sem_wait(sem);
        }
        if (atomic_load(&m->stop))
            break;
        if (rc == 0) { /* the signal: dump, once for signals close together */
            while (sem_trywait(sem) == 0)
                ;
            fut_pool_dump(m->pool, stderr, FUT_DUMP_TEXT);
            if (m->pool->trace_path) { /* and the trace so far */
                int err = fut__trace_write_to(m->pool, m->pool->trace_path);
                fprintf(stderr, "fut: pool %s: trace so far %s %s%s%s\n",
                        m->pool->name, err ? "not written to" : "written to",
                        m->pool->trace_path, err ? ": " : "",
                        err ? strerror(err) : "");
            }
        } else if (errno == ETIMEDOUT) {
            check(m);
        }
    }
    return NULL;
}

void fut__monitor_fork(bool after)
{
    if (after)
        pthread_mutex_unlock(&slots_lock);
    else
        pthread_mutex_lock(&slots_lock);
}

int fut__monitor_start(fut_pool *pool, uint64_t stall_ms, int sig)
{
    if (sig < 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP)
        return EINVAL;
    fut_monitor *m = calloc(1, sizeof(*m));
    if (!m)
        return ENOMEM;
    m->told = calloc(pool->sched.threads, sizeof(*m->told));
    if (!m->told) {
        free(m);
        return ENOMEM;
    }
    m->pool = pool;
    m->stall_ns = stall_ms < UINT64_MAX / 1000000u ? stall_ms * 1000000u
                                                    : UINT64_MAX;
    int rc = EAGAIN; /* every slot taken */
    pthread_mutex_lock(&slots_lock);
    for (int i = 0; i < SLOTS && rc == EAGAIN; i++) {
        if (atomic_load(&slots[i].used))
            continue;
        if (!slots[i].made && sem_init(&slots[i].sem, 0, 0) != 0)
            break;
        slots[i].made = true;
        while (sem_trywait(&slots[i].sem) == 0) /* a late post, from before */
            ;
        m->slot = i;
        rc = 0;
    }
    if (rc == 0 && sig && !installed[sig]) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(sig, &sa, NULL) == 0)
            installed[sig] = true;
        else
            rc = errno;
    }
    if (rc == 0) {
        atomic_store(&slots[m->slot].signal, sig);
        atomic_store(&slots[m->slot].used, true);
    }
    pthread_mutex_unlock(&slots_lock);
    pool->monitor = m; /* before the thread, whose dumps read it */
    if (rc == 0 && (rc = pthread_create(&m->thread, NULL, monitor_main, m)))
        atomic_store(&slots[m->slot].used, false);
    if (rc) {
        pool->monitor = NULL;
        free(m->told);
        free(m);
        return rc;
    }
    char name[16];
    fut__thread_name(name, pool->name, "-mon");
    pthread_setname_np(m->thread, name);
    return 0;
}

void fut__monitor_stop(fut_pool *pool)
{
    fut_monitor *m = pool->monitor;
    if (!m)
        return;
    atomic_store(&m->stop, true);
    sem_post(&slots[m->slot].sem);
    pthread_join(m->thread, NULL);
    atomic_store(&slots[m->slot].used, false);
    pool->monitor = NULL;
    free(m->told);
    free(m);
}
