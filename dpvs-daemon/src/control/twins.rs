//! What the control plane knows of the kernel twins' packet side: which backend each has and
//! the shuttle's counters (written by the shuttle alone, read here for `kni list` and `stats`).

use std::fmt;

use dpvs_core::engine::stats::Counter;

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
