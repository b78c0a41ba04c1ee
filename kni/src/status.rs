//! What `status()` reports per twin: desired against actual, and what the guard did.

use std::time::Duration;

use crate::desired::{KniAddr, KniRoute};

/// One twin as the bridge sees it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwinStatus {
    pub port: String,
    pub ifname: String,
    /// `None` while the device does not exist.
    pub ifindex: Option<u32>,
    pub link_up: bool,
    pub desired_addrs: Vec<KniAddr>,
    /// Every address on the device, including the kernel's IPv6 link-local one.
    pub actual_addrs: Vec<KniAddr>,
    pub desired_routes: Vec<KniRoute>,
    /// Main-table routes through the device, without the kernel's own prefix routes.
    pub actual_routes: Vec<KniRoute>,
    /// Addresses someone else put on the device (left alone unless `exclusive`).
    pub foreign_addrs: Vec<KniAddr>,
    /// How many times the guard re-asserted the desired state.
    pub restores: u64,
    /// Time since the last re-assertion.
    pub last_restore: Option<Duration>,
    /// How many times re-assertion had to back off because something kept undoing it.
    pub fights: u64,
    /// The current re-assertion delay (zero when calm).
    pub backoff: Duration,
    /// The last error the guard met on this twin, if any.
    pub last_error: Option<String>,
}

impl TwinStatus {
    /// Desired and actual agree (addresses, routes, link up).
    pub fn converged(&self) -> bool {
        self.link_up
            && self
                .desired_addrs
                .iter()
                .all(|a| self.actual_addrs.contains(a))
            && self
                .desired_routes
                .iter()
                .all(|r| self.actual_routes.contains(r))
    }
}
