//! ICMP errors about connections: relayed to the connection's other end, translated in FullNAT
//! and NAT (outer header, quoted header and ports, every checksum), unchanged to DR and TUN
//! real servers; steered by the quoted packet to the connection's worker; stray, truncated
//! and forged ones dropped and counted, never a panic.
//!
//! The errors are built the way their senders build them: a router or host quoting the packet
//! as the balancer sent it (Linux quotes up to 576 bytes of error in all, RFC 792 routers the
//! IPv4 header and 8 bytes).
//!
//! Over 500 lines on purpose: each mode and direction needs its own frames and checks, and one
//! file keeps the builders of errors and their readers next to every case that uses them.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::nat::nat_rig;

use dpvs_api::{Forward, Proto, RsSpec, Sched, ServiceKey, ServiceSpec};
use dpvs_core::drop::DropReason;
use dpvs_core::engine::tcp_state::Timeouts;
use dpvs_core::engine::worker::{client_owner, steer};
use dpvs_core::packet::ipv4::IpProto;
use dpvs_core::packet::tcp::{ACK, PSH, SYN};
use dpvs_core::packet::{Frame, MacAddr, VecFrame, checksum, parse};
use dpvs_testkit::frames::{self, IcmpError, Spec, icmp_error_frame};
use dpvs_testkit::lab::*;
use dpvs_testkit::rig::*;
use proptest::prelude::*;

/// A router on the real servers' link and one on the clients' link: any address may report
/// an error, not only the ends'.
const RS_ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 254);
const CL_ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);
const ROUTER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x09, 0xfe]);

/// How much of an offending packet Linux quotes: errors of at most 576 bytes.
const LINUX_QUOTE: usize = 576 - 20 - 8;
/// What RFC 792 promises: the IPv4 header and 8 bytes.
const RFC792_QUOTE: usize = 20 + 8;

fn sa4(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// The IPv4 packet of an untagged `frame`, Ethernet padding excluded.
fn ip_of(frame: &[u8]) -> &[u8] {
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    &frame[14..14 + total]
}

/// The first `len` bytes (at most) of the IPv4 packet of `frame`: an error's quote of it.
fn quote(frame: &[u8], len: usize) -> Vec<u8> {
    let ip = ip_of(frame);
    ip[..len.min(ip.len())].to_vec()
}

/// The ICMP error `e` from `from` to `to` quoting `quoted`, as a router on the link of our
/// `port` sends it.
fn error_frame(
    port: u16,
    (from, to): (Ipv4Addr, Ipv4Addr),
    e: IcmpError,
    quoted: &[u8],
) -> Vec<u8> {
    let ours = if port == 0 { MAC0 } else { MAC1 };
    let s = Spec::between((ROUTER_MAC.0, ours.0), sa4(from, 0), sa4(to, 0));
    icmp_error_frame(&s, e, quoted)
}

/// The one frame a step sent, as an IPv4 packet.
fn sent_frame<F: Frame>(out: &[(u16, F)], what: &str) -> Vec<u8> {
    assert_eq!(
        out.len(),
        1,
        "{what}: expected one frame out, got {}",
        out.len()
    );
    out[0].1.data().to_vec()
}

/// An ICMP error the worker sent: its outer header and ICMP checksum verified by full
/// recomputes ([`only_ip4`]), its first 8 bytes and its quote.
struct Relayed {
    ip: Ip4,
    head: [u8; 8],
    quote: Vec<u8>,
}

fn relayed<F: Frame>(out: &[(u16, F)], what: &str) -> Relayed {
    let ip = only_ip4(out, what);
    assert!(ip.icmp.is_some(), "{what}: not ICMP");
    let data = out[0].1.data();
    let head = data[34..42].try_into().unwrap();
    let quote = ip.payload.clone();
    Relayed { ip, head, quote }
}

/// The endpoints of a quote, once its IPv4 header checksum is checked in full.
fn quoted_endpoints(quote: &[u8]) -> (SocketAddrV4, SocketAddrV4) {
    let hlen = usize::from(quote[0] & 0x0f) * 4;
    assert!(
        checksum::ipv4_header_valid(&quote[..hlen]),
        "quoted IPv4 header checksum (full sum)"
    );
    let addr = |o: usize| Ipv4Addr::new(quote[o], quote[o + 1], quote[o + 2], quote[o + 3]);
    let port = |o: usize| u16::from_be_bytes([quote[hlen + o], quote[hlen + o + 1]]);
    (sa4(addr(12), port(0)), sa4(addr(16), port(2)))
}

/// Asserts that `quote` is the start of `original`, the IPv4 packet as its end sent it, byte
/// for byte (TCP or UDP checksum included) but for the TTL and header checksum, which the
/// hops on the way changed.
fn assert_quotes(quote: &[u8], original: &[u8], what: &str) {
    assert!(
        quote.len() <= original.len(),
        "{what}: quote longer than the packet"
    );
    let masked = |b: &[u8]| {
        let mut v = b[..quote.len()].to_vec();
        v[8] = 0;
        v[10..12].fill(0);
        v
    };
    assert_eq!(
        masked(quote),
        masked(original),
        "{what}: the quote is not the end's own packet"
    );
}

/// The service counters of `key` (in and out packets).
fn svc_pkts<F: MakeFrame>(rig: &Rig<F>, key: &ServiceKey) -> (u64, u64) {
    let t = rig.stats.slot_totals(svc_slot(&rig.state, key));
    (t.in_pkts, t.out_pkts)
}

// ---------------------------------------------------------------------------------- FullNAT

/// A router on the real servers' side cannot forward the client's big segment (as the
/// balancer sent it, `LIP:lport → RIP:rport`): its "fragmentation needed" to the local
/// address reaches the client from the VIP, the next-hop MTU kept, quoting the client's own
/// segment byte for byte (its TCP checksum included); a time exceeded with an RFC 792 quote
/// likewise. Both are counted with the connection's outbound packets.
#[test]
fn fullnat_error_from_the_real_servers_side_reaches_the_client() {
    let mut rig = Rig::lab();
    let (_, lport) = handshake(&mut rig, 47000);
    let sent = client_tcp(47000, ACK | PSH, 1001, 5001, &[b'x'; 1400]);
    let fwd = sent_frame(&rig.send(0, &sent), "client data");
    let before = svc_pkts(&rig, &tcp_svc());

    let err = error_frame(
        1,
        (RS_ROUTER, LADDR),
        IcmpError::frag_needed(1400),
        &quote(&fwd, LINUX_QUOTE),
    );
    let r = relayed(&rig.send(1, &err), "fragmentation needed to the client");
    assert_eq!(
        (r.ip.port, r.ip.eth_dst, r.ip.eth_src),
        (0, CLIENT_MAC, MAC0)
    );
    assert_eq!(
        (r.ip.src, r.ip.dst, r.ip.ttl),
        (VIP, CLIENT, 63),
        "from the VIP, TTL down"
    );
    assert_eq!(
        (r.head[0], r.head[1]),
        (3, 4),
        "destination unreachable, fragmentation needed"
    );
    assert_eq!(
        r.head[4..],
        [0, 0, 0x05, 0x78],
        "the next-hop MTU (1400) kept"
    );
    assert_eq!(
        quoted_endpoints(&r.quote),
        (sa4(CLIENT, 47000), sa4(VIP, VPORT_TCP))
    );
    assert_eq!(r.quote.len(), LINUX_QUOTE);
    assert_quotes(&r.quote, ip_of(&sent), "Linux-size quote");

    let err = error_frame(
        1,
        (RS_ROUTER, LADDR),
        IcmpError::ttl_exceeded(),
        &quote(&fwd, RFC792_QUOTE),
    );
    let r = relayed(&rig.send(1, &err), "time exceeded to the client");
    assert_eq!(
        (r.ip.src, r.ip.dst, r.head[0], r.head[1]),
        (VIP, CLIENT, 11, 0)
    );
    assert_eq!(
        quoted_endpoints(&r.quote),
        (sa4(CLIENT, 47000), sa4(VIP, VPORT_TCP))
    );
    assert_quotes(&r.quote, ip_of(&sent), "RFC 792 quote");

    assert_eq!(
        svc_pkts(&rig, &tcp_svc()),
        (before.0, before.1 + 2),
        "counted as outbound"
    );
    assert_eq!(rig.total_drops(), 0);
    assert_eq!(
        rig.list_conns()[0].state,
        "ESTABLISHED",
        "an error changes no state"
    );
    let _ = lport;
}

/// A router on the clients' side cannot forward a real server's big reply (as the balancer
/// sent it, `VIP:vport → CIP:cport`): its error to the VIP reaches the real server from the
/// local address, quoting the real server's own segment. The whole of a short segment quoted
/// is the real server's packet exactly: its TCP checksum verifies in full.
#[test]
fn fullnat_error_from_the_clients_side_reaches_the_real_server() {
    let mut rig = Rig::lab();
    let (rs, lport) = handshake(&mut rig, 47100);
    let reply = rs_tcp(rs, lport, ACK | PSH, 5001, 1001, &[b'y'; 1400]);
    let back = sent_frame(&rig.send(1, &reply), "reply data");
    let before = svc_pkts(&rig, &tcp_svc());

    let err = error_frame(
        0,
        (CL_ROUTER, VIP),
        IcmpError::frag_needed(1280),
        &quote(&back, LINUX_QUOTE),
    );
    let r = relayed(
        &rig.send(0, &err),
        "fragmentation needed to the real server",
    );
    assert_eq!((r.ip.port, r.ip.eth_dst), (1, mac_of(rs).unwrap()));
    assert_eq!(
        (r.ip.src, r.ip.dst, r.ip.ttl),
        (LADDR, rs, 63),
        "from the local address"
    );
    assert_eq!(r.head, [3, 4, r.head[2], r.head[3], 0, 0, 0x05, 0x00]);
    assert_eq!(
        quoted_endpoints(&r.quote),
        (sa4(rs, RPORT_TCP), sa4(LADDR, lport))
    );
    assert_quotes(&r.quote, ip_of(&reply), "Linux-size quote");

    let ack = rs_tcp(rs, lport, ACK, 6401, 1001, b"");
    let back = sent_frame(&rig.send(1, &ack), "reply ACK");
    let err = error_frame(
        0,
        (CL_ROUTER, VIP),
        IcmpError::unreachable(1),
        &quote(&back, LINUX_QUOTE),
    );
    let r = relayed(&rig.send(0, &err), "host unreachable to the real server");
    assert_eq!(r.quote.len(), 40, "the whole segment quoted");
    assert_quotes(&r.quote, ip_of(&ack), "whole quote");
    assert!(
        checksum::ipv4_l4_valid(rs, LADDR, IpProto::TCP, &r.quote[20..]),
        "quoted TCP checksum (full sum over the translated quote)"
    );
    assert_eq!(
        svc_pkts(&rig, &tcp_svc()),
        (before.0 + 2, before.1 + 1),
        "counted as inbound (the reply ACK outbound)"
    );
    assert_eq!(rig.total_drops(), 0);
}

/// UDP: a real server's port unreachable (the whole datagram quoted) reaches the client,
/// whose own datagram is quoted with a checksum that verifies in full; a datagram sent
/// without a checksum is quoted without one (0 stays 0 through both rewrites).
#[test]
fn fullnat_udp_port_unreachable_reaches_the_client() {
    let mut rig = Rig::lab();
    let sent = client_udp(47200, b"query");
    let fwd = sent_frame(&rig.send(0, &sent), "datagram");
    let rs = Ipv4Addr::from(<[u8; 4]>::try_from(&fwd[30..34]).unwrap());
    let err = error_frame(
        1,
        (rs, LADDR),
        IcmpError::unreachable(3),
        &quote(&fwd, LINUX_QUOTE),
    );
    let r = relayed(&rig.send(1, &err), "port unreachable to the client");
    assert_eq!(
        (r.ip.src, r.ip.dst, r.head[0], r.head[1]),
        (VIP, CLIENT, 3, 3)
    );
    assert_eq!(
        quoted_endpoints(&r.quote),
        (sa4(CLIENT, 47200), sa4(VIP, VPORT_UDP))
    );
    assert_quotes(&r.quote, ip_of(&sent), "whole datagram");
    assert!(checksum::ipv4_l4_valid(
        CLIENT,
        VIP,
        IpProto::UDP,
        &r.quote[20..]
    ));

    let s = Spec::between(
        (CLIENT_MAC.0, MAC0.0),
        sa4(CLIENT, 47201),
        sa4(VIP, VPORT_UDP),
    )
    .with_payload(b"q");
    let sent = frames::udp_frame_no_csum(&s);
    let fwd = sent_frame(&rig.send(0, &sent), "datagram without checksum");
    let err = error_frame(
        1,
        (rs, LADDR),
        IcmpError::unreachable(3),
        &quote(&fwd, RFC792_QUOTE),
    );
    let r = relayed(&rig.send(1, &err), "port unreachable, no UDP checksum");
    assert_eq!(r.quote[26..28], [0, 0], "no UDP checksum stays none");
    assert_quotes(&r.quote, ip_of(&sent), "RFC 792 quote");
    assert_eq!(rig.total_drops(), 0);
}

// -------------------------------------------------------------------------------------- NAT

/// NAT, both ways. From the real servers' side, the error about `CIP:cport → RIP:rport` goes
/// to the client's address, which is not ours: routed through us, it reaches the client from
/// the VIP. From the clients' side, the error to the VIP reaches the real server from its own
/// sender, quoting `RIP:rport → CIP:cport`. Each quote is the end's own segment, whose TCP
/// checksum verifies in full; both are steered like the connection's packets.
#[test]
fn nat_errors_reach_the_other_end_both_ways() {
    let mut rig = nat_rig();
    let (client, vip, rs) = (sa4(CLIENT, 40000), sa4(VIP, 81), sa4(RS1, RPORT_TCP));
    let syn = tcp_frame((CLIENT_MAC, MAC0), client, vip, SYN, (1000, 0), b"");
    let fwd = sent_frame(&rig.send(0, &syn), "SYN");

    let err = error_frame(
        1,
        (RS_ROUTER, CLIENT),
        IcmpError::unreachable(1),
        &quote(&fwd, LINUX_QUOTE),
    );
    assert_eq!(
        owner_of(&rig.snap, 4, &err),
        owner_of(&rig.snap, 4, &syn),
        "steered as the client's"
    );
    let r = relayed(&rig.send(1, &err), "host unreachable to the client");
    assert_eq!((r.ip.port, r.ip.eth_dst), (0, CLIENT_MAC));
    assert_eq!(
        (r.ip.src, r.ip.dst, r.ip.ttl),
        (VIP, CLIENT, 63),
        "from the VIP"
    );
    assert_eq!(quoted_endpoints(&r.quote), (client, vip));
    assert_quotes(&r.quote, ip_of(&syn), "the client's SYN");
    assert!(checksum::ipv4_l4_valid(
        CLIENT,
        VIP,
        IpProto::TCP,
        &r.quote[20..]
    ));

    let synack = tcp_frame((RS1_MAC, MAC1), rs, client, SYN | ACK, (5000, 1001), b"");
    let back = sent_frame(&rig.send(1, &synack), "SYN+ACK");
    let err = error_frame(
        0,
        (CL_ROUTER, VIP),
        IcmpError::frag_needed(1400),
        &quote(&back, LINUX_QUOTE),
    );
    assert_eq!(
        owner_of(&rig.snap, 4, &err),
        owner_of(&rig.snap, 4, &syn),
        "steered as the client's"
    );
    let r = relayed(
        &rig.send(0, &err),
        "fragmentation needed to the real server",
    );
    assert_eq!((r.ip.port, r.ip.eth_dst), (1, RS1_MAC));
    assert_eq!(
        (r.ip.src, r.ip.dst, r.ip.ttl),
        (CL_ROUTER, RS1, 63),
        "from its sender"
    );
    assert_eq!(r.head[4..], [0, 0, 0x05, 0x78]);
    assert_eq!(quoted_endpoints(&r.quote), (rs, client));
    assert_quotes(&r.quote, ip_of(&synack), "the real server's SYN+ACK");
    assert!(checksum::ipv4_l4_valid(
        RS1,
        CLIENT,
        IpProto::TCP,
        &r.quote[20..]
    ));
    assert_eq!(rig.total_drops(), 0);
}

// --------------------------------------------------------------------------------- DR, TUN

/// A `forward` service on VIP:8000 over RS1:8000, with one client connection on it.
fn direct_rig(forward: Forward) -> Rig<VecFrame> {
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: IpAddr::V4(VIP),
        port: 8000,
    };
    let mut state = lab_state(Timeouts::default(), &[RS1, RS2]);
    state
        .service_add(&ServiceSpec::new(key, Sched::Rr, forward))
        .unwrap();
    state.rs_add(&key, &RsSpec::new(sa(RS1, 8000), 1)).unwrap();
    let mut rig = Rig::new(state, limits(256));
    let syn = tcp_frame(
        (CLIENT_MAC, MAC0),
        sa4(CLIENT, 40000),
        sa4(VIP, 8000),
        SYN,
        (1, 0),
        b"",
    );
    assert_eq!(rig.send(0, &syn).len(), 1);
    rig
}

/// An error from the clients' side about a DR or TUN real server's direct reply
/// (`VIP:8000 → CIP:cport`, which never passed us): to the VIP, that is us.
fn error_about_direct_reply() -> Vec<u8> {
    let reply = tcp_frame(
        (RS1_MAC, CLIENT_MAC),
        sa4(VIP, 8000),
        sa4(CLIENT, 40000),
        SYN | ACK,
        (9, 2),
        b"",
    );
    error_frame(
        0,
        (CL_ROUTER, VIP),
        IcmpError::frag_needed(1400),
        &quote(&reply, LINUX_QUOTE),
    )
}

/// DR: the error goes on to the real server (which holds the VIP) unchanged but for its
/// Ethernet header, as the client's packets do.
#[test]
fn dr_passes_errors_to_the_real_server_unchanged() {
    let mut rig = direct_rig(Forward::Dr);
    let err = error_about_direct_reply();
    let got = sent_frame(&rig.send(0, &err), "DR relay");
    assert_eq!((&got[..6], &got[6..12]), (&RS1_MAC.0[..], &MAC1.0[..]));
    assert_eq!(&got[12..], &err[12..], "the error unchanged");
    assert_eq!(rig.total_drops(), 0);
}

/// TUN: the error goes on to the real server unchanged inside an outer header from our
/// address on its link.
#[test]
fn tun_passes_errors_to_the_real_server_in_the_tunnel() {
    let mut rig = direct_rig(Forward::Tun);
    let err = error_about_direct_reply();
    let got = sent_frame(&rig.send(0, &err), "TUN relay");
    let outer = &got[14..34];
    assert!(checksum::ipv4_header_valid(outer), "outer header checksum");
    assert_eq!(
        (outer[9], &outer[12..16], &outer[16..20]),
        (4, &ADDR1.octets()[..], &RS1.octets()[..])
    );
    assert_eq!(&got[34..], &err[14..], "the error unchanged inside");
    assert_eq!(rig.total_drops(), 0);
}

// ---------------------------------------------------------------------------- no connection

/// Errors that read but match no live connection: to our addresses, dropped and counted
/// `icmp_no_connection` (a cut connection is no longer forwarded to; a quote of another
/// protocol or of a later fragment is of no connection); to another address, routed through
/// us, what any transit packet is (here, with no kernel twin, `not_ours`).
#[test]
fn errors_about_no_connection_are_counted() {
    let mut rig = Rig::lab();
    let stray_reply = tcp_frame(
        (MAC0, CLIENT_MAC),
        sa4(VIP, 80),
        sa4(CLIENT, 49999),
        ACK,
        (1, 1),
        b"",
    );
    let stray_fwd = tcp_frame(
        (MAC1, RS1_MAC),
        sa4(LADDR, 1111),
        sa4(RS1, RPORT_TCP),
        ACK,
        (1, 1),
        b"",
    );
    let e = IcmpError::unreachable(1);
    let mut expect = 0;
    let mut stray = |rig: &mut Rig<VecFrame>, err: &[u8], port: u16, what: &str| {
        assert!(rig.send(port, err).is_empty(), "{what}: relayed");
        expect += 1;
        assert_eq!(rig.drops(DropReason::IcmpNoConnection), expect, "{what}");
    };
    stray(
        &mut rig,
        &error_frame(0, (CL_ROUTER, VIP), e, &quote(&stray_reply, 48)),
        0,
        "to the VIP",
    );
    stray(
        &mut rig,
        &error_frame(1, (RS_ROUTER, LADDR), e, &quote(&stray_fwd, 48)),
        1,
        "to the local address",
    );

    // A cut connection.
    let (rs, lport) = handshake(&mut rig, 47300);
    let fwd = sent_frame(
        &rig.send(0, &client_tcp(47300, ACK, 1001, 5001, b"x")),
        "data",
    );
    let err = error_frame(1, (RS_ROUTER, LADDR), e, &quote(&fwd, 48));
    assert_eq!(
        rig.send(1, &err).len(),
        1,
        "relayed while the connection lives"
    );
    assert_eq!(
        rig.cut_rs(rs_slot(&rig.state, &tcp_svc(), sa(rs, RPORT_TCP))),
        1
    );
    stray(&mut rig, &err, 1, "about a cut connection");
    let _ = lport;

    // Quotes of other protocols, and of a later fragment.
    let echo = frames::icmp_echo_frame(
        &Spec::between((MAC0.0, CLIENT_MAC.0), sa4(VIP, 0), sa4(CLIENT, 0)),
        7,
        1,
    );
    stray(
        &mut rig,
        &error_frame(0, (CL_ROUTER, VIP), e, &quote(&echo, 48)),
        0,
        "an echo request quoted",
    );
    let mut gre = quote(&stray_reply, 48);
    gre[9] = 47;
    stray(
        &mut rig,
        &error_frame(0, (CL_ROUTER, VIP), e, &gre),
        0,
        "GRE quoted",
    );
    let mut later = quote(&stray_reply, 48);
    later[6..8].copy_from_slice(&0x00b9u16.to_be_bytes());
    stray(
        &mut rig,
        &error_frame(0, (CL_ROUTER, VIP), e, &later),
        0,
        "a later fragment quoted",
    );

    // In transit to an address that is not ours, about no NAT connection.
    let far = tcp_frame(
        (MAC1, RS1_MAC),
        sa4(Ipv4Addr::new(10, 9, 9, 9), 5),
        sa4(RS1, 80),
        ACK,
        (1, 1),
        b"",
    );
    let err = error_frame(
        1,
        (RS_ROUTER, Ipv4Addr::new(10, 9, 9, 9)),
        e,
        &quote(&far, 48),
    );
    assert!(rig.send(1, &err).is_empty());
    assert_eq!(rig.drops(DropReason::NotOurs), 1);
    assert_eq!(rig.total_drops(), expect + 1);
}

// ---------------------------------------------------------------------------------- malformed

/// Errors about a live connection whose quote is truncated, lies about its header length or
/// total length, is not IPv4, quotes an ICMP error, was not sent to the quoted packet's
/// source, or whose checksum is wrong: each dropped and counted `bad_icmp_error`, nothing
/// sent, nothing leaked. A TTL that would expire is `ttl_exceeded`, as for any forwarded
/// packet.
#[test]
fn malformed_errors_are_counted_never_relayed() {
    let mut rig: Rig<Counted> = Rig::new(lab_state(Timeouts::default(), &[RS1, RS2]), limits(64));
    let syn = client_tcp(47400, SYN, 1000, 0, b"");
    let fwd = sent_frame(&rig.send(0, &syn), "SYN");
    let good = quote(&fwd, LINUX_QUOTE);
    let e = IcmpError::frag_needed(1400);
    let to_laddr = |q: &[u8]| error_frame(1, (RS_ROUTER, LADDR), e, q);
    assert_eq!(
        rig.send(1, &to_laddr(&good)).len(),
        1,
        "the well-formed error is relayed"
    );

    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut q = good.clone();
        edit(&mut q);
        to_laddr(&q)
    };
    let mut ihl15_short = good[..28].to_vec();
    ihl15_short[0] = 0x4f;
    let mut ihl6 = good[..28].to_vec();
    ihl6[0] = 0x46;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no quote at all", to_laddr(&[])),
        ("quote cut inside the IPv4 header", to_laddr(&good[..12])),
        ("quote cut before 8 bytes of TCP", to_laddr(&good[..24])),
        ("inner IHL 15, 28 bytes quoted", to_laddr(&ihl15_short)),
        ("inner IHL 6, no 8 bytes after it", to_laddr(&ihl6)),
        ("inner IHL 4", with(&|q| q[0] = 0x44)),
        ("inner IHL 0", with(&|q| q[0] = 0x40)),
        ("inner version 6", with(&|q| q[0] = 0x65)),
        (
            "inner total length below its TCP header",
            with(&|q| q[2..4].copy_from_slice(&30u16.to_be_bytes())),
        ),
        (
            "a quote of an ICMP error",
            with(&|q| {
                q[9] = 1;
                q[20] = 3;
            }),
        ),
    ];
    for (what, err) in &cases {
        let before = rig.drops(DropReason::BadIcmpError);
        assert!(rig.send(1, err).is_empty(), "{what}: relayed");
        assert_eq!(
            rig.drops(DropReason::BadIcmpError),
            before + 1,
            "{what}: not counted"
        );
        assert_eq!(
            owner_of(&rig.snap, 4, err),
            None,
            "{what}: steered by an unreadable quote"
        );
    }
    // Sent to the VIP, about the packet to the real server (whose source is the local
    // address): not how any router reports.
    let misdirected = error_frame(0, (CL_ROUTER, VIP), e, &good);
    assert!(rig.send(0, &misdirected).is_empty());
    // A wrong ICMP checksum.
    let mut corrupt = to_laddr(&good);
    corrupt[36] ^= 0x5a;
    assert!(rig.send(1, &corrupt).is_empty());
    assert_eq!(rig.drops(DropReason::BadIcmpError), cases.len() as u64 + 2);
    // TTL 1.
    let mut expiring = to_laddr(&good);
    expiring[22] = 1;
    frames::fix_ip_csum(&mut expiring, 14);
    assert!(rig.send(1, &expiring).is_empty());
    assert_eq!(rig.drops(DropReason::TtlExceeded), 1);
    assert_eq!(rig.drops(DropReason::IcmpNoConnection), 0);

    let live = Arc::clone(&rig.live);
    drop(rig);
    assert_eq!(live.load(Ordering::Relaxed), 0, "frames leaked");
}

// ---------------------------------------------------------------------------------- steering

/// An error is steered to the worker of the connection its quote is of, by the frame alone
/// (`steer`, as the lcore loop calls it, and `owner` after a parse): a real server's side
/// error to a local address by the quoted local port, a client's side error to the VIP by
/// the quoted client endpoint; one whose quote cannot be read goes to any worker.
#[test]
fn errors_are_steered_to_the_connections_worker() {
    let mut rig = Rig::lab();
    let e = IcmpError::frag_needed(1400);
    for lport in [1024u16, 1025, 3000, 40001] {
        let fwd = tcp_frame(
            (MAC1, RS1_MAC),
            sa4(LADDR, lport),
            sa4(RS1, RPORT_TCP),
            ACK,
            (1, 1),
            b"",
        );
        let err = error_frame(1, (RS_ROUTER, LADDR), e, &quote(&fwd, 48));
        let reply = rs_tcp(RS1, lport, ACK, 1, 1, b"");
        for n in 2..=5u16 {
            assert_eq!(
                owner_of(&rig.snap, n, &err),
                Some(lport % n),
                "local port {lport}, {n} workers"
            );
            assert_eq!(owner_of(&rig.snap, n, &err), owner_of(&rig.snap, n, &reply));
            assert_eq!(
                steer(&rig.snap, n, &err),
                owner_of(&rig.snap, n, &err),
                "steer agrees"
            );
        }
    }
    for cport in [1000u16, 1001, 47000, 65535] {
        let back = tcp_frame(
            (MAC0, CLIENT_MAC),
            sa4(VIP, 80),
            sa4(CLIENT, cport),
            ACK,
            (1, 1),
            b"",
        );
        let err = error_frame(0, (CL_ROUTER, VIP), e, &quote(&back, 48));
        for n in 2..=5u16 {
            assert_eq!(
                owner_of(&rig.snap, n, &err),
                Some(client_owner(CLIENT, cport, n))
            );
            assert_eq!(steer(&rig.snap, n, &err), owner_of(&rig.snap, n, &err));
        }
    }
    let unreadable = error_frame(1, (RS_ROUTER, LADDR), e, &[0x45; 10]);
    assert_eq!(steer(&rig.snap, 4, &unreadable), None);
    assert_eq!(owner_of(&rig.snap, 1, &unreadable), None, "one worker: any");

    // End to end: the errors about a connection this worker opened come back to it.
    let (rs, lport) = handshake(&mut rig, 47500);
    let fwd = sent_frame(
        &rig.send(0, &client_tcp(47500, ACK, 1001, 5001, b"x")),
        "data",
    );
    let back = sent_frame(
        &rig.send(1, &rs_tcp(rs, lport, ACK, 5001, 1002, b"y")),
        "reply",
    );
    let err = error_frame(1, (RS_ROUTER, LADDR), e, &quote(&fwd, 48));
    assert_eq!(steer(&rig.snap, WORKERS, &err), Some(ME));
    let err = error_frame(0, (CL_ROUTER, VIP), e, &quote(&back, 48));
    let client_side = client_tcp(47500, ACK, 1002, 5002, b"");
    assert_eq!(
        steer(&rig.snap, WORKERS, &err),
        steer(&rig.snap, WORKERS, &client_side)
    );
}

// ------------------------------------------------------------------------- arbitrary input

/// What follows an ICMP error header in a fuzzed frame.
#[derive(Clone, Debug)]
enum Body {
    /// Any bytes.
    Random(Vec<u8>),
    /// A valid quote of a live connection's packet, `to_vip` the client's side, with bytes
    /// xor-ed and the quote cut, so that fuzzing reaches the translation itself.
    Mutated {
        to_vip: bool,
        flips: Vec<(usize, u8)>,
        cut: Option<usize>,
    },
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..160).prop_map(Body::Random),
        (
            any::<bool>(),
            prop::collection::vec((0usize..64, 1u8..=255), 0..4),
            prop::option::of(0usize..80)
        )
            .prop_map(|(to_vip, flips, cut)| Body::Mutated { to_vip, flips, cut }),
    ]
}

/// The destinations a fuzzed error goes to: the VIP, the local address, our address, the
/// client (in transit); past them, the source of the quoted packet, where a real error goes
/// (half the cases, so that many reach the translation).
const DESTS: [Ipv4Addr; 4] = [VIP, LADDR, ADDR1, CLIENT];

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any bytes after an ICMP error header, to any of our addresses or in transit, with a
    /// right or wrong checksum: steering and the worker never panic, every frame is relayed
    /// (a parseable frame with valid outer checksums) or counted, and none leaks.
    #[test]
    fn any_bytes_after_an_icmp_error_header_are_relayed_or_counted(
        body in body(),
        port in 0u16..2,
        dest in 0usize..2 * DESTS.len(),
        time_exceeded in any::<bool>(),
        code in 0u8..20,
        rest in any::<[u8; 4]>(),
        good_checksum in prop::bool::weighted(0.8),
    ) {
        let mut rig: Rig<Counted> = Rig::new(lab_state(Timeouts::default(), &[RS1, RS2]), limits(64));
        let syn = client_tcp(47600, SYN, 1000, 0, b"");
        let fwd = sent_frame(&rig.send(0, &syn), "SYN");
        let rs = Ipv4Addr::from(<[u8; 4]>::try_from(&fwd[30..34]).unwrap());
        let lport = u16::from_be_bytes([fwd[34], fwd[35]]);
        let back = sent_frame(&rig.send(1, &rs_tcp(rs, lport, SYN | ACK, 9, 1001, b"")), "SYN+ACK");
        let (quoted, source) = match body {
            Body::Random(b) => (b, VIP),
            Body::Mutated { to_vip, flips, cut } => {
                let mut q = quote(if to_vip { &back } else { &fwd }, LINUX_QUOTE);
                for (at, x) in flips {
                    let n = q.len();
                    q[at % n] ^= x;
                }
                q.truncate(cut.unwrap_or(usize::MAX));
                (q, if to_vip { VIP } else { LADDR })
            }
        };
        let to = DESTS.get(dest).copied().unwrap_or(source);
        let e = IcmpError {
            icmp_type: if time_exceeded { 11 } else { 3 },
            code,
            rest,
        };
        let mut err = error_frame(port, (CL_ROUTER, to), e, &quoted);
        if !good_checksum {
            err[36] ^= 0x01;
        }
        let _ = steer(&rig.snap, 4, &err);
        let drops = rig.total_drops();
        let out = rig.send(port, &err);
        for (p, f) in &out {
            prop_assert!(*p <= 1);
            prop_assert!(parse(f.data()).is_ok(), "unparsable frame out: {:02x?}", f.data());
        }
        if let [(_, f)] = out.as_slice() {
            let d = f.data();
            if d[23] == 1 {
                // Translated (or passed on unchanged): the outer checksums hold. (By full sums:
                // etherparse's oracle takes the unused bytes of some codes for zero.)
                prop_assert!(checksum::ipv4_header_valid(&d[14..34]), "outer IPv4 checksum");
                prop_assert!(checksum::plain_valid(ip_of(d).get(20..).unwrap_or(&[])), "ICMP checksum");
            }
        }
        prop_assert_eq!(out.len() as u64 + rig.total_drops() - drops, 1, "relayed or counted, once");
        drop(out);
        let live = Arc::clone(&rig.live);
        drop(rig);
        prop_assert_eq!(live.load(Ordering::Relaxed), 0, "frames leaked");
    }
}
