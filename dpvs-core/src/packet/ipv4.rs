//! IPv4 header layout, protocol numbers, and writers for headers the daemon generates
//! (RSTs, IP-in-IP encapsulation) or edits in place (TTL).

use core::net::Ipv4Addr;

use super::checksum::{Delta, fill_ipv4_header_checksum};
use crate::drop::DropReason;

/// Length of an IPv4 header without options.
pub const IPV4_HLEN: usize = 20;
/// Offset of the total length field.
pub const IPV4_TOTLEN_OFF: usize = 2;
/// Offset of the flags + fragment offset field.
pub const IPV4_FRAG_OFF: usize = 6;
/// Offset of the TTL byte (followed by the protocol byte: they form one checksum word).
pub const IPV4_TTL_OFF: usize = 8;
/// Offset of the protocol byte.
pub const IPV4_PROTO_OFF: usize = 9;
/// Offset of the header checksum.
pub const IPV4_CSUM_OFF: usize = 10;
/// Offset of the source address.
pub const IPV4_SRC_OFF: usize = 12;
/// Offset of the destination address.
pub const IPV4_DST_OFF: usize = 16;

/// Don't Fragment flag, in the flags + fragment offset word.
pub const IP_DF: u16 = 0x4000;
/// More Fragments flag.
pub const IP_MF: u16 = 0x2000;
/// Fragment offset mask (units of 8 bytes).
pub const IP_OFFMASK: u16 = 0x1fff;

/// An IP protocol number: the IPv4 header's protocol field, as it is on the wire. Any byte is
/// a value (a packet may carry any); the ones the data plane knows have names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct IpProto(pub u8);

impl IpProto {
    pub const ICMP: IpProto = IpProto(1);
    /// IP-in-IP (TUN forwarding).
    pub const IPIP: IpProto = IpProto(4);
    pub const TCP: IpProto = IpProto(6);
    pub const UDP: IpProto = IpProto(17);
}

impl From<dpvs_api::Proto> for IpProto {
    fn from(p: dpvs_api::Proto) -> IpProto {
        IpProto(p.number())
    }
}

/// TTL of packets the daemon originates (Linux's default).
pub const DEFAULT_TTL: u8 = 64;

/// Writes a 20-byte IPv4 header (no options, DSCP 0, ID 0 with DF set, as RFC 6864 allows for
/// atomic datagrams) at the start of `buf`, checksum included. `payload_len` is the length
/// after the header. `None` when `buf` is shorter than 20 bytes or the total would exceed
/// 65535; otherwise the header length.
pub fn write_header(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: IpProto,
    ttl: u8,
    payload_len: usize,
) -> Option<usize> {
    let total = u16::try_from(IPV4_HLEN + payload_len).ok()?;
    let h = buf.first_chunk_mut::<IPV4_HLEN>()?;
    let [t0, t1] = total.to_be_bytes();
    let [f0, f1] = IP_DF.to_be_bytes();
    let [s0, s1, s2, s3] = src.octets();
    let [d0, d1, d2, d3] = dst.octets();
    *h = [
        0x45, 0, t0, t1, 0, 0, f0, f1, ttl, proto.0, 0, 0, s0, s1, s2, s3, d0, d1, d2, d3,
    ];
    fill_ipv4_header_checksum(h);
    Some(IPV4_HLEN)
}

/// Decrements the TTL of the IPv4 header at `l3_off` and patches the header checksum
/// incrementally (DR/TUN/NAT forwarding). `Err(TtlExceeded)` (unchanged) when the TTL is 0
/// or 1, `Err(Truncated)` when the header is not there.
pub fn decrement_ttl(data: &mut [u8], l3_off: usize) -> Result<(), DropReason> {
    let h = data
        .get_mut(l3_off..)
        .and_then(|d| d.first_chunk_mut::<IPV4_HLEN>())
        .ok_or(DropReason::Truncated)?;
    let ttl = h[IPV4_TTL_OFF];
    if ttl <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let proto = h[IPV4_PROTO_OFF];
    let csum = u16::from_be_bytes([h[IPV4_CSUM_OFF], h[IPV4_CSUM_OFF + 1]]);
    let old = u16::from_be_bytes([ttl, proto]);
    let new = u16::from_be_bytes([ttl - 1, proto]);
    h[IPV4_TTL_OFF] = ttl - 1;
    let c = Delta::new().add16(old, new).apply(csum);
    h[IPV4_CSUM_OFF..IPV4_CSUM_OFF + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::checksum::ipv4_header_valid;

    #[test]
    fn written_header_is_valid() {
        let mut b = [0u8; 20];
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(192, 168, 1, 2);
        assert_eq!(
            write_header(&mut b, src, dst, IpProto::IPIP, 64, 100),
            Some(20)
        );
        assert!(ipv4_header_valid(&b));
        let (h, _) = etherparse::Ipv4Header::from_slice(&b).unwrap();
        assert_eq!(h.total_len, 120);
        assert_eq!(h.source, src.octets());
        assert_eq!(h.destination, dst.octets());
        assert!(h.dont_fragment);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(
            write_header(&mut b[..19], src, dst, IpProto::TCP, 64, 0),
            None
        );
        assert_eq!(
            write_header(&mut b, src, dst, IpProto::TCP, 64, 65516),
            None
        );
    }

    #[test]
    fn ttl_decrement() {
        let mut b = [0u8; 24];
        let src = Ipv4Addr::new(1, 2, 3, 4);
        write_header(&mut b[4..], src, src, IpProto::UDP, 2, 0).unwrap();
        assert_eq!(decrement_ttl(&mut b, 4), Ok(()));
        assert_eq!(b[4 + IPV4_TTL_OFF], 1);
        assert!(ipv4_header_valid(&b[4..]));
        assert_eq!(decrement_ttl(&mut b, 4), Err(DropReason::TtlExceeded));
        assert_eq!(b[4 + IPV4_TTL_OFF], 1);
        assert_eq!(decrement_ttl(&mut b, 5), Err(DropReason::Truncated));
    }
}
