//! The DPDK side of the kernel twins: each port with `kni = true` gets a netdev `<port>.kni`
//! with the port's MAC, made by DPDK as a port of its own with one RX and one TX queue, which
//! the shuttle polls. `net_virtio_user` over `/dev/vhost-net` where the kernel has it (DPDK's
//! recommended exception path since `rte_kni` went), `net_tap` otherwise.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dpvs_dpdk::{Eal, LinkWatch, Mempool, Port, RxQueue, TxQueue};

use super::ports::OpenPort;
use crate::control::twins::{Backend, TwinCounters};

/// Descriptors of a twin's queues: the kernel's traffic is light.
const TWIN_DESC: u16 = 512;
/// How long a stale twin's removal may take.
const STALE_TIMEOUT: Duration = Duration::from_secs(5);

/// A port's kernel twin, as the shuttle drives it.
pub(super) struct Twin {
    /// The physical port's id, and its name.
    pub(super) phys: u16,
    pub(super) port_name: String,
    pub(super) ifname: String,
    pub(super) backend: Backend,
    /// The twin's own DPDK port (its queues keep it open as well; closed when all go).
    pub(super) _dev: Port,
    pub(super) rx: RxQueue,
    pub(super) tx: TxQueue,
    /// The physical port's link: the kernel's frames are not sent out of a port that is down.
    pub(super) link: LinkWatch,
    pub(super) counters: Arc<TwinCounters>,
}

/// Which backend this machine offers.
pub(super) fn backend() -> Backend {
    if Path::new("/dev/vhost-net").exists() {
        Backend::VirtioUser
    } else {
        Backend::Tap
    }
}

/// Creates the twin of `open` (the `k`th twin) on `backend`, its queues receiving into
/// `pool`. A netdev of that name left behind by an earlier run is removed first, so there is
/// never a second twin.
pub(super) fn create(
    eal: &Eal,
    k: usize,
    open: &OpenPort,
    backend: Backend,
    pool: &'static Mempool,
) -> Result<Twin, String> {
    let ifname = format!("{}.kni", open.name);
    let what = |e: &dyn std::fmt::Display| format!("kernel twin {ifname}: {e}");
    if kni::remove_stale_twin(&ifname, STALE_TIMEOUT).map_err(|e| what(&e))? {
        tracing::warn!(twin = %ifname, "removed a twin left behind by an earlier run");
    }
    let mac = dpvs_api::MacAddr(open.port.mac());
    let devargs = match backend {
        Backend::Tap => format!("net_tap_kni{k},iface={ifname},mac={mac}"),
        Backend::VirtioUser => format!(
            "net_virtio_user_kni{k},path=/dev/vhost-net,queues=1,queue_size=1024,iface={ifname},mac={mac}"
        ),
    };
    let mut dev = Port::attach(eal, &devargs).map_err(|e| what(&e))?;
    dev.configure(1, 1, TWIN_DESC, TWIN_DESC, pool)
        .map_err(|e| what(&e))?;
    dev.start().map_err(|e| what(&e))?;
    let rx = dev.rx_queue(0).map_err(|e| what(&e))?;
    let tx = dev.tx_queue(0).map_err(|e| what(&e))?;
    tracing::info!(port = %open.name, twin = %ifname, backend = %backend, "kernel twin created");
    Ok(Twin {
        phys: open.port.id(),
        port_name: open.name.clone(),
        ifname,
        backend,
        link: open.port.link_watch(),
        _dev: dev,
        rx,
        tx,
        counters: Arc::new(TwinCounters::default()),
    })
}
