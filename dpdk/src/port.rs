//! Ethernet ports and their queues.

use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::eal::{Eal, HandleGuard};
use super::error::{DpdkError, check};
use super::mbuf::Mbuf;
use super::mempool::Mempool;

/// Port ids attached through [`Port::attach`] and not yet released: two `Port`s for one device
/// would hand out the same queue twice.
static ATTACHED: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// What a device offers, from `rte_eth_dev_info_get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// The PMD, e.g. `net_ring`, `net_af_packet`, `net_ixgbe`.
    pub driver_name: String,
    /// Most RX queues the device can run.
    pub max_rx_queues: u16,
    /// Most TX queues the device can run.
    pub max_tx_queues: u16,
    /// Whether the device can spread packets over RX queues by hash (RSS).
    pub rss_supported: bool,
    /// The `RTE_ETH_RSS_*` hash types it supports.
    pub flow_type_rss_offloads: u64,
    /// Supported `RTE_ETH_RX_OFFLOAD_*`.
    pub rx_offload_capa: u64,
    /// Supported `RTE_ETH_TX_OFFLOAD_*`.
    pub tx_offload_capa: u64,
}

/// What [`Port::configure`] actually set up (descriptor counts after the device's limits, and
/// whether RSS spreads traffic), for the start-up log and `link list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// RX queues configured.
    pub nb_rxq: u16,
    /// TX queues configured.
    pub nb_txq: u16,
    /// RX descriptors per queue, after clamping.
    pub nb_rx_desc: u16,
    /// TX descriptors per queue, after clamping.
    pub nb_tx_desc: u16,
    /// The `RTE_ETH_RSS_*` hash types enabled; 0 when RSS is off.
    pub rss_hf: u64,
}

/// Basic counters, from `rte_eth_stats_get`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Packets dropped by the device because RX queues were full.
    pub imissed: u64,
    /// RX buffer allocation failures.
    pub rx_nombuf: u64,
}

/// The device itself, shared by the `Port` and its queue handles: it is stopped, closed and
/// detached when the last of them is dropped, so a queue never polls a closed device.
struct PortInner {
    id: u16,
    name: String,
    started: AtomicBool,
    _handle: HandleGuard,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        let id = self.id;
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: the port id is valid (we attached it and nothing else released it); info is a
        // writable, zeroed struct.
        let device = if unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut info) } == 0 {
            info.device
        } else {
            std::ptr::null_mut()
        };
        if self.started.load(Ordering::SeqCst) {
            // SAFETY: valid port; no queue handle is left (we are the last reference).
            let ret = unsafe { dpdk_sys::rte_eth_dev_stop(id) };
            if ret < 0 {
                let e = DpdkError::failed(format!("rte_eth_dev_stop(port {id})"), -ret);
                tracing::warn!(error = %e, "releasing port {}", self.name);
            }
        }
        // SAFETY: valid, stopped port with no queue handle left.
        let ret = unsafe { dpdk_sys::rte_eth_dev_close(id) };
        if ret < 0 {
            let e = DpdkError::failed(format!("rte_eth_dev_close(port {id})"), -ret);
            tracing::warn!(error = %e, "releasing port {}", self.name);
        }
        if !device.is_null() {
            // SAFETY: `device` is the rte_device of the port, still plugged (closing releases
            // the ethdev port, not the device); detaching it lets the same devargs attach again.
            let ret = unsafe { dpdk_sys::rte_dev_remove(device) };
            if ret < 0 {
                let e = DpdkError::failed(format!("rte_dev_remove({})", self.name), -ret);
                tracing::warn!(error = %e, "releasing port {}", self.name);
            }
        }
        ATTACHED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|&p| p != id);
    }
}

/// An Ethernet port: a vdev or a PCI device, attached, configured and started from the main
/// lcore; its queues are then handed to workers.
///
/// Life cycle: [`Port::attach`] → [`Port::configure`] → [`Port::rx_queue`]/[`Port::tx_queue`]
/// → [`Port::start`] → (workers poll) → queues dropped → [`Port::stop`]. The device is closed
/// and detached when the `Port` and all its queues are gone.
pub struct Port {
    inner: Arc<PortInner>,
    /// Queues configured and which of them were already handed out.
    rx_taken: Vec<bool>,
    tx_taken: Vec<bool>,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.inner.id)
            .field("name", &self.inner.name)
            .field("nb_rxq", &self.rx_taken.len())
            .field("nb_txq", &self.tx_taken.len())
            .finish()
    }
}

impl Port {
    /// Attaches a device by its DPDK device string: a vdev such as `net_ring0`,
    /// `net_af_packet0,iface=veth0`, `net_memif0,role=server,socket=/tmp/x.sock`,
    /// `net_tap0,iface=x`, or a PCI address `0000:01:00.0`. A device EAL already probed (PCI at
    /// start-up, `--vdev`) is accepted as is.
    pub fn attach(_eal: &Eal, devargs: &str) -> Result<Port, DpdkError> {
        let op = || format!("rte_dev_probe({devargs})");
        let name = devargs.split(',').next().unwrap_or("").trim();
        if name.is_empty() {
            return Err(DpdkError::invalid(op(), "empty device name"));
        }
        let c_devargs =
            CString::new(devargs).map_err(|_| DpdkError::invalid(op(), "contains a NUL byte"))?;
        // SAFETY: EAL is initialised and we are on the main lcore (`eal` is !Send); the string
        // is valid and copied by DPDK.
        let ret = unsafe { dpdk_sys::rte_dev_probe(c_devargs.as_ptr()) };
        if ret < 0 && ret != -libc::EEXIST {
            return Err(DpdkError::failed(op(), -ret));
        }
        let id = find_port(name)
            .or_else(|| find_port(&format!("0000:{name}")))
            .ok_or_else(|| {
                DpdkError::invalid(
                    op(),
                    format!("device probed but no ethdev port named {name}"),
                )
            })?;
        let mut attached = ATTACHED.lock().unwrap_or_else(|p| p.into_inner());
        if attached.contains(&id) {
            return Err(DpdkError::invalid(
                op(),
                format!("port {id} is already attached"),
            ));
        }
        attached.push(id);
        drop(attached);
        let mut ethname = [0 as std::ffi::c_char; dpdk_sys::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: valid port id; the buffer has RTE_ETH_NAME_MAX_LEN bytes as required.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(id, ethname.as_mut_ptr()) };
        let name = if ret == 0 {
            // SAFETY: DPDK wrote a NUL-terminated name into the buffer.
            unsafe { CStr::from_ptr(ethname.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        } else {
            name.to_string()
        };
        Ok(Port {
            inner: Arc::new(PortInner {
                id,
                name,
                started: AtomicBool::new(false),
                _handle: HandleGuard::new(),
            }),
            rx_taken: Vec::new(),
            tx_taken: Vec::new(),
        })
    }

    /// The ethdev port id.
    pub fn id(&self) -> u16 {
        self.inner.id
    }

    /// The ethdev name (`net_ring0`, `0000:01:00.0`, ...).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether queue handles of this port are still alive somewhere.
    fn queues_out(&self) -> bool {
        Arc::strong_count(&self.inner) > 1
    }

    /// What the device offers.
    pub fn info(&self) -> Result<PortInfo, DpdkError> {
        let info = self.raw_info()?;
        let driver_name = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: DPDK sets driver_name to the PMD's static NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(PortInfo {
            driver_name,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_supported: info.flow_type_rss_offloads != 0,
            flow_type_rss_offloads: info.flow_type_rss_offloads,
            rx_offload_capa: info.rx_offload_capa,
            tx_offload_capa: info.tx_offload_capa,
        })
    }

    fn raw_info(&self) -> Result<dpdk_sys::rte_eth_dev_info, DpdkError> {
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: valid port id; info is a writable struct of the right type.
        let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(self.inner.id, &mut info) };
        check(
            || format!("rte_eth_dev_info_get(port {})", self.inner.id),
            ret,
        )?;
        Ok(info)
    }

    /// Configures `nb_rxq` RX and `nb_txq` TX queues of (about) `nb_rx_desc`/`nb_tx_desc`
    /// descriptors, receiving into `pool`. RSS over IP/TCP/UDP is enabled when there are
    /// several RX queues and the device supports it; no other offload; no scatter (one
    /// packet = one mbuf). The port must be stopped and no queue handle may be alive.
    pub fn configure(
        &mut self,
        nb_rxq: u16,
        nb_txq: u16,
        nb_rx_desc: u16,
        nb_tx_desc: u16,
        pool: &'static Mempool,
    ) -> Result<PortConfig, DpdkError> {
        let id = self.inner.id;
        let op = || format!("configure(port {id})");
        if self.queues_out() {
            return Err(DpdkError::invalid(op(), "queue handles are still alive"));
        }
        if self.inner.started.load(Ordering::SeqCst) {
            return Err(DpdkError::invalid(op(), "port is started"));
        }
        let info = self.raw_info()?;
        if nb_rxq == 0 || nb_rxq > info.max_rx_queues {
            return Err(DpdkError::invalid(
                op(),
                format!(
                    "{nb_rxq} RX queues asked, device supports 1..={}",
                    info.max_rx_queues
                ),
            ));
        }
        if nb_txq == 0 || nb_txq > info.max_tx_queues {
            return Err(DpdkError::invalid(
                op(),
                format!(
                    "{nb_txq} TX queues asked, device supports 1..={}",
                    info.max_tx_queues
                ),
            ));
        }
        let mut conf = dpdk_sys::rte_eth_conf::default();
        let wanted =
            dpdk_sys::RTE_ETH_RSS_IP | dpdk_sys::RTE_ETH_RSS_TCP | dpdk_sys::RTE_ETH_RSS_UDP;
        let rss_hf = if nb_rxq > 1 {
            wanted & info.flow_type_rss_offloads
        } else {
            0
        };
        if rss_hf != 0 {
            conf.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut();
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            // Ask for the hash in the mbuf too where that is an offload of its own.
            conf.rxmode.offloads |= info.rx_offload_capa & dpdk_sys::RTE_ETH_RX_OFFLOAD_RSS_HASH;
        }
        // SAFETY: valid, stopped port with no queue handle alive; conf is fully initialised.
        let ret = unsafe { dpdk_sys::rte_eth_dev_configure(id, nb_rxq, nb_txq, &conf) };
        check(|| format!("rte_eth_dev_configure(port {id})"), ret)?;
        // The port is reconfigured: nothing was handed out of this configuration yet.
        self.rx_taken.clear();
        self.tx_taken.clear();
        let (mut rxd, mut txd) = (nb_rx_desc, nb_tx_desc);
        // SAFETY: valid configured port; both pointers are to live u16s.
        let ret = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rxd, &mut txd) };
        check(
            || format!("rte_eth_dev_adjust_nb_rx_tx_desc(port {id})"),
            ret,
        )?;
        // SAFETY: valid port id; plain getter (SOCKET_ID_ANY when unknown).
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        // DPDK takes the socket as unsigned and reads SOCKET_ID_ANY (-1) back from the cast.
        let socket = socket as u32;
        for q in 0..nb_rxq {
            // SAFETY: configured port, q < nb_rxq; NULL rxconf selects the driver default;
            // the pool lives for the rest of the process.
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    rxd,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            check(
                || format!("rte_eth_rx_queue_setup(port {id}, queue {q})"),
                ret,
            )?;
        }
        for q in 0..nb_txq {
            // SAFETY: configured port, q < nb_txq; NULL txconf selects the driver default.
            let ret =
                unsafe { dpdk_sys::rte_eth_tx_queue_setup(id, q, txd, socket, std::ptr::null()) };
            check(
                || format!("rte_eth_tx_queue_setup(port {id}, queue {q})"),
                ret,
            )?;
        }
        self.rx_taken = vec![false; usize::from(nb_rxq)];
        self.tx_taken = vec![false; usize::from(nb_txq)];
        Ok(PortConfig {
            nb_rxq,
            nb_txq,
            nb_rx_desc: rxd,
            nb_tx_desc: txd,
            rss_hf,
        })
    }

    /// Starts the device (after [`Port::configure`]).
    pub fn start(&mut self) -> Result<(), DpdkError> {
        let id = self.inner.id;
        if self.rx_taken.is_empty() {
            return Err(DpdkError::invalid(
                format!("start(port {id})"),
                "port is not configured",
            ));
        }
        // SAFETY: valid configured port, on the control thread that owns the Port.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(id) };
        check(|| format!("rte_eth_dev_start(port {id})"), ret)?;
        self.inner.started.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Stops the device. Refused while queue handles are alive: a worker could be polling.
    pub fn stop(&mut self) -> Result<(), DpdkError> {
        let id = self.inner.id;
        if self.queues_out() {
            return Err(DpdkError::invalid(
                format!("stop(port {id})"),
                "queue handles are still alive (stop the workers first)",
            ));
        }
        if !self.inner.started.load(Ordering::SeqCst) {
            return Ok(());
        }
        // SAFETY: valid port; no queue handle exists, so nobody polls it.
        let ret = unsafe { dpdk_sys::rte_eth_dev_stop(id) };
        check(|| format!("rte_eth_dev_stop(port {id})"), ret)?;
        self.inner.started.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Turns promiscuous reception on or off.
    pub fn promiscuous(&mut self, on: bool) -> Result<(), DpdkError> {
        let id = self.inner.id;
        // SAFETY: valid port id; control-path call from the Port's owner.
        let ret = unsafe {
            if on {
                dpdk_sys::rte_eth_promiscuous_enable(id)
            } else {
                dpdk_sys::rte_eth_promiscuous_disable(id)
            }
        };
        check(
            || {
                format!(
                    "rte_eth_promiscuous_{}(port {id})",
                    if on { "enable" } else { "disable" }
                )
            },
            ret,
        )?;
        Ok(())
    }

    /// The port's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid port id; addr is a writable rte_ether_addr. It only fails for an
        // invalid port, which a live Port is not.
        let ret = unsafe { dpdk_sys::rte_eth_macaddr_get(self.inner.id, &mut addr) };
        debug_assert_eq!(ret, 0);
        addr.addr_bytes
    }

    /// The largest IP packet the port sends (its MTU); 1500, DPDK's default, if the device
    /// cannot tell.
    pub fn mtu(&self) -> u16 {
        let mut mtu = 0u16;
        // SAFETY: valid port id; mtu is a writable u16.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_mtu(self.inner.id, &mut mtu) };
        if ret == 0 && mtu >= 68 { mtu } else { 1500 }
    }

    /// Whether the link is up, without waiting for the device to find out.
    pub fn link_up(&self) -> bool {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid port id; link is a writable rte_eth_link.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.inner.id, &mut link) };
        ret == 0 && link.link_status() != 0
    }

    /// The device's basic counters.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid port id; s is a writable rte_eth_stats.
        let ret = unsafe { dpdk_sys::rte_eth_stats_get(self.inner.id, &mut s) };
        check(|| format!("rte_eth_stats_get(port {})", self.inner.id), ret)?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            imissed: s.imissed,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Hands out RX queue `q`, once per configuration.
    pub fn rx_queue(&mut self, q: u16) -> Result<RxQueue, DpdkError> {
        take(&mut self.rx_taken, q, || {
            format!("rx_queue(port {}, queue {q})", self.inner.id)
        })?;
        Ok(RxQueue {
            port: Arc::clone(&self.inner),
            port_id: self.inner.id,
            queue: q,
            _not_sync: PhantomData,
        })
    }

    /// Hands out TX queue `q`, once per configuration.
    pub fn tx_queue(&mut self, q: u16) -> Result<TxQueue, DpdkError> {
        take(&mut self.tx_taken, q, || {
            format!("tx_queue(port {}, queue {q})", self.inner.id)
        })?;
        Ok(TxQueue {
            port: Arc::clone(&self.inner),
            port_id: self.inner.id,
            queue: q,
            _not_sync: PhantomData,
        })
    }
}

impl Port {
    /// A handle that reads the port's link state from another thread (the kernel bridge's
    /// shuttle checks it before it sends the kernel's frames out of the port). Like a queue
    /// handle, it keeps the port from being stopped while it exists.
    pub fn link_watch(&self) -> LinkWatch {
        LinkWatch {
            port: Arc::clone(&self.inner),
        }
    }
}

/// Reads one port's link state (`Send` and `Sync`: it only reads).
pub struct LinkWatch {
    port: Arc<PortInner>,
}

impl std::fmt::Debug for LinkWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkWatch({})", self.port.name)
    }
}

impl LinkWatch {
    /// Whether the link is up, without waiting for the device to find out.
    pub fn is_up(&self) -> bool {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: the port is attached while this handle holds it; link is writable.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.port.id, &mut link) };
        ret == 0 && link.link_status() != 0
    }
}

/// Marks queue `q` handed out, refusing unknown or already taken queues.
fn take(taken: &mut [bool], q: u16, op: impl Fn() -> String) -> Result<(), DpdkError> {
    match taken.get_mut(usize::from(q)) {
        None => Err(DpdkError::invalid(
            op(),
            format!("{} queues configured", taken.len()),
        )),
        Some(true) => Err(DpdkError::invalid(op(), "queue already handed out")),
        Some(t) => {
            *t = true;
            Ok(())
        }
    }
}

/// The ethdev port called `name`, if any.
fn find_port(name: &str) -> Option<u16> {
    let cname = CString::new(name).ok()?;
    let mut id = 0u16;
    // SAFETY: valid C string and a writable u16.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
    (ret == 0).then_some(id)
}

/// The receive side of one queue of a port, polled by exactly one lcore (`Send`, not `Sync`).
pub struct RxQueue {
    port: Arc<PortInner>,
    port_id: u16,
    queue: u16,
    /// Not Sync: DPDK queues are single-threaded.
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl std::fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RxQueue({}:{})", self.port.name, self.queue)
    }
}

impl RxQueue {
    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    /// The queue index.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Receives up to `out.capacity() - out.len()` packets, appended to `out`; returns how
    /// many. Never allocates: reserve the burst (e.g. [`super::BURST`]) once, up front.
    #[inline]
    pub fn rx_burst(&mut self, out: &mut Vec<Mbuf>) -> usize {
        let len = out.len();
        let room = (out.capacity() - len).min(usize::from(u16::MAX)) as u16;
        if room == 0 {
            return 0;
        }
        // SAFETY: this handle is the only poller of (port, queue) (handed out once, !Sync) and
        // the port is not closed while it exists. The spare capacity holds `room` slots, and
        // Mbuf is a transparent NonNull<rte_mbuf>, so the driver writes owned, non-null mbuf
        // pointers into the first `n` of them.
        let n = unsafe {
            dpdk_sys::rte_eth_rx_burst(
                self.port_id,
                self.queue,
                out.as_mut_ptr().add(len).cast::<*mut dpdk_sys::rte_mbuf>(),
                room,
            )
        };
        // SAFETY: the first n spare slots were initialised by the driver with owned mbufs.
        unsafe { out.set_len(len + usize::from(n)) };
        usize::from(n)
    }
}

/// The transmit side of one queue of a port, used by exactly one lcore (`Send`, not `Sync`).
pub struct TxQueue {
    port: Arc<PortInner>,
    port_id: u16,
    queue: u16,
    /// Not Sync: DPDK queues are single-threaded.
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl std::fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TxQueue({}:{})", self.port.name, self.queue)
    }
}

impl TxQueue {
    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    /// The queue index.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Hands the packets of `pkts` to the device, front first; returns how many it took. The
    /// sent ones are removed from the front of `pkts`, the ones the queue refused stay in it,
    /// in order, still owned by the caller (retry them or drop them to free). Never allocates.
    #[inline]
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        let len = pkts.len();
        if len == 0 {
            return 0;
        }
        let n = len.min(usize::from(u16::MAX)) as u16;
        // SAFETY: this handle is the only user of (port, queue) (handed out once, !Sync) and the
        // port is not closed while it exists. `pkts` holds `n` owned mbufs laid out as
        // `*mut rte_mbuf` (Mbuf is transparent); the driver takes ownership of the first `sent`.
        let sent = usize::from(unsafe {
            dpdk_sys::rte_eth_tx_burst(
                self.port_id,
                self.queue,
                pkts.as_mut_ptr().cast::<*mut dpdk_sys::rte_mbuf>(),
                n,
            )
        });
        if sent > 0 {
            // SAFETY: the first `sent` entries now belong to the driver: forget them by moving
            // the unsent tail over them (ptr::copy handles the overlap) and shortening the Vec,
            // so each remaining mbuf is owned exactly once and none is dropped here.
            unsafe {
                let p = pkts.as_mut_ptr();
                std::ptr::copy(p.add(sent), p, len - sent);
                pkts.set_len(len - sent);
            }
        }
        sent
    }
}
