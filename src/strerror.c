/*
 * fut_strerror: a fixed, thread-safe message for each code fut itself
 * returns, and the C library's description for any other errno value
 * (EPIPE included: rejecting a promise with it is an idiom, not a code of
 * fut's, and a task's own EPIPE means what it always means).
 */
#define _GNU_SOURCE
#include <fut/fut.h>

#include <errno.h>
#include <string.h>

const char *fut_strerror(int error)
{
    switch (error) {
    case 0: return "success";
    case EINVAL: return "invalid argument";
    case ENOMEM: return "out of memory";
    case EAGAIN: return "cannot start another thread";
    case ECANCELED: return "cancelled";
    case ETIMEDOUT: return "timed out";
    case ESHUTDOWN: return "pool is shutting down";
    case EBUSY: return "task is running";
    case EALREADY: return "already completed";
    case EDEADLK: return "would deadlock: it would wait for itself";
    case EOWNERDEAD:
        return "the pool belongs to the parent process (made before fork)";
    default: break;
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
    const char *desc = strerrordesc_np(error);
    if (desc)
        return desc;
#endif
    return "unknown error";
}
