/* fut-fetch: the demo's fetch_data for real. A small local server, on
 * its own threads, answers each request on a socket after a delay; the
 * client sends three requests and awaits the replies with futures: a
 * readiness wait (fut_fd_wait) on each socket, then a continuation that
 * reads the reply. No worker is held while a reply is on its way, so the
 * three arrive in the time of the slowest, not the sum; the same three
 * one after another take the sum.
 *
 *   fut-fetch [--delays A,B,C]     (milliseconds; default 100,200,300)
 *
 * Each request is "GET <id> <ms>\n" on a socketpair; the server answers
 * "data-<id>\n" after <ms>. Exit status: 0 when every reply is right and
 * the parallel fetch beat the sequential one, 1 otherwise, 2 on bad
 * usage. */
#include <fut/fut.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { N = 3 };

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- The server: a thread per connection ------------------------------ */

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char req[64] = {0};
    ssize_t n = read(fd, req, sizeof(req) - 1);
    int id = 0, ms = 0;
    if (n > 0 && sscanf(req, "GET %d %d", &id, &ms) == 2) {
        struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&d, NULL); /* the server is slow; the client is not held */
        char reply[32];
        int len = snprintf(reply, sizeof(reply), "data-%d\n", id);
        (void)!write(fd, reply, (size_t)len);
    }
    close(fd);
    return NULL;
}

/* Connects to the server: the client's end of a new socketpair, with a
 * thread serving the other end. -1 on failure. */
static int connect_server(pthread_t *server)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return -1;
    if (pthread_create(server, NULL, serve, (void *)(intptr_t)sv[1]) != 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    return sv[0];
}

/* ---- The client -------------------------------------------------------- */

typedef struct request {
    int fd, id, ms;
    pthread_t server;
    char reply[32];
} request;

/* The continuation: the socket is readable, the reply is there. */
static int read_reply(void *arg, void *input, void **value)
{
    (void)input; /* what the socket is ready for */
    request *r = arg;
    ssize_t n = read(r->fd, r->reply, sizeof(r->reply) - 1);
    if (n <= 0)
        return n < 0 ? errno : EPIPE;
    r->reply[n] = '\0';
    r->reply[strcspn(r->reply, "\n")] = '\0';
    *value = r->reply;
    return 0;
}

/* fetch_data(id): sends the request, and returns a future for the reply
 * (its value: the reply's text). */
static fut_future *fetch_data(fut_pool *pool, request *r)
{
    r->fd = connect_server(&r->server);
    if (r->fd < 0)
        return fut_spawn(NULL, NULL, NULL); /* a failed future: EINVAL */
    char req[64];
    int len = snprintf(req, sizeof(req), "GET %d %d\n", r->id, r->ms);
    if (write(r->fd, req, (size_t)len) != len)
        return fut_spawn(NULL, NULL, NULL);
    return fut_then(fut_fd_wait(pool, r->fd, FUT_FD_READ), read_reply, r);
}

static bool finish(request *r, fut_future *f)
{
    void *v;
    int err = fut_await(f, &v);
    fut_release(f);
    char want[32];
    snprintf(want, sizeof(want), "data-%d", r->id);
    bool ok = !err && v && !strcmp(v, want);
    printf("   fetch_data(%d) -> %s\n", r->id,
           err ? fut_strerror(err) : (const char *)v);
    if (r->fd >= 0) {
        pthread_join(r->server, NULL);
        close(r->fd);
    }
    return ok;
}

int main(int argc, char **argv)
{
    int delays[N] = {100, 200, 300};
    if (argc == 3 && !strcmp(argv[1], "--delays")) {
        if (sscanf(argv[2], "%d,%d,%d", &delays[0], &delays[1], &delays[2]) !=
                N ||
            delays[0] < 0 || delays[1] < 0 || delays[2] < 0) {
            fprintf(stderr, "fut-fetch: bad value '%s' for --delays\n",
                    argv[2]);
            return 2;
        }
    } else if (argc != 1) {
        fprintf(stderr, "usage: fut-fetch [--delays A,B,C]\n");
        return 2;
    }
    fut_pool *pool;
    int rc = fut_pool_create(&pool, NULL);
    if (rc) {
        fprintf(stderr, "fut-fetch: %s\n", fut_strerror(rc));
        return 2;
    }
    bool ok = true;
    request r[N];

    printf("Sequential: each reply awaited before the next request\n");
    double t0 = now_ms();
    for (int i = 0; i < N; i++) {
        r[i] = (request){.id = i + 1, .ms = delays[i]};
        ok &= finish(&r[i], fetch_data(pool, &r[i]));
    }
    double sequential = now_ms() - t0;
    printf("   took %.0f ms\n", sequential);

    printf("Parallel: three requests sent, then the replies awaited\n");
    t0 = now_ms();
    fut_future *f[N];
    for (int i = 0; i < N; i++) {
        r[i] = (request){.id = i + 1, .ms = delays[i]};
        f[i] = fetch_data(pool, &r[i]);
    }
    for (int i = 0; i < N; i++)
        ok &= finish(&r[i], f[i]);
    double parallel = now_ms() - t0;
    printf("   took %.0f ms (the slowest), against %.0f ms one after "
           "another\n",
           parallel, sequential);
    ok &= parallel < 0.8 * sequential;
    fut_pool_destroy(pool);
    printf("%s\n", ok ? "all replies right" : "SOME REPLIES WRONG");
    return ok ? 0 : 1;
}
