//! The `pipeline` target's input: a sequence of [`Step`]s, decoded from the fuzzer's bytes by
//! a small hand decoder (so that [`Input::encode`] can write seeds that decode back to exactly
//! the steps they were made from; `arbitrary`'s derive has no inverse).
//!
//! Every byte string decodes to some input (missing bytes read as zero), and every value of a
//! field means something, so no mutation the fuzzer makes is wasted on a parse error.

use arbitrary::{Arbitrary, Unstructured};

/// The longest burst a step delivers: more than the worker's `BURST` (32), so that bursts are
/// cut into pieces too.
pub const MAX_BURST: usize = 40;
/// The most steps one input runs (a bound on the work per input, whatever its length).
pub const MAX_STEPS: usize = 256;

/// A decoded input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input(pub Vec<Step>);

/// One thing that happens to the worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// One frame, processed alone (`Worker::process`).
    Frame(Frame),
    /// Frames received on one port in one burst (`Worker::process_burst`).
    Burst { port: u8, frames: Vec<Frame> },
    /// The clock moves on by this many milliseconds.
    Advance(u16),
    /// Timer work: pending ARP, expiry, commands.
    Housekeeping,
    /// The control plane takes the neighbours the worker learnt from ARP and republishes.
    ControlTick,
    /// The control plane cuts the connections of a real server (`CutRs`) or of a service
    /// (`CutService`), picked by index among the lab's, as a deletion does.
    Cut { service: bool, index: u8 },
    /// The control plane adds, or removes if present, one of the lab's optional routes
    /// (`lab::ROUTES`, by index) and publishes.
    Route(u8),
    /// The control plane edits a real server (`target < 128`: its weight and connection
    /// limits) or a service (its scheduler, flags and persistence), picked by index among the
    /// lab's, and publishes. See `lab::edit`.
    Edit { target: u8, a: u8, b: u8 },
    /// The ring to the client side's kernel twin is full (`true`) or has room again.
    KernelFull(bool),
}

/// A received frame: arbitrary bytes, or a valid template, possibly mutated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// These bytes on port `port % 3` (2 is a port the worker does not know).
    Raw { port: u8, bytes: Vec<u8> },
    /// A template built for the worker's current state, then mutated.
    Template { t: Template, m: Mutation },
}

/// Valid frames that lead somewhere. Indices (`svc`, `client`, `conn`, ...) are taken modulo
/// the length of the lab's lists, so every value picks something.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Template {
    /// A client's TCP segment to the `svc`-th TCP service, from client port 40000 + `cport`.
    ClientTcp {
        svc: u8,
        client: u8,
        cport: u8,
        flags: u8,
        ip: IpBits,
        payload: u8,
    },
    /// A client's UDP datagram to the `svc`-th UDP service.
    ClientUdp {
        svc: u8,
        client: u8,
        cport: u8,
        ip: IpBits,
        payload: u8,
    },
    /// A segment or datagram of the worker's `conn`-th connection (in table order), from the
    /// client (`reply: false`) or from its real server to the address it sees (`reply: true`).
    /// This is how the fuzzer reaches replies, closes and reuse without guessing local ports.
    Conn {
        conn: u8,
        reply: bool,
        flags: u8,
        payload: u8,
    },
    /// A real server's TCP (`udp: false`) or UDP packet to a local address and port of its
    /// choosing, connection or not.
    RsStray {
        rs: u8,
        lport: u16,
        udp: bool,
        flags: u8,
    },
    /// An ARP packet on `port % 2`: `op` 1 request, 2 reply, else as given; sender and target
    /// picked among the lab's hosts and our addresses.
    Arp {
        port: u8,
        op: u8,
        sender: u8,
        target: u8,
    },
    /// An ICMP echo request from a client to one of the lab's addresses.
    Echo { client: u8, dst: u8, payload: u8 },
    /// An ICMP error about a packet of the worker's `conn`-th connection as the balancer sent
    /// it: from the real servers' side (`client_side: false`) about a packet to the real
    /// server, or from the clients' side about a reply to the client; sent by the end itself
    /// or by the router on its way (`router`). `kind % 3`: destination unreachable with code
    /// `kind / 3 % 16`, "fragmentation needed" announcing an MTU of `576 + kind * 4`, time
    /// exceeded. The quote is the packet's first `28 + quote % 40` bytes (IP header, 8 bytes
    /// of TCP/UDP header, then more).
    IcmpError {
        conn: u8,
        client_side: bool,
        router: bool,
        kind: u8,
        quote: u8,
    },
}

/// Variations of the IP header of a template: bit 0 DF, bit 1 TTL 1, bit 2 an 802.1Q tag,
/// bit 3 IP options (4 bytes of NOPs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpBits(pub u8);

/// What is done to a template's bytes: up to 7 bytes xor-ed (`at % len`), an optional
/// truncation, then, if `fix`, the IPv4 header and TCP/UDP checksums made right again (so
/// that a mutated header field reaches the engine's logic, not just its checksum drop).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mutation {
    pub flips: Vec<(u8, u8)>,
    pub truncate: Option<u8>,
    pub fix: bool,
}

/// Reads the fuzzer's bytes; past the end every read is zero.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b.to_vec()
    }
}

impl Input {
    /// Decodes steps until the bytes or the step budget run out.
    pub fn decode(data: &[u8]) -> Input {
        let mut r = Reader(data);
        let mut steps = Vec::new();
        while !r.is_empty() && steps.len() < MAX_STEPS {
            steps.push(Step::decode(&mut r));
        }
        Input(steps)
    }

    /// The bytes [`Input::decode`] turns into these steps (for seeds).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for s in &self.0 {
            s.encode(&mut out);
        }
        out
    }
}

/// `cargo fuzz fmt pipeline <file>` prints a crash's steps through this.
impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let rest = u.bytes(u.len())?;
        Ok(Input::decode(rest))
    }
    fn arbitrary_take_rest(u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Input::decode(u.take_rest()))
    }
}

// Step opcodes (the first byte of a step, modulo OPS).
const OP_FRAME: u8 = 0;
const OP_FRAME2: u8 = 1;
const OP_BURST: u8 = 2;
const OP_ADVANCE: u8 = 3;
const OP_HOUSEKEEPING: u8 = 4;
const OP_CONTROL_TICK: u8 = 5;
const OP_CUT: u8 = 6;
const OP_ROUTE: u8 = 7;
const OP_EDIT: u8 = 8;
const OP_KERNEL: u8 = 9;
const OPS: u8 = 10;

impl Step {
    fn decode(r: &mut Reader<'_>) -> Step {
        match r.u8() % OPS {
            // Single frames weigh double: they are what most inputs are made of.
            OP_FRAME | OP_FRAME2 => Step::Frame(Frame::decode(r)),
            OP_BURST => {
                let port = r.u8();
                let n = usize::from(r.u8()) % MAX_BURST + 1;
                let frames = (0..n).map(|_| Frame::decode(r)).collect();
                Step::Burst { port, frames }
            }
            OP_ADVANCE => Step::Advance(r.u16()),
            OP_HOUSEKEEPING => Step::Housekeeping,
            OP_CONTROL_TICK => Step::ControlTick,
            OP_CUT => {
                let b = r.u8();
                Step::Cut {
                    service: b & 1 != 0,
                    index: b >> 1,
                }
            }
            OP_ROUTE => Step::Route(r.u8()),
            OP_EDIT => Step::Edit {
                target: r.u8(),
                a: r.u8(),
                b: r.u8(),
            },
            OP_KERNEL.. => Step::KernelFull(r.u8() & 1 != 0),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Step::Frame(f) => {
                out.push(OP_FRAME);
                f.encode(out);
            }
            Step::Burst { port, frames } => {
                assert!((1..=MAX_BURST).contains(&frames.len()), "burst length");
                out.extend([OP_BURST, *port, (frames.len() - 1) as u8]);
                for f in frames {
                    f.encode(out);
                }
            }
            Step::Advance(ms) => {
                out.push(OP_ADVANCE);
                out.extend(ms.to_be_bytes());
            }
            Step::Housekeeping => out.push(OP_HOUSEKEEPING),
            Step::ControlTick => out.push(OP_CONTROL_TICK),
            Step::Cut { service, index } => {
                assert!(*index < 128, "cut index");
                out.extend([OP_CUT, index << 1 | u8::from(*service)]);
            }
            Step::Route(i) => out.extend([OP_ROUTE, *i]),
            Step::Edit { target, a, b } => out.extend([OP_EDIT, *target, *a, *b]),
            Step::KernelFull(full) => out.extend([OP_KERNEL, u8::from(*full)]),
        }
    }
}

// Frame kinds (the first byte of a frame, modulo KINDS).
const K_RAW: u8 = 0;
const K_CLIENT_TCP: u8 = 1;
const K_CLIENT_UDP: u8 = 2;
const K_CONN: u8 = 3;
const K_CONN2: u8 = 4;
const K_RS_STRAY: u8 = 5;
const K_ARP: u8 = 6;
const K_ECHO: u8 = 7;
const K_ICMP_ERROR: u8 = 8;
const KINDS: u8 = 9;

impl Frame {
    fn decode(r: &mut Reader<'_>) -> Frame {
        let t = match r.u8() % KINDS {
            K_RAW => {
                let port = r.u8();
                let len = usize::from(r.u16() % 1600);
                return Frame::Raw {
                    port,
                    bytes: r.bytes(len),
                };
            }
            K_CLIENT_TCP => Template::ClientTcp {
                svc: r.u8(),
                client: r.u8(),
                cport: r.u8(),
                flags: r.u8(),
                ip: IpBits(r.u8()),
                payload: r.u8(),
            },
            K_CLIENT_UDP => Template::ClientUdp {
                svc: r.u8(),
                client: r.u8(),
                cport: r.u8(),
                ip: IpBits(r.u8()),
                payload: r.u8(),
            },
            // Segments of existing connections weigh double: they reach the deep states.
            K_CONN | K_CONN2 => {
                let (conn, b) = (r.u8(), r.u8());
                Template::Conn {
                    conn,
                    reply: b & 1 != 0,
                    flags: r.u8(),
                    payload: r.u8(),
                }
            }
            K_RS_STRAY => {
                let rs = r.u8();
                let lport = r.u16();
                let b = r.u8();
                Template::RsStray {
                    rs,
                    lport,
                    udp: b & 1 != 0,
                    flags: r.u8(),
                }
            }
            K_ARP => Template::Arp {
                port: r.u8(),
                op: r.u8(),
                sender: r.u8(),
                target: r.u8(),
            },
            K_ECHO => Template::Echo {
                client: r.u8(),
                dst: r.u8(),
                payload: r.u8(),
            },
            _ => {
                let (conn, b) = (r.u8(), r.u8());
                Template::IcmpError {
                    conn,
                    client_side: b & 1 != 0,
                    router: b & 2 != 0,
                    kind: r.u8(),
                    quote: r.u8(),
                }
            }
        };
        Frame::Template {
            t,
            m: Mutation::decode(r),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let (t, m) = match self {
            Frame::Raw { port, bytes } => {
                assert!(bytes.len() < 1600, "raw frame length");
                out.extend([K_RAW, *port]);
                out.extend((bytes.len() as u16).to_be_bytes());
                out.extend(bytes);
                return;
            }
            Frame::Template { t, m } => (t, m),
        };
        match *t {
            Template::ClientTcp {
                svc,
                client,
                cport,
                flags,
                ip,
                payload,
            } => out.extend([K_CLIENT_TCP, svc, client, cport, flags, ip.0, payload]),
            Template::ClientUdp {
                svc,
                client,
                cport,
                ip,
                payload,
            } => out.extend([K_CLIENT_UDP, svc, client, cport, ip.0, payload]),
            Template::Conn {
                conn,
                reply,
                flags,
                payload,
            } => out.extend([K_CONN, conn, u8::from(reply), flags, payload]),
            Template::RsStray {
                rs,
                lport,
                udp,
                flags,
            } => {
                out.extend([K_RS_STRAY, rs]);
                out.extend(lport.to_be_bytes());
                out.extend([u8::from(udp), flags]);
            }
            Template::Arp {
                port,
                op,
                sender,
                target,
            } => out.extend([K_ARP, port, op, sender, target]),
            Template::Echo {
                client,
                dst,
                payload,
            } => out.extend([K_ECHO, client, dst, payload]),
            Template::IcmpError {
                conn,
                client_side,
                router,
                kind,
                quote,
            } => out.extend([
                K_ICMP_ERROR,
                conn,
                u8::from(client_side) | u8::from(router) << 1,
                kind,
                quote,
            ]),
        }
        m.encode(out);
    }
}

impl Mutation {
    /// One byte: bits 0-2 the number of flips, bit 3 a truncation follows, bit 4 `fix`; then
    /// the flips as (at, xor) pairs, then the truncation length.
    fn decode(r: &mut Reader<'_>) -> Mutation {
        let b = r.u8();
        let flips = (0..b & 7).map(|_| (r.u8(), r.u8())).collect();
        let truncate = (b & 8 != 0).then(|| r.u8());
        Mutation {
            flips,
            truncate,
            fix: b & 16 != 0,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        assert!(self.flips.len() < 8, "at most 7 flips");
        let b = self.flips.len() as u8
            | if self.truncate.is_some() { 8 } else { 0 }
            | if self.fix { 16 } else { 0 };
        out.push(b);
        for (at, x) in &self.flips {
            out.extend([*at, *x]);
        }
        out.extend(self.truncate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        let plain = Mutation::default();
        let input = Input(vec![
            Step::Frame(Frame::Template {
                t: Template::ClientTcp {
                    svc: 3,
                    client: 1,
                    cport: 9,
                    flags: 2,
                    ip: IpBits(5),
                    payload: 77,
                },
                m: Mutation {
                    flips: vec![(20, 1), (40, 0x80)],
                    truncate: Some(50),
                    fix: true,
                },
            }),
            Step::Burst {
                port: 1,
                frames: vec![
                    Frame::Raw {
                        port: 2,
                        bytes: vec![1, 2, 3],
                    },
                    Frame::Template {
                        t: Template::Conn {
                            conn: 4,
                            reply: true,
                            flags: 0x12,
                            payload: 0,
                        },
                        m: plain.clone(),
                    },
                    Frame::Template {
                        t: Template::RsStray {
                            rs: 1,
                            lport: 1025,
                            udp: true,
                            flags: 0,
                        },
                        m: plain.clone(),
                    },
                ],
            },
            Step::Advance(12345),
            Step::Housekeeping,
            Step::ControlTick,
            Step::Cut {
                service: true,
                index: 5,
            },
            Step::Route(1),
            Step::Edit {
                target: 200,
                a: 4,
                b: 7,
            },
            Step::KernelFull(true),
            Step::Frame(Frame::Template {
                t: Template::Arp {
                    port: 1,
                    op: 2,
                    sender: 3,
                    target: 4,
                },
                m: plain.clone(),
            }),
            Step::Frame(Frame::Template {
                t: Template::Echo {
                    client: 0,
                    dst: 1,
                    payload: 8,
                },
                m: plain.clone(),
            }),
            Step::Frame(Frame::Template {
                t: Template::IcmpError {
                    conn: 2,
                    client_side: true,
                    router: false,
                    kind: 4,
                    quote: 30,
                },
                m: plain,
            }),
        ]);
        assert_eq!(Input::decode(&input.encode()), input);
    }

    #[test]
    fn any_bytes_decode() {
        for data in [&[][..], &[0], &[2, 0, 255], &[0xff; 64]] {
            let _ = Input::decode(data);
        }
    }
}
