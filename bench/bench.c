/*
 * fut-bench: fut's workloads side by side with the peers it was built with,
 * medians of several runs, checksums compared, ratios printed; and a sweep
 * of pool sizes for one workload, or for a command of the user's run with
 * FUT_THREADS set, with a table, a recommended size, CSV and a gnuplot plot.
 * `fut-bench --help` lists it all.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "bench.h"

#include <fut/fut.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const bench_peer *const peers[] = {
    &bench_fut,  &bench_fut_named, &bench_fut_group, &bench_fut_join,
#ifdef FUT_BENCH_OPENMP
    &bench_omp,
#endif
#ifdef FUT_BENCH_TBB
    &bench_tbb,
#endif
#ifdef FUT_BENCH_GLIB
    &bench_glib,
#endif
};
enum { NPEERS = sizeof(peers) / sizeof(peers[0]) };

/* A workload: its name, arguments and what a correct run sums to. */
typedef struct workload {
    const char *name;
    long a, b;
} workload;

typedef struct options {
    size_t threads;
    int runs;
    const char *only; /* comma-separated peer names, or NULL: all */
    const char *csv, *plot;
    const char *exec; /* sweep: a command to time instead of a workload */
} options;

static bool wanted(const options *o, const char *name)
{
    if (!o->only)
        return true;
    size_t len = strlen(name);
    for (const char *p = o->only; (p = strstr(p, name)); p += len)
        if ((p == o->only || p[-1] == ',') && (p[len] == ',' || !p[len]))
            return true;
    return false;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static bool supports(const bench_peer *p, const workload *w)
{
    switch (w->name[0]) {
    case 's': return w->name[1] == 'p' ? p->spawn != NULL : p->sleep != NULL;
    case 'f': return w->name[1] == 'i' ? p->fib != NULL : p->pfor != NULL;
    case 'm': return p->map != NULL;
    case 'c': return p->chain != NULL;
    case 'r': return p->rss != NULL;
    case 'i': return p->idle != NULL;
    default: return false;
    }
}

static uint64_t expected(const workload *w)
{
    if (!strcmp(w->name, "fib"))
        return bench_fib(w->a);
    if (!strcmp(w->name, "map")) {
        uint64_t s = 0;
        for (long i = 0; i < w->a; i++)
            s += bench_work((uint64_t)i, w->b);
        return s;
    }
    if (!strcmp(w->name, "for")) {
        uint64_t s = 0;
        for (long i = 0; i < w->a; i++)
            s += bench_term((uint64_t)i);
        return s;
    }
    return (uint64_t)w->a; /* spawn, chain, sleep, rss: one each; idle: ms */
}

/* x, y: a workload's own figures (sleep: lateness p50 and p99 in seconds;
 * rss: bytes per pending future; idle: CPU seconds). */
typedef struct sample {
    double seconds; /* median */
    double x, y;    /* medians */
    bool checksum_ok;
} sample;

static double run_once(const bench_peer *p, const workload *w, uint64_t *sum,
                       double *x, double *y)
{
    switch (w->name[0]) {
    case 's':
        return w->name[1] == 'p' ? p->spawn(w->a, sum)
                                 : p->sleep(w->a, w->b, sum, x, y);
    case 'f': return w->name[1] == 'i' ? p->fib(w->a, sum) : p->pfor(w->a, sum);
    case 'm': return p->map(w->a, w->b, sum);
    case 'r': return p->rss(w->a, sum, x);
    case 'i': return p->idle(w->a, sum, x);
    default: return p->chain(w->a, sum);
    }
}

/* One warm-up, then `runs` timed runs; the median time and figures. */
static int measure(const bench_peer *p, const workload *w, size_t threads,
                   int runs, sample *out)
{
    if (p->setup(threads) != 0)
        return -1;
    double t[runs], xs[runs], ys[runs];
    uint64_t want = expected(w), sum = 0;
    out->checksum_ok = true;
    for (int r = -1; r < runs; r++) {
        double a = 0, b = 0, s = run_once(p, w, &sum, &a, &b);
        out->checksum_ok &= sum == want;
        if (r >= 0) {
            t[r] = s;
            xs[r] = a;
            ys[r] = b;
        }
    }
    p->teardown();
    out->seconds = median(t, runs);
    out->x = median(xs, runs);
    out->y = median(ys, runs);
    return 0;
}

static double serial_map(const workload *w, int runs)
{
    double t[runs];
    volatile uint64_t sink = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = bench_now();
        uint64_t s = 0;
        for (long i = 0; i < w->a; i++)
            s += bench_work((uint64_t)i, w->b);
        sink += s;
        t[r] = bench_now() - t0;
    }
    (void)sink;
    return median(t, runs);
}

static void describe(const workload *w, char *buf, size_t len)
{
    if (!strcmp(w->name, "map") || !strcmp(w->name, "sleep"))
        snprintf(buf, len, "%s %ld %ld", w->name, w->a, w->b);
    else
        snprintf(buf, len, "%s %ld", w->name, w->a);
}

/* How many tasks (or links, or timers) a workload makes. */
static double tasks(const workload *w)
{
    if (strcmp(w->name, "fib"))
        return (double)w->a;
    double calls = 1, prev = 1; /* calls(n) = calls(n-1) + calls(n-2) + 1 */
    for (long i = 2; i <= w->a; i++) {
        double next = calls + prev + 1;
        prev = calls;
        calls = next;
    }
    return calls;
}

/* Every peer on one workload; a markdown table row per peer. Returns
 * false on a checksum mismatch. */
static bool compare(const workload *w, const options *o)
{
    char title[64];
    describe(w, title, sizeof(title));
    double serial = !strcmp(w->name, "map") ? serial_map(w, o->runs) : 0;
    double fut_time = 0;
    bool ok = true;
    for (int i = 0; i < NPEERS; i++) {
        const bench_peer *p = peers[i];
        if (!supports(p, w) || !wanted(o, p->name))
            continue;
        sample s;
        if (measure(p, w, o->threads, o->runs, &s) != 0) {
            printf("| %s | %s | setup failed | | |\n", title, p->name);
            continue;
        }
        if (p == &bench_fut)
            fut_time = s.seconds;
        char extra[96] = "";
        if (serial > 0)
            snprintf(extra, sizeof(extra), "speed-up %.2fx",
                     serial / s.seconds);
        else if (!strcmp(w->name, "sleep"))
            snprintf(extra, sizeof(extra), "lateness p50 %.2f ms, p99 %.2f ms",
                     s.x * 1e3, s.y * 1e3);
        else if (!strcmp(w->name, "rss"))
            snprintf(extra, sizeof(extra), "%.1f bytes per pending future",
                     s.x);
        else if (!strcmp(w->name, "idle"))
            snprintf(extra, sizeof(extra), "%.3f ms CPU", s.x * 1e3);
        else
            snprintf(extra, sizeof(extra), "%.1f ns per task",
                     s.seconds * 1e9 / (double)tasks(w));
        char ratio[32] = "";
        if (fut_time > 0 && p != &bench_fut)
            snprintf(ratio, sizeof(ratio), "%.2f", fut_time / s.seconds);
        printf("| %s | %s | %.3f | %s | %s |%s\n", title, p->name,
               s.seconds * 1e3, extra, ratio,
               s.checksum_ok ? "" : " **checksum mismatch**");
        fflush(stdout);
        ok &= s.checksum_ok;
    }
    return ok;
}

static void table_head(const options *o)
{
    printf("%zu threads, median of %d runs. ratio = fut time / peer time "
           "(below 1: fut is faster).\n\n",
           o->threads, o->runs);
    printf("| workload | runtime | median ms | per task / result | ratio |\n"
           "| --- | --- | --- | --- | --- |\n");
}

/* ---- sweep --------------------------------------------------------------- */

enum { MAX_SIZES = 64, MAX_THREADS = 4096 };

static void plot(const char *path, const char *csv, const char *title,
                 size_t base)
{
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        printf("gnuplot is not installed: no plot (the CSV is %s)\n", csv);
        return;
    }
    const char *dot = strrchr(path, '.');
    bool png = dot && !strcmp(dot, ".png");
    FILE *gp = popen("gnuplot", "w");
    if (!gp)
        return;
    fprintf(gp,
            "set terminal %s size 800,480\n"
            "set output '%s'\n"
            "set datafile separator ','\n"
            "set termoption noenhanced\n"
            "set xlabel 'threads'\n"
            "set ylabel 'speed-up over %zu threads'\n"
            "set y2label 'median ms'\n"
            "set y2tics\n"
            "set key left top\n"
            "set grid\n"
            "set title 'fut: ",
            png ? "pngcairo" : "svg", path, base);
    for (const char *c = title; *c; c++) {
        if (*c == '\'') /* '' is a quote in gnuplot */
            fputc('\'', gp);
        fputc(*c, gp);
    }
    fprintf(gp,
            "'\n"
            "plot '%s' using 1:3 skip 1 with linespoints title 'speed-up', "
            "'' using 1:($1/%zu) skip 1 with lines dashtype 2 title 'ideal', "
            "'' using 1:2 skip 1 axes x1y2 with linespoints title 'median "
            "ms'\n",
            csv, base);
    if (pclose(gp) == 0)
        printf("plot: %s\n", path);
}

/* The command once, by /bin/sh -c, with FUT_THREADS=threads and its stdout
 * discarded: its wall-clock seconds, or -1 (said on stderr) when it could not
 * be started or did not exit with status 0. */
static double exec_once(const char *cmd, size_t threads)
{
    char n[24];
    snprintf(n, sizeof(n), "%zu", threads);
    if (setenv("FUT_THREADS", n, 1) != 0)
        return -1;
    double t0 = bench_now();
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDOUT_FILENO);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) {
        fprintf(stderr, "fut-bench: %s: %s\n", cmd, strerror(errno));
        return -1;
    }
    double t = bench_now() - t0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return t;
    if (WIFEXITED(st))
        fprintf(stderr, "fut-bench: FUT_THREADS=%s %s: exit status %d\n", n,
                cmd, WEXITSTATUS(st));
    else
        fprintf(stderr, "fut-bench: FUT_THREADS=%s %s: killed by signal %d\n",
                n, cmd, WTERMSIG(st));
    return -1;
}

/* One warm-up, then `runs` timed runs of the command; the median time. */
static int measure_exec(const char *cmd, size_t threads, int runs, sample *out)
{
    double t[runs];
    for (int r = -1; r < runs; r++) {
        double s = exec_once(cmd, threads);
        if (s < 0)
            return -1;
        if (r >= 0)
            t[r] = s;
    }
    *out = (sample){.seconds = median(t, runs), .checksum_ok = true};
    return 0;
}

static int cpu_count(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 0;
}

/* The smallest size whose median is within 5% of the best, and why. */
static void recommend(const size_t *list, const double *secs, int n)
{
    int best = 0, rec = -1;
    bool fewer = false, more = false;
    for (int i = 1; i < n; i++)
        if (secs[i] < secs[best])
            best = i;
    for (int i = 0; i < n; i++)
        if (secs[i] <= 1.05 * secs[best] && (rec < 0 || list[i] < list[rec]))
            rec = i;
    for (int i = 0; i < n; i++) {
        fewer |= list[i] < list[rec];
        more |= list[i] > list[rec];
    }
    printf("\nrecommended pool size: %zu thread%s: ", list[rec],
           list[rec] == 1 ? "" : "s");
    if (rec != best)
        printf("within 5%% of the best (%zu threads, %.1f ms); more threads "
               "gain less than 5%%\n",
               list[best], secs[best] * 1e3);
    else
        printf("the best median (%.1f ms)%s%s\n", secs[best] * 1e3,
               fewer ? "; fewer threads are more than 5% slower" : "",
               more ? "; more threads are no faster" : "");
}

/* fut alone on one workload (or the command of --exec) at each pool size of
 * list[0..n-1], against the first. */
static int sweep(const workload *w, const size_t *list, int n, const options *o)
{
    char buf[64];
    const char *title = o->exec;
    if (!title) {
        describe(w, buf, sizeof(buf));
        title = buf;
    }
    /* efficiency: not for timers, which take no CPU */
    bool eff_col = o->exec || strcmp(w->name, "sleep");
    const char *csv = o->csv ? o->csv : "sweep.csv";
    FILE *out = fopen(csv, "w");
    if (!out) {
        fprintf(stderr, "fut-bench: %s: %s\n", csv, strerror(errno));
        return 2;
    }
    fprintf(out, "threads,median_ms,speedup%s\n", eff_col ? ",efficiency" : "");
    printf("sweep of %s, median of %d runs after a warm-up; %d CPUs this "
           "process may use (sched_getaffinity)\n"
           "speed-up = time at %zu threads (the first row) / time",
           title, o->runs, cpu_count(), list[0]);
    if (eff_col)
        printf(", efficiency = speed-up / (threads / %zu)", list[0]);
    printf("\n\n| threads | median ms | speed-up |%s\n"
           "| --- | --- | --- |%s\n",
           eff_col ? " efficiency |" : "", eff_col ? " --- |" : "");
    double secs[MAX_SIZES];
    bool ok = true;
    for (int i = 0; i < n; i++) {
        size_t t = list[i];
        sample s;
        if (o->exec && measure_exec(o->exec, t, o->runs, &s) != 0) {
            fclose(out);
            return 1;
        }
        if (!o->exec && measure(&bench_fut, w, t, o->runs, &s) != 0) {
            fprintf(stderr, "fut-bench: no pool of %zu threads\n", t);
            fclose(out);
            return 2;
        }
        ok &= s.checksum_ok;
        secs[i] = s.seconds;
        double up = secs[0] / s.seconds, eff = up * (double)list[0] / (double)t;
        printf("| %zu | %.3f | %.2f |", t, s.seconds * 1e3, up);
        fprintf(out, "%zu,%.4f,%.4f", t, s.seconds * 1e3, up);
        if (eff_col) {
            printf(" %.0f%% |", 100 * eff);
            fprintf(out, ",%.4f", eff);
        }
        printf("%s\n", s.checksum_ok ? "" : " **checksum**");
        fprintf(out, "\n");
        fflush(stdout);
    }
    fclose(out);
    recommend(list, secs, n);
    printf("\nCSV: %s\n", csv);
    if (o->plot)
        plot(o->plot, csv, title, list[0]);
    return ok ? 0 : 1;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *to)
{
    fprintf(to, "usage: fut-bench [options] WORKLOAD\n"
                "       fut-bench [options] sweep WORKLOAD --threads LIST\n"
                "       fut-bench [options] sweep --exec 'CMD ARGS' --threads "
                "LIST\n"
                "       fut-bench [options] all\n"
                "workloads:\n"
                "  spawn N      N empty tasks, then joined (fut: from outside; "
                "fut-group: from\n"
                "               one task on the pool, like OpenMP's single)\n"
                "  fib N        a task per call, awaited by the parent "
                "(fut-join: fut_join per\n"
                "               call, as rayon::join)\n"
                "  map N W      N CPU tasks of W xorshift rounds (speed-up "
                "against the serial loop)\n"
                "  for N        a parallel reduce over N terms\n"
                "  chain N      N continuations, one after another\n"
                "  sleep N MS   N concurrent timers (lateness p50/p99)\n"
                "  rss N        resident bytes per pending fut_sleep, N of "
                "them (the array of N\n"
                "               pointers included; a fresh child process "
                "per run; fut only)\n"
                "  idle MS      CPU time of an idle pool over MS ms "
                "(default 1000; a child\n"
                "               process per run; fut only)\n"
                "  all          each of them at its default size\n"
                "options:\n"
                "  --threads N  pool size (default: the CPUs you may use); "
                "for sweep, the sizes:\n"
                "               1..K, A..K, a list A,B,C (the first is the "
                "baseline), or N for 1..N\n"
                "  --runs R     timed runs per measurement, median taken "
                "(default 5)\n"
                "  --peers A,B  only these runtimes (built in: ");
    for (int i = 0; i < NPEERS; i++)
        fprintf(to, "%s%s", i ? ", " : "", peers[i]->name);
    fprintf(to,
            ")\n"
            "  --csv FILE   sweep: where the CSV goes (sweep.csv)\n"
            "  --plot FILE  sweep: draw FILE (.svg or .png) with gnuplot\n"
            "  --exec CMD   sweep: time CMD instead of a workload, run by "
            "/bin/sh -c (its\n"
            "               stdout discarded) with FUT_THREADS set to each "
            "size; a nonzero\n"
            "               exit status stops the sweep with status 1\n"
            "sweep prints the CPUs you may use, a row per size (median of "
            "the runs after a\n"
            "warm-up; speed-up against the first size; efficiency, but not "
            "for sleep), and\n"
            "recommends the smallest size whose median is within 5%% of the "
            "best.\n"
            "Exit status: 0, 1 on a checksum mismatch or a failed command, 2 "
            "on bad usage or setup failure.\n");
}

static const workload defaults[] = {
    {"spawn", 200000, 0}, {"fib", 25, 0},        {"map", 20000, 20000},
    {"for", 50000000, 0}, {"chain", 1000000, 0}, {"sleep", 10000, 50},
    {"rss", 1000000, 0},  {"idle", 1000, 0},
};

static int parse_workload(int argc, char **argv, int i, workload *w)
{
    if (i >= argc)
        return -1;
    for (size_t k = 0; k < sizeof(defaults) / sizeof(defaults[0]); k++) {
        if (strcmp(argv[i], defaults[k].name))
            continue;
        *w = defaults[k];
        bool two = !strcmp(w->name, "map") || !strcmp(w->name, "sleep");
        if (i + 1 < argc && argv[i + 1][0] != '-')
            w->a = atol(argv[++i]);
        if (two && i + 1 < argc && argv[i + 1][0] != '-')
            w->b = atol(argv[++i]);
        return w->a > 0 && (!two || w->b >= 0) ? i + 1 : -1;
    }
    return -1;
}

/* --threads: counts N, ranges A..K, or a comma list of them, each count
 * from 1 to MAX_THREADS. Stores them in list; returns how many, 0 when s
 * is malformed. */
static int parse_threads(const char *s, size_t list[MAX_SIZES])
{
    int n = 0;
    for (const char *p = s;; p++) {
        char *end;
        if (*p < '0' || *p > '9')
            return 0;
        unsigned long a = strtoul(p, &end, 10), b = a;
        if (end[0] == '.' && end[1] == '.') {
            p = end + 2;
            if (*p < '0' || *p > '9')
                return 0;
            b = strtoul(p, &end, 10);
        }
        if (a < 1 || b < a || b > MAX_THREADS ||
            b - a >= (unsigned long)(MAX_SIZES - n))
            return 0;
        for (unsigned long t = a; t <= b; t++)
            list[n++] = t;
        if (!*end)
            return n;
        if (*end != ',')
            return 0;
        p = end;
    }
}

int main(int argc, char **argv)
{
    options o = {.threads = 0, .runs = 5};
    size_t sizes[MAX_SIZES];
    int nsizes = 0;
    const char *threads_arg = NULL;
    bool do_sweep = false, do_all = false;
    workload w = {0};
    bool have_workload = false;
    for (int i = 1; i < argc;) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--threads") && next) {
            threads_arg = next;
            i += 2;
        } else if (!strcmp(a, "--runs") && next) {
            o.runs = atoi(next);
            i += 2;
        } else if (!strcmp(a, "--peers") && next) {
            o.only = next;
            i += 2;
        } else if (!strcmp(a, "--csv") && next) {
            o.csv = next;
            i += 2;
        } else if (!strcmp(a, "--plot") && next) {
            o.plot = next;
            i += 2;
        } else if (!strcmp(a, "--exec") && next) {
            o.exec = next;
            i += 2;
        } else if (!strcmp(a, "sweep")) {
            do_sweep = true;
            i++;
        } else if (!strcmp(a, "all")) {
            do_all = true;
            i++;
        } else if (!have_workload &&
                   (i = parse_workload(argc, argv, i, &w)) > 0) {
            have_workload = true;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (o.runs < 1 || (!have_workload && !do_all && !o.exec) ||
        (do_sweep && do_all) || (o.exec && (!do_sweep || have_workload))) {
        usage(stderr);
        return 2;
    }
    if (threads_arg) {
        nsizes = parse_threads(threads_arg, sizes);
        if (nsizes == 0 || (nsizes > 1 && !do_sweep)) {
            fprintf(stderr,
                    "fut-bench: --threads %s: expected a count from 1 to %d%s"
                    "\n",
                    threads_arg, MAX_THREADS,
                    do_sweep ? ", a range A..K or a list A,B,C (64 at most)"
                             : " (ranges and lists are for sweep)");
            return 2;
        }
        o.threads = sizes[0];
    } else {
        fut_pool *probe;
        o.threads = 1;
        if (fut_pool_create(&probe, NULL) == 0) {
            o.threads = fut_pool_threads(probe);
            fut_pool_destroy(probe);
        }
    }
    if (do_sweep) {
        bool plain = !threads_arg ||
                     strspn(threads_arg, "0123456789") == strlen(threads_arg);
        if (plain) /* N, or the CPUs: 1..N */
            for (nsizes = 0; nsizes < (int)o.threads && nsizes < MAX_SIZES;
                 nsizes++)
                sizes[nsizes] = (size_t)nsizes + 1;
        return sweep(&w, sizes, nsizes, &o);
    }
    table_head(&o);
    bool ok = true;
    if (do_all)
        for (size_t k = 0; k < sizeof(defaults) / sizeof(defaults[0]); k++)
            ok &= compare(&defaults[k], &o);
    else
        ok = compare(&w, &o);
    return ok ? 0 : 1;
}
