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
    fut_fn fn;  /* the task or continuation; NULL for a timer */
    char *name; /* its name from its options (a copy), or NULL  */
    uint64_t start, end;
    int kind; /* enum fut_kind */
};

void fut__trace_record(fut_trace_lane *lane, fut_fn fn, const char *name,
                       int kind, uint64_t start, uint64_t end)
{
    if (lane->len == lane->cap) {
        size_t cap = lane->cap ? 2 * lane->cap : 256;
        fut_trace_event *ev = realloc(lane->events, cap * sizeof(*ev));
        if (!ev) {
            lane->dropped++;
            return;
        }
        lane->events = ev;
        lane->cap = cap;
    }
    /* Without memory for the name, the event keeps the function's. */
    char *copy = name ? strdup(name) : NULL;
    lane->events[lane->len++] = (fut_trace_event){fn, copy, start, end, kind};
}

/* A unit's event on its worker's lane; a thread outside the pool (a
 * fut_parallel_for caller) shares one lane, under trace_lock. */
void fut__trace_unit(fut_pool *pool, fut_fn fn, int kind, uint64_t start,
                     uint64_t end)
{
    fut_trace_lane *lane = fut__trace_lane(pool);
    if (lane) {
        fut__trace_record(lane, fn, NULL, kind, start, end);
        return;
    }
    pthread_mutex_lock(&pool->trace_lock);
    fut__trace_record(&pool->outside_trace, fn, NULL, kind, start, end);
    pthread_mutex_unlock(&pool->trace_lock);
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

static void write_lane(FILE *out, const fut_trace_lane *lane, size_t tid,
                       uint64_t t0, bool *first, size_t *timer_ids)
{
    for (size_t i = 0; i < lane->len; i++) {
        const fut_trace_event *e = &lane->events[i];
        fputs(*first ? "\n" : ",\n", out);
        *first = false;
        double ts = (double)(e->start - t0) / 1e3;
        double dur = (double)(e->end - e->start) / 1e3;
        if (e->fn) {
            fputs("{\"name\":\"", out);
            if (e->name)
                fut__write_escaped(out, e->name);
            else
                fut__write_fn_name(out, e->fn);
            fprintf(out,
                    "\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":1,\"tid\":%zu,"
                    "\"ts\":%.3f,\"dur\":%.3f}",
                    e->kind == KIND_THEN ? "then" : "task", tid, ts, dur);
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

/* Writes the trace and frees the buffers; the lanes' threads are joined. */
#define MAX_TRACE_LANES 4098 /* workers, the timer thread, outsiders */

void fut__trace_write(fut_pool *pool)
{
    fut_trace_lane *lanes[MAX_TRACE_LANES];
    size_t n = 0;
    for (size_t i = 0; i < pool->sched.threads && n < MAX_TRACE_LANES - 2; i++)
        lanes[n++] = &pool->local[i].trace;
    lanes[n++] = &pool->timer_trace;
    lanes[n++] = &pool->outside_trace;

    uint64_t t0 = UINT64_MAX, dropped = 0;
    for (size_t i = 0; i < n; i++) {
        dropped += lanes[i]->dropped;
        for (size_t j = 0; j < lanes[i]->len; j++)
            if (lanes[i]->events[j].start < t0)
                t0 = lanes[i]->events[j].start;
    }
    FILE *out = fopen(pool->trace_path, "w");
    if (out) {
        bool first = true;
        size_t timer_ids = 0;
        fputs("{\"traceEvents\":[", out);
        for (size_t i = 0; i < n; i++) {
            bool timer = lanes[i] == &pool->timer_trace;
            bool outside = lanes[i] == &pool->outside_trace;
            const char *lane = timer     ? "timer"
                               : outside ? "outside"
                                         : pool->name;
            write_lane_name(out, i, lane, timer || outside ? 0 : i, &first);
            write_lane(out, lanes[i], i, t0, &first, &timer_ids);
        }
        fprintf(out,
                "\n],\"displayTimeUnit\":\"ms\","
                "\"otherData\":{\"dropped_events\":%llu}}\n",
                (unsigned long long)dropped);
        fclose(out);
    } else { /* say so, once: the user asked for this file */
        fprintf(stderr, "fut: pool %s: cannot write its trace to %s: %s\n",
                pool->name, pool->trace_path, strerror(errno));
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < lanes[i]->len; j++)
            free(lanes[i]->events[j].name);
        free(lanes[i]->events);
    }
}
