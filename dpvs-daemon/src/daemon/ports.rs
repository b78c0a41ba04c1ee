//! Opening the configured ports, sharing their queues among workers, and reporting on them.

use dpvs_api::{LinkInfo, MacAddr as ApiMac};

use crate::config::{Config, PortConfig as PortCfg};
use crate::control::handler::Dataplane;
use dpvs_dpdk::{Eal, Mempool, Port, RxQueue, TxQueue};

use super::lcore::EngineClock;

/// A started port and how its queues are shared.
pub(super) struct OpenPort {
    pub name: String,
    pub device: String,
    pub port: Port,
    pub driver: String,
    pub nb_rxq: u16,
    pub nb_txq: u16,
    /// Whether it gets a kernel twin.
    pub kni: bool,
}

impl OpenPort {
    /// How packets reach the worker that owns them on this port.
    fn steering(&self) -> String {
        if self.nb_rxq > 1 {
            format!(
                "{} rx queues spread by the driver; spsc rings to the owning worker",
                self.nb_rxq
            )
        } else {
            "one rx queue; spsc rings to the owning worker".to_string()
        }
    }
}

/// A worker's RX queues (port id, queue) and TX queues (port id, queue).
pub(super) type WorkerQueues = (Vec<(u16, RxQueue)>, Vec<(u16, TxQueue)>);

/// The device string as DPDK gets it. af_packet offers one queue pair unless asked for more,
/// and every worker needs a TX queue of its own on every port.
fn device_args(p: &PortCfg, workers: usize) -> String {
    if p.device.starts_with("net_af_packet") && !p.device.contains("qpairs=") && workers > 1 {
        format!("{},qpairs={workers}", p.device)
    } else {
        p.device.clone()
    }
}

fn open(
    eal: &Eal,
    p: &PortCfg,
    workers: usize,
    pool: &'static Mempool,
) -> Result<OpenPort, String> {
    let what = |e: &dyn std::fmt::Display| format!("port {} ({}): {e}", p.name, p.device);
    let mut port = Port::attach(eal, &device_args(p, workers)).map_err(|e| what(&e))?;
    let info = port.info().map_err(|e| what(&e))?;
    if usize::from(info.max_tx_queues) < workers {
        return Err(what(&format!(
            "driver {} offers {} TX queues but each of the {workers} workers needs one",
            info.driver_name, info.max_tx_queues
        )));
    }
    let nb_rxq = info.max_rx_queues.clamp(1, workers as u16);
    let conf = port
        .configure(nb_rxq, workers as u16, p.rx_desc, p.tx_desc, pool)
        .map_err(|e| what(&e))?;
    // Some virtual drivers cannot change promiscuity; frames to our own MAC arrive anyway.
    let _ = port.promiscuous(true);
    port.start().map_err(|e| what(&e))?;
    let open = OpenPort {
        name: p.name.clone(),
        device: p.device.clone(),
        port,
        driver: info.driver_name,
        nb_rxq: conf.nb_rxq,
        nb_txq: conf.nb_txq,
        kni: p.kni,
    };
    tracing::info!(
        port = %open.name, device = %open.device, driver = %open.driver,
        rx_queues = open.nb_rxq, tx_queues = open.nb_txq, steering = %open.steering(),
        "port started"
    );
    Ok(open)
}

/// Attaches, configures and starts every configured port.
pub(super) fn open_all(
    eal: &Eal,
    cfg: &Config,
    workers: usize,
    pool: &'static Mempool,
) -> Result<Vec<OpenPort>, String> {
    cfg.ports
        .iter()
        .map(|p| open(eal, p, workers, pool))
        .collect()
}

/// Worker `w`'s queues: RX queue `w` of each port that has one, TX queue `w` of every port.
pub(super) fn take_queues(ports: &mut [OpenPort], w: usize) -> Result<WorkerQueues, String> {
    let mut rx = Vec::new();
    let mut tx = Vec::new();
    let q = w as u16;
    for p in ports {
        let id = p.port.id();
        if q < p.nb_rxq {
            rx.push((
                id,
                p.port
                    .rx_queue(q)
                    .map_err(|e| format!("port {}: {e}", p.name))?,
            ));
        }
        tx.push((
            id,
            p.port
                .tx_queue(q)
                .map_err(|e| format!("port {}: {e}", p.name))?,
        ));
    }
    Ok((rx, tx))
}

/// The data plane as the control plane sees it.
pub(super) struct DpdkDataplane {
    ports: Vec<OpenPort>,
    pool: &'static Mempool,
    lcores: Vec<u32>,
    clock: EngineClock,
}

impl DpdkDataplane {
    pub(super) fn new(
        ports: Vec<OpenPort>,
        pool: &'static Mempool,
        lcores: Vec<u32>,
        clock: EngineClock,
    ) -> Self {
        DpdkDataplane {
            ports,
            pool,
            lcores,
            clock,
        }
    }
}

impl Dataplane for DpdkDataplane {
    fn links(&self) -> Vec<LinkInfo> {
        self.ports
            .iter()
            .map(|p| {
                let s = p.port.stats().unwrap_or_default();
                LinkInfo {
                    name: p.name.clone(),
                    device: p.device.clone(),
                    port_id: p.port.id(),
                    mac: ApiMac(p.port.mac()),
                    driver: p.driver.clone(),
                    link_up: p.port.link_up(),
                    speed_mbps: 0,
                    rx_queues: p.nb_rxq,
                    tx_queues: p.nb_txq,
                    steering: p.steering(),
                    kni: None,
                    rx_pkts: s.ipackets,
                    tx_pkts: s.opackets,
                    rx_bytes: s.ibytes,
                    tx_bytes: s.obytes,
                    rx_missed: s.imissed,
                    rx_errors: s.ierrors,
                    tx_errors: s.oerrors,
                    rx_nombuf: s.rx_nombuf,
                }
            })
            .collect()
    }

    fn mbufs(&self) -> (u64, u64) {
        let used = u64::from(self.pool.in_use());
        (used, used + u64::from(self.pool.available()))
    }

    fn worker_lcore(&self, worker: u16) -> u32 {
        self.lcores
            .get(usize::from(worker))
            .copied()
            .unwrap_or(u32::MAX)
    }

    fn engine_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}
