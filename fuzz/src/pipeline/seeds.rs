//! The `pipeline` target's seed inputs: the life of a connection in every mode and protocol,
//! ARP resolution of a parked real server, ping, bursts, cuts, a tunnel MTU overflow, a full
//! table, garbage; each scheduler family with its limits and persistence, edits of real
//! servers and services under traffic, the kernel twin, ICMP errors about connections. `examples/seeds.rs` writes them to `corpus/pipeline/`.

use dpvs_core::packet::tcp::{ACK, FIN, PSH, RST, SYN};

use super::input::{Frame, Input, IpBits, Mutation, Step, Template};
use super::lab::{tcp_services, udp_services};

fn t(t: Template) -> Frame {
    Frame::Template {
        t,
        m: Mutation::default(),
    }
}

fn syn(svc: u8, cport: u8) -> Frame {
    client_tcp(svc, cport, SYN, IpBits::default(), 0)
}

fn client_tcp(svc: u8, cport: u8, flags: u8, ip: IpBits, payload: u8) -> Frame {
    t(Template::ClientTcp {
        svc,
        client: 0,
        cport,
        flags,
        ip,
        payload,
    })
}

fn udp(svc: u8, cport: u8) -> Frame {
    t(Template::ClientUdp {
        svc,
        client: 0,
        cport,
        ip: IpBits::default(),
        payload: 2,
    })
}

/// A segment of the first connection in the table.
fn conn(reply: bool, flags: u8, payload: u8) -> Frame {
    t(Template::Conn {
        conn: 0,
        reply,
        flags,
        payload,
    })
}

fn arp(port: u8, op: u8, sender: u8, target: u8) -> Frame {
    t(Template::Arp {
        port,
        op,
        sender,
        target,
    })
}

/// The seeds, by file name.
pub fn seeds() -> Vec<(String, Input)> {
    use Step::{Advance, ControlTick, Housekeeping};
    let f = Step::Frame;
    let mut out = Vec::new();
    let names = ["fnat", "nat", "dr", "tun", "mixed"];
    for (i, name) in names.iter().enumerate() {
        let i = i as u8;
        let direct = matches!(*name, "dr" | "tun");
        // Handshake, data both ways, close from both ends, the last ACK, expiry, reuse.
        let mut steps = vec![f(syn(i, i))];
        if !direct {
            steps.push(f(conn(true, SYN | ACK, 0)));
        }
        steps.extend([f(conn(false, ACK, 0)), f(conn(false, ACK | PSH, 10))]);
        if !direct {
            steps.extend([
                f(conn(true, ACK | PSH, 20)),
                f(conn(false, FIN | ACK, 0)),
                f(conn(true, FIN | ACK, 0)),
            ]);
        } else {
            steps.push(f(conn(false, FIN | ACK, 0)));
        }
        steps.extend([
            f(conn(false, ACK, 0)),
            f(syn(i, i)),
            Advance(6000),
            Housekeeping,
            f(syn(i, i)),
            f(conn(false, RST, 0)),
        ]);
        out.push((format!("tcp_{name}"), Input(steps)));
    }
    for (i, name) in ["fnat", "nat", "dr", "tun"].iter().enumerate() {
        let i = i as u8;
        let steps = vec![
            f(udp(i, i)),
            f(conn(true, 0, 3)),
            f(conn(false, 0, 3)),
            Advance(6000),
            Housekeeping,
            f(udp(i, i)),
        ];
        out.push((format!("udp_{name}"), Input(steps)));
    }
    // Every TCP and UDP service once, the unknown port included.
    let mut every = Vec::new();
    for i in 0..tcp_services().len() as u8 {
        every.push(f(syn(i, 10 + i)));
    }
    for i in 0..udp_services().len() as u8 {
        every.push(f(udp(i, 10 + i)));
    }
    out.push(("every_service".into(), Input(every)));
    // RS3 is not resolved: the NAT service's second connection parks while the worker asks;
    // RS3's ARP reply, once the control plane publishes it, releases it.
    out.push((
        "arp_resolves_parked".into(),
        Input(vec![
            f(syn(1, 1)),
            f(syn(1, 2)),
            f(syn(1, 3)),
            f(arp(1, 1, 2, 2)),
            ControlTick,
            Housekeeping,
            f(t(Template::Conn {
                conn: 1,
                reply: true,
                flags: SYN | ACK,
                payload: 0,
            })),
        ]),
    ));
    // ARP requests for our addresses on both sides, and ARP the worker ignores.
    out.push((
        "arp".into(),
        Input(vec![
            f(arp(0, 0, 0, 1)),
            f(arp(0, 0, 0, 0)),
            f(arp(1, 0, 1, 3)),
            f(arp(1, 0, 2, 2)),
            f(arp(0, 0, 0, 4)),
            f(arp(0, 0, 5, 0)),
            f(arp(0, 0, 6, 1)),
            ControlTick,
        ]),
    ));
    // Pings to our addresses and beyond; the parked retries run out.
    let pings = (0..6u8)
        .map(|dst| {
            f(t(Template::Echo {
                client: dst % 2,
                dst,
                payload: 8,
            }))
        })
        .chain([Advance(1000), Housekeeping, Advance(1000), Housekeeping])
        .collect();
    out.push(("echo".into(), Input(pings)));
    // A burst of new connections longer than the worker's BURST, then their ACKs in a burst.
    let syns: Vec<Frame> = (0..34u8).map(|k| syn(k % 2, k)).collect();
    let acks: Vec<Frame> = (0..34u8)
        .map(|k| {
            t(Template::Conn {
                conn: k,
                reply: false,
                flags: ACK,
                payload: 1,
            })
        })
        .collect();
    out.push((
        "bursts".into(),
        Input(vec![
            Step::Burst {
                port: 0,
                frames: syns,
            },
            Step::Burst {
                port: 0,
                frames: acks,
            },
        ]),
    ));
    // Connections cut (as a deletion does): the next segment resets both ends; then a
    // service's.
    out.push((
        "cut".into(),
        Input(vec![
            f(syn(0, 1)),
            f(conn(true, SYN | ACK, 0)),
            f(conn(false, ACK, 0)),
            f(udp(0, 2)),
            Step::Cut {
                service: false,
                index: 0,
            },
            f(conn(false, ACK | PSH, 4)),
            f(syn(1, 3)),
            Step::Cut {
                service: true,
                index: 1,
            },
            f(conn(true, ACK, 0)),
            f(syn(0, 1)),
        ]),
    ));
    // A tunnelled packet too big for the MTU with DF set: ICMP "fragmentation needed".
    out.push((
        "tun_too_big".into(),
        Input(vec![
            f(client_tcp(3, 1, SYN, IpBits(1), 0)),
            f(client_tcp(3, 1, ACK | PSH, IpBits(1), 250)),
            f(client_tcp(3, 1, ACK | PSH, IpBits(0), 250)),
        ]),
    ));
    // IP options, a VLAN tag, TTL 1, and a mutated SYN with its checksums fixed.
    out.push((
        "ip_variants".into(),
        Input(vec![
            f(client_tcp(0, 1, SYN, IpBits(8), 0)),
            f(client_tcp(0, 2, SYN, IpBits(4), 0)),
            f(client_tcp(0, 3, SYN, IpBits(2), 0)),
            f(Frame::Template {
                t: Template::ClientTcp {
                    svc: 1,
                    client: 2,
                    cport: 4,
                    flags: SYN,
                    ip: IpBits::default(),
                    payload: 0,
                },
                m: Mutation {
                    flips: vec![(36, 0x01)],
                    truncate: None,
                    fix: true,
                },
            }),
        ]),
    ));
    // More connections than the table holds.
    let many: Vec<Frame> = (0..40u8)
        .map(|k| {
            t(Template::ClientTcp {
                svc: 0,
                client: k / 32,
                cport: k,
                flags: SYN,
                ip: IpBits::default(),
                payload: 0,
            })
        })
        .collect();
    let more: Vec<Frame> = (0..40u8)
        .map(|k| {
            t(Template::ClientUdp {
                svc: 0,
                client: 2 + k / 32,
                cport: k,
                ip: IpBits::default(),
                payload: 0,
            })
        })
        .collect();
    out.push((
        "table_full".into(),
        Input(vec![
            Step::Burst {
                port: 0,
                frames: many,
            },
            Step::Burst {
                port: 0,
                frames: more,
            },
        ]),
    ));
    // Routes change under traffic: RS2, a DR real server, goes behind a gateway; the default
    // route goes and a far client has no route; both come back.
    out.push((
        "routes".into(),
        Input(vec![
            f(syn(2, 1)),
            f(conn(false, ACK, 0)),
            Step::Route(0),
            f(conn(false, ACK | PSH, 1)),
            Step::Route(1),
            f(t(Template::ClientTcp {
                svc: 0,
                client: 2,
                cport: 2,
                flags: SYN,
                ip: IpBits::default(),
                payload: 0,
            })),
            Step::Route(1),
            Step::Route(0),
            f(conn(false, ACK | PSH, 1)),
        ]),
    ));
    // A client's one port to two NAT services on one real server: one reply tuple, claimed
    // twice. And a service whose only real server is drained.
    out.push((
        "nat_tuple_in_use_and_drained".into(),
        Input(vec![f(syn(1, 5)), f(syn(6, 5)), f(syn(7, 6))]),
    ));
    // Stray replies to the local address, and garbage on every port.
    out.push((
        "strays_and_garbage".into(),
        Input(vec![
            f(t(Template::RsStray {
                rs: 0,
                lport: 1025,
                udp: false,
                flags: ACK,
            })),
            f(t(Template::RsStray {
                rs: 1,
                lport: 1027,
                udp: true,
                flags: 0,
            })),
            f(Frame::Raw {
                port: 0,
                bytes: vec![0xff; 60],
            }),
            f(Frame::Raw {
                port: 1,
                bytes: vec![],
            }),
            f(Frame::Raw {
                port: 2,
                bytes: vec![0; 14],
            }),
        ]),
    ));
    // Weighted least-connection with limits: RS1 (weight 2) takes 3 and RS2 2; the rest
    // goes to the unresolved RS3 and waits for ARP. Closed and expired, they make room again
    // below the lower limits.
    let mut wlc: Vec<Step> = (0..8u8).map(|k| f(syn(8, k))).collect();
    wlc.extend([
        f(conn(true, SYN | ACK, 0)),
        f(conn(false, ACK, 0)),
        f(conn(false, RST, 0)),
        Advance(11_000),
        Housekeeping,
    ]);
    wlc.extend((8..12u8).map(|k| f(syn(8, k))));
    out.push(("sched_wlc_limits".into(), Input(wlc)));
    // Maglev over address and port, from two clients: RS1 full at 2, the others take over.
    let mh = (0..6u8)
        .map(|k| {
            f(t(Template::ClientTcp {
                svc: 9,
                client: k % 2,
                cport: k,
                flags: SYN,
                ip: IpBits::default(),
                payload: 0,
            }))
        })
        .chain([f(conn(true, SYN | ACK, 0)), f(conn(false, ACK, 0))])
        .collect();
    out.push(("sched_mh".into(), Input(mh)));
    // Persistent source hashing: a client's (a /24's) connections keep one real server, over
    // its limit too; the template outlives the connections by 20 s, then a new one is made.
    let client = |client, cport, svc| {
        f(t(Template::ClientTcp {
            svc,
            client,
            cport,
            flags: SYN,
            ip: IpBits::default(),
            payload: 0,
        }))
    };
    out.push((
        "sched_sh_persistent".into(),
        Input(vec![
            client(2, 1, 10),
            client(2, 2, 10),
            client(2, 3, 10),
            client(3, 1, 10),
            f(conn(true, SYN | ACK, 0)),
            f(conn(false, FIN | ACK, 0)),
            Advance(12_000),
            Housekeeping,
            client(2, 4, 10),
            Advance(25_000),
            Housekeeping,
            client(2, 5, 10),
            client(0, 1, 10),
        ]),
    ));
    // Fail-over through DR: RS2 (the heaviest) until its limit of 1, then RS1.
    out.push((
        "sched_fo".into(),
        Input(vec![
            f(syn(11, 1)),
            f(syn(11, 2)),
            f(conn(false, ACK, 0)),
            f(conn(false, RST, 0)),
            Advance(100),
            Housekeeping,
            f(syn(11, 3)),
        ]),
    ));
    // UDP: a persistent consistent-hash ring (FullNAT), least-connection through the tunnel.
    out.push((
        "udp_sched".into(),
        Input(vec![
            f(udp(5, 1)),
            f(udp(5, 2)),
            f(conn(true, 0, 3)),
            f(udp(6, 1)),
            f(udp(6, 2)),
            f(udp(6, 3)),
            Advance(6_000),
            Housekeeping,
            f(udp(5, 3)),
            f(udp(6, 4)),
        ]),
    ));
    // Edits under traffic: tcp:80 through every scheduler (persistent for some), RS1's weight
    // and limits changed, each followed by a new connection.
    let mut edits = vec![f(syn(0, 0))];
    for k in 0..8u8 {
        edits.push(Step::Edit {
            target: 128,
            a: k,
            b: if k % 2 == 0 { 0x13 } else { 0x3 },
        });
        edits.push(f(syn(0, k + 1)));
    }
    edits.extend([
        Step::Edit {
            target: 0,
            a: 2,
            b: 1,
        },
        f(syn(0, 20)),
        f(syn(0, 21)),
        Step::Edit {
            target: 0,
            a: 0,
            b: 0,
        },
        f(syn(0, 22)),
    ]);
    out.push(("edits".into(), Input(edits)));
    // The kernel twin of the client side: IPv6, a segment to an address not ours, an ARP
    // request (answered, and copied to the kernel); then again with its ring full.
    let ipv6 = {
        let mut b = vec![
            0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0x01, 0x02, 0x86, 0xdd,
        ];
        b.extend([0x60, 0, 0, 0, 0, 0, 59, 64]);
        b.extend([0; 32]);
        b
    };
    let to_kernel = || {
        [
            f(Frame::Raw {
                port: 0,
                bytes: ipv6.clone(),
            }),
            f(t(Template::Echo {
                client: 0,
                dst: 5,
                payload: 4,
            })),
            f(arp(0, 0, 0, 0)),
        ]
    };
    let mut kernel: Vec<Step> = to_kernel().into();
    kernel.push(Step::KernelFull(true));
    kernel.extend(to_kernel());
    kernel.push(Step::KernelFull(false));
    out.push(("kernel".into(), Input(kernel)));
    // ICMP errors about a connection in every mode, TCP and UDP, from both sides: from the
    // real server and a router on its side, from the client and a router on its; one with a
    // bad checksum, one about no connection.
    let icmp = |client_side, router, kind, quote| {
        t(Template::IcmpError {
            conn: 0,
            client_side,
            router,
            kind,
            quote,
        })
    };
    for (i, name) in ["fnat", "nat", "dr", "tun"].iter().enumerate() {
        let i = i as u8;
        let mut steps = vec![f(syn(i, 30 + i)), f(conn(true, SYN | ACK, 0))];
        steps.extend([
            f(icmp(false, false, 3, 0)),
            f(icmp(false, true, 1, 12)),
            f(icmp(true, false, 9, 39)),
            f(icmp(true, true, 2, 4)),
            f(udp(i, 30 + i)),
            f(icmp(false, false, 4, 0)),
            f(icmp(true, true, 5, 8)),
        ]);
        out.push((format!("icmp_error_{name}"), Input(steps)));
    }
    out.push((
        "icmp_error_strays".into(),
        Input(vec![
            f(icmp(true, false, 3, 0)),
            f(syn(0, 40)),
            f(Frame::Template {
                t: Template::IcmpError {
                    conn: 0,
                    client_side: false,
                    router: false,
                    kind: 1,
                    quote: 0,
                },
                m: Mutation {
                    flips: vec![(40, 0x10)],
                    truncate: None,
                    fix: false,
                },
            }),
            f(Frame::Template {
                t: Template::IcmpError {
                    conn: 0,
                    client_side: false,
                    router: true,
                    kind: 1,
                    quote: 0,
                },
                m: Mutation {
                    flips: vec![],
                    truncate: Some(10),
                    fix: false,
                },
            }),
        ]),
    ));
    out
}
