/*
 * What every module shares: the clock, condition variables on it, thread
 * names, the CPU count. Calls nothing else of fut.
 */
#define _GNU_SOURCE
#include "base.h"

#include <sched.h>
#include <string.h>
#include <unistd.h>

int fut__cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!rc)
        rc = pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

uint64_t fut__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* "<name>-<suffix>", the name cut at a character boundary so that the
 * whole fits the 15 bytes a thread name may have. */
void fut__thread_name(char out[16], const char *name, const char *suffix)
{
    size_t room = 15 - strlen(suffix);
    size_t keep = strnlen(name, room);
    if (keep == room) /* cut: step back to the start of a UTF-8 character */
        while (keep > 0 && ((unsigned char)name[keep] & 0xC0) == 0x80)
            keep--;
    memcpy(out, name, keep);
    strcpy(out + keep, suffix);
}

size_t fut__cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (size_t)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}
