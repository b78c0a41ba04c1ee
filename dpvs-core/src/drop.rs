//! Why a packet was dropped (or diverted). Counted per worker, reported by `dpvs-ctl stats`.

/// A drop reason. `Copy`, small, and indexable so each worker keeps a flat counter array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Frame shorter than the headers it claims.
    Truncated,
    /// Ethertype neither IPv4, ARP nor VLAN-tagged one of those.
    UnknownEthertype,
    /// IPv4 header invalid: version, IHL < 5, total length beyond the frame or below the header.
    BadIpHeader,
    /// IPv4 header checksum wrong.
    BadIpChecksum,
    /// IPv4 fragment (MF set or offset non-zero): not load balanced.
    IpFragment,
    /// TTL would reach zero on forwarding.
    TtlExceeded,
    /// TCP/UDP header invalid (TCP data offset, UDP length).
    BadL4Header,
    /// L4 protocol that no service handles.
    UnknownL4Proto,
    /// TCP flag combination that is never valid (SYN+FIN, SYN+RST, no flags, ...).
    BadTcpFlags,
    /// Non-SYN TCP segment for a connection that does not exist (answered with a RST).
    NoConnection,
    /// Not addressed to us and no service, on a port without a kernel twin (with one, it goes
    /// to the kernel).
    NotOurs,
    /// Destination is one of our addresses but no service and no local handler.
    NoService,
    /// The service has no real server with weight > 0.
    NoRealServer,
    /// The local address port pool of this worker is exhausted.
    LaddrExhausted,
    /// A NAT connection's reply tuple (real server → client endpoint) is held by another
    /// connection: the same client address and port reached the same real server through
    /// another service.
    TupleInUse,
    /// The connection table of this worker is full.
    ConnTableFull,
    /// No route to the destination.
    NoRoute,
    /// Next hop unresolved and its pending queue is full.
    NeighPendingFull,
    /// Next hop unresolved after the ARP retries ran out.
    NeighUnresolved,
    /// ARP packet not for us, or malformed.
    ArpIgnored,
    /// ICMP to one of our addresses that we do not answer: neither an echo request nor an
    /// error (destination unreachable, time exceeded).
    IcmpIgnored,
    /// TX queue full: the packet could not be sent.
    TxFull,
    /// Ring to the owning worker full.
    RingFull,
    /// No mbuf available for a generated packet (ARP request, RST, ICMP error), or no
    /// headroom in a received one for a tunnel header.
    NoBuffer,
    /// The packet with a tunnel header would exceed the egress port's MTU. When it has DF set,
    /// the client is sent an ICMP "fragmentation needed" with the MTU that fits.
    TooBig,
    /// A direct-routing real server a route puts behind a gateway: DR can only reach real
    /// servers on the balancer's own link.
    RsNotOnLink,
    /// For the kernel, but the worker's ring to the kernel bridge was full.
    KernelFull,
    /// An ICMP error (destination unreachable, time exceeded) to one of our addresses whose
    /// quote reads, but about a packet of no live connection: none matches (expired, cut,
    /// never ours), or the quoted packet is not TCP or UDP, or is a later fragment.
    IcmpNoConnection,
    /// An ICMP error to one of our addresses whose quote cannot be read or contradicts
    /// itself: a message shorter than its header, an IPv4 header and 8 bytes; an impossible
    /// inner version, header length or total length; a quote of an ICMP error; not sent to
    /// the quoted packet's source; or, about a connection, a wrong ICMP checksum.
    BadIcmpError,
}

impl DropReason {
    /// Every reason, in counter-index order.
    pub const ALL: [DropReason; 29] = [
        DropReason::Truncated,
        DropReason::UnknownEthertype,
        DropReason::BadIpHeader,
        DropReason::BadIpChecksum,
        DropReason::IpFragment,
        DropReason::TtlExceeded,
        DropReason::BadL4Header,
        DropReason::UnknownL4Proto,
        DropReason::BadTcpFlags,
        DropReason::NoConnection,
        DropReason::NotOurs,
        DropReason::NoService,
        DropReason::NoRealServer,
        DropReason::LaddrExhausted,
        DropReason::TupleInUse,
        DropReason::ConnTableFull,
        DropReason::NoRoute,
        DropReason::NeighPendingFull,
        DropReason::NeighUnresolved,
        DropReason::ArpIgnored,
        DropReason::IcmpIgnored,
        DropReason::TxFull,
        DropReason::RingFull,
        DropReason::NoBuffer,
        DropReason::TooBig,
        DropReason::RsNotOnLink,
        DropReason::KernelFull,
        DropReason::IcmpNoConnection,
        DropReason::BadIcmpError,
    ];
    /// Number of reasons: the length of a per-worker counter array.
    pub const COUNT: usize = Self::ALL.len();

    /// Index into a counter array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The snake_case name shown by `dpvs-ctl stats`.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::UnknownEthertype => "unknown_ethertype",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::IpFragment => "ip_fragment",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::BadL4Header => "bad_l4_header",
            DropReason::UnknownL4Proto => "unknown_l4_proto",
            DropReason::BadTcpFlags => "bad_tcp_flags",
            DropReason::NoConnection => "no_connection",
            DropReason::NotOurs => "not_ours",
            DropReason::NoService => "no_service",
            DropReason::NoRealServer => "no_real_server",
            DropReason::LaddrExhausted => "laddr_exhausted",
            DropReason::TupleInUse => "tuple_in_use",
            DropReason::ConnTableFull => "conn_table_full",
            DropReason::NoRoute => "no_route",
            DropReason::NeighPendingFull => "neigh_pending_full",
            DropReason::NeighUnresolved => "neigh_unresolved",
            DropReason::ArpIgnored => "arp_ignored",
            DropReason::IcmpIgnored => "icmp_ignored",
            DropReason::TxFull => "tx_full",
            DropReason::RingFull => "ring_full",
            DropReason::NoBuffer => "no_buffer",
            DropReason::TooBig => "too_big",
            DropReason::RsNotOnLink => "rs_not_on_link",
            DropReason::KernelFull => "kernel_full",
            DropReason::IcmpNoConnection => "icmp_no_connection",
            DropReason::BadIcmpError => "bad_icmp_error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(names.insert(r.name()));
        }
    }
}
