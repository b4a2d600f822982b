/*
 * fut — futures and promises on a fixed pool of POSIX threads.
 *
 * The whole public API. Conventions that hold for every function below:
 *
 *  - Errors: functions return 0 or a positive errno value, like pthreads.
 *    A task's own nonzero return code passes through unchanged.
 *  - Future makers (fut_spawn, fut_sleep, fut_then, fut_timeout, fut_all)
 *    never return NULL: any failure is carried by the returned future and
 *    reported by fut_await.
 *  - Ownership: every function that returns a future hands the caller one
 *    reference, dropped with fut_release. fut_then, fut_chain, fut_catch,
 *    fut_finally (and their _with forms) and fut_timeout consume their
 *    input; every other function borrows the futures it is given. A
 *    value is borrowed by whoever reads it (fut_await, a continuation),
 *    valid while the future is: fut frees a value only when asked to
 *    (fut_task_opts.value_free, fut_promise_resolve_with), and then once,
 *    unless fut_take takes it out.
 *  - Threads: every function may be called from any thread, including from
 *    inside tasks and continuations. No library lock is held while a task,
 *    a continuation or any other user code runs.
 *  - Waiting: a wait called on a pool worker first runs, right there, the
 *    awaited task if it is the newest unit this worker queued and nobody
 *    has taken it yet (so nested fork-join that awaits its newest child
 *    first completes on a pool of one thread); then, while it waits, it
 *    runs other queued work of that worker's pool. A unit run that way
 *    sits on top of the waiting task, which resumes when that unit
 *    returns. Rules that bound this:
 *      - New work goes to idle workers first: a waiting worker takes work
 *        queued by others only while no worker is idle or already on its
 *        way to that work; its own queued work it runs at any time.
 *      - Nesting is bounded: a worker runs other work inside at most 64
 *        nested waits (FUT_HELP_DEPTH_MAX in the sources); a wait deeper
 *        than that blocks on a condition variable, after handing this
 *        worker's queued work to a parked worker, so any number of tasks
 *        waiting at once cannot overflow a stack. On a pool of one
 *        thread, where no other worker could, such a wait still runs this
 *        worker's own queued units (not outside work). Taking back the
 *        awaited task itself is not bounded: its depth is the program's
 *        recursion.
 *      - A task that waits must still not rely on work queued after it
 *        that itself waits for the first task to go on (hand such results
 *        on with fut_then instead).
 *    On any other thread a wait blocks on a condition variable.
 *  - Threads that are not workers never spin: they block on a condition
 *    variable. Workers look for work before they sleep: an idle worker
 *    for at most 0.2 ms (yielding the CPU between looks; fewer of them do
 *    when the pool has as many workers as CPUs or more), a worker in a
 *    wait for about 20 us (not at all when the pool has more workers
 *    than CPUs), then they sleep on a condition variable. An idle pool
 *    uses no CPU.
 *  - fork: a child process has only the thread that forked, so the pools
 *    its parent made have no workers there. Every function given one of
 *    them (or a pending future, a promise or a group of one) returns
 *    EOWNERDEAD at once, and futures made so fail with it, instead of
 *    waiting for threads that do not exist; a future already complete
 *    can still be read, and fut_pool_destroy on such a pool returns
 *    EOWNERDEAD and leaves its memory. The library's own locks are
 *    ready for the child (pthread_atfork), so a pool made in the child
 *    works.
 *  - Misuse: with the library built checked (-DFUT_CHECKED=ON, as the
 *    tests build it), every handle is checked where a function receives
 *    it: a future released once too often or used after release, a
 *    future released after a call consumed it, a promise kept twice, or a
 *    pointer that is no handle stops the program with a message naming
 *    the function and the handle, instead of corrupting memory (freed
 *    futures are kept marked for a while, so a late use finds the mark;
 *    a pointer to unmapped memory still crashes). Broken invariants of
 *    the library stop it there too. Other builds do not check.
 *  - Fairness: a worker takes work submitted from outside threads ahead of
 *    its own queue once every 64 times it looks for a unit or takes one
 *    back (unless another worker is taking from that queue right then),
 *    so an outside spawn onto a busy pool starts within 64 units of some
 *    worker, even on one thread.
 */
#ifndef FUT_FUT_H
#define FUT_FUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The version, in one place: CMake reads these three lines. */
#define FUT_VERSION_MAJOR 0
#define FUT_VERSION_MINOR 1
#define FUT_VERSION_PATCH 0

#if defined(_WIN32)
#define FUT_API
#elif defined(__GNUC__)
#define FUT_API __attribute__((visibility("default")))
#else
#define FUT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** A fixed set of worker threads. Made by fut_pool_create. */
typedef struct fut_pool fut_pool;
/** The read end of one result: pending, then complete with a value or an
 * error, forever. Reference counted. */
typedef struct fut_future fut_future;
/** The write end of one result, kept or rejected exactly once. */
typedef struct fut_promise fut_promise;
/** A scope that joins its children: fut_group_wait returns once every
 * task spawned into it has finished. */
typedef struct fut_group fut_group;

/** A task: runs on a worker. Stores its value in *value and returns 0, or
 * returns a nonzero error code, which becomes the future's error. */
typedef int (*fut_task_fn)(void *arg, void **value);
/** A continuation: receives the value of the future it follows. */
typedef int (*fut_then_fn)(void *arg, void *input, void **value);
/** A recovery (fut_catch, fut_finally): receives the outcome of the future
 * it follows, its error (0 when it succeeded) and its value (NULL when it
 * failed). Stores its own value in *value and returns 0, or returns an
 * error code. */
typedef int (*fut_recover_fn)(void *arg, int error, void *input, void **value);
/** A chain step (fut_chain): receives the value of the future it follows
 * and stores in *next a future whose outcome becomes its own (giving up
 * its reference to it), and returns 0; or returns an error code. */
typedef int (*fut_chain_fn)(void *arg, void *input, fut_future **next);
/** A destructor, for values and arguments (fut_task_opts). */
typedef void (*fut_free_fn)(void *p);
/** A loop body for fut_parallel_for: handles indices [begin, end) and
 * returns 0, or an error code that stops the loop. */
typedef int (*fut_range_fn)(void *arg, size_t begin, size_t end);

/** Pool settings. Zero-initialize, then set what you need. With a trace
 * path, the pool records every unit it runs (worker, start, end, its name
 * from fut_task_opts, else its function's symbol where the binary exports
 * it, else its address), every timer (cancelled ones included), and an
 * arrow from each unit to each continuation its completion made ready;
 * fut_pool_destroy writes them as Chrome Trace Event JSON (open it in
 * Perfetto or chrome://tracing), and fut_pool_trace_write at any time; a
 * file that cannot be written at destroy is skipped, with one line on
 * stderr naming the pool, the path and the reason. With trace_events,
 * each thread keeps only its latest events (a flight recorder). Tracing
 * off costs one predictable branch per unit. */
typedef struct fut_pool_config {
    size_t threads;         /* 0: $FUT_THREADS, else the CPUs this
                               process may run on (fut_pool_create)      */
    const char *name;       /* worker thread name prefix; NULL: "fut"    */
    const char *trace_path; /* Chrome trace JSON written at destroy;
                               NULL: taken from $FUT_TRACE (the first
                               pool made so writes that file, the next
                               ones FILE.1, FILE.2, ...), else none      */
    uint64_t stall_ms;      /* 0: off. Else a watchdog reports on stderr
                               (with a fut_pool_dump) a unit that has run
                               stall_ms or longer, and a pool whose every
                               worker is blocked in a wait while nothing
                               is queued or timed (see below)            */
    int dump_signal;        /* 0: off. Else a signal number (SIGUSR1):
                               when it arrives, the pool dumps itself to
                               stderr, and writes its trace so far when
                               it traces, from a thread of its own,
                               never from the handler (see below)        */
    size_t trace_events;    /* 0: a trace keeps every event. Else each
                               thread keeps its latest trace_events, the
                               older ones counted as dropped             */
    bool virtual_time;      /* the pool's timers (sleeps, timeouts) run
                               on a virtual clock that starts at 0 and
                               moves only by fut_clock_advance (and at
                               destroy, which runs it to every pending
                               timer in turn)                          */
    bool auto_advance;      /* with virtual_time: whenever the pool is
                               settled (see fut_clock_advance) with timers
                               pending, the clock jumps to the earliest
                               deadline, so a program runs at full speed
                               with exact virtual times; settled with no
                               timer while units wait, it says on stderr
                               (with a dump) that nothing inside the pool
                               can move on, once each time               */
} fut_pool_config;

/* The watchdog (stall_ms) and the dump signal run on one more thread,
 * "<name>-mon", made only when one of them is asked for. The watchdog
 * looks every stall_ms / 4 at what each worker shows it runs, and since
 * when: a unit that has run for stall_ms or more is reported once (a
 * long unit, or one blocked in a wait), with its id. A pool
 * whose workers are all blocked in waits, with nothing queued and no
 * timer pending, seen twice in a row, is reported as a deadlock unless a
 * thread outside the pool completes what they wait for: the monitor
 * cannot see outside threads that may still keep a promise, so it
 * cannot prove a deadlock, only that nothing inside the pool can end
 * it. The dump signal's handler (installed with sigaction, replacing the
 * program's own for that signal, and left in place after destroy) only
 * posts a semaphore; at most 64 pools at once may use either. */

/** Counters of a pool, exact once the pool is idle. A unit of work is a
 * spawned task, a group child, a fut_parallel_for chunk or a
 * continuation. Once idle, spawned == completed + cancelled. */
typedef struct fut_pool_stats {
    size_t threads;
    uint64_t spawned;        /* units the pool accepted                      */
    uint64_t completed;      /* units that ran to their end, failed or not   */
    uint64_t failed;         /* completed units that returned nonzero        */
    uint64_t cancelled;      /* units that never ran                         */
    uint64_t stolen;         /* units and fut_join branches a worker took
                                from another worker's queue               */
    uint64_t queued;         /* accepted, ready, not yet started, now        */
    uint64_t timers_pending; /* sleeps and timeouts not yet due         */
} fut_pool_stats;

/** What a task or continuation can ask for beyond its function and
 * argument (fut_spawn_with, fut_then_with, ...). Zero-initialize, then set
 * what you need; NULL options, or all zero, behave as fut_spawn and
 * fut_then. */
typedef struct fut_task_opts {
    /** Copied. Shown in traces instead of the function's symbol. */
    const char *name;
    /** The future owns its value: value_free(value) runs once, on the
     * thread that drops the future's last reference (or, for a value a
     * failing function stored anyway, right after it returned), unless
     * fut_take took the value. A value the function passes on unchanged
     * (a continuation storing its input's, a fut_catch that did not need
     * to run, a chain following its step) stays its input's when the
     * input frees it (see fut_take); from an input that does not, it
     * becomes this future's. A NULL value is left alone. */
    fut_free_fn value_free;
    /** The unit owns its argument: arg_free(arg) runs once, before the
     * future completes: right after the function returns, or as the unit
     * is cancelled or refused; and before the call returns when the call
     * fails at once (from the call on, even with EINVAL, arg is the
     * library's). With arg_size it gets the copy (arg itself when the
     * copy could not be made). A NULL arg is left alone. */
    fut_free_fn arg_free;
    /** Nonzero: the arg_size bytes at arg are copied into the future
     * before the call returns, and the function gets the copy (aligned
     * for any type), so a caller may pass a struct on its stack. */
    size_t arg_size;
} fut_task_opts;

/* ---- Pools ------------------------------------------------------------ */

/**
 * Starts a pool and stores it in *pool. A NULL config means all defaults.
 * The pool size: config->threads when nonzero; else the environment
 * variable FUT_THREADS when it is set and not empty (a decimal number
 * from 1 to 4096, else EINVAL), so that a program's pool size can be
 * tried from outside (`FUT_THREADS=4 ./app`); else one worker per CPU in
 * the process's affinity mask.
 * Worker threads are named "<name>-<index>" and the timer thread
 * "<name>-timer", all before this returns; the name is cut, at a UTF-8
 * character boundary, so that each fits the 15 bytes a thread name has.
 * Returns 0; EINVAL (pool NULL, threads over 4096, a malformed
 * FUT_THREADS when it decides, a dump_signal that is not a signal one can
 * catch); ENOMEM; EAGAIN (the system could not start a thread, threads
 * started so far are joined; or 64 pools already use stall_ms or
 * dump_signal).
 * Does not block beyond thread creation.
 */
FUT_API int fut_pool_create(fut_pool **pool, const fut_pool_config *config);

/**
 * Shuts the pool down and frees it; the handle is gone afterwards. From
 * the moment it begins, threads that are not this pool's workers can no
 * longer add work to it (ESHUTDOWN); its workers still may. It blocks
 * until every accepted task and every child those tasks spawn has run and
 * every pending sleep and timeout has fired (cancel long ones first),
 * completes with ECANCELED the continuations that can no longer run
 * (their input is a promise nobody kept), then joins the workers.
 * Futures outlive the pool: awaiting one afterwards returns its outcome.
 * While the caller still holds a future made on the pool, the handle
 * stays valid for the functions that add work, which fail with
 * ESHUTDOWN; so a thread racing destroy with a spawn is safe as long as
 * it keeps one such future.
 * The pool's memory is freed once no future made on it is left; a thread
 * other than the caller that made futures on it may keep that memory (a
 * few hundred bytes per worker, no thread) until it uses another pool or
 * exits.
 * Returns 0; EINVAL (pool NULL); EDEADLK (called from one of the pool's
 * own workers, which would wait for itself; nothing is done).
 */
FUT_API int fut_pool_destroy(fut_pool *pool);

/**
 * Virtual time (a pool made with virtual_time): moves the pool's clock on
 * by ms, firing each timer due up to the new time in deadline order; after
 * each deadline, and at the end, it waits until the pool has settled, so
 * the work those timers made ready (and the work that work made, and
 * timers due meanwhile) has run: a test can assert right after it. The
 * pool is settled when every worker is idle or blocked in a wait that is
 * not satisfied, nothing is queued, no thread is adding work to it and no
 * timer is due or firing. A thread outside the pool that will complete
 * something later (keep a promise) is not seen: what it starts runs when
 * it does. Returns 0; EINVAL (pool NULL, or not virtual); EDEADLK (called
 * from one of the pool's workers, which would wait for itself to settle);
 * EOWNERDEAD (see fork). Blocks until settled; a unit that never returns
 * makes it wait forever (the watchdog, stall_ms, reports it).
 */
FUT_API int fut_clock_advance(fut_pool *pool, uint64_t ms);

/** The pool's clock in milliseconds: the virtual time of a pool made with
 * virtual_time, else CLOCK_MONOTONIC. 0 for NULL. Never blocks. */
FUT_API uint64_t fut_clock_now(const fut_pool *pool);

/** What fut_pool_shutdown did. */
typedef struct fut_shutdown_report {
    bool in_time;          /* all accepted work ended before the deadline */
    uint64_t ran;          /* units that ran to their end meanwhile        */
    uint64_t cancelled_units;         /* queued units that never ran      */
    uint64_t cancelled_timers;        /* sleeps and timeouts cut short   */
    uint64_t cancelled_continuations; /* waiting on inputs that nothing
                                         could complete (a promise nobody
                                         kept, a fut_all of those)       */
    uint64_t cancelled_fd_waits;      /* fut_fd_wait still waiting at
                                         the end (not work: in_time may
                                         be true)                       */
    uint64_t overran;    /* workers still running a unit at the deadline */
    uint64_t overrun_ms; /* how long after the deadline the last of them
                            returned                                      */
} fut_shutdown_report;

/**
 * Ends the pool within a deadline, then frees it (the handle is gone, as
 * after fut_pool_destroy). From the call on, outside threads can add no
 * work (ESHUTDOWN); accepted work goes on, as in fut_pool_destroy, until
 * deadline_ms milliseconds have passed. If it has not all ended by then:
 * queued units are cancelled as workers come to them (ECANCELED; a child
 * that a running task awaits and takes back to run in place still runs; a
 * fut_parallel_for whose chunks were skipped returns ECANCELED), every
 * pending sleep, timeout and fd wait completes with ECANCELED (a timeout
 * cancels its input), continuations waiting on inputs that nothing will
 * complete are cancelled, running units see fut_cancel_requested() (their own
 * outcome stands) and are waited for: a unit is never stopped in the
 * middle, so one that does not look can make this wait past the
 * deadline, which report->overrun_ms says. Units spawned meanwhile by
 * workers are cancelled the same way. fut_join branches still run. Every
 * future of the pool completes (a promise's own future stays for its
 * promise to keep). Fills *report (report may be NULL). Returns 0; EINVAL
 * (pool NULL); EDEADLK (called from one of the pool's workers; nothing is
 * done); EOWNERDEAD (the pool is the parent's, see fork). Blocks until the
 * pool has ended.
 */
FUT_API int fut_pool_shutdown(fut_pool *pool, uint64_t deadline_ms,
                              fut_shutdown_report *report);

/** The number of worker threads; 0 for a NULL pool. Never blocks. */
FUT_API size_t fut_pool_threads(const fut_pool *pool);

/**
 * Copies the pool's counters into *stats. Returns 0; EINVAL (a NULL
 * argument). Never blocks.
 */
FUT_API int fut_pool_stats_get(fut_pool *pool, fut_pool_stats *stats);

/**
 * Writes the pool's trace as it stands (see fut_pool_config) to path, or
 * to the pool's trace path when path is NULL, while the pool runs: each
 * thread's events are read under a lock that thread takes to record one,
 * so it waits meanwhile; nothing is cleared (the trace written at destroy
 * has everything still kept). Returns 0; EINVAL (pool NULL, or a pool that
 * does not trace); the errno value of opening or writing the file (the
 * file may then be partial). Not while fut_pool_destroy runs. Blocks for
 * the time it writes.
 */
FUT_API int fut_pool_trace_write(fut_pool *pool, const char *path);

/** Flags of fut_pool_dump: text (0), or one line of JSON. */
enum { FUT_DUMP_TEXT = 0, FUT_DUMP_JSON = 1 };

/**
 * Writes to out what the pool is doing now: its state and counters; each
 * worker (its thread name, whether it runs a unit, is idle, is blocked in
 * a wait or looks for work; the function it runs, by its symbol where the
 * binary exports it, else its address, and its name from fut_task_opts
 * (a task that its awaiter took back and runs in place of waiting is
 * shown as that awaiter), its id (fut_id) and for how long it has run (to
 * the kernel's clock tick, a few ms); the units in a wait on it
 * (fut_await, fut_join_all, fut_await_any, fut_group_wait, ...),
 * innermost first, each with its id and, when it waits for one task or
 * continuation, that unit's id (for any of several: how many);
 * the units it has completed, so two dumps a moment apart show a worker
 * that is stuck; the units queued on it); the 16 soonest timers, with when
 * they are due; and the continuations waiting on a promise, a fut_all or
 * a timeout (up to 16). As text, or (FUT_DUMP_JSON) as one JSON object on
 * one line. A snapshot, not one instant: workers go on meanwhile, and
 * none of them is stopped. It takes no lock it cannot have at once, so it
 * can be called from a debugger with every thread stopped (gdb: `call
 * fut_pool_dump(pool, stderr, 0)`); a part it could not read for that
 * reason is said to be missing. Not while fut_pool_destroy runs. Returns
 * 0; EINVAL (pool or out NULL, unknown flags); ENOMEM; EIO (writing to out
 * failed). Never blocks (beyond writing to out).
 */
FUT_API int fut_pool_dump(fut_pool *pool, FILE *out, unsigned flags);

/** The calling thread's index (0..threads-1) when it is a pool worker,
 * -1 on any other thread. Never blocks. */
FUT_API int fut_worker_index(void);

/**
 * The id of the unit f runs (a task of fut_spawn, or a continuation of
 * fut_then, fut_catch, fut_finally or fut_chain): a number from 1 up,
 * unique in the process, given when f is made and shown beside the unit's
 * name in dumps ("#12"), traces (args.id) and the watchdog's reports. 0
 * for f NULL and for futures that run no code of the caller's (promises,
 * sleeps, timeouts, fut_all, fd waits, and futures failed at once). A
 * group's children have ids too (in dumps, traces and fut_current_id),
 * and fut_parallel_for's chunks show the id of the unit that called it. Ids
 * made on one thread increase; each thread takes them 1024 at a time, so
 * ids of units made on different threads do not say which came first.
 * Never blocks.
 */
FUT_API uint64_t fut_id(const fut_future *f);

/** The id of the unit running on the calling thread (see fut_id), or 0
 * when it runs none: outside any unit, or in a fut_join branch that runs
 * apart from the unit that called fut_join (one another worker took, or
 * both, when fut_join was called from a thread that is not one of the
 * pool's workers). Never blocks. */
FUT_API uint64_t fut_current_id(void);

/* ---- Making futures ---------------------------------------------------- */

/**
 * Runs fn(arg, &value) on a worker of the pool. Never returns NULL; the
 * future fails with EINVAL (pool or fn NULL), ENOMEM, or ESHUTDOWN (the
 * pool is being destroyed and the caller is not one of its workers).
 * Never blocks on the task.
 */
FUT_API fut_future *fut_spawn(fut_pool *pool, fut_task_fn fn, void *arg);

/**
 * fut_spawn with options (see fut_task_opts): a name, a destructor for the
 * value and one for the argument, a copy of the argument. Errors carried:
 * those of fut_spawn. opts NULL: fut_spawn. Never blocks on the task.
 */
FUT_API fut_future *fut_spawn_with(fut_pool *pool, const fut_task_opts *opts,
                                   fut_task_fn fn, void *arg);

/**
 * Consumes f and returns a future for fn(arg, value of f, &value), run on
 * f's pool once f has completed successfully. If f fails, the new future
 * fails with the same error and fn does not run (ECANCELED when f was
 * cancelled). If f has no pool (it failed for bad arguments, or is the
 * fut_all of an empty set) fn runs inline in the calling thread. Errors
 * carried by the future: EINVAL (f or fn NULL; f is still consumed),
 * ENOMEM, ESHUTDOWN (f's pool is shutting down and the caller is not one of
 * its workers, or f's pool is gone, and fn would have had to run), and
 * ECANCELED (f's pool was destroyed while this continuation still waited
 * for f). Never blocks.
 */
FUT_API fut_future *fut_then(fut_future *f, fut_then_fn fn, void *arg);

/**
 * Consumes f and returns a future for the outcome of a future that fn
 * makes: once f has completed successfully, fn(arg, value of f, &next)
 * runs on f's pool as fut_then's fn does, and returns 0 with next set to a
 * future it gives up (any pool, a promise's, another chain's), or an
 * error. The new future then follows next, holding no worker while it is
 * pending, and completes with next's outcome and value. This is how a step
 * that starts more asynchronous work (fetch, then parse, then fetch the
 * links) is written without blocking a worker in fut_await: the C form of
 * an `async fn` that awaits, folly's thenValue returning a future,
 * JavaScript's then returning a promise. fn returning 0 with next NULL
 * fails the new future with EINVAL; a future stored in next along with
 * an error is released. If f fails, fn does not run and the
 * error passes on. Cancelling the new future while fn runs lets fn finish
 * and then cancels next; cancelling it while it follows next cancels next
 * (ECANCELED either way); before fn runs, as fut_then. Errors carried:
 * those of fut_then, and next's own. Once fn has run, the pool's destroy
 * no longer waits for it or cancels it: it follows next, which completes
 * on its own terms. Never blocks.
 */
FUT_API fut_future *fut_chain(fut_future *f, fut_chain_fn fn, void *arg);

/**
 * Consumes f and returns a future that recovers from f's failure: when f
 * fails (with any error: a task's own, ECANCELED, ETIMEDOUT, EPIPE from a
 * rejected promise, ...), fn(arg, error, NULL, &value) runs on f's pool
 * and its result is the new future's outcome (return 0 to recover with
 * *value, or an error to fail again). When f succeeds, fn does not run and
 * f's value passes through. It is fut_then's mirror: like folly's
 * thenError, or matching Err in Rust. Otherwise as fut_then: f with no
 * pool runs fn here; errors carried: EINVAL (f or fn NULL; f is still
 * consumed), ENOMEM, ESHUTDOWN (fn would have had to run on a pool that is
 * shutting down or gone, and the caller is not one of its workers),
 * ECANCELED (cancelled before it ran, or its pool was destroyed while it
 * waited for f). Cancelling it cancels f. Never blocks.
 */
FUT_API fut_future *fut_catch(fut_future *f, fut_recover_fn fn, void *arg);

/**
 * Consumes f and returns a future for fn(arg, error, value, &value_out),
 * run on f's pool once f has completed, whatever its outcome (error 0 and
 * f's value, or f's error and NULL); fn's result is the new future's
 * outcome (to keep f's, return error and store value). Like folly's
 * thenTry, or a match on a Result in Rust: a cleanup or a fallback that
 * must run either way. Errors carried and cancellation as fut_catch.
 * Never blocks.
 */
FUT_API fut_future *fut_finally(fut_future *f, fut_recover_fn fn, void *arg);

/**
 * fut_then, fut_chain, fut_catch and fut_finally with options (see
 * fut_task_opts). Errors carried: those of the function without options.
 * opts NULL: the function without options. For fut_chain_with,
 * value_free applies to the value of the future it follows, unless that
 * future frees it itself. Never block.
 */
FUT_API fut_future *fut_then_with(fut_future *f, const fut_task_opts *opts,
                                  fut_then_fn fn, void *arg);
FUT_API fut_future *fut_chain_with(fut_future *f, const fut_task_opts *opts,
                                   fut_chain_fn fn, void *arg);
FUT_API fut_future *fut_catch_with(fut_future *f, const fut_task_opts *opts,
                                   fut_recover_fn fn, void *arg);
FUT_API fut_future *fut_finally_with(fut_future *f, const fut_task_opts *opts,
                                     fut_recover_fn fn, void *arg);

/**
 * Returns a future that completes with a NULL value ms milliseconds from
 * now (CLOCK_MONOTONIC), from the pool's timer thread: no worker is held,
 * so ten thousand sleeps on a two-thread pool finish together. Cancelling
 * it removes its timer at once. Errors carried: EINVAL (pool NULL),
 * ENOMEM, ESHUTDOWN (the pool is being destroyed and the caller is not one
 * of its workers). Never blocks.
 */
FUT_API fut_future *fut_sleep(fut_pool *pool, uint64_t ms);

/**
 * Consumes f and returns a future that carries f's outcome if f completes
 * within ms milliseconds, and otherwise fails with ETIMEDOUT and cancels f
 * (a running task sees fut_cancel_requested()). A complete f, or one with
 * no pool, is returned as it is: it needs no timer. Cancelling the result
 * also cancels f. Errors carried: EINVAL (f NULL), ENOMEM, ESHUTDOWN (f's
 * pool is shutting down and the caller is not one of its workers, or f's
 * pool is gone while f is still pending). With ENOMEM, f is cancelled as
 * if the timeout had fired, since it can no longer be bounded. Never
 * blocks.
 */
FUT_API fut_future *fut_timeout(fut_future *f, uint64_t ms);

/** fut_fd_wait's events, and the bits of its value. */
enum {
    FUT_FD_READ = 1,   /* readable (or at its end)                 */
    FUT_FD_WRITE = 2,  /* writable                                 */
    FUT_FD_ERROR = 4,  /* value only: an error condition on it     */
    FUT_FD_HANGUP = 8, /* value only: the other end hung up        */
};

/**
 * Returns a future that completes when fd is ready for events
 * (FUT_FD_READ, FUT_FD_WRITE, or both), with error 0 and as value what it
 * is ready for (FUT_FD_ bits, `(unsigned)(uintptr_t)value`), checked by
 * the pool's own epoll thread (started on the first wait): no worker is
 * held while it waits. fd is borrowed (the wait watches a duplicate of
 * it): keep it open until the future completes; any number of waits may
 * watch one descriptor. It reads nothing and writes nothing: do that in
 * a continuation (fut_then). Cancelling it stops the wait at once
 * (ECANCELED), so fut_timeout bounds it; fut_pool_destroy and
 * fut_pool_shutdown complete the waits still pending with ECANCELED.
 * Errors carried: EINVAL (pool NULL, fd negative, events 0 or unknown
 * bits), EBADF (fd is not open), EPERM (a file epoll cannot wait on, such
 * as a regular file), ENOMEM, EAGAIN (the epoll thread could not start),
 * ESHUTDOWN (the pool is being destroyed and the caller is not one of its
 * workers), EOWNERDEAD (see fork). Never blocks.
 */
FUT_API fut_future *fut_fd_wait(fut_pool *pool, int fd, unsigned events);

/**
 * Borrows futs[0..n-1] and returns a future that completes once all of them
 * have, with error 0 or the error of the lowest-index failed input, and a
 * NULL value. n == 0 gives a completed future. Errors carried: EINVAL (futs
 * NULL with n > 0, or a NULL entry), ENOMEM (no memory, or n too large to
 * keep track of: checked before any entry is read). The future belongs to
 * the first input's pool that has one, even when other inputs belong to
 * other pools: a continuation attached to it runs on that pool, and if
 * that pool is destroyed before the fut_all completes, the continuation
 * fails with ECANCELED (as on a promise nobody kept). Never blocks.
 */
FUT_API fut_future *fut_all(fut_future *const futs[], size_t n);

/**
 * fut_all that gathers: on success its value is an array of the n inputs'
 * values, in input order (`void **`), which the future owns: it stays
 * valid while you hold a reference to the future (or, in a continuation,
 * for the call; or to a future passing it on unchanged) and is freed
 * with it. It keeps its inputs until then, so that values they own stay
 * valid too. On failure, the lowest-index failed
 * input's error and a NULL value. n == 0 gives a completed future with a
 * NULL value. Like folly's collect or tokio's join_all. Errors carried,
 * pool and destroy as fut_all. Never blocks.
 */
FUT_API fut_future *fut_all_values(fut_future *const futs[], size_t n);

/**
 * Borrows futs[0..n-1] and returns a future that completes as soon as one
 * of them has, whatever its outcome, with error 0 and as value the index
 * of that input, cast to a pointer (`(size_t)(uintptr_t)value`); read the
 * input's own outcome with fut_await(futs[index], ...), which no longer
 * blocks. An input complete already wins at once (the lowest index among
 * those). With cancel_rest, the other inputs are then cancelled (fut_cancel
 * on each, as the caller would: queued work never runs, running tasks see
 * fut_cancel_requested()). The inputs stay retained until each completes.
 * Like tokio's select! or folly's collectAny, as a future. Errors carried:
 * EINVAL (n == 0, futs NULL, or a NULL entry), ENOMEM (as fut_all). Its
 * pool and a continuation's fate at destroy are fut_all's. Cancelling it
 * leaves the inputs alone. Never blocks.
 */
FUT_API fut_future *fut_any(fut_future *const futs[], size_t n,
                            bool cancel_rest);

/* ---- Waiting ----------------------------------------------------------- */

/**
 * Blocks until f completes, stores its value in *value (NULL when f failed;
 * value may be NULL) and returns its error: 0, the task's own code, or any
 * error listed for the function that made f. EINVAL for a NULL f. EDEADLK,
 * instead of blocking forever, when the wait would never end because it
 * waits for the caller itself: at once when f is the pending future of
 * the very task or continuation that calls it, or of a unit this thread
 * runs below it; and, when the caller's worker has no queued work left
 * to run while it waits and would block, when f is run by units of the
 * caller's pool that wait, through a chain of fut_await, fut_await_for,
 * fut_join_all or fut_join_settled calls, for the caller (A awaits B
 * while B awaits A), or cannot resume before the caller returns (a unit
 * this worker runs on top of the caller's own wait). Only a wait about to
 * block looks for such a cycle (so a wait that ends while its worker
 * helps costs nothing more), which may also pass through groups (a unit waiting in
 * fut_group_wait for a group whose child waits for it) and fut_await_any
 * (a unit waiting for any of several closes a cycle only when every one
 * of them leads back). A promise is kept by whoever holds it, which the
 * pool cannot know: a wait on a promise's future, or on a continuation
 * that has not run yet, never counts as part of a cycle, nor does one
 * through another pool (the pool's watchdog, stall_ms, reports their
 * effect). Borrows f. On a pool worker, runs queued work of that pool
 * meanwhile.
 */
FUT_API int fut_await(fut_future *f, void **value);

/**
 * fut_await with a limit of ms milliseconds on CLOCK_MONOTONIC. Returns
 * ETIMEDOUT (and stores NULL) when f is still pending after ms; ms == 0
 * only polls. Other results as fut_await (EDEADLK included). On a
 * worker, a task it runs while helping may overrun the limit.
 */
FUT_API int fut_await_for(fut_future *f, uint64_t ms, void **value);

/**
 * Blocks until every one of futs[0..n-1] has completed and returns the
 * error of the lowest-index failed one, or 0. n == 0 returns 0 at once.
 * EINVAL (futs NULL with n > 0, or a NULL entry; nothing is awaited);
 * EDEADLK (one of them is the caller's own pending future, or waits for
 * the caller through a cycle, as fut_await; nothing is awaited).
 * Borrows the futures.
 */
FUT_API int fut_join_all(fut_future *const futs[], size_t n);

/**
 * Blocks until every one of futs[0..n-1] has completed, whatever their
 * outcomes, and stores each one's error in errors[i] (0 for a success;
 * read values with fut_await, which no longer blocks). Returns 0; EINVAL
 * (futs or errors NULL with n > 0, or a NULL entry; nothing is awaited or
 * stored); EDEADLK (as fut_join_all). Like JavaScript's Promise.allSettled or folly's collectAll.
 * Borrows the futures; on a worker, runs queued work meanwhile.
 */
FUT_API int fut_join_settled(fut_future *const futs[], size_t n, int errors[]);

/**
 * Blocks until at least one of futs[0..n-1] has completed, whatever its
 * outcome, stores the lowest complete index in *index (index may be NULL)
 * and returns 0; read that future's outcome with fut_await. EINVAL (n == 0,
 * futs NULL, or a NULL entry); ENOMEM (no memory to wait on many futures);
 * EDEADLK when none is complete and every one of them waits for the
 * caller (as fut_await: its own future, or through a cycle; cycles
 * through other units are looked for, here and in their waits, when it
 * waits for at most four futures). Borrows the futures.
 */
FUT_API int fut_await_any(fut_future *const futs[], size_t n, size_t *index);

/**
 * Blocks until f completes (as fut_await) and, when it succeeded, takes
 * its value out: no future frees it any more (the destructor it was made
 * with does not run), and the caller owns it. Works on any future; on one
 * whose value has no destructor it only marks the value taken. A value is
 * taken once: a future that passed on its input's value unchanged (a
 * fut_catch that was not needed, a fut_timeout in time, a fut_chain, a
 * continuation storing its input) shares that value with the input when
 * the input frees it, and taking it from either takes it from both (when
 * the input does not free it and the later future has a value_free, the
 * later future owns it alone: take it there). Do not take a value that a
 * continuation may still be reading. Like Rust's `.await` on a
 * JoinHandle, or folly's `std::move(f).get()`. Stores the value in *value
 * (NULL when it fails) and returns f's error; EALREADY (the value was
 * taken already); EINVAL (f or value NULL, or f a fut_all_values or a
 * future passing its array on: the array stays the fut_all_values', take
 * each value from its input); EDEADLK as fut_await. Borrows f. On a worker, runs queued work meanwhile.
 */
FUT_API int fut_take(fut_future *f, void **value);

/** Whether f has completed; false for NULL. Never blocks. */
FUT_API bool fut_is_ready(const fut_future *f);

/* ---- Handles ----------------------------------------------------------- */

/** Adds a reference to f and returns f (NULL stays NULL). Never blocks. */
FUT_API fut_future *fut_retain(fut_future *f);

/** Drops one reference; the last one frees f, pending or not (the work
 * still runs), and its value when f owns it (fut_task_opts.value_free,
 * fut_promise_resolve_with) and nobody took it: the destructor runs here.
 * NULL is ignored. Never blocks (beyond a destructor). */
FUT_API void fut_release(fut_future *f);

/* ---- Cancellation ------------------------------------------------------ */

/**
 * Asks f to stop. Returns 0 when f's work had not started: it never runs
 * and f fails with ECANCELED (a continuation also cancels the input it
 * consumed, a timeout its input, a sleep its timer; a fut_all leaves its
 * inputs alone). EBUSY while the task runs:
 * it can poll fut_cancel_requested() and its return value stays f's
 * outcome. EALREADY when f had already completed. EINVAL for NULL.
 * A cancel and a completion (a promise kept, a task finishing) racing for
 * the same future: whichever comes first decides the outcome, and the
 * other gets EALREADY (fut_cancel here, fut_promise_resolve/_reject
 * there; the promise is freed either way).
 * Borrows f. Never blocks.
 */
FUT_API int fut_cancel(fut_future *f);

/** Inside a task or continuation: whether its future has been cancelled;
 * inside a group's child: whether the group has been (fut_group_cancel).
 * false anywhere else. Never blocks. */
FUT_API bool fut_cancel_requested(void);

/* ---- Promises ---------------------------------------------------------- */

/**
 * Makes a promise and its future, both bound to pool (which may be
 * destroyed before the promise is kept). The caller owns the promise and
 * one reference to the future. A promise is not work: this succeeds while
 * the pool is being destroyed, and after fut_pool_destroy has returned as
 * long as the caller still holds a future made on the pool (which keeps
 * its memory); the promise can then still be kept, and continuations
 * attached from outside threads fail with ESHUTDOWN where they would have
 * to run. Returns 0; EINVAL (a NULL argument); ENOMEM. Outputs are
 * untouched on error. Never blocks.
 */
FUT_API int fut_promise_create(fut_pool *pool, fut_promise **promise,
                               fut_future **future);

/**
 * Completes the promise's future with value and frees the promise.
 * Returns 0; EALREADY (the future was cancelled first; the promise is
 * still freed); EINVAL (promise NULL, or a promise used already: misuse,
 * which the checked build stops at; nothing is touched). Never blocks;
 * continuations are queued on the pool, or run here when they only pass
 * a failure on.
 */
FUT_API int fut_promise_resolve(fut_promise *promise, void *value);

/**
 * fut_promise_resolve with a value the future owns: value_free(value)
 * runs once, on the thread that drops the future's last reference, unless
 * fut_take takes the value; or before this returns, when the future was
 * cancelled first (EALREADY), or the promise is NULL (EINVAL): from the
 * call on, the value is the library's. Returns as fut_promise_resolve.
 * Never blocks.
 */
FUT_API int fut_promise_resolve_with(fut_promise *promise, void *value,
                                     fut_free_fn value_free);

/**
 * Fails the promise's future with error and frees the promise. Rejecting
 * with EPIPE is the idiom for a promise that will never be kept. Returns
 * 0; EALREADY (the future was cancelled first; the promise is still
 * freed); EINVAL (promise NULL, or error 0: the promise is not consumed).
 * Never blocks.
 */
FUT_API int fut_promise_reject(fut_promise *promise, int error);

/** The version of the library in use, "MAJOR.MINOR.PATCH" (compare with
 * the FUT_VERSION_* macros of the header you compiled against). Never
 * blocks. */
FUT_API const char *fut_version(void);

/* ---- Structured scopes and loops --------------------------------------- */

/**
 * Makes a group whose children run on pool and stores it in *group. Like
 * fut_promise_create, this succeeds while the pool is being destroyed and
 * after (while the caller holds a future made on it); spawning into the
 * group is what is refused then (ESHUTDOWN). Returns 0; EINVAL (a NULL
 * argument); ENOMEM. Never blocks.
 */
FUT_API int fut_group_create(fut_pool *pool, fut_group **group);

/**
 * Runs fn(arg, &value) on the pool as a child of the group; the value is
 * dropped, a nonzero return is the child's error. Children may spawn more
 * children into the same group. Returns 0; EINVAL (group or fn NULL);
 * ENOMEM; ESHUTDOWN (the pool is being destroyed and the caller is not one
 * of its workers); ECANCELED (the group was cancelled: nothing runs).
 * Never blocks.
 */
FUT_API int fut_group_spawn(fut_group *group, fut_task_fn fn, void *arg);

/**
 * Blocks until every child spawned into the group so far, and every child
 * they spawn, has finished, and returns the error of the first child to
 * fail (in time) since the group was made, or 0; EINVAL for NULL;
 * EDEADLK, at once, when called from one of the group's own children (it
 * would wait for itself), or, when the wait is about to block, when a
 * child waits, through a cycle of waits, for the caller (see fut_await). On a worker, runs queued work (its children
 * among it) meanwhile. The group
 * may be spawned into and waited on again.
 */
FUT_API int fut_group_wait(fut_group *group);

/**
 * Cancels the group as a scope: children not started yet never run (each
 * counts as a cancelled unit), running ones see fut_cancel_requested()
 * (they decide when to stop), and later fut_group_spawn calls return
 * ECANCELED and run nothing. The group's error becomes ECANCELED unless a
 * child failed before. Waiting is still needed (fut_group_wait returns
 * once the running children have returned). Like cancelling a Go context
 * or a tokio JoinSet's abort_all. Returns 0; EINVAL (NULL). Never blocks.
 */
FUT_API int fut_group_cancel(fut_group *group);

/**
 * Waits for the group's children (as fut_group_wait), then frees the group.
 * NULL is ignored. Must not be called from one of the group's own
 * children, which would wait for itself (nor from a unit in a cycle of
 * waits through them): there the group is not freed, as its children
 * still run, and the checked build stops the program with a message
 * naming the call.
 */
FUT_API void fut_group_destroy(fut_group *group);

/**
 * Calls fn(arg, lo, hi) for consecutive chunks [lo, hi) of grain indices
 * covering [begin, end) (the last chunk may be shorter; grain 0 means 1),
 * on the pool's workers with the caller running chunks too, and returns
 * once all are done. Once a chunk fails, chunks not yet started are
 * skipped; returns the error of the first chunk to fail, or 0. EINVAL (pool
 * or fn NULL, or begin > end); ENOMEM; ESHUTDOWN (the pool is being
 * destroyed and the caller is not one of its workers; an empty range
 * too). Otherwise an empty range returns 0 at once. Blocks until done; on a
 * worker it runs queued work while it waits. Every chunk, the ones the caller
 * runs included, is work the pool accepted: fut_pool_destroy waits for all of
 * them. fut_cancel_requested() is false inside the body.
 */
FUT_API int fut_parallel_for(fut_pool *pool, size_t begin, size_t end,
                             size_t grain, fut_range_fn fn, void *arg);

/** A branch of fut_join: returns 0 or an error code. */
typedef int (*fut_join_fn)(void *arg);

/**
 * Fork-join for recursive divide and conquer: runs fn_a(arg_a) and
 * fn_b(arg_b), in parallel when a worker is free, and returns once both
 * have returned: fn_a's error if nonzero, else fn_b's, else 0. Nothing is
 * allocated: b's record lives in the caller's stack frame.
 *  - On a worker of pool, b is offered to the other workers (pushed on
 *    this worker's queue), a runs here, then b runs here too unless
 *    another worker took it meanwhile, in which case this worker runs
 *    other queued work of the pool until b has returned (within the
 *    nesting bound of waits, see fut_await). Nested fut_join therefore
 *    completes on a pool of one thread.
 *  - On any other thread (an outside thread, or a worker of another
 *    pool), the whole join is queued on pool (not as a unit counted in
 *    its stats): a worker runs it as above (so joins nested in fn_a and fn_b
 * take the worker's path), while the caller blocks on a condition variable (a
 *    worker of another pool runs its own pool's work meanwhile) until
 *    both have returned.
 * fn_a and fn_b are not futures: they cannot be cancelled and are not
 * units in the pool's stats (a b that another worker took counts in
 * `stolen`). Inside fn_a, and inside fn_b when it runs on the thread
 * that called fut_join, fut_cancel_requested() answers for the task that
 * called fut_join; run anywhere else, it is false.
 * Returns EINVAL (pool, fn_a or fn_b NULL; nothing runs) and ESHUTDOWN
 * (pool is being destroyed and the caller is not one of its workers;
 * nothing runs). Blocks until both have returned.
 */
FUT_API int fut_join(fut_pool *pool, fut_join_fn fn_a, void *arg_a,
                     fut_join_fn fn_b, void *arg_b);

/** A name for every error code fut returns, and for other errno values;
 * never NULL. Never blocks. */
FUT_API const char *fut_strerror(int error);

#ifdef __cplusplus
}
#endif

#endif /* FUT_FUT_H */
