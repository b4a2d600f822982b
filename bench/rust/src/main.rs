//! fut-bench-rust: tokio and rayon on fut-bench's workloads, with the same
//! kernels and checksums, printing the same markdown rows.
//!
//!   fut-bench-rust [--threads N] [--runs R] all | spawn N | fib N |
//!                  map N W | for N | sleep N MS

use rayon::prelude::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn work(seed: u64, w: u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(1);
    for _ in 0..w {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

fn term(i: u64) -> u64 {
    (i.wrapping_mul(2654435761) >> 7) & 0xffff
}

fn fib_serial(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_serial(n - 1) + fib_serial(n - 2)
    }
}

fn fib_calls(n: u64) -> f64 {
    let (mut calls, mut prev) = (1.0, 1.0);
    for _ in 2..=n {
        let next = calls + prev + 1.0;
        prev = calls;
        calls = next;
    }
    calls
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One warm-up, then `runs` timed runs: median seconds, whether every
/// checksum matched, and the median of the two extra figures.
fn measure(runs: usize, want: u64, mut f: impl FnMut() -> (f64, u64, f64, f64)) -> (f64, bool, f64, f64) {
    let mut ok = true;
    let (mut t, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..=runs {
        let (secs, sum, x, y) = f();
        ok &= sum == want;
        if r > 0 {
            t.push(secs);
            a.push(x);
            b.push(y);
        }
    }
    (median(&mut t), ok, median(&mut a), median(&mut b))
}

fn fib_tokio(n: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if n < 2 {
            return n;
        }
        let a = tokio::spawn(fib_tokio(n - 1));
        let b = tokio::spawn(fib_tokio(n - 2));
        b.await.unwrap() + a.await.unwrap()
    })
}

fn fib_rayon(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = rayon::join(|| fib_rayon(n - 1), || fib_rayon(n - 2));
    a + b
}

struct Ctx {
    threads: usize,
    runs: usize,
}

fn row(title: &str, name: &str, secs: f64, extra: String, ok: bool) {
    println!(
        "| {} | {} | {:.3} | {} | |{}",
        title,
        name,
        secs * 1e3,
        extra,
        if ok { "" } else { " **checksum mismatch**" }
    );
}

fn tokio_rt(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_time()
        .build()
        .unwrap()
}

fn rayon_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
}

fn spawn(c: &Ctx, n: u64) -> bool {
    let title = format!("spawn {}", n);
    let rt = tokio_rt(c.threads);
    let (t, ok1, _, _) = measure(c.runs, n, || {
        let t0 = Instant::now();
        let sum = rt.block_on(async {
            let hs: Vec<_> = (0..n).map(|_| tokio::spawn(async { 1u64 })).collect();
            let mut s = 0;
            for h in hs {
                s += h.await.unwrap();
            }
            s
        });
        (t0.elapsed().as_secs_f64(), sum, 0.0, 0.0)
    });
    row(&title, "tokio", t, format!("{:.1} ns per task", t * 1e9 / n as f64), ok1);
    drop(rt);
    let pool = rayon_pool(c.threads);
    let (t, ok2, _, _) = measure(c.runs, n, || {
        let count = AtomicU64::new(0);
        let t0 = Instant::now();
        pool.install(|| {
            rayon::scope(|s| {
                for _ in 0..n {
                    s.spawn(|_| {
                        count.fetch_add(1, Ordering::Relaxed);
                    });
                }
            })
        });
        (t0.elapsed().as_secs_f64(), count.load(Ordering::Relaxed), 0.0, 0.0)
    });
    row(&title, "rayon-scope", t, format!("{:.1} ns per task", t * 1e9 / n as f64), ok2);
    ok1 && ok2
}

fn fib(c: &Ctx, n: u64) -> bool {
    let title = format!("fib {}", n);
    let want = fib_serial(n);
    let rt = tokio_rt(c.threads);
    let (t, ok1, _, _) = measure(c.runs, want, || {
        let t0 = Instant::now();
        let r = rt.block_on(async { tokio::spawn(fib_tokio(n)).await.unwrap() });
        (t0.elapsed().as_secs_f64(), r, 0.0, 0.0)
    });
    row(&title, "tokio", t, format!("{:.1} ns per task", t * 1e9 / fib_calls(n)), ok1);
    drop(rt);
    let pool = rayon_pool(c.threads);
    let (t, ok2, _, _) = measure(c.runs, want, || {
        let t0 = Instant::now();
        let r = pool.install(|| fib_rayon(n));
        (t0.elapsed().as_secs_f64(), r, 0.0, 0.0)
    });
    row(&title, "rayon-join", t, format!("{:.1} ns per task", t * 1e9 / fib_calls(n)), ok2);
    ok1 && ok2
}

fn map(c: &Ctx, n: u64, w: u64) -> bool {
    let title = format!("map {} {}", n, w);
    let want = (0..n).fold(0u64, |s, i| s.wrapping_add(work(i, w)));
    let mut serial: Vec<f64> = (0..c.runs)
        .map(|_| {
            let t0 = Instant::now();
            let s = (0..n).fold(0u64, |s, i| s.wrapping_add(work(i, w)));
            std::hint::black_box(s);
            t0.elapsed().as_secs_f64()
        })
        .collect();
    let serial = median(&mut serial);
    let rt = tokio_rt(c.threads);
    let (t, ok1, _, _) = measure(c.runs, want, || {
        let t0 = Instant::now();
        let s = rt.block_on(async {
            let hs: Vec<_> = (0..n).map(|i| tokio::spawn(async move { work(i, w) })).collect();
            let mut s = 0u64;
            for h in hs {
                s = s.wrapping_add(h.await.unwrap());
            }
            s
        });
        (t0.elapsed().as_secs_f64(), s, 0.0, 0.0)
    });
    row(&title, "tokio", t, format!("speed-up {:.2}x", serial / t), ok1);
    drop(rt);
    let pool = rayon_pool(c.threads);
    let (t, ok2, _, _) = measure(c.runs, want, || {
        let t0 = Instant::now();
        let s = pool.install(|| {
            (0..n)
                .into_par_iter()
                .map(|i| work(i, w))
                .reduce(|| 0, |a, b| a.wrapping_add(b))
        });
        (t0.elapsed().as_secs_f64(), s, 0.0, 0.0)
    });
    row(&title, "rayon", t, format!("speed-up {:.2}x", serial / t), ok2);
    ok1 && ok2
}

fn pfor(c: &Ctx, n: u64) -> bool {
    let title = format!("for {}", n);
    let want: u64 = (0..n).map(term).sum();
    let pool = rayon_pool(c.threads);
    let (t, ok, _, _) = measure(c.runs, want, || {
        let t0 = Instant::now();
        let s: u64 = pool.install(|| (0..n).into_par_iter().map(term).sum());
        (t0.elapsed().as_secs_f64(), s, 0.0, 0.0)
    });
    row(&title, "rayon", t, format!("{:.1} ns per task", t * 1e9 / n as f64), ok);
    ok
}

fn sleep(c: &Ctx, n: u64, ms: u64) -> bool {
    let title = format!("sleep {} {}", n, ms);
    let rt = tokio_rt(c.threads);
    let (t, ok, p50, p99) = measure(c.runs, n, || {
        let t0 = Instant::now();
        let mut late: Vec<f64> = rt.block_on(async {
            let hs: Vec<_> = (0..n)
                .map(|_| {
                    let born = Instant::now();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        born.elapsed().as_secs_f64() - ms as f64 / 1e3
                    })
                })
                .collect();
            let mut v = Vec::with_capacity(n as usize);
            for h in hs {
                v.push(h.await.unwrap());
            }
            v
        });
        let secs = t0.elapsed().as_secs_f64();
        late.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let len = late.len();
        (secs, len as u64, late[len / 2], late[len * 99 / 100])
    });
    row(
        &title,
        "tokio",
        t,
        format!("lateness p50 {:.2} ms, p99 {:.2} ms", p50 * 1e3, p99 * 1e3),
        ok,
    );
    ok
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut c = Ctx {
        threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        runs: 5,
    };
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--threads" => {
                c.threads = args[i + 1].parse().expect("--threads N");
                i += 2;
            }
            "--runs" => {
                c.runs = args[i + 1].parse().expect("--runs R");
                i += 2;
            }
            _ => {
                rest.push(args[i].clone());
                i += 1;
            }
        }
    }
    let num = |k: usize, d: u64| rest.get(k).and_then(|s| s.parse().ok()).unwrap_or(d);
    let ok = match rest.first().map(String::as_str) {
        Some("spawn") => spawn(&c, num(1, 200000)),
        Some("fib") => fib(&c, num(1, 25)),
        Some("map") => map(&c, num(1, 20000), num(2, 20000)),
        Some("for") => pfor(&c, num(1, 50000000)),
        Some("sleep") => sleep(&c, num(1, 10000), num(2, 50)),
        Some("all") => {
            let a = spawn(&c, 200000);
            let b = fib(&c, 25);
            let m = map(&c, 20000, 20000);
            let f = pfor(&c, 50000000);
            let s = sleep(&c, 10000, 50);
            a && b && m && f && s
        }
        _ => {
            eprintln!("usage: fut-bench-rust [--threads N] [--runs R] all|spawn N|fib N|map N W|for N|sleep N MS");
            std::process::exit(2);
        }
    };
    std::process::exit(if ok { 0 } else { 1 });
}
