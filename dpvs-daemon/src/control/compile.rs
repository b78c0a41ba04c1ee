//! The snapshot compiler: turns the control state into what the workers read, an immutable
//! [`Snapshot`] (ports, our addresses and what each is, services with their schedules, routes)
//! and, apart because ARP changes it often, the [`NeighTable`]. Each build takes the next
//! generation, which is how a worker's next-hop cache knows it must empty itself.

use std::net::{IpAddr, Ipv4Addr};

use hashbrown::HashMap;

use crate::control::state::{ControlState, ServiceState};
use dpvs_core::engine::neigh::{NeighEntry, NeighTable};
use dpvs_core::engine::sched::Schedule;
use dpvs_core::engine::snapshot::{LocalAddr, PortConf, RealServer, Service, Snapshot};
use dpvs_core::packet::ipv4::IpProto;

impl ControlState {
    /// Builds the snapshot the workers will read.
    pub fn snapshot(&mut self) -> Snapshot {
        self.generation += 1;
        let mut ports = Vec::new();
        for p in &self.ports {
            let i = usize::from(p.id);
            if ports.len() <= i {
                ports.resize(i + 1, None);
            }
            ports[i] = Some(PortConf {
                mac: p.mac,
                mtu: p.mtu,
                addr: None,
                kni: p.kni,
            });
        }
        let mut local = HashMap::new();
        for a in &self.addrs {
            local.insert(
                a.addr.to_bits(),
                LocalAddr {
                    port: a.port,
                    is_laddr: false,
                    is_vip: false,
                },
            );
        }
        for s in &self.services {
            for l in &s.laddrs {
                if let Some(e) = local.get_mut(&l.to_bits()) {
                    e.is_laddr = true;
                }
            }
            if let IpAddr::V4(vip) = s.key.vip
                && let Some(e) = local.get_mut(&vip.to_bits())
            {
                e.is_vip = true;
            }
        }
        // A port's source for what we originate there: its lowest address that is not a
        // local address (a local address's ports belong to FullNAT connections).
        for (&ip, l) in local.iter().filter(|(_, l)| !l.is_laddr) {
            let pc = ports.get_mut(usize::from(l.port)).and_then(Option::as_mut);
            if let Some(pc) = pc {
                let ip = Ipv4Addr::from_bits(ip);
                pc.addr = Some(pc.addr.map_or(ip, |a| a.min(ip)));
            }
        }
        let mut services = Vec::new();
        let mut service_index = HashMap::new();
        for s in &self.services {
            let IpAddr::V4(vip) = s.key.vip else { continue };
            service_index.insert(
                (IpProto::from(s.key.proto), vip.to_bits(), s.key.port),
                services.len() as u32,
            );
            services.push(service(s));
        }
        Snapshot {
            generation: self.generation,
            ports,
            local,
            services,
            service_index,
            routes: self.route_table(),
            timeouts: self.timeouts,
        }
    }

    /// The neighbour table the workers will read.
    pub fn neigh_table(&mut self) -> NeighTable {
        self.neigh_generation += 1;
        let mut t = NeighTable::new();
        t.set_generation(self.neigh_generation);
        for (ip, n) in &self.neighs {
            t.insert(
                *ip,
                NeighEntry {
                    mac: n.mac.0,
                    port: n.port,
                    is_static: n.is_static,
                },
            );
        }
        t
    }
}

/// A service as a worker schedules it: the real servers' modes resolved and the schedule
/// precomputed from their weights.
fn service(s: &ServiceState) -> Service {
    let weights: Vec<u32> = s.rs.iter().map(|r| r.weight).collect();
    Service {
        key: s.key,
        slot: s.slot,
        forward: s.forward,
        schedule: Schedule::new(s.sched, &weights),
        rs: s
            .rs
            .iter()
            .map(|r| RealServer {
                addr: r.addr,
                weight: r.weight,
                forward: r.forward.unwrap_or(s.forward),
                slot: r.slot,
            })
            .collect(),
        laddrs: s.laddrs.clone(),
    }
}
