//! The lab the engine and control integration tests build on: two DPDK ports (client side
//! and real-server side), our addresses, static neighbours, a TCP and a UDP FullNAT service on
//! one VIP. The worker harness over it is [`crate::rig`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use dpvs_api::{Forward, Proto, RsSpec, Sched, ServiceKey, ServiceSpec};
use dpvs_core::engine::tcp_state::Timeouts;
use dpvs_core::packet::MacAddr;
use dpvs_daemon::control::state::{ControlState, PortState};

/// Counter slots handed out by the control state (and sized in `Stats`).
pub const SLOTS: u32 = 64;

pub const MAC0: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
pub const MAC1: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
pub const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x01, 0x02]);
pub const RS1_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x02, 0x11]);
pub const RS2_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x02, 0x12]);

/// Our connected address on the client side, and the VIP.
pub const ADDR0: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Our connected address on the real-server side, and the FullNAT local address.
pub const ADDR1: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);
pub const LADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 200);
pub const RS1: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 11);
pub const RS2: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 12);

pub const VPORT_TCP: u16 = 80;
pub const RPORT_TCP: u16 = 8080;
pub const VPORT_UDP: u16 = 53;
pub const RPORT_UDP: u16 = 5353;

pub fn tcp_svc() -> ServiceKey {
    ServiceKey {
        proto: Proto::Tcp,
        vip: IpAddr::V4(VIP),
        port: VPORT_TCP,
    }
}

pub fn udp_svc() -> ServiceKey {
    ServiceKey {
        proto: Proto::Udp,
        vip: IpAddr::V4(VIP),
        port: VPORT_UDP,
    }
}

pub fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

pub fn ports() -> Vec<PortState> {
    vec![
        PortState {
            name: "dpdk0".into(),
            id: 0,
            mac: MAC0,
            mtu: 1500,
            kni: false,
        },
        PortState {
            name: "dpdk1".into(),
            id: 1,
            mac: MAC1,
            mtu: 1500,
            kni: false,
        },
    ]
}

/// The MAC of a lab host, for the neighbours that are configured.
pub fn mac_of(ip: Ipv4Addr) -> Option<MacAddr> {
    match ip {
        CLIENT => Some(CLIENT_MAC),
        RS1 => Some(RS1_MAC),
        RS2 => Some(RS2_MAC),
        _ => None,
    }
}

/// Ports and addresses only.
pub fn base_state(timeouts: Timeouts) -> ControlState {
    let mut s = ControlState::new(ports(), timeouts, SLOTS);
    for (ip, len, port) in [
        (ADDR0, 24, "dpdk0"),
        (VIP, 32, "dpdk0"),
        (ADDR1, 24, "dpdk1"),
        (LADDR, 32, "dpdk1"),
    ] {
        s.addr_add(IpAddr::V4(ip), len, port).expect("addr add");
    }
    s
}

/// The full lab: addresses, the client's neighbour entry, a neighbour entry for each real server
/// in `resolved`, and the two rr services with RS1 and RS2 (weight 1) and the local address.
pub fn lab_state(timeouts: Timeouts, resolved: &[Ipv4Addr]) -> ControlState {
    let mut s = base_state(timeouts);
    s.neigh_add(IpAddr::V4(CLIENT), &CLIENT_MAC.to_string(), "dpdk0")
        .expect("client neigh");
    for &rs in resolved {
        let mac = mac_of(rs).expect("a lab real server");
        s.neigh_add(IpAddr::V4(rs), &mac.to_string(), "dpdk1")
            .expect("rs neigh");
    }
    for (key, rport) in [(tcp_svc(), RPORT_TCP), (udp_svc(), RPORT_UDP)] {
        s.service_add(&ServiceSpec::new(key, Sched::Rr, Forward::Fnat))
            .expect("service add");
        s.laddr_add(&key, IpAddr::V4(LADDR)).expect("laddr add");
        for rs in [RS1, RS2] {
            s.rs_add(&key, &RsSpec::new(sa(rs, rport), 1))
                .expect("rs add");
        }
    }
    s
}

/// The counter slot of a real server of a service.
pub fn rs_slot(s: &ControlState, key: &ServiceKey, rs: SocketAddr) -> u32 {
    let svc = s
        .services
        .iter()
        .find(|x| x.key == *key)
        .expect("service exists");
    svc.rs
        .iter()
        .find(|r| SocketAddr::V4(r.addr) == rs)
        .expect("real server exists")
        .slot
}

/// The counter slot of a service.
pub fn svc_slot(s: &ControlState, key: &ServiceKey) -> u32 {
    s.services
        .iter()
        .find(|x| x.key == *key)
        .expect("service exists")
        .slot
}
