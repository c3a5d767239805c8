//! `scalesim worker`: one instance of the local backend, a real OS process.
//!
//! It serves HTTP on loopback: `GET /work?cpu_us=C&wall_us=W` burns `C` microseconds of this
//! thread's CPU time (calibrated busy work: the thread CPU clock is read, not the wall clock, so a
//! worker that shares a core still spends exactly its demand of CPU) and then, when the slot is
//! slower than a core (`cpu_limit < concurrency`), waits until `W` microseconds of wall time have
//! passed, as a CPU-throttled container would. `concurrency` threads take work, so at most that
//! many requests run at once and the rest wait in the server's accept queue, like a worker pool.
//! The reply's body is the wall time the visit held its thread, in microseconds, from which the
//! router measures the platform's overhead (`app::PlatformOverhead`).
//!
//! A second port (the control port) answers `/ready` (the readiness probe) and `/metrics`
//! (Prometheus text: `process_cpu_seconds_total`, requests served, in flight), so probes and
//! scrapes never wait behind work.
//!
//! A worker must never outlive the process that started it: it exits when its stdin closes (the
//! parent holds the other end, and the kernel closes it however the parent ends, Ctrl-C and
//! SIGKILL included) and when its parent process changes.
//!
//! This module knows nothing of scenarios, routing or policies.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tiny_http::{Header, Response, Server};

/// The line a worker prints on stdout once both ports listen: `scalesim-worker work=P control=Q`.
pub const READY_LINE_PREFIX: &str = "scalesim-worker";

/// Upper bounds (ms) of the work-latency histogram's buckets, as a mesh's latency histogram has.
const LATENCY_BUCKETS_MS: [f64; 12] = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0];

#[derive(Default)]
struct Counters {
    served: AtomicU64,
    in_flight: AtomicU64,
    busy_us: AtomicU64,
    /// Work requests with latency <= each bucket bound (cumulative, as Prometheus wants), and
    /// their latency sum in microseconds.
    latency_le: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    latency_sum_us: AtomicU64,
}

/// Runs a worker until its parent goes. Only returns on a start-up error.
pub fn serve(concurrency: u32, parent: Option<u32>) -> std::io::Result<()> {
    let work = Server::http("127.0.0.1:0").map_err(std::io::Error::other)?;
    let control = Server::http("127.0.0.1:0").map_err(std::io::Error::other)?;
    let port = |s: &Server| s.server_addr().to_ip().map(|a| a.port()).unwrap_or(0);
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{READY_LINE_PREFIX} work={} control={}", port(&work), port(&control))?;
        out.flush()?;
    }
    watch_parent(parent);
    let work = Arc::new(work);
    let counters = Arc::new(Counters::default());
    for _ in 0..concurrency.max(1) {
        let (work, counters) = (work.clone(), counters.clone());
        std::thread::spawn(move || {
            while let Ok(req) = work.recv() {
                counters.in_flight.fetch_add(1, Ordering::Relaxed);
                let reply = handle_work(req.url(), &counters);
                counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                let _ = match reply {
                    Ok(held_us) => req.respond(Response::from_string(held_us.to_string())),
                    Err(msg) => req.respond(Response::from_string(msg).with_status_code(400)),
                };
            }
        });
    }
    while let Ok(req) = control.recv() {
        let response = match req.url() {
            "/ready" | "/healthz" => Response::from_string("ready"),
            "/metrics" => Response::from_string(metrics_text(&counters, concurrency)).with_header(
                Header::from_bytes("Content-Type", "text/plain; version=0.0.4").expect("static header is valid"),
            ),
            _ => Response::from_string("not found").with_status_code(404),
        };
        let _ = req.respond(response);
    }
    Ok(())
}

/// Exits the process when stdin reaches end of file or the parent process is replaced.
fn watch_parent(parent: Option<u32>) {
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {}
            }
        }
    });
    if let Some(parent) = parent {
        std::thread::spawn(move || loop {
            // SAFETY: getppid has no preconditions.
            if unsafe { libc::getppid() } as u32 != parent {
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_millis(200));
        });
    }
}

/// Serves one work request; returns the wall time it held its thread, microseconds (the router
/// subtracts it from the exchange's round trip to measure the transport alone).
fn handle_work(url: &str, counters: &Counters) -> Result<u64, String> {
    let (mut cpu_us, mut wall_us) = (None, None);
    for pair in url.split_once('?').map_or("", |(_, q)| q).split('&') {
        match pair.split_once('=') {
            Some(("cpu_us", v)) => cpu_us = v.parse::<u64>().ok(),
            Some(("wall_us", v)) => wall_us = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    let Some(cpu_us) = cpu_us else {
        return Err("expected /work?cpu_us=N[&wall_us=M]".into());
    };
    let started = Instant::now();
    burn_cpu(cpu_us);
    if let Some(wall) = wall_us {
        let target = Duration::from_micros(wall);
        let spent = started.elapsed();
        if spent < target {
            std::thread::sleep(target - spent);
        }
    }
    let held = started.elapsed();
    let ms = held.as_secs_f64() * 1e3;
    for (bound, count) in LATENCY_BUCKETS_MS.iter().zip(&counters.latency_le) {
        if ms <= *bound {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
    counters.latency_sum_us.fetch_add((ms * 1e3) as u64, Ordering::Relaxed);
    counters.busy_us.fetch_add(cpu_us, Ordering::Relaxed);
    counters.served.fetch_add(1, Ordering::Relaxed);
    Ok(held.as_micros() as u64)
}

/// Spins until this thread has used `cpu_us` microseconds of CPU.
pub fn burn_cpu(cpu_us: u64) {
    let until = thread_cpu_us() + cpu_us;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    loop {
        // A few microseconds of integer work between clock reads (each read is a system call).
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        std::hint::black_box(x);
        if thread_cpu_us() >= until {
            return;
        }
    }
}

fn clock_us(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; both clocks exist on every Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// CPU time used by the calling thread, microseconds.
pub fn thread_cpu_us() -> u64 {
    clock_us(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time used by this whole process, microseconds (what cAdvisor reports for a container).
pub fn process_cpu_us() -> u64 {
    clock_us(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn metrics_text(c: &Counters, concurrency: u32) -> String {
    let served = c.served.load(Ordering::Relaxed);
    let mut text = format!(
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
         # TYPE process_cpu_seconds_total counter\n\
         process_cpu_seconds_total {:.6}\n\
         # HELP scalesim_worker_requests_total Work requests served.\n\
         # TYPE scalesim_worker_requests_total counter\n\
         scalesim_worker_requests_total {served}\n\
         # HELP scalesim_worker_busy_seconds_total CPU time spent on requested work.\n\
         # TYPE scalesim_worker_busy_seconds_total counter\n\
         scalesim_worker_busy_seconds_total {:.6}\n\
         # HELP scalesim_worker_in_flight Work requests running now.\n\
         # TYPE scalesim_worker_in_flight gauge\n\
         scalesim_worker_in_flight {}\n\
         # HELP scalesim_worker_concurrency Worker threads.\n\
         # TYPE scalesim_worker_concurrency gauge\n\
         scalesim_worker_concurrency {concurrency}\n\
         # HELP scalesim_worker_latency_ms Time from taking a work request to answering it.\n\
         # TYPE scalesim_worker_latency_ms histogram\n",
        process_cpu_us() as f64 / 1e6,
        c.busy_us.load(Ordering::Relaxed) as f64 / 1e6,
        c.in_flight.load(Ordering::Relaxed),
    );
    for (bound, count) in LATENCY_BUCKETS_MS.iter().zip(&c.latency_le) {
        text += &format!("scalesim_worker_latency_ms_bucket{{le=\"{bound}\"}} {}\n", count.load(Ordering::Relaxed));
    }
    text += &format!(
        "scalesim_worker_latency_ms_bucket{{le=\"+Inf\"}} {served}\n\
         scalesim_worker_latency_ms_sum {:.3}\n\
         scalesim_worker_latency_ms_count {served}\n",
        c.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e3
    );
    text
}

/// Reads one sample of a metric from Prometheus text (`name value` lines; labels not supported).
pub fn parse_metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_cpu_spends_the_asked_cpu_time() {
        let t0 = thread_cpu_us();
        burn_cpu(20_000);
        let spent = thread_cpu_us() - t0;
        assert!((20_000..22_000).contains(&spent), "spent {spent} us of CPU for 20,000");
    }

    #[test]
    fn metrics_text_parses_back() {
        let c = Counters::default();
        c.served.store(7, Ordering::Relaxed);
        let text = metrics_text(&c, 2);
        assert_eq!(parse_metric(&text, "scalesim_worker_requests_total"), Some(7.0));
        assert_eq!(parse_metric(&text, "scalesim_worker_concurrency"), Some(2.0));
        assert!(parse_metric(&text, "process_cpu_seconds_total").unwrap() > 0.0);
        assert_eq!(parse_metric(&text, "scalesim_worker"), None);
        assert_eq!(parse_metric(&text, "scalesim_worker_latency_ms_count"), Some(7.0));
    }
}
