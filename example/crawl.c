/* fut-crawl: a simulated web crawler (issue 10's second example program):
 * per-request timeouts, stop after N pages, and a stop button pressed from
 * another thread, with no worker held while a request is in flight.
 *
 *   fut-crawl [--pages P] [--limit N] [--timeout MS] [--stop-after MS]
 *             [--verbose]
 *
 * The web is made up: page i links to pages 3i+1, 7i+2 and 11i+3 (mod P).
 * A request takes 5 to 24 ms; every 17th page takes 400 ms, longer than
 * the per-request timeout (200 ms by default), and every 13th does not
 * exist. A request is a sleep (the network) followed by a continuation
 * that makes the page's body, a string the future owns (value_free), all
 * bounded by fut_timeout; fut_finally handles each outcome, success or
 * not, and starts requests for the links it finds. Stopping (after N
 * pages, or when the button thread keeps its promise) cancels every
 * request in flight: each still reaches its fut_finally, as ECANCELED.
 * Without a limit or a stop, the crawl is checked against a plain walk of
 * the same graph: status 1 on a mismatch, 2 on bad usage. */
#include <fut/fut.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_PAGES = 100000, LINKS = 3, SLOW_MS = 400 };

static size_t npages = 200;
static uint64_t timeout_ms = 200;
static bool verbose;

static size_t link_of(size_t page, int k)
{
    static const size_t mul[LINKS] = {3, 7, 11};
    return (page * mul[k] + (size_t)k + 1) % npages;
}

static bool missing(size_t page)
{
    return page % 13 == 12;
}

static uint64_t latency_ms(size_t page)
{
    return page % 17 == 16 ? SLOW_MS : 5 + (page * 37) % 20;
}

typedef struct crawl {
    fut_pool *pool;
    pthread_mutex_t lock;
    bool *seen;          /* pages requested so far              */
    fut_future **flight; /* requests in flight, to cancel: lock */
    size_t in_flight, limit;
    size_t fetched, not_found, timed_out, cancelled;
    const char *stopped; /* why the crawl stopped, or NULL      */
    fut_promise *done;   /* kept when nothing is in flight      */
} crawl;

/* What one request's continuations get: a copy, made by fut_task_opts. */
typedef struct request {
    crawl *c;
    size_t page;
} request;

/* The server's side: the body of a page, or ENOENT. */
static int serve(void *arg, void *input, void **value)
{
    (void)input; /* the sleep's: nothing */
    const request *r = arg;
    if (missing(r->page))
        return ENOENT;
    char *body = malloc(128);
    if (!body)
        return ENOMEM;
    snprintf(body, 128, "page %zu: links %zu %zu %zu", r->page,
             link_of(r->page, 0), link_of(r->page, 1), link_of(r->page, 2));
    *value = body;
    return 0;
}

static void visit(crawl *c, size_t page);

/* Stops the crawl: no new requests, and every one in flight cancelled
 * (outside the lock: a cancel may complete futures). */
static void stop(crawl *c, const char *why)
{
    size_t n = 0;
    fut_future **victims = malloc(npages * sizeof(*victims));
    pthread_mutex_lock(&c->lock);
    if (!c->stopped)
        c->stopped = why;
    for (size_t i = 0; victims && i < npages; i++)
        if (c->flight[i])
            victims[n++] = fut_retain(c->flight[i]);
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; i < n; i++) {
        fut_cancel(victims[i]);
        fut_release(victims[i]);
    }
    free(victims);
}

/* Every request ends here, whatever its outcome: count it, follow the
 * page's links, and keep `done` when it was the last one in flight. */
static int on_page(void *arg, int error, void *input, void **value)
{
    (void)value;
    const request *r = arg;
    crawl *c = r->c;
    const char *body = input; /* the request's, valid during this call */
    size_t links[LINKS], nlinks = 0;
    bool reached = false;
    pthread_mutex_lock(&c->lock);
    fut_future *req = c->flight[r->page];
    c->flight[r->page] = NULL;
    if (error == 0 && !c->stopped) {
        c->fetched++;
        reached = c->limit && c->fetched == c->limit;
        size_t page; /* the body names its links */
        if (sscanf(body, "page %zu: links %zu %zu %zu", &page, &links[0],
                   &links[1], &links[2]) == 4)
            nlinks = LINKS;
    } else if (error == ENOENT) {
        c->not_found++;
    } else if (error == ETIMEDOUT) {
        c->timed_out++;
    } else { /* ECANCELED, or a success that came after the stop */
        c->cancelled++;
    }
    pthread_mutex_unlock(&c->lock);
    fut_release(req);
    if (verbose) /* BREAK HERE to watch requests end, one per call */
        printf("  page %3zu: %s\n", r->page,
               error ? fut_strerror(error) : body);
    if (reached)
        stop(c, "limit");
    for (size_t i = 0; i < nlinks; i++)
        visit(c, links[i]);
    pthread_mutex_lock(&c->lock);
    bool last = --c->in_flight == 0;
    pthread_mutex_unlock(&c->lock);
    if (last)
        fut_promise_resolve(c->done, NULL);
    return 0;
}

/* Requests a page unless it was requested before or the crawl stopped. */
static void visit(crawl *c, size_t page)
{
    pthread_mutex_lock(&c->lock);
    bool go = !c->seen[page] && !c->stopped;
    if (go) {
        c->seen[page] = true;
        c->in_flight++;
    }
    pthread_mutex_unlock(&c->lock);
    if (!go)
        return;
    request r = {c, page};
    char name[32];
    snprintf(name, sizeof(name), "GET /page/%zu", page);
    fut_task_opts body = {.name = name,
                          .value_free = free,
                          .arg_size = sizeof(r)};
    fut_future *req = fut_then_with(fut_sleep(c->pool, latency_ms(page)),
                                    &body, serve, &r);
    req = fut_timeout(req, timeout_ms);
    pthread_mutex_lock(&c->lock);
    bool late = c->stopped != NULL; /* stop() has looked already */
    if (!late)
        c->flight[page] = fut_retain(req);
    pthread_mutex_unlock(&c->lock);
    if (late)
        fut_cancel(req);
    fut_task_opts end = {.name = "on_page", .arg_size = sizeof(r)};
    fut_release(fut_finally_with(req, &end, on_page, &r));
}

/* The stop button, on a thread of its own: pressed after `ms` unless the
 * crawl is over first; either way it keeps or rejects its promise. */
typedef struct button {
    fut_promise *press;
    fut_future *done;
    uint64_t ms;
} button;

static void *button_thread(void *arg)
{
    button *b = arg;
    if (b->ms && fut_await_for(b->done, b->ms, NULL) == ETIMEDOUT)
        fut_promise_resolve(b->press, NULL);
    else
        fut_promise_reject(b->press, EPIPE); /* never pressed */
    return NULL;
}

/* The same crawl without futures: which pages a plain walk reaches, and
 * their outcomes (a slow page times out, a missing one is not found). */
static void walk(size_t *fetched, size_t *not_found, size_t *timed_out)
{
    bool *seen = calloc(npages, 1);
    size_t *queue = malloc(npages * sizeof(*queue)), head = 0, tail = 0;
    *fetched = *not_found = *timed_out = 0;
    if (!seen || !queue) {
        free(seen);
        free(queue);
        return;
    }
    seen[0] = true;
    queue[tail++] = 0;
    while (head < tail) {
        size_t p = queue[head++];
        if (latency_ms(p) >= timeout_ms) { /* before the server answers */
            ++*timed_out;
        } else if (missing(p)) {
            ++*not_found;
        } else {
            ++*fetched;
            for (int k = 0; k < LINKS; k++)
                if (!seen[link_of(p, k)]) {
                    seen[link_of(p, k)] = true;
                    queue[tail++] = link_of(p, k);
                }
        }
    }
    free(seen);
    free(queue);
}

static bool number(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v > max)
        return false;
    *out = v;
    return true;
}

static int usage(const char *option, const char *value)
{
    if (value)
        fprintf(stderr, "fut-crawl: bad value '%s' for %s\n", value, option);
    else
        fprintf(stderr, "fut-crawl: bad option '%s'\n", option);
    fprintf(stderr, "usage: fut-crawl [--pages P] [--limit N] "
                    "[--timeout MS] [--stop-after MS] [--verbose]\n");
    return 2;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    uint64_t limit = 0, stop_after = 0, pages = npages;
    for (int i = 1; i < argc; i++) {
        uint64_t *out = !strcmp(argv[i], "--pages")        ? &pages
                        : !strcmp(argv[i], "--limit")      ? &limit
                        : !strcmp(argv[i], "--timeout")    ? &timeout_ms
                        : !strcmp(argv[i], "--stop-after") ? &stop_after
                                                           : NULL;
        if (!strcmp(argv[i], "--verbose"))
            verbose = true;
        else if (!out || i + 1 == argc)
            return usage(argv[i], NULL);
        else if (!number(argv[i + 1], out == &pages ? MAX_PAGES : 3600000,
                         out) ||
                 (out == &pages && pages == 0))
            return usage(argv[i], argv[i + 1]);
        else
            i++;
    }
    npages = (size_t)pages;

    crawl c = {.limit = (size_t)limit};
    pthread_mutex_init(&c.lock, NULL);
    c.seen = calloc(npages, sizeof(*c.seen));
    c.flight = calloc(npages, sizeof(*c.flight));
    fut_future *done;
    int rc = c.seen && c.flight ? fut_pool_create(&c.pool, NULL) : ENOMEM;
    if (rc == 0)
        rc = fut_promise_create(c.pool, &c.done, &done);
    if (rc) {
        fprintf(stderr, "fut-crawl: %s\n", fut_strerror(rc));
        return 1;
    }
    char lim[32] = "none", button_at[48] = "never";
    if (limit)
        snprintf(lim, sizeof(lim), "%" PRIu64 " pages", limit);
    if (stop_after)
        snprintf(button_at, sizeof(button_at), "after %" PRIu64 " ms",
                 stop_after);
    printf("fut-crawl: %zu pages, limit %s, timeout %" PRIu64
           " ms, stop button %s, %zu threads\n",
           npages, lim, timeout_ms, button_at, fut_pool_threads(c.pool));

    button b = {.done = done, .ms = stop_after};
    fut_future *pressed;
    if (fut_promise_create(c.pool, &b.press, &pressed) != 0)
        return 1;
    pthread_t thread;
    pthread_create(&thread, NULL, button_thread, &b);

    double t0 = now_ms();
    visit(&c, 0);
    /* Whichever comes first: the crawl ends, or the button is pressed. */
    fut_future *either[2] = {done, pressed};
    fut_future *any = fut_any(either, 2, false);
    void *first = NULL;
    fut_await(any, &first);
    fut_release(any);
    if ((uintptr_t)first == 1 && fut_await(pressed, NULL) == 0)
        stop(&c, "button");
    fut_await(done, NULL);
    double ms = now_ms() - t0;
    pthread_join(thread, NULL);

    printf("fetched %zu, not found %zu, timed out %zu, cancelled %zu in "
           "%.0f ms; %s\n",
           c.fetched, c.not_found, c.timed_out, c.cancelled, ms,
           c.stopped ? c.stopped : "crawl complete");
    int status = 0;
    if (!c.stopped) {
        size_t f, n, t;
        walk(&f, &n, &t);
        bool same = f == c.fetched && n == c.not_found && t == c.timed_out &&
                    c.cancelled == 0;
        printf("a plain walk of the same pages: fetched %zu, not found %zu, "
               "timed out %zu: %s\n",
               f, n, t, same ? "same" : "DIFFERENT");
        status = !same;
    } else if (c.stopped[0] == 'l' && c.fetched != c.limit) {
        printf("stopped by the limit with %zu pages, not %zu\n", c.fetched,
               c.limit);
        status = 1;
    }
    fut_release(pressed);
    fut_release(done);
    fut_pool_destroy(c.pool);
    free(c.seen);
    free(c.flight);
    pthread_mutex_destroy(&c.lock);
    return status;
}
