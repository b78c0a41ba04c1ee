//! Starting the kernel bridge, in the order that keeps NetworkManager and stale devices out of
//! it: the NetworkManager guard first (before any twin exists), then the twins (a stale netdev
//! of the same name removed), then the kernel-side addresses and routes and their guard, then
//! the rings between the workers and the shuttle.

use std::sync::Arc;

use dpvs_dpdk::{Eal, Mempool, Ring, RingConsumer, RingProducer};
use kni::{BridgeOptions, KernelBridge, KniAddr, KniRoute, NmGuard, NmOptions, TwinSpec};

use super::ports::OpenPort;
use super::shuttle::{Shuttle, ToShuttle};
use super::twin::{self, Twin};
use crate::config::Config;
use crate::control::twins::{KernelSide, TwinInfo};

/// Frames each ring between a worker and the shuttle holds.
pub(super) const KNI_RING_SIZE: u32 = 1024;

/// A worker's ends of its rings with the shuttle: frames for the kernel out, the kernel's
/// frames in.
pub(super) type WorkerKniEnds = (Option<ToShuttle>, Option<RingConsumer>);

/// Everything the kernel bridge is made of, for the daemon to hand out.
pub(super) struct Bridge {
    /// For the control plane.
    pub(super) control: KernelSide,
    /// For the main lcore; `None` when no port has a twin.
    pub(super) shuttle: Option<Shuttle>,
    /// For each worker.
    pub(super) workers: Vec<WorkerKniEnds>,
}

/// Creates the twins of the ports with `kni = true` and starts guarding them, or returns an
/// empty bridge when there are none.
pub(super) fn start(
    eal: &Eal,
    cfg: &Config,
    ports: &[OpenPort],
    workers: usize,
    pool: &'static Mempool,
) -> Result<Bridge, String> {
    let with_twin: Vec<&OpenPort> = ports.iter().filter(|p| p.kni).collect();
    if with_twin.is_empty() {
        return Ok(Bridge {
            control: KernelSide::default(),
            shuttle: None,
            workers: (0..workers).map(|_| (None, None)).collect(),
        });
    }
    let nm = match NmGuard::install(&NmOptions::system()) {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::warn!("kernel bridge: NetworkManager guard not installed: {e}");
            None
        }
    };
    let backend = twin::backend();
    let twins = with_twin
        .iter()
        .enumerate()
        .map(|(k, p)| Ok((twin::create(eal, k, p, backend, pool)?, p.port.mtu())))
        .collect::<Result<Vec<(Twin, u16)>, String>>()?;
    let opts = BridgeOptions {
        exclusive: cfg.kni.exclusive,
        ..BridgeOptions::default()
    };
    let specs = with_twin
        .iter()
        .map(|p| twin_spec(cfg, &p.name))
        .collect::<Result<Vec<_>, _>>()?;
    let bridge = KernelBridge::start(opts, specs, nm).map_err(|e| e.to_string())?;
    let infos = twins
        .iter()
        .map(|(t, _)| TwinInfo {
            port: t.port_name.clone(),
            ifname: t.ifname.clone(),
            backend: t.backend,
            counters: Arc::clone(&t.counters),
        })
        .collect();
    let (ends, from_workers, to_workers) = rings(eal, workers)?;
    Ok(Bridge {
        control: KernelSide {
            bridge: Some(bridge),
            twins: infos,
        },
        shuttle: Some(Shuttle::new(twins, from_workers, to_workers)),
        workers: ends,
    })
}

/// The desired kernel side of `port`'s twin, from the config.
fn twin_spec(cfg: &Config, port: &str) -> Result<TwinSpec, String> {
    let mut spec = TwinSpec::new(port);
    for a in cfg.kni.addresses.iter().filter(|a| a.port == port) {
        spec = spec.with_addr(KniAddr::new(a.addr, a.prefix_len)?);
    }
    for r in cfg.kni.routes.iter().filter(|r| r.port == port) {
        spec = spec.with_route(KniRoute::new(r.prefix, r.prefix_len, r.via)?);
    }
    Ok(spec)
}

/// One ring each way between every worker and the shuttle: each worker's ends, and the
/// shuttle's (in worker order). Runs on the main lcore, which the shuttle's wake-ups name.
type KniRings = (Vec<WorkerKniEnds>, Vec<RingConsumer>, Vec<RingProducer>);

fn rings(eal: &Eal, workers: usize) -> Result<KniRings, String> {
    let mut ends = Vec::with_capacity(workers);
    let (mut from_workers, mut to_workers) = (Vec::new(), Vec::new());
    for w in 0..workers {
        let ring = |dir: &str| {
            Ring::create(eal, &format!("dpvs_kni_{dir}_{w}"), KNI_RING_SIZE)
                .map_err(|e| format!("kernel bridge ring: {e}"))
        };
        let (to_kernel, from_worker) = ring("in")?;
        let (to_worker, from_kernel) = ring("out")?;
        ends.push((Some(ToShuttle::new(to_kernel)), Some(from_kernel)));
        from_workers.push(from_worker);
        to_workers.push(to_worker);
    }
    Ok((ends, from_workers, to_workers))
}
