//! The authoritative configuration, owned by the control plane. Every change goes through one
//! of its methods, which validate it and leave the state untouched on error; the caller then
//! publishes a new snapshot built by [`ControlState::snapshot`] (`control::compile`).
//!
//! The methods live with their concern: services, real servers and local addresses in
//! `services`, the balancer's addresses, routes and neighbours in `network`. This file holds
//! the state itself, the ports, and the loading of a configuration file.

mod kernel;
mod network;
mod services;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use hashbrown::HashMap;

use crate::config::Config;
use crate::control::compile::ScheduleCache;
use crate::control::error::ControlError;
use crate::control::slots::SlotAlloc;
use dpvs_core::engine::persist::Templates;
use dpvs_core::engine::route::Route;
use dpvs_core::engine::tcp_state::Timeouts;
use dpvs_core::packet::ether::MacAddr;

pub use kernel::KniRouteState;
pub use network::{AddrState, NeighState};
pub use services::{RsState, ServiceState};

/// A port known to the control plane.
#[derive(Clone, Debug)]
pub struct PortState {
    pub name: String,
    pub id: u16,
    pub mac: MacAddr,
    /// The largest IP packet the port sends.
    pub mtu: u16,
    /// Whether it has a kernel twin (what the data plane does not handle goes there).
    pub kni: bool,
}

/// The control plane's view of everything configured.
#[derive(Debug)]
pub struct ControlState {
    pub ports: Vec<PortState>,
    pub addrs: Vec<AddrState>,
    pub routes: Vec<Route>,
    pub neighs: HashMap<Ipv4Addr, NeighState>,
    pub services: Vec<ServiceState>,
    /// What the kernel twins carry (see `kernel`).
    pub kni_addrs: Vec<AddrState>,
    pub kni_routes: Vec<KniRouteState>,
    pub timeouts: Timeouts,
    slots: SlotAlloc,
    /// The persistence templates (allocated with the first persistent service), and their
    /// number then.
    pub(super) templates: Arc<Templates>,
    pub(super) templates_capacity: usize,
    /// The compiled schedules of the last snapshot (`control::compile`).
    pub(super) schedules: ScheduleCache,
    /// Of the last snapshot built (`control::compile` counts them).
    pub(super) generation: u64,
    /// Of the last neighbour table built.
    pub(super) neigh_generation: u64,
}

/// The connections a deletion cuts in the workers' tables (see `engine::worker::ending`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    None,
    /// Those counted in this real-server slot (and then the slot is freed).
    Rs(u32),
    /// Those of this service slot; its slots are freed afterwards.
    Service(u32),
}

/// `ip` as IPv4, the only family the engine handles yet; `what` names the field in the error.
fn v4(ip: IpAddr, what: &'static str) -> Result<Ipv4Addr, ControlError> {
    match ip {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(ControlError::Ipv6 { what, ip }),
    }
}

impl ControlState {
    pub fn new(ports: Vec<PortState>, timeouts: Timeouts, slots: u32) -> Self {
        ControlState {
            ports,
            addrs: Vec::new(),
            routes: Vec::new(),
            neighs: HashMap::new(),
            services: Vec::new(),
            kni_addrs: Vec::new(),
            kni_routes: Vec::new(),
            timeouts,
            slots: SlotAlloc::new(slots),
            templates: Arc::new(Templates::none()),
            templates_capacity: crate::config::DEFAULT_TEMPLATES,
            schedules: ScheduleCache::new(),
            generation: 0,
            neigh_generation: 0,
        }
    }

    /// Sets how many persistence templates the table holds (allocated with the first
    /// persistent service).
    pub fn with_templates(mut self, capacity: usize) -> Self {
        self.templates_capacity = capacity;
        self
    }

    /// The live persistence templates' count (`stats`).
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    pub fn port_id(&self, name: &str) -> Result<u16, ControlError> {
        self.ports
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.id)
            .ok_or_else(|| ControlError::UnknownPort(name.to_string()))
    }

    pub fn port_name(&self, id: u16) -> String {
        self.ports
            .iter()
            .find(|p| p.id == id)
            .map_or_else(|| format!("port{id}"), |p| p.name.clone())
    }

    /// Loads the configuration file's objects, in dependency order (addresses before the
    /// local addresses that use them). Errors name the config key
    /// ([`ControlError::InConfig`]).
    pub fn apply_config(&mut self, cfg: &Config) -> Result<(), ControlError> {
        for (i, a) in cfg.addresses.iter().enumerate() {
            self.addr_add(a.addr, a.prefix_len, &a.port)
                .map_err(|e| e.at(format!("address[{i}]")))?;
        }
        for (i, r) in cfg.routes.iter().enumerate() {
            self.route_add(r.prefix, r.prefix_len, &r.port, r.via, r.src)
                .map_err(|e| e.at(format!("route[{i}]")))?;
        }
        for (i, a) in cfg.kni.addresses.iter().enumerate() {
            self.kni_addr_add(&a.port, a.addr, a.prefix_len)
                .map_err(|e| e.at(format!("kni_address[{i}]")))?;
        }
        for (i, r) in cfg.kni.routes.iter().enumerate() {
            self.kni_route_add(&r.port, r.prefix, r.prefix_len, r.via)
                .map_err(|e| e.at(format!("kni_route[{i}]")))?;
        }
        for (i, n) in cfg.neighs.iter().enumerate() {
            self.neigh_add(n.addr, &n.mac.to_string(), &n.port)
                .map_err(|e| e.at(format!("neigh[{i}]")))?;
        }
        for (i, s) in cfg.services.iter().enumerate() {
            let at = |e: ControlError| e.at(format!("service[{i}]"));
            self.service_add(&s.spec()).map_err(at)?;
            for l in &s.laddrs {
                self.laddr_add(&s.key, *l).map_err(at)?;
            }
            for (j, r) in s.rs.iter().enumerate() {
                self.rs_add(&s.key, r)
                    .map_err(|e| e.at(format!("service[{i}].rs[{j}]")))?;
            }
        }
        Ok(())
    }

    /// Checks the configuration file's objects as the daemon will load them, without ports:
    /// a config that [`Self::apply_config`] would refuse is refused before EAL and the ports
    /// are touched, with the same one-line error, which is the daemon's reason to exit.
    /// `slots` is the daemon's number of counter slots.
    pub fn check_config(cfg: &Config, slots: u32) -> Result<(), String> {
        let ports = cfg
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| PortState {
                name: p.name.clone(),
                id: i as u16,
                mac: MacAddr::ZERO,
                mtu: 1500,
                kni: p.kni,
            })
            .collect();
        let mut state = ControlState::new(ports, cfg.timeouts, slots);
        state.apply_config(cfg).map_err(|e| e.to_string())
    }
}
