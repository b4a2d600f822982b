// oneTBB as a peer: task_group for tasks, parallel_reduce for the loop.
#include "bench.h"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_reduce.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <atomic>
#include <memory>
#include <vector>

namespace
{

std::unique_ptr<tbb::global_control> control;
std::unique_ptr<tbb::task_arena> arena;

int tbb_setup(size_t threads)
{
    control = std::make_unique<tbb::global_control>(
        tbb::global_control::max_allowed_parallelism, threads);
    arena = std::make_unique<tbb::task_arena>(static_cast<int>(threads));
    arena->initialize();
    arena->execute([] {
        tbb::task_group g;
        g.run([] {});
        g.wait();
    });
    return 0;
}

void tbb_teardown()
{
    arena.reset();
    control.reset();
}

double tbb_spawn(long n, uint64_t *sum)
{
    std::atomic<uint64_t> count{0};
    double t0 = bench_now();
    arena->execute([&] {
        tbb::task_group g;
        for (long i = 0; i < n; i++)
            g.run([&] { count.fetch_add(1, std::memory_order_relaxed); });
        g.wait();
    });
    double t = bench_now() - t0;
    *sum = count.load();
    return t;
}

uint64_t fib(long n)
{
    if (n < 2)
        return static_cast<uint64_t>(n);
    uint64_t a = 0, b = 0;
    tbb::task_group g;
    g.run([&] { a = fib(n - 1); });
    g.run([&] { b = fib(n - 2); });
    g.wait();
    return a + b;
}

double tbb_fib(long n, uint64_t *sum)
{
    uint64_t r = 0;
    double t0 = bench_now();
    arena->execute([&] { r = fib(n); });
    double t = bench_now() - t0;
    *sum = r;
    return t;
}

double tbb_map(long n, long w, uint64_t *sum)
{
    std::vector<uint64_t> out(static_cast<size_t>(n));
    double t0 = bench_now();
    arena->execute([&] {
        tbb::task_group g;
        for (long i = 0; i < n; i++)
            g.run([&, i] { out[i] = bench_work(static_cast<uint64_t>(i), w); });
        g.wait();
    });
    uint64_t s = 0;
    for (uint64_t x : out)
        s += x;
    double t = bench_now() - t0;
    *sum = s;
    return t;
}

double tbb_pfor(long n, uint64_t *sum)
{
    uint64_t s = 0;
    double t0 = bench_now();
    arena->execute([&] {
        s = tbb::parallel_reduce(
            tbb::blocked_range<size_t>(0, static_cast<size_t>(n)), uint64_t{0},
            [](const tbb::blocked_range<size_t> &r, uint64_t acc) {
                for (size_t i = r.begin(); i != r.end(); ++i)
                    acc += bench_term(i);
                return acc;
            },
            [](uint64_t a, uint64_t b) { return a + b; });
    });
    double t = bench_now() - t0;
    *sum = s;
    return t;
}

} // namespace

extern "C" const bench_peer bench_tbb = {
    "onetbb", tbb_setup, tbb_teardown, tbb_spawn, tbb_fib, tbb_map,
    tbb_pfor, nullptr,   nullptr,      nullptr,   nullptr,
};
