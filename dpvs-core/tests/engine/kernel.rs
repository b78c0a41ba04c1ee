//! The kernel bridge, engine side: on a port with a kernel twin, what the data plane does not
//! handle goes to the kernel (frames to the port's MAC, broadcast or multicast only), and the
//! kernel gets a copy of the ARP the data plane consumes. Without a twin, the same frames are
//! dropped and counted as before.

use std::net::{Ipv4Addr, SocketAddrV4};

use dpvs_core::drop::DropReason;
use dpvs_core::packet::tcp::SYN;
use dpvs_core::packet::{Frame, MacAddr, VecFrame};
use dpvs_testkit::lab::*;
use dpvs_testkit::rig::*;

/// The kernel's address on the client side's twin: not one of the data plane's.
const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

/// The lab with a twin on both ports.
fn twin_rig() -> Rig<VecFrame> {
    let mut rig = Rig::lab();
    for p in &mut rig.state.ports {
        p.kni = true;
    }
    rig.republish();
    rig
}

fn syn_to(dst: SocketAddrV4, eth_dst: MacAddr) -> Vec<u8> {
    tcp_frame(
        (CLIENT_MAC, eth_dst),
        SocketAddrV4::new(CLIENT, 41000),
        dst,
        SYN,
        (1, 0),
        b"",
    )
}

#[test]
fn what_is_not_ours_goes_to_the_kernel_of_its_port() {
    let mut rig = twin_rig();
    let ssh = syn_to(SocketAddrV4::new(KERNEL, 22), MAC0);
    assert!(rig.send(0, &ssh).is_empty(), "nothing sent out of a port");
    let k = std::mem::take(&mut rig.out.kernel);
    assert_eq!(k.len(), 1, "the SYN went to the kernel");
    assert_eq!(k[0].0, 0, "through the twin of the port it came in on");
    assert_eq!(k[0].1.data(), &ssh[..], "unchanged");
    assert_eq!(rig.counters().to_kernel.get(), 1);

    // An ARP request for the kernel's address (broadcast), IPv6 (an unknown ethertype to the
    // data plane), ICMP to the kernel's address: all the kernel's.
    let arp = arp_frame(MacAddr::BROADCAST, ARP_REQUEST, CLIENT_MAC, CLIENT, KERNEL);
    let mut v6 = ssh.clone();
    v6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let ping = icmp_echo(CLIENT, KERNEL, 1, 1, b"hi");
    for f in [&arp, &v6, &ping] {
        assert!(rig.send(0, f).is_empty());
    }
    assert_eq!(rig.out.kernel.len(), 3);
    assert_eq!(rig.total_drops(), 0, "nothing dropped");
}

#[test]
fn frames_to_other_hosts_are_not_the_kernels() {
    let mut rig = twin_rig();
    // A promiscuous port sees unicast between other hosts: the kernel would only drop it.
    let other = syn_to(SocketAddrV4::new(KERNEL, 22), MacAddr([2, 9, 9, 9, 9, 9]));
    assert!(rig.send(0, &other).is_empty());
    assert!(rig.out.kernel.is_empty());
    assert_eq!(rig.drops(DropReason::NotOurs), 1);
}

#[test]
fn the_kernel_gets_a_copy_of_the_arp_the_data_plane_answers() {
    let mut rig = twin_rig();
    let req = arp_frame(MacAddr::BROADCAST, ARP_REQUEST, CLIENT_MAC, CLIENT, VIP);
    let out = rig.send(0, &req);
    assert_eq!(out.len(), 1, "answered by the data plane");
    assert_eq!(rig.out.kernel.len(), 1, "and copied to the kernel");
    assert_eq!(
        rig.out.kernel[0].1.data(),
        &req[..],
        "the request as received"
    );
}

#[test]
fn without_a_twin_or_with_a_full_ring_they_are_counted_drops() {
    let mut rig = Rig::lab();
    let ssh = syn_to(SocketAddrV4::new(KERNEL, 22), MAC0);
    assert!(rig.send(0, &ssh).is_empty());
    assert_eq!(
        rig.drops(DropReason::NotOurs),
        1,
        "no twin: dropped as before"
    );
    let arp = arp_frame(MacAddr::BROADCAST, ARP_REQUEST, CLIENT_MAC, CLIENT, KERNEL);
    rig.send(0, &arp);
    assert_eq!(rig.drops(DropReason::ArpIgnored), 1);
    assert!(rig.out.kernel.is_empty());

    let mut rig = twin_rig();
    rig.out.kernel_full = true;
    assert!(rig.send(0, &ssh).is_empty());
    assert_eq!(
        rig.drops(DropReason::KernelFull),
        1,
        "the bridge's ring was full"
    );
    assert_eq!(rig.counters().to_kernel.get(), 0);
}

#[test]
fn load_balanced_traffic_never_goes_to_the_kernel() {
    let mut rig = twin_rig();
    let (rs, lport) = handshake(&mut rig, 42000);
    let out = rig.send(
        1,
        &rs_tcp(rs, lport, dpvs_core::packet::tcp::ACK, 5001, 1001, b"x"),
    );
    assert_eq!(out.len(), 1);
    assert!(rig.out.kernel.is_empty());
}
