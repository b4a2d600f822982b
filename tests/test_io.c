/*
 * fut_fd_wait: readiness of pipes and sockets, on the pool's epoll
 * thread; cancelled, timed out, at destroy and at shutdown.
 */
#include "helpers.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>

static unsigned ready_bits(fut_future *f)
{
    void *v = NULL;
    ck_assert_int_eq(fut_await(f, &v), 0);
    fut_release(f);
    return (unsigned)(uintptr_t)v;
}

START_TEST(pipe_readable)
{
    fut_pool *pool = pool_new(2);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fut_future *f = fut_fd_wait(pool, p[0], FUT_FD_READ);
    ck_assert_int_eq(fut_await_for(f, 20, NULL), ETIMEDOUT); /* nothing yet */
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    ck_assert_uint_eq(ready_bits(f), FUT_FD_READ);
    /* ten waits on one descriptor, all told */
    char c;
    ck_assert_int_eq(read(p[0], &c, 1), 1);
    fut_future *many[10];
    for (int i = 0; i < 10; i++)
        many[i] = fut_fd_wait(pool, p[0], FUT_FD_READ);
    ck_assert_int_eq(write(p[1], "y", 1), 1);
    for (int i = 0; i < 10; i++)
        ck_assert_uint_eq(ready_bits(many[i]) & FUT_FD_READ, FUT_FD_READ);
    close(p[0]);
    close(p[1]);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

START_TEST(socket_writable_and_hangup)
{
    fut_pool *pool = pool_new(1);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_uint_eq(ready_bits(fut_fd_wait(pool, sv[0], FUT_FD_WRITE)),
                      FUT_FD_WRITE);
    fut_future *f = fut_fd_wait(pool, sv[0], FUT_FD_READ);
    close(sv[1]); /* the other end hangs up */
    unsigned bits = ready_bits(f);
    ck_assert_uint_eq(bits & (FUT_FD_READ | FUT_FD_HANGUP),
                      FUT_FD_READ | FUT_FD_HANGUP);
    close(sv[0]);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* A continuation reads what made the descriptor ready. */
static int read_byte(void *arg, void *input, void **value)
{
    (void)input;
    char c = 0;
    if (read(*(int *)arg, &c, 1) != 1)
        return EIO;
    *value = (void *)(uintptr_t)(unsigned char)c;
    return 0;
}

START_TEST(continuation_reads)
{
    fut_pool *pool = pool_new(2);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fut_future *f =
        fut_then(fut_fd_wait(pool, p[0], FUT_FD_READ), read_byte, &p[0]);
    ck_assert_int_eq(write(p[1], "k", 1), 1);
    void *v;
    ck_assert_int_eq(fut_await(f, &v), 0);
    ck_assert_int_eq((int)(uintptr_t)v, 'k');
    fut_release(f);
    close(p[0]);
    close(p[1]);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

START_TEST(cancelled_and_timed_out)
{
    fut_pool *pool = pool_new(2);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fut_future *f = fut_fd_wait(pool, p[0], FUT_FD_READ);
    ck_assert_int_eq(fut_cancel(f), 0);
    ck_assert_int_eq(await_rc(f), ECANCELED);
    ck_assert_int_eq(await_rc(fut_timeout(fut_fd_wait(pool, p[0], FUT_FD_READ),
                                          20)),
                     ETIMEDOUT);
    ck_assert_int_eq(write(p[1], "z", 1), 1); /* nothing is left to tell */
    /* cancel and readiness racing, many times */
    for (int i = 0; i < 200; i++) {
        fut_future *g = fut_fd_wait(pool, p[0], FUT_FD_READ);
        int rc = fut_cancel(g);
        ck_assert(rc == 0 || rc == EALREADY);
        int got = await_rc(g);
        ck_assert(got == (rc == 0 ? ECANCELED : 0));
    }
    close(p[0]);
    close(p[1]);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

START_TEST(pending_at_destroy_and_shutdown)
{
    fut_pool *pool = pool_new(1);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fut_future *f = fut_fd_wait(pool, p[0], FUT_FD_READ);
    fut_future *c = fut_then(fut_fd_wait(pool, p[0], FUT_FD_READ), read_byte,
                             &p[0]);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    ck_assert_int_eq(await_rc(f), ECANCELED);
    ck_assert_int_eq(await_rc(c), ECANCELED);

    pool = pool_new(1);
    f = fut_fd_wait(pool, p[0], FUT_FD_READ);
    fut_shutdown_report r;
    ck_assert_int_eq(fut_pool_shutdown(pool, 20, &r), 0);
    ck_assert_uint_eq(r.cancelled_fd_waits, 1);
    ck_assert_int_eq(await_rc(f), ECANCELED);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(bad_descriptors)
{
    fut_pool *pool = pool_new(1);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    /* the epoll thread first: its descriptors must not take the numbers
     * this test closes below */
    fut_future *start = fut_fd_wait(pool, p[0], FUT_FD_READ);
    fut_cancel(start);
    fut_release(start);
    ck_assert_int_eq(await_rc(fut_fd_wait(NULL, p[0], FUT_FD_READ)), EINVAL);
    ck_assert_int_eq(await_rc(fut_fd_wait(pool, -1, FUT_FD_READ)), EINVAL);
    ck_assert_int_eq(await_rc(fut_fd_wait(pool, p[0], 0)), EINVAL);
    ck_assert_int_eq(await_rc(fut_fd_wait(pool, p[0], FUT_FD_HANGUP)), EINVAL);
    close(p[0]);
    close(p[1]);
    ck_assert_int_eq(await_rc(fut_fd_wait(pool, p[0], FUT_FD_READ)), EBADF);
    char path[] = "/tmp/fut-io-XXXXXX";
    temp_file(path);
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(await_rc(fut_fd_wait(pool, fd, FUT_FD_READ)), EPERM);
    close(fd);
    unlink(path);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

static Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    FUT_TCASE(s, "io", pipe_readable, socket_writable_and_hangup,
              continuation_reads, cancelled_and_timed_out,
              pending_at_destroy_and_shutdown, bad_descriptors);
    return s;
}

FUT_TEST_MAIN(io_suite)
