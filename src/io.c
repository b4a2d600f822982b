/*
 * The epoll thread of a pool (io.h). Each armed item is a dup of the
 * caller's descriptor registered one-shot, so that any number of waits
 * may watch one descriptor; the thread sleeps in epoll_wait with no
 * timeout, and an eventfd wakes it to stop.
 */
#define _GNU_SOURCE
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

void fut__io_init(fut_io *io, const char *name, void (*fire)(fut_io_item *it))
{
    io->lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER; /* cannot fail */
    io->epfd = io->evfd = -1;
    io->started = io->stop = false;
    io->fire = fire;
    io->armed = NULL;
    fut__thread_name(io->name, name, "-io");
}

/* Unlinks it from the armed list: lock held. */
static void unlink_item(fut_io *io, fut_io_item *it)
{
    if (it->prev)
        it->prev->next = it->next;
    else
        io->armed = it->next;
    if (it->next)
        it->next->prev = it->prev;
}

/* The item is ours (disarmed by us): takes it out of epoll and the list. */
static void unregister(fut_io *io, fut_io_item *it)
{
    pthread_mutex_lock(&io->lock);
    unlink_item(io, it);
    pthread_mutex_unlock(&io->lock);
    epoll_ctl(io->epfd, EPOLL_CTL_DEL, it->fd, NULL);
    close(it->fd);
}

static void *io_main(void *arg)
{
    fut_io *io = arg;
    struct epoll_event ev[64];
    for (;;) {
        int n = epoll_wait(io->epfd, ev, 64, -1);
        for (int i = 0; i < n; i++) {
            fut_io_item *it = ev[i].data.ptr;
            if (!it) { /* the eventfd: stop */
                uint64_t v;
                (void)!read(io->evfd, &v, sizeof(v));
                pthread_mutex_lock(&io->lock);
                bool stop = io->stop;
                pthread_mutex_unlock(&io->lock);
                if (stop)
                    return NULL;
                continue;
            }
            if (!atomic_exchange(&it->armed, false))
                continue; /* removed meanwhile: its remover ends it */
            it->revents = ev[i].events;
            unregister(io, it);
            io->fire(it); /* it may be gone afterwards */
        }
    }
}

/* The thread and its descriptors, on first use: lock held. */
static int start(fut_io *io)
{
    io->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (io->epfd < 0)
        return errno;
    io->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    int rc = io->evfd < 0                                            ? errno
             : epoll_ctl(io->epfd, EPOLL_CTL_ADD, io->evfd, &ev) < 0 ? errno
                                                                    : 0;
    if (!rc)
        rc = pthread_create(&io->thread, NULL, io_main, io);
    if (rc) {
        if (io->evfd >= 0)
            close(io->evfd);
        close(io->epfd);
        io->epfd = io->evfd = -1;
        return rc;
    }
    pthread_setname_np(io->thread, io->name);
    io->started = true;
    return 0;
}

int fut__io_add(fut_io *io, fut_io_item *it, int fd, uint32_t events)
{
    pthread_mutex_lock(&io->lock);
    int rc = io->started ? 0 : start(io);
    pthread_mutex_unlock(&io->lock);
    if (rc)
        return rc;
    it->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (it->fd < 0)
        return errno;
    atomic_init(&it->armed, true);
    it->prev = NULL;
    pthread_mutex_lock(&io->lock); /* listed before it can fire */
    it->next = io->armed;
    if (io->armed)
        io->armed->prev = it;
    io->armed = it;
    pthread_mutex_unlock(&io->lock);
    struct epoll_event ev = {.events = events | EPOLLONESHOT, .data.ptr = it};
    if (epoll_ctl(io->epfd, EPOLL_CTL_ADD, it->fd, &ev) < 0) {
        rc = errno;
        atomic_store(&it->armed, false);
        pthread_mutex_lock(&io->lock);
        unlink_item(io, it);
        pthread_mutex_unlock(&io->lock);
        close(it->fd);
    }
    return rc;
}

bool fut__io_remove(fut_io *io, fut_io_item *it)
{
    if (!atomic_exchange(&it->armed, false))
        return false;
    unregister(io, it);
    return true;
}

fut_io_item *fut__io_take_one(fut_io *io)
{
    pthread_mutex_lock(&io->lock);
    fut_io_item *it = io->armed;
    while (it && !atomic_exchange(&it->armed, false))
        it = it->next; /* firing: the thread unlinks and ends it */
    pthread_mutex_unlock(&io->lock);
    if (it)
        unregister(io, it);
    return it;
}

void fut__io_fini(fut_io *io)
{
    if (!io->started)
        return;
    pthread_mutex_lock(&io->lock);
    io->stop = true;
    pthread_mutex_unlock(&io->lock);
    uint64_t one = 1;
    (void)!write(io->evfd, &one, sizeof(one));
    pthread_join(io->thread, NULL);
    close(io->evfd);
    close(io->epfd);
    io->started = false;
}
