/*
 * Tracing: with a trace path (fut_pool_config.trace_path, else $FUT_TRACE)
 * the pool records each unit it runs (lane = the worker, start, end, the
 * function) and each timer (armed, fired) and writes them at destroy as
 * Chrome Trace Event JSON, which Perfetto and chrome://tracing open.
 *
 * Each lane's buffer is written only by its own thread (a worker, or the
 * timer thread), so recording takes no lock; destroy reads the buffers
 * after joining those threads. With tracing off the cost is the one
 * branch in the caller. An event that cannot be stored (no memory) is
 * counted as dropped and the count written into the trace.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fut_trace_event {
    fut_fn fn;  /* the task or continuation; NULL for a timer or a flow */
    char *name; /* its name from its options (a copy), or NULL  */
    uint64_t start, end; /* a flow: its time in start, its id in end */
    uint64_t id;         /* a unit's id (fut_id), 0: none            */
    int kind;            /* enum fut_kind, or TRACE_FLOW_OUT/_IN     */
};

/* Stores e on lane, a ring once it holds lane->max events (the oldest
 * goes, counted as dropped), under the lane's lock. */
static void lane_push(fut_trace_lane *lane, fut_trace_event e)
{
    pthread_mutex_lock(&lane->lock);
    if (lane->len == lane->cap && (!lane->max || lane->cap < lane->max)) {
        size_t cap = lane->cap ? 2 * lane->cap : 256;
        if (lane->max && cap > lane->max)
            cap = lane->max;
        fut_trace_event *ev = realloc(lane->events, cap * sizeof(*ev));
        if (ev) { /* growing: the ring has not wrapped, head is 0 */
            lane->events = ev;
            lane->cap = cap;
        }
    }
    if (lane->len < lane->cap) {
        lane->events[(lane->head + lane->len++) % lane->cap] = e;
    } else if (lane->cap && lane->max) { /* full: the oldest goes */
        free(lane->events[lane->head].name);
        lane->events[lane->head] = e;
        lane->head = (lane->head + 1) % lane->cap;
        lane->dropped++;
    } else { /* no memory */
        free(e.name);
        lane->dropped++;
    }
    pthread_mutex_unlock(&lane->lock);
}

void fut__trace_record(fut_trace_lane *lane, fut_fn fn, const char *name,
                       uint64_t id, int kind, uint64_t start, uint64_t end)
{
    /* Without memory for the name, the event keeps the function's. */
    char *copy = name ? strdup(name) : NULL;
    lane_push(lane, (fut_trace_event){fn, copy, start, end, id, kind});
}

/* The lane of the calling thread: its worker's, else the one that
 * threads outside the pool (a fut_parallel_for caller, a thread keeping
 * a promise) share. */
static fut_trace_lane *lane_of(fut_pool *pool)
{
    fut_trace_lane *lane = fut__trace_lane(pool);
    return lane ? lane : &pool->outside_trace;
}

void fut__trace_unit(fut_pool *pool, fut_fn fn, uint64_t id, int kind,
                     uint64_t start, uint64_t end)
{
    fut__trace_record(lane_of(pool), fn, NULL, id, kind, start, end);
}

void fut__trace_flow(fut_pool *pool, int kind, uint64_t id, uint64_t at)
{
    lane_push(lane_of(pool), (fut_trace_event){NULL, NULL, at, id, 0, kind});
}

void fut__trace_lane_init(fut_trace_lane *lane, size_t max)
{
    memset(lane, 0, sizeof(*lane));
    lane->lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER; /* cannot fail */
    lane->max = max;
}

void fut__trace_lane_fini(fut_trace_lane *lane)
{
    for (size_t j = 0; j < lane->len; j++)
        free(lane->events[(lane->head + j) % lane->cap].name);
    free(lane->events);
    pthread_mutex_destroy(&lane->lock);
}

/* s as the inside of a JSON string: quotes, backslashes and control
 * characters escaped, and bytes that are not UTF-8 replaced by '?'. */
void fut__write_escaped(FILE *out, const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(out, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(out, "\\u%04x", *c);
        else if (*c < 0x80)
            fputc(*c, out);
        else { /* a UTF-8 sequence: copied whole when well formed */
            int len = *c >= 0xF0 && *c < 0xF5 ? 4
                      : *c >= 0xE0            ? 3
                      : *c >= 0xC2            ? 2
                                              : 0;
            int ok = len > 0;
            for (int i = 1; ok && i < len; i++)
                ok = (c[i] & 0xC0) == 0x80;
            if (!ok) {
                fputc('?', out);
                continue;
            }
            fwrite(c, 1, (size_t)len, out);
            c += len - 1;
        }
    }
}

/* The symbol of fn where the binary exports it, else its address. */
void fut__write_fn_name(FILE *out, fut_fn fn)
{
    void *addr;
    memcpy(&addr, &fn, sizeof(addr)); /* POSIX: function pointers fit */
    Dl_info info;
    if (dladdr(addr, &info) && info.dli_sname && info.dli_saddr == addr) {
        fut__write_escaped(out, info.dli_sname);
    } else {
        fprintf(out, "%p", addr);
    }
}

/* One lane's events, under its lock (its thread waits meanwhile). */
static void write_lane(FILE *out, fut_trace_lane *lane, size_t tid,
                       uint64_t t0, bool *first, size_t *timer_ids)
{
    pthread_mutex_lock(&lane->lock);
    for (size_t i = 0; i < lane->len; i++) {
        const fut_trace_event *e =
            &lane->events[(lane->head + i) % lane->cap];
        if (e->start < t0)
            continue; /* recorded after t0 was taken: skipped */
        fputs(*first ? "\n" : ",\n", out);
        *first = false;
        double ts = (double)(e->start - t0) / 1e3;
        double dur = (double)(e->end - e->start) / 1e3;
        if (e->kind == TRACE_FLOW_OUT || e->kind == TRACE_FLOW_IN) {
            /* an arrow from a unit to the continuation it made ready */
            fprintf(out,
                    "{\"name\":\"ready\",\"cat\":\"flow\",\"ph\":\"%s\",%s"
                    "\"id\":%llu,\"pid\":1,\"tid\":%zu,\"ts\":%.3f}",
                    e->kind == TRACE_FLOW_OUT ? "s" : "f",
                    e->kind == TRACE_FLOW_IN ? "\"bp\":\"e\"," : "",
                    (unsigned long long)e->end, tid, ts);
        } else if (e->fn) {
            fputs("{\"name\":\"", out);
            if (e->name)
                fut__write_escaped(out, e->name);
            else
                fut__write_fn_name(out, e->fn);
            fprintf(out,
                    "\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":1,\"tid\":%zu,"
                    "\"ts\":%.3f,\"dur\":%.3f",
                    e->kind == KIND_THEN ? "then" : "task", tid, ts, dur);
            if (e->id)
                fprintf(out, ",\"args\":{\"id\":%llu}",
                        (unsigned long long)e->id);
            fputc('}', out);
        } else { /* timers overlap: async slices, one id each in the file */
            const char *name = e->kind == KIND_SLEEP ? "sleep" : "timeout";
            size_t id = ++*timer_ids;
            fprintf(out,
                    "{\"name\":\"%s\",\"cat\":\"timer\",\"ph\":\"b\","
                    "\"id\":%zu,\"pid\":1,\"tid\":%zu,\"ts\":%.3f},\n"
                    "{\"name\":\"%s\",\"cat\":\"timer\",\"ph\":\"e\","
                    "\"id\":%zu,\"pid\":1,\"tid\":%zu,\"ts\":%.3f}",
                    name, id, tid, ts, name, id, tid, ts + dur);
        }
    }
    pthread_mutex_unlock(&lane->lock);
}

static void write_lane_name(FILE *out, size_t tid, const char *name,
                            size_t index, bool *first)
{
    fputs(*first ? "\n" : ",\n", out);
    *first = false;
    fprintf(out,
            "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%zu,"
            "\"args\":{\"name\":\"",
            tid);
    fut__write_escaped(out, name);
    fprintf(out, "-%zu\"}}", index);
}

#define MAX_TRACE_LANES 4098 /* workers, the timer thread, outsiders */

/* Writes what the pool's lanes hold to path: 0, or an errno value. Any
 * thread, any time: each lane is read under its lock. */
int fut__trace_write_to(fut_pool *pool, const char *path)
{
    fut_trace_lane *lanes[MAX_TRACE_LANES];
    size_t n = 0;
    for (size_t i = 0; i < pool->sched.threads && n < MAX_TRACE_LANES - 2; i++)
        lanes[n++] = &pool->local[i].trace;
    lanes[n++] = &pool->timer_trace;
    lanes[n++] = &pool->outside_trace;

    uint64_t t0 = UINT64_MAX, dropped = 0;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&lanes[i]->lock);
        dropped += lanes[i]->dropped;
        for (size_t j = 0; j < lanes[i]->len; j++) {
            uint64_t at =
                lanes[i]->events[(lanes[i]->head + j) % lanes[i]->cap].start;
            t0 = at < t0 ? at : t0;
        }
        pthread_mutex_unlock(&lanes[i]->lock);
    }
    if (t0 == UINT64_MAX)
        t0 = fut__now_ns();
    FILE *out = fopen(path, "w");
    if (!out)
        return errno;
    bool first = true;
    size_t timer_ids = 0;
    fputs("{\"traceEvents\":[", out);
    for (size_t i = 0; i < n; i++) {
        bool timer = lanes[i] == &pool->timer_trace;
        bool outside = lanes[i] == &pool->outside_trace;
        const char *lane = timer ? "timer" : outside ? "outside" : pool->name;
        write_lane_name(out, i, lane, timer || outside ? 0 : i, &first);
        write_lane(out, lanes[i], i, t0, &first, &timer_ids);
    }
    fprintf(out,
            "\n],\"displayTimeUnit\":\"ms\","
            "\"otherData\":{\"dropped_events\":%llu}}\n",
            (unsigned long long)dropped);
    int rc = ferror(out) ? EIO : 0;
    if (fclose(out) != 0 && !rc)
        rc = errno;
    return rc;
}

/* Destroy: writes the trace to the pool's path, saying on stderr when it
 * cannot; the lanes' threads are joined. */
void fut__trace_write(fut_pool *pool)
{
    int rc = fut__trace_write_to(pool, pool->trace_path);
    if (rc) /* say so, once: the user asked for this file */
        fprintf(stderr, "fut: pool %s: cannot write its trace to %s: %s\n",
                pool->name, pool->trace_path, strerror(rc));
}

int fut_pool_trace_write(fut_pool *pool, const char *path)
{
    if (!pool || !pool->trace_path)
        return EINVAL;
    if (fut__inherited(pool))
        return EOWNERDEAD; /* its lanes' locks may be held by no one here */
    return fut__trace_write_to(pool, path ? path : pool->trace_path);
}
