//! The `dpvs` daemon: start EAL and the ports from the config, build the first snapshot,
//! serve the control socket, run the workers until SIGINT/SIGTERM.

pub mod claim;
mod kernel;
mod lcore;
mod ports;
mod shuttle;
mod twin;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::config::{self, Config, Workers};
use crate::control::handler::{Control, Detached};
use crate::control::publish::Publisher;
use crate::control::server::{self, lock};
use crate::control::state::{ControlState, PortState};
use crate::control::twins::KernelSide;
use claim::Claims;
use dpvs_core::engine::stats::Stats;
use dpvs_core::engine::worker::{Command, Event, Worker, WorkerLimits};
use dpvs_core::packet::MacAddr;
use dpvs_dpdk::{Eal, Launched, Mempool, Ring, RingConsumer, RingProducer, launch};

use lcore::{EngineClock, Lcore, RxPort, TxPorts};
use ports::{DpdkDataplane, OpenPort};
use shuttle::Shuttle;

/// Counter slots for services plus real servers.
const STAT_SLOTS: usize = 4096;
/// Packets a steering ring holds.
const RING_SIZE: u32 = 1024;
/// Commands queued per worker.
const COMMAND_QUEUE: usize = 16;
/// Neighbour events queued from all workers.
const EVENT_QUEUE: usize = 1024;

/// The daemon's command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "dpvs",
    version,
    about = "DPVS-RS: a DPDK layer-4 load balancer"
)]
pub struct Args {
    /// The configuration file (TOML).
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// The control socket (overrides `[control] ipc`).
    #[arg(long)]
    pub ipc: Option<PathBuf>,
    /// Log level: error, warn, info, debug, trace (or a tracing filter).
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

/// Runs the daemon until a signal asks it to stop. The error is the one-line reason to exit.
pub fn run(args: Args) -> Result<(), String> {
    let cfg = config::load(&args.config).map_err(|e| e.to_string())?;
    ControlState::check_config(&cfg, STAT_SLOTS as u32)
        .map_err(|e| format!("{}: {e}", args.config.display()))?;
    let ipc = args.ipc.clone().unwrap_or_else(|| cfg.control.ipc.clone());
    let eal_args = eal_args(&cfg);
    // Before EAL or any device is touched: a second daemon must not disturb the first.
    let prefix = file_prefix(&eal_args).unwrap_or(&cfg.control.instance);
    let _claims = Claims::take(Path::new(claim::CLAIM_DIR), &cfg, prefix)?;
    if server::answering(&ipc) {
        return Err(format!(
            "control socket {}: another dpvs is serving it",
            ipc.display()
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("cannot handle signals: {e}"))?;
    }
    tracing::info!(args = ?eal_args, "starting EAL");
    let eal = Eal::init(&eal_args).map_err(|e| format!("EAL: {e}"))?;
    let workers = cfg.workers.count();
    let worker_lcores = eal.worker_lcores();
    if worker_lcores.len() < workers {
        return Err(format!(
            "workers: {workers} workers need {workers} EAL worker lcores but EAL has {} (check [eal] args)",
            worker_lcores.len()
        ));
    }
    let pool = Mempool::create(&eal, "dpvs_pkt", mbuf_count(&cfg), 256, None)
        .map_err(|e| format!("mempool: {e}"))?;
    let mut ports = ports::open_all(&eal, &cfg, workers, pool)?;
    let queues = (0..workers)
        .map(|w| ports::take_queues(&mut ports, w))
        .collect::<Result<Vec<_>, _>>()?;
    let bridge = kernel::start(&eal, &cfg, &ports, workers, pool)?;
    let mut shuttle = bridge.shuttle;
    let lcores = &worker_lcores[..workers];
    let stats = Arc::new(Stats::new(workers, STAT_SLOTS));
    let clock = EngineClock::start(&eal);
    let (control, ends) = build_control(&cfg, (ports, pool, clock), lcores, Arc::clone(&stats))?;
    let control = Arc::new(Mutex::new(Control {
        kernel: bridge.control,
        ..control
    }));
    let running = Arc::new(AtomicUsize::new(0));
    let launched = launch_workers(
        &eal,
        &cfg,
        queues.into_iter().zip(bridge.workers).collect(),
        (pool, clock),
        lcores,
        &control,
        &stats,
        ends.commands,
        &ends.events,
        (&stop, &running),
    )?;
    let events = spawn_event_thread(Arc::clone(&control), Arc::clone(&stop), ends.events_rx);
    // Only a daemon whose workers all run answers on its socket: a script that sends traffic
    // as soon as `dpvs-ctl` answers must find every worker taking packets.
    wait_running(&running, workers, &stop)?;
    let socket = server::serve(&ipc, Arc::clone(&control))?;
    tracing::info!(ipc = %ipc.display(), workers, "dpvs is running");
    // The main lcore runs the kernel bridge's shuttle, if there is one.
    while !stop.load(Ordering::Relaxed) {
        match &mut shuttle {
            Some(s) => s.run_once(),
            None => thread::sleep(Duration::from_millis(100)),
        }
    }
    tracing::info!("shutting down");
    shutdown(eal, launched, events, &control, (socket, shuttle))
}

/// EAL arguments: the config's, plus an lcore map and a file prefix when it has none.
fn eal_args(cfg: &Config) -> Vec<String> {
    let mut args = cfg.eal_args.clone();
    let has = |args: &[String], flags: &[&str]| {
        args.iter().any(|a| {
            flags
                .iter()
                .any(|f| a == f || a.starts_with(&format!("{f}=")))
        })
    };
    if !has(&args, &["-l", "--lcores", "-c"]) {
        args.push("--lcores".into());
        args.push(lcore_map(&cfg.workers, cpu_count()));
    }
    if !has(&args, &["--file-prefix"]) {
        args.push(format!("--file-prefix={}", cfg.control.instance));
    }
    args
}

/// The EAL `--file-prefix` among `args` (`--file-prefix=X` or `--file-prefix X`).
fn file_prefix(args: &[String]) -> Option<&str> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == "--file-prefix" {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix("--file-prefix=")
        }
    })
}

fn cpu_count() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// `--lcores` value: lcore 0 (main, mostly idle) on CPU 0, worker `i` on the configured CPU or
/// spread over the CPUs starting at CPU 1 (several lcores may share a CPU on small machines).
fn lcore_map(workers: &Workers, cpus: usize) -> String {
    let worker_cpus: Vec<usize> = match workers {
        Workers::Cpus(list) => list.iter().map(|c| *c as usize).collect(),
        Workers::Count(n) => (0..usize::from(*n))
            .map(|i| (i + 1) % cpus.max(1))
            .collect(),
    };
    let mut map = vec!["0@0".to_string()];
    map.extend(
        worker_cpus
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}@{c}", i + 1)),
    );
    map.join(",")
}

/// Mbufs for every descriptor of every queue, the steering rings, the pending queues and the
/// per-lcore caches, with room to spare.
fn mbuf_count(cfg: &Config) -> u32 {
    let w = cfg.workers.count() as u32;
    let desc: u32 = cfg
        .ports
        .iter()
        .map(|p| (u32::from(p.rx_desc) + u32::from(p.tx_desc)) * w)
        .sum();
    let rings = w * w.saturating_sub(1) * RING_SIZE;
    let pending = w * (PENDING_PER_HOP * PENDING_HOPS) as u32;
    (desc + rings + pending + (w + 1) * 512 + 4096).next_power_of_two() - 1
}

const PENDING_PER_HOP: usize = 32;
const PENDING_HOPS: usize = 64;

/// What each worker gets from the control side: its command queue and the event sender.
struct WorkerEnds {
    commands: Vec<Receiver<Command>>,
    events: Sender<Event>,
    events_rx: Receiver<Event>,
}

fn build_control(
    cfg: &Config,
    (ports, pool, clock): (Vec<OpenPort>, &'static Mempool, EngineClock),
    lcores: &[u32],
    stats: Arc<Stats>,
) -> Result<(Control, WorkerEnds), String> {
    let port_states = ports
        .iter()
        .map(|p| PortState {
            name: p.name.clone(),
            id: p.port.id(),
            mac: MacAddr(p.port.mac()),
            mtu: p.port.mtu(),
            kni: p.kni,
        })
        .collect();
    let mut state = ControlState::new(port_states, cfg.timeouts, STAT_SLOTS as u32)
        .with_templates(cfg.templates);
    state.apply_config(cfg).map_err(|e| e.to_string())?;
    let publisher = Publisher::new(state.snapshot(), state.neigh_table());
    let (cmd_tx, cmd_rx): (Vec<_>, Vec<_>) = lcores.iter().map(|_| bounded(COMMAND_QUEUE)).unzip();
    let (events, events_rx) = bounded(EVENT_QUEUE);
    let dataplane = DpdkDataplane::new(ports, pool, lcores.to_vec(), clock);
    let control = Control {
        state,
        publisher,
        stats,
        commands: cmd_tx,
        dataplane: Box::new(dataplane),
        kernel: KernelSide::default(),
        rates: Default::default(),
    };
    Ok((
        control,
        WorkerEnds {
            commands: cmd_rx,
            events,
            events_rx,
        },
    ))
}

#[allow(
    clippy::too_many_arguments,
    reason = "everything a worker lcore is built from, once at start-up"
)]
fn launch_workers(
    eal: &Eal,
    cfg: &Config,
    queues: Vec<(ports::WorkerQueues, kernel::WorkerKniEnds)>,
    (pool, clock): (&'static Mempool, EngineClock),
    lcores: &[u32],
    control: &Arc<Mutex<Control>>,
    stats: &Arc<Stats>,
    commands: Vec<Receiver<Command>>,
    events: &Sender<Event>,
    (stop, running): (&Arc<AtomicBool>, &Arc<AtomicUsize>),
) -> Result<Vec<Launched>, String> {
    let n = lcores.len();
    let seed = getrandom::u64().map_err(|e| format!("cannot draw a random seed: {e}"))?;
    let (mut to, mut from) = rings(eal, n)?;
    let limits = WorkerLimits {
        conns: cfg.max_conns_per_worker as usize,
        pending_per_hop: PENDING_PER_HOP,
        pending_hops: PENDING_HOPS,
    };
    let mut launched = Vec::new();
    let each = lcores.iter().zip(commands).zip(queues);
    for (w, ((lcore, cmds), ((rx, tx), (to_kernel, from_kernel)))) in each.enumerate() {
        let worker = Worker::new(w as u16, n as u16, limits, seed, Arc::clone(stats));
        let job = Lcore {
            worker,
            commands: cmds,
            events: events.clone(),
            workers: n as u16,
            rx: rx
                .into_iter()
                .map(|(port, queue)| RxPort { port, queue })
                .collect(),
            tx: TxPorts::new(tx, to_kernel, pool, (Arc::clone(stats), w)),
            from_kernel,
            to: std::mem::take(&mut to[w]),
            from: std::mem::take(&mut from[w]),
            readers: lock(control).publisher.readers(),
            stats: Arc::clone(stats),
            stop: Arc::clone(stop),
            running: Arc::clone(running),
            clock,
        };
        launched
            .push(launch(eal, *lcore, move || job.run()).map_err(|e| format!("worker {w}: {e}"))?);
    }
    Ok(launched)
}

/// How long the workers may take to enter their loops.
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until all `workers` have entered their loops (each counts itself in `running`).
fn wait_running(running: &AtomicUsize, workers: usize, stop: &AtomicBool) -> Result<(), String> {
    let deadline = std::time::Instant::now() + WORKER_START_TIMEOUT;
    while running.load(Ordering::SeqCst) < workers {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "only {} of {workers} workers started within {WORKER_START_TIMEOUT:?}",
                running.load(Ordering::SeqCst)
            ));
        }
        thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// One SPSC ring per ordered pair of workers: `to[w][o]` is worker `w`'s producer towards
/// `o`, `from[o]` holds the consumers of everything sent to `o`.
type RingMatrix = (Vec<Vec<Option<RingProducer>>>, Vec<Vec<RingConsumer>>);

fn rings(eal: &Eal, n: usize) -> Result<RingMatrix, String> {
    let mut to: Vec<Vec<Option<RingProducer>>> =
        (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    let mut from: Vec<Vec<RingConsumer>> = (0..n).map(|_| Vec::new()).collect();
    for (w, row) in to.iter_mut().enumerate() {
        for (o, slot) in row.iter_mut().enumerate().filter(|(o, _)| *o != w) {
            let (p, c) = Ring::create(eal, &format!("dpvs_steer_{w}_{o}"), RING_SIZE)
                .map_err(|e| format!("ring: {e}"))?;
            *slot = Some(p);
            from[o].push(c);
        }
    }
    Ok((to, from))
}

/// Takes workers' neighbour learnings and retires old snapshots.
fn spawn_event_thread(
    control: Arc<Mutex<Control>>,
    stop: Arc<AtomicBool>,
    events: Receiver<Event>,
) -> Option<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("dpvs-events".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(e) = events.recv_timeout(Duration::from_millis(200)) {
                    lock(&control).on_event(e);
                }
                let mut c = lock(&control);
                c.publisher.reclaim();
                c.tick_rates(std::time::Instant::now());
            }
        })
        .ok()
}

fn shutdown(
    eal: Eal,
    launched: Vec<Launched>,
    event_thread: Option<thread::JoinHandle<()>>,
    control: &Arc<Mutex<Control>>,
    (socket, shuttle): (server::ControlSocket, Option<Shuttle>),
) -> Result<(), String> {
    let mut failed = Vec::new();
    for (w, l) in launched.into_iter().enumerate() {
        if let Err(e) = l.wait() {
            failed.push(format!("worker {w}: {e}"));
        }
    }
    if let Some(t) = event_thread {
        let _ = t.join();
    }
    drop(socket);
    // The guard lets go of the twins before they close (it would bring their links back up),
    // then the twins close (their netdevs go), then the ports: all before EAL unmaps its memory.
    lock(control).kernel.stop();
    drop(shuttle);
    lock(control).dataplane = Box::new(Detached);
    if let Err(e) = eal.shutdown() {
        tracing::warn!("EAL cleanup: {e}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}
