#!/usr/bin/env python3
"""Mutation run: applies one-line mutations of src/ one at a time (a
dropped wakeup, a swapped error code, a skipped counter, a timer left in
the heap, destroy not waiting, ...), builds the plain test build and runs
every suite, and reports which mutations the suites catch.

    scripts/mutate.py [BUILD_DIR]     (default: build-mutate)

Works on a copy of the tree in BUILD_DIR/tree, so the checkout is never
touched. A mutation is caught when any test fails (or times out); the
score is caught / total. Exits 0 when at least 90% are caught.
"""
import os
import shutil
import signal
import subprocess
import sys

# (file, text that must occur exactly once, its replacement, what it breaks)
MUTATIONS = [
    ("src/sched.c", "    pthread_cond_signal(&w->cv);\n    return true;",
     "    return true;", "a woken worker is never signalled"),
    ("src/sched.h", "        fut__sched_wake(s);", "        (void)s;",
     "submitters never wake a parked worker"),
    ("src/wait.c", "        fut__sched_wake_waiter(cv);", "        (void)cv;",
     "a completed wait never wakes its waiter"),
    ("src/group.c", "    fut__sched_wake_waiter(cv);\n    pthread_mutex_unlock(lock);\n}\n\nstatic void child_done",
     "    pthread_mutex_unlock(lock);\n}\n\nstatic void child_done",
     "a group's waiters are never woken"),
    ("src/future.c", "            fut_cancel(f); /* as above; t still holds f */",
     "            (void)f;", "fut_timeout's ENOMEM path forgets to cancel its input"),
    ("src/future.c", "    int err = timer_add(f, ms);\n    if (err) {\n        claim(f, PHASE_WAITING);\n        complete(f, NULL, err, true);",
     "    int err = timer_add(f, ms);\n    if (err) {\n        claim(f, PHASE_WAITING);\n        complete(f, NULL, EINVAL, true);",
     "fut_sleep reports EINVAL instead of its error"),
    ("src/future.c", "                fut__stat_add(f->pool, STAT_CANCELLED, 1);\n            if (f->kind == KIND_THEN",
     "                (void)0;\n            if (f->kind == KIND_THEN",
     "a cancelled unit is not counted"),
    ("src/future.c", "    if (!fut__timer_remove(&f->pool->sched, &f->timer))\n        return false;",
     "    return false;", "a timer taken back (cancel, input in time) stays in the heap"),
    ("src/sched.c", "atomic_load(&s->outside_busy) == 0 && atomic_load(&s->timers) == 0 &&",
     "atomic_load(&s->outside_busy) == 0 &&", "destroy does not wait for timers"),
    ("src/sched.c", "           atomic_load(&s->outside_busy) == 0 && atomic_load",
     "           true && atomic_load", "destroy does not wait for outside submitters"),
    ("src/sched.c", "           !work_visible(s);\n}", "           true;\n}",
     "destroy does not wait for queued work"),
    ("src/future.c", "    fut__stat_add(pool, STAT_QUEUED, 1);\n    FUT_HOOK(FUT_HOOK_THEN_READY, c);",
     "    FUT_HOOK(FUT_HOOK_THEN_READY, c);",
     "a readied continuation is not counted as queued"),
    ("src/future.c", "        fut__stat_to(pool, l, STAT_COMPLETED, 1);",
     "        (void)l;", "completed units are not counted"),
    ("src/future.c", "    fut_release(f);\n    return EALREADY;",
     "    fut_release(f);\n    return 0;", "keeping a cancelled promise reports success"),
    ("src/sched.c", "        if (deadline && past(deadline)) {",
     "        if (deadline && past(deadline) && false) {",
     "a timed wait on a worker helps on past its time"),
    ("src/group.c", "        atomic_compare_exchange_strong(&g->error, &none, error);\n    }\n    size_t s",
     "        (void)none;\n    }\n    size_t s", "a group forgets its first error"),
    ("src/sched.c", "            fut__sched_leave(s);\n            return ESHUTDOWN;",
     "            fut__sched_leave(s);\n            return 0;",
     "a refused submission claims to be accepted"),
    ("src/future.c", "            return fut_is_ready(f) ? EALREADY : EBUSY;",
     "            return EALREADY;", "cancelling a running task says EALREADY"),
    ("src/pool.c", "    if (n == 0 || n > MAX_THREADS)", "    if (n > MAX_THREADS)",
     "FUT_THREADS=0 is accepted"),
    ("src/trace.c", '            fprintf(out, "\\\\%c", *c);', "            fputc(*c, out);",
     "trace names are not escaped"),
    ("src/future.c", "            error = ESHUTDOWN; /* orphan: it would have had to run */",
     "            error = ECANCELED;", "a continuation on a closed pool reports ECANCELED"),
    ("src/sched.h", "    if (__builtin_expect((++self->tick & 63) == 0, 0))",
     "    if (0)", "outside work is starved by a looping task"),
    ("src/group.c", "    if (atomic_fetch_sub_explicit(&g->pending, 1, memory_order_acq_rel) == 1) {",
     "    if (atomic_fetch_sub_explicit(&g->pending, 1, memory_order_acq_rel) >= 1) {",
     "a group wakes its waiters while a child is pending"),
    ("src/sched.c", "    } else if (!s->stop) { /* saw work: search, so that finding it passes",
     "    } else if (0) { /* saw work: search, so that finding it passes",
     "a worker that saw work does not pass the wakeup on"),
    ("src/future.c", "    if (!value || !in || in->value != value || !frees_value(in))",
     "    if (!value || !in || in->value != value || !frees_value(in) || value)",
     "a value passed on is not shared: freed while a later future holds it"),
    ("src/future.c", "(s & (F_DONE | F_TAKEN | F_BORROWS)) == F_DONE)",
     "(s & (F_DONE | F_BORROWS)) == F_DONE)", "a taken value is freed anyway"),
    ("src/future.c", "(s & F_EXTRA) != 0, 0) && f->kind != KIND_PLAIN)\n        arg_done(f);",
     "(s & F_EXTRA) != 0, 0) && f->kind != KIND_PLAIN)\n        (void)0;",
     "a unit that never ran keeps its argument"),
]


def run(cmd, cwd, timeout=None):
    """cmd's exit status; on a timeout its whole process group is killed
    (a hung suite leaves forked tests behind) and TimeoutExpired raised."""
    env = dict(os.environ, CK_TIMEOUT_MULTIPLIER="0.1")  # 12 s per test
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=env,
                         start_new_session=True)
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build-mutate")
    tree = os.path.join(build, "tree")
    out = os.path.join(build, "out")
    if os.path.exists(tree):
        shutil.rmtree(tree)
    shutil.copytree(root, tree, ignore=shutil.ignore_patterns(
        ".git", "build*", "*.gcov"))
    cfg = ["cmake", "-S", tree, "-B", out, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
           "-DFUT_BUILD_BENCH=OFF", "-DFUT_BUILD_EXAMPLES=OFF"]
    if run(cfg, tree) or run(["cmake", "--build", out, "-j4"], tree):
        sys.exit("mutate: the unmutated tree does not build")
    test = ["ctest", "--test-dir", out, "-j2", "--timeout", "60",
            "--stop-on-failure", "-E", "embed|exports|header"]
    if run(test, tree, timeout=600):
        sys.exit("mutate: the unmutated tree fails its tests")
    caught = 0
    for i, (path, old, new, what) in enumerate(MUTATIONS, 1):
        full = os.path.join(tree, path)
        text = open(full).read()
        if text.count(old) != 1:
            sys.exit(f"mutate: mutation {i} ({what}) no longer applies to {path}")
        open(full, "w").write(text.replace(old, new))
        try:
            built = run(["cmake", "--build", out, "-j4"], tree) == 0
            failed = not built or run(test, tree, timeout=240) != 0
        except subprocess.TimeoutExpired:
            failed = True
        open(full, "w").write(text)
        caught += failed
        print(f"{i:2} {'caught' if failed else 'MISSED'}  {path}: {what}",
              flush=True)
    run(["cmake", "--build", out, "-j4"], tree)  # back to the real code
    total = len(MUTATIONS)
    print(f"caught {caught} of {total} mutations ({100 * caught // total}%)")
    sys.exit(0 if caught * 10 >= total * 9 else 1)


if __name__ == "__main__":
    main()
