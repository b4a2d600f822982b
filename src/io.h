/*
 * Readiness of file descriptors: one epoll thread per pool, started on
 * the first wait, which fires an item when its descriptor is ready. The
 * same ownership rule as timers (timer.c): whoever disarms an item (the
 * thread when it fires, or fut__io_remove) owns its firing or its end.
 * This module knows nothing of futures.
 */
#ifndef FUT_IO_H
#define FUT_IO_H

#include "base.h"

typedef struct fut_io_item fut_io_item;
struct fut_io_item {
    int fd;             /* a dup of the caller's, registered with epoll */
    uint32_t revents;   /* set before it fires                         */
    atomic_bool armed;  /* registered and not yet fired nor removed    */
    fut_io_item *prev, *next; /* the armed items: fut_io's lock        */
};

typedef struct fut_io {
    pthread_mutex_t lock;
    int epfd, evfd;           /* -1 until started                       */
    bool started, stop;       /* lock                                   */
    pthread_t thread;
    void (*fire)(fut_io_item *it); /* set by the owner before use       */
    fut_io_item *armed;       /* lock                                   */
    char name[16];            /* of the thread: "<pool>-io"             */
} fut_io;

/* Before any other use. Cannot fail. */
void fut__io_init(fut_io *io, const char *name,
                  void (*fire)(fut_io_item *it));
/* Arms it for fd's events (EPOLLIN, EPOLLOUT), starting the thread the
 * first time: 0, or an errno value (EBADF, EPERM for a file epoll cannot
 * wait on, ENOMEM, EAGAIN); it is not armed then. */
int fut__io_add(fut_io *io, fut_io_item *it, int fd, uint32_t events);
/* Disarms it before it fires: true; false when it fires or has fired. */
bool fut__io_remove(fut_io *io, fut_io_item *it);
/* Disarms one armed item and returns it, or NULL: for destroy. */
fut_io_item *fut__io_take_one(fut_io *io);
/* Stops and joins the thread (nothing must be armed), frees the rest. */
void fut__io_fini(fut_io *io);

#endif /* FUT_IO_H */
