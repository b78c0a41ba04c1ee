//! The kernel twins as the control plane drives them: which backend each has, the shuttle's
//! counters (written by the shuttle alone, read here), the guard of their kernel-side
//! addresses and routes, and the requests about them (`kni addr|route add|del`, `kni list`).

use std::fmt;
use std::time::Duration;

use dpvs_api::{LinkInfo, Request, TwinInfo as ApiTwin};
use dpvs_core::engine::stats::Counter;
use kni::{KniAddr, KniRoute, TwinStatus};

use crate::control::error::ControlError;
use crate::control::handler::Control;

/// How a twin is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// DPDK's `net_tap`: a TAP netdev.
    Tap,
    /// DPDK's `net_virtio_user` over `/dev/vhost-net`.
    VirtioUser,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Tap => "tap",
            Backend::VirtioUser => "virtio_user",
        })
    }
}

/// Why the shuttle dropped a frame of a twin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwinDrop {
    /// The twin's TX queue (towards the kernel) was full.
    KernelBusy,
    /// The ring to the worker that sends the kernel's frames out was full.
    RingFull,
    /// The kernel sent a frame while the port's link was down.
    PortDown,
    /// The kernel sent a frame no port could carry: shorter than an Ethernet header, longer
    /// than the port's MTU allows, or in several segments.
    Malformed,
}

impl TwinDrop {
    pub const ALL: [TwinDrop; 4] = [
        TwinDrop::KernelBusy,
        TwinDrop::RingFull,
        TwinDrop::PortDown,
        TwinDrop::Malformed,
    ];

    /// The name `kni list` and `stats` show.
    pub fn name(self) -> &'static str {
        match self {
            TwinDrop::KernelBusy => "kernel_busy",
            TwinDrop::RingFull => "ring_full",
            TwinDrop::PortDown => "port_down",
            TwinDrop::Malformed => "malformed",
        }
    }
}

/// The shuttle's counters of one twin.
#[derive(Debug, Default)]
pub struct TwinCounters {
    /// Frames (and bytes) handed to the kernel.
    pub to_kernel_pkts: Counter,
    pub to_kernel_bytes: Counter,
    /// Frames (and bytes) the kernel sent, handed on to go out of the port.
    pub from_kernel_pkts: Counter,
    pub from_kernel_bytes: Counter,
    pub drops: [Counter; TwinDrop::ALL.len()],
}

impl TwinCounters {
    pub fn count_drop(&self, why: TwinDrop, n: u64) {
        self.drops[why as usize].add(n);
    }
}

/// A twin as the control plane reports it.
#[derive(Debug)]
pub struct TwinInfo {
    /// The port's name, and the twin's netdev name.
    pub port: String,
    pub ifname: String,
    pub backend: Backend,
    pub counters: std::sync::Arc<TwinCounters>,
}

/// The kernel bridge as the control plane drives it: the twins, and the guard of their
/// kernel-side addresses and routes (none when no port has a twin).
#[derive(Default)]
pub struct KernelSide {
    pub bridge: Option<kni::KernelBridge>,
    pub twins: Vec<TwinInfo>,
}

impl KernelSide {
    /// Stops guarding the twins (before the ports and twins are closed: the guard would bring
    /// a twin's link back up) and removes the NetworkManager and udev files it wrote.
    pub fn stop(&mut self) {
        if let Some(b) = self.bridge.take() {
            b.stop();
        }
    }
}

impl Control {
    /// Applies a change of a twin's kernel side: to the state (which checks it), then to the
    /// guard, which puts it in the kernel; a change the kernel refuses is undone in the state.
    pub(crate) fn kernel_change(&mut self, req: Request) -> Result<(), ControlError> {
        let s = &mut self.state;
        let k = &self.kernel;
        let applied = match req {
            Request::KniAddrAdd {
                port,
                addr,
                prefix_len,
            } => {
                s.kni_addr_add(&port, addr, prefix_len)?;
                let r = k.apply(|b| Ok(b.addr_add(&port, KniAddr::new(addr, prefix_len)?)?));
                if r.is_err() {
                    let _ = s.kni_addr_del(&port, addr, prefix_len);
                }
                r
            }
            Request::KniAddrDel {
                port,
                addr,
                prefix_len,
            } => {
                s.kni_addr_del(&port, addr, prefix_len)?;
                k.apply(|b| Ok(b.addr_del(&port, KniAddr::new(addr, prefix_len)?)?))
            }
            Request::KniRouteAdd {
                port,
                prefix,
                prefix_len,
                via,
            } => {
                s.kni_route_add(&port, prefix, prefix_len, via)?;
                let route = |b: &kni::KernelBridge| {
                    Ok(b.route_add(&port, KniRoute::new(prefix, prefix_len, via)?)?)
                };
                let r = k.apply(route);
                if r.is_err() {
                    let _ = s.kni_route_del(&port, prefix, prefix_len, via);
                }
                r
            }
            Request::KniRouteDel {
                port,
                prefix,
                prefix_len,
                via,
            } => {
                s.kni_route_del(&port, prefix, prefix_len, via)?;
                k.apply(|b| Ok(b.route_del(&port, KniRoute::new(prefix, prefix_len, via)?)?))
            }
            _ => Ok(()),
        };
        applied.map_err(|e| ControlError::KernelBridge(e.0))
    }

    /// The twins, each with what the guard sees of it and the shuttle's counters.
    pub(crate) fn twins(&self) -> Vec<ApiTwin> {
        let status = self
            .kernel
            .bridge
            .as_ref()
            .and_then(|b| b.status().ok())
            .unwrap_or_default();
        self.kernel
            .twins
            .iter()
            .map(|t| twin_info(t, status.iter().find(|s| s.port == t.port)))
            .collect()
    }

    /// The ports, each with the name of its twin.
    pub(crate) fn links(&self) -> Vec<LinkInfo> {
        let mut links = self.dataplane.links();
        for l in &mut links {
            l.kni = self
                .kernel
                .twins
                .iter()
                .find(|t| t.port == l.name)
                .map(|t| format!("{} ({})", t.ifname, t.backend));
        }
        links
    }
}

impl KernelSide {
    /// Runs `op` on the guard; an error when there is none (no port has a twin).
    fn apply(
        &self,
        op: impl FnOnce(&kni::KernelBridge) -> Result<(), BridgeFailure>,
    ) -> Result<(), BridgeFailure> {
        match &self.bridge {
            Some(b) => op(b),
            None => Err(BridgeFailure(
                "the kernel bridge is not running (no port has kni = true)".into(),
            )),
        }
    }
}

/// Why the guard did not take a change: its own one-line error.
#[derive(Debug)]
struct BridgeFailure(String);

impl From<kni::KniError> for BridgeFailure {
    fn from(e: kni::KniError) -> Self {
        // Its text names the twin already ("dpdk0.kni: add 10.0.0.5/24: File exists").
        BridgeFailure(e.to_string())
    }
}

impl From<String> for BridgeFailure {
    fn from(e: String) -> Self {
        BridgeFailure(e)
    }
}

fn twin_info(t: &TwinInfo, s: Option<&TwinStatus>) -> ApiTwin {
    let strings = |v: &[KniAddr]| v.iter().map(ToString::to_string).collect();
    let routes = |v: &[KniRoute]| v.iter().map(ToString::to_string).collect();
    let c = &t.counters;
    ApiTwin {
        port: t.port.clone(),
        ifname: t.ifname.clone(),
        backend: t.backend.to_string(),
        link_up: s.is_some_and(|s| s.link_up),
        desired_addrs: s.map(|s| strings(&s.desired_addrs)).unwrap_or_default(),
        actual_addrs: s.map(|s| strings(&s.actual_addrs)).unwrap_or_default(),
        desired_routes: s.map(|s| routes(&s.desired_routes)).unwrap_or_default(),
        actual_routes: s.map(|s| routes(&s.actual_routes)).unwrap_or_default(),
        foreign_addrs: s.map(|s| strings(&s.foreign_addrs)).unwrap_or_default(),
        to_kernel_pkts: c.to_kernel_pkts.get(),
        to_kernel_bytes: c.to_kernel_bytes.get(),
        from_kernel_pkts: c.from_kernel_pkts.get(),
        from_kernel_bytes: c.from_kernel_bytes.get(),
        drops: TwinDrop::ALL
            .iter()
            .map(|d| (d.name().to_string(), c.drops[*d as usize].get()))
            .collect(),
        restores: s.map_or(0, |s| s.restores),
        last_restore_ms_ago: s
            .and_then(|s| s.last_restore)
            .map(|d: Duration| d.as_millis() as u64),
        fights: s.map_or(0, |s| s.fights),
        last_error: s.and_then(|s| s.last_error.clone()),
    }
}
