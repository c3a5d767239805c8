//! The local backend's data plane: an open-loop load generator and a router that walks each
//! request's call tree over the worker processes.
//!
//! A request is one OS thread. A visit picks an Active instance of its service by the service's
//! load-balancing policy, asks that instance's worker for the visit's own CPU work over HTTP, and
//! then makes its calls (one after another, or all at once for `parallel`), as the simulator does:
//! the worker's slot is held only for the own work, the instance's outstanding count for the whole
//! visit. A visit is dropped when no instance is Active or the chosen one's queue (work sent beyond
//! its `concurrency`) is at `queue_capacity`; a worker that cannot be reached is marked failed and
//! the visit dropped. Drops fail the whole request.
//!
//! Times are scenario times: wall durations are multiplied by the time compression `k`, and CPU
//! demands divided by it before they are sent to a worker.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::Rng;

use crate::app::PlatformOverhead;
use crate::app::{AppSpec, LoadBalancing};
use crate::cluster::InstanceId;
use crate::engine::{SimRng, SimTime};
use crate::metrics::{latency_histogram, record_latency};
use crate::workload::{ArrivalGenerator, RequestMix};

/// The load generator stops sleeping this long before an arrival and yields the CPU until it.
const SPIN_BELOW: Duration = Duration::from_micros(150);

/// One worker as the router sees it.
pub struct Endpoint {
    pub service: usize,
    pub work: SocketAddr,
    pub concurrency: u32,
    pub queue_capacity: u32,
    /// Cores one slot runs at (`min(1, cpu_limit / concurrency)`).
    pub slot_cores: f64,
    /// Work requests sent and not answered yet.
    pub working: u32,
    /// Visits held (own work, or waiting on callees).
    pub outstanding: u32,
    pub routed: u64,
    /// The worker could not be reached.
    pub failed: bool,
}

/// Request counts since the start (ground truth, from the load generator's side).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestTotals {
    pub arrived: u64,
    pub completed: u64,
    pub dropped: u64,
    pub within_slo: u64,
    pub latency_sum_us: f64,
}

/// Everything request threads and the control loop share, behind one lock (a few hundred visits
/// per second at most: contention is negligible next to an HTTP round trip).
pub struct RouterState {
    pub endpoints: HashMap<InstanceId, Endpoint>,
    /// Routable (Active) instances of each service, ascending id.
    pub active: Vec<Vec<InstanceId>>,
    rr_next: Vec<usize>,
    lb_rng: Vec<SimRng>,
    demand_rng: Vec<SimRng>,
    /// Since the backend's last metrics tick took them (`LocalBackend`'s `tick`).
    pub arrivals: Vec<u64>,
    pub dropped: Vec<u64>,
    pub visit_latencies: Vec<(usize, u64)>,
    /// The platform's measured cost per visit since the start (scenario microseconds).
    pub overhead: PlatformOverhead,
    pub totals: RequestTotals,
    pub latency: Histogram<u64>,
    pub in_flight: u64,
}

pub struct Shared {
    pub state: Mutex<RouterState>,
    pub app: AppSpec,
    pub compress: f64,
    pub slo_us: u64,
    pub stop: AtomicBool,
    agent: ureq::Agent,
}

impl Shared {
    pub fn new(app: AppSpec, compress: f64, slo: SimTime, lb_rng: Vec<SimRng>, demand_rng: Vec<SimRng>) -> Shared {
        let n = app.services.len();
        Shared {
            state: Mutex::new(RouterState {
                endpoints: HashMap::new(),
                active: vec![Vec::new(); n],
                rr_next: vec![0; n],
                lb_rng,
                demand_rng,
                arrivals: vec![0; n],
                dropped: vec![0; n],
                visit_latencies: Vec::new(),
                overhead: PlatformOverhead::default(),
                totals: RequestTotals::default(),
                latency: latency_histogram(3),
                in_flight: 0,
            }),
            app,
            compress,
            slo_us: slo.0,
            stop: AtomicBool::new(false),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(2))
                .timeout(Duration::from_secs(60))
                .max_idle_connections_per_host(64)
                .build(),
        }
    }

    /// The router state; a request thread that panicked cannot leave it unusable.
    pub fn lock(&self) -> MutexGuard<'_, RouterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A wall duration in scenario microseconds.
    fn scenario_us(&self, wall: Duration) -> u64 {
        (wall.as_secs_f64() * 1e6 * self.compress).round() as u64
    }
}

/// Replays the workload's arrival times on the wall clock (scenario time / k after `start`), one
/// thread per request, until the horizon or `shared.stop`. Open loop: a slow cluster does not slow
/// arrivals, and latency counts from the scheduled arrival time.
pub fn generate_load(
    shared: Arc<Shared>,
    mut arrivals: ArrivalGenerator,
    mut mix_rng: SimRng,
    mix: RequestMix,
    horizon: SimTime,
    start: Instant,
) {
    while let Some(t) = arrivals.next_arrival() {
        if t >= horizon {
            break;
        }
        let due = start + Duration::from_secs_f64(t.as_secs_f64() / shared.compress);
        // Sleep to just before the arrival, then yield until it: a sleep overshoots by tens of
        // microseconds, which would count as latency (scaled by the compression).
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            let left = due - now;
            if left > SPIN_BELOW {
                std::thread::sleep((left - SPIN_BELOW).min(Duration::from_millis(20)));
            } else {
                std::thread::yield_now();
            }
        }
        let ty = mix.sample(&mut mix_rng);
        {
            let mut st = shared.lock();
            st.totals.arrived += 1;
            st.in_flight += 1;
        }
        let sh = shared.clone();
        let spawned = std::thread::Builder::new().stack_size(256 * 1024).spawn(move || {
            let lag = sh.scenario_us(due.elapsed());
            {
                let mut st = sh.lock();
                let in_flight = st.in_flight;
                st.overhead.dispatch.push(in_flight, lag);
            }
            let root = sh.app.request_types[ty].root;
            let ok = visit(&sh, root);
            finish_request(&sh, due, ok);
        });
        if spawned.is_err() {
            finish_request(&shared, due, false);
        }
    }
}

fn finish_request(shared: &Shared, arrived: Instant, ok: bool) {
    let latency = shared.scenario_us(arrived.elapsed());
    let mut st = shared.lock();
    st.in_flight -= 1;
    if ok {
        st.totals.completed += 1;
        st.totals.latency_sum_us += latency as f64;
        if latency <= shared.slo_us {
            st.totals.within_slo += 1;
        }
        record_latency(&mut st.latency, latency);
    } else {
        st.totals.dropped += 1;
    }
}

/// Serves one visit of call node `node` and its callees; false when it or a callee was dropped.
fn visit(shared: &Shared, node: u32) -> bool {
    let call = &shared.app.nodes[node as usize];
    let s = call.service as usize;
    let started = Instant::now();
    let (id, addr, cpu_us, wall_us, idle) = {
        let mut st = shared.lock();
        st.arrivals[s] += 1;
        let Some(id) = pick(&mut st, s, shared.app.services[s].load_balancing) else {
            st.dropped[s] += 1;
            return false;
        };
        let demand = call.demand.sample(&mut st.demand_rng[s]) / shared.compress;
        let ep = st.endpoints.get_mut(&id).expect("routable instances have endpoints");
        if ep.working >= ep.concurrency + ep.queue_capacity {
            st.dropped[s] += 1;
            return false;
        }
        // Sent to a worker with nothing in hand, the exchange waits behind no other visit: its
        // round trip less the worker's own time is the transport alone.
        let idle = ep.working == 0;
        ep.working += 1;
        ep.outstanding += 1;
        ep.routed += 1;
        (id, ep.work, demand.round() as u64, (demand / ep.slot_cores).round() as u64, idle)
    };
    let url = format!("http://{addr}/work?cpu_us={cpu_us}&wall_us={wall_us}");
    let sent = Instant::now();
    let held_us = match shared.agent.get(&url).call() {
        Ok(resp) => resp.into_string().ok().map(|body| body.trim().parse::<u64>().unwrap_or(wall_us)),
        Err(_) => None,
    };
    let round_trip_us = sent.elapsed().as_micros() as u64;
    let answered = held_us.is_some();
    {
        let mut st = shared.lock();
        if let Some(held) = held_us {
            let k = shared.compress;
            let stall = (held.saturating_sub(wall_us) as f64 * k).round() as u64;
            // Taken with the requests in flight at the answer: the machine's load during it.
            let in_flight = st.in_flight;
            st.overhead.stall.push(in_flight, stall);
            if idle {
                let transport = (round_trip_us.saturating_sub(held) as f64 * k).round() as u64;
                st.overhead.transport.push(in_flight, transport);
            }
        }
        if let Some(ep) = st.endpoints.get_mut(&id) {
            ep.working -= 1;
            if !answered {
                ep.failed = true;
                ep.outstanding -= 1;
            }
        }
        if !answered {
            st.dropped[s] += 1;
            return false;
        }
    }
    let n = call.n_children as usize;
    let first = call.first_child as usize;
    let children = &shared.app.children[first..first + n];
    // The scenario's network latency, slept as it is: the loopback exchange's own time is measured
    // as platform overhead (above) and modelled separately by the simulator.
    let hop = Duration::from_secs_f64(shared.app.network_latency.as_secs_f64() / shared.compress);
    let ok = if n == 0 {
        true
    } else if call.parallel {
        wait(hop);
        std::thread::scope(|scope| {
            let handles: Vec<_> = children.iter().map(|&c| scope.spawn(move || visit(shared, c))).collect();
            // Join every callee (no short cut): the visit ends when the last one returns.
            handles.into_iter().map(|h| h.join().unwrap_or(false)).filter(|ok| !ok).count() == 0
        })
    } else {
        children.iter().all(|&c| {
            wait(hop);
            visit(shared, c)
        })
    };
    let latency = shared.scenario_us(started.elapsed());
    let mut st = shared.lock();
    if let Some(ep) = st.endpoints.get_mut(&id) {
        ep.outstanding -= 1;
    }
    st.visit_latencies.push((s, latency));
    ok
}

fn wait(d: Duration) {
    if !d.is_zero() {
        std::thread::sleep(d);
    }
}

fn pick(st: &mut RouterState, s: usize, lb: LoadBalancing) -> Option<InstanceId> {
    let list = &st.active[s];
    if list.is_empty() {
        return None;
    }
    Some(match lb {
        LoadBalancing::RoundRobin => {
            let k = st.rr_next[s] % list.len();
            st.rr_next[s] = k + 1;
            list[k]
        }
        LoadBalancing::LeastOutstanding => {
            let eps = &st.endpoints;
            *list.iter().min_by_key(|&&id| (eps.get(&id).map_or(u32::MAX, |e| e.outstanding), id)).expect("non-empty")
        }
        LoadBalancing::Random => {
            let k = st.lb_rng[s].gen_range(0..list.len());
            st.active[s][k]
        }
    })
}
