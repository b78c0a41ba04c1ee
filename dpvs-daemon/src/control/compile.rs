//! The snapshot compiler: turns the control state into what the workers read, an immutable
//! [`Snapshot`] (ports, our addresses and what each is, services with their schedules, routes)
//! and, apart because ARP changes it often, the [`NeighTable`]. Each build takes the next
//! generation, which is how a worker's next-hop cache knows it must empty itself.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use hashbrown::HashMap;

use crate::control::state::{ControlState, ServiceState};
use dpvs_api::{Sched, SchedFlags};
use dpvs_core::engine::neigh::{NeighEntry, NeighTable};
use dpvs_core::engine::persist::Templates;
use dpvs_core::engine::sched::{Schedule, Server};
use dpvs_core::engine::snapshot::{
    LocalAddr, Persistence, PortConf, RealServer, Service, Snapshot,
};
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
        let mut slot_index = HashMap::new();
        let mut cache = ScheduleCache::new();
        for s in &self.services {
            let IpAddr::V4(vip) = s.key.vip else { continue };
            let at = services.len() as u32;
            service_index.insert((IpProto::from(s.key.proto), vip.to_bits(), s.key.port), at);
            slot_index.insert(s.slot, at);
            let (svc, inputs) = service(s, &self.schedules);
            cache.insert(s.slot, (inputs, Arc::clone(&svc.schedule)));
            services.push(svc);
        }
        self.schedules = cache;
        if services.iter().any(|s| s.persistence.is_some()) && self.templates.capacity() < 2 {
            // The first persistent service: the shared table is made now, once.
            self.templates = Arc::new(Templates::new(self.templates_capacity));
        }
        Snapshot {
            generation: self.generation,
            ports,
            local,
            services,
            service_index,
            slot_index,
            templates: Arc::clone(&self.templates),
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

/// What a service's compiled schedule is made from: when none of it changed, the schedule of
/// the previous snapshot is shared instead of built again (a Maglev table takes milliseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ScheduleInputs {
    sched: Sched,
    flags: SchedFlags,
    mh_table_size: u32,
    servers: Vec<Server>,
}

/// The schedules of the last snapshot, by service slot.
pub(super) type ScheduleCache = HashMap<u32, (ScheduleInputs, Arc<Schedule>)>;

/// A service as a worker schedules it: the real servers' modes and limits resolved, the
/// schedule compiled (or shared from `cache`).
fn service(s: &ServiceState, cache: &ScheduleCache) -> (Service, ScheduleInputs) {
    let inputs = ScheduleInputs {
        sched: s.sched,
        flags: s.sched_flags,
        mh_table_size: s.mh_table_size,
        servers: s
            .rs
            .iter()
            .map(|r| Server {
                addr: r.addr,
                weight: r.weight,
            })
            .collect(),
    };
    let schedule = match cache.get(&s.slot) {
        Some((old, sched)) if *old == inputs => Arc::clone(sched),
        _ => Arc::new(Schedule::new(
            s.sched,
            s.sched_flags,
            s.mh_table_size,
            &inputs.servers,
        )),
    };
    let needs_load = schedule.by_load() || s.rs.iter().any(|r| r.upper > 0);
    let service = Service {
        key: s.key,
        slot: s.slot,
        forward: s.forward,
        schedule,
        rs: s
            .rs
            .iter()
            .map(|r| RealServer {
                addr: r.addr,
                weight: r.weight,
                forward: r.forward.unwrap_or(s.forward),
                slot: r.slot,
                upper: r.upper,
                lower: r.effective_lower(),
            })
            .collect(),
        rs_by_slot: s
            .rs
            .iter()
            .enumerate()
            .map(|(i, r)| (r.slot, i as u16))
            .collect(),
        laddrs: s.laddrs.clone(),
        persistence: s.persistence.map(|p| Persistence {
            timeout_ms: u64::from(p.timeout) * 1000,
            mask: p.mask().to_bits(),
        }),
        needs_load,
    };
    (service, inputs)
}
