//! Ethernet II framing: MAC addresses, ethertypes and the header rewrites every reply needs.

/// Length of an Ethernet II header (dst, src, ethertype), without a VLAN tag.
pub const ETH_HLEN: usize = 14;
/// Length of a MAC address.
pub const ETH_ALEN: usize = 6;
/// Length of one 802.1Q tag (TPID + TCI).
pub const VLAN_HLEN: usize = 4;
/// Minimum Ethernet frame length without the FCS: shorter generated frames are zero padded to
/// it so no stale buffer bytes leave the host.
pub const ETH_ZLEN: usize = 60;

/// IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad service tag (QinQ outer tag).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// The Ethernet address type is shared with the control protocol and the config.
pub use dpvs_api::MacAddr;

/// Writes the destination and source MAC of the frame in `data`; `false` (nothing written)
/// when `data` is shorter than the two addresses.
pub fn set_macs(data: &mut [u8], dst: MacAddr, src: MacAddr) -> bool {
    let Some(h) = data.first_chunk_mut::<{ 2 * ETH_ALEN }>() else {
        return false;
    };
    h[..ETH_ALEN].copy_from_slice(&dst.0);
    h[ETH_ALEN..].copy_from_slice(&src.0);
    true
}

/// The destination MAC of the frame in `data`, `None` when too short.
pub fn dst_mac(data: &[u8]) -> Option<MacAddr> {
    MacAddr::from_slice(data)
}

/// The source MAC of the frame in `data`, `None` when too short.
pub fn src_mac(data: &[u8]) -> Option<MacAddr> {
    MacAddr::from_slice(data.get(ETH_ALEN..)?)
}

/// Addresses a reply back to the sender of the received frame in `data`: destination becomes
/// the old source, source becomes `our_mac`. Any VLAN tag is left as is, so the reply leaves on
/// the VLAN the request came from. `false` (unchanged) when `data` is too short.
pub fn reply_macs(data: &mut [u8], our_mac: MacAddr) -> bool {
    match src_mac(data) {
        Some(peer) => set_macs(data, peer, our_mac),
        None => false,
    }
}

/// Writes an Ethernet header (with an 802.1Q tag when `vlan` is set, priority 0) at the start
/// of `buf` and returns its length, the L3 offset; `None` when `buf` is too short.
pub fn write_header(
    buf: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    ethertype: u16,
    vlan: Option<u16>,
) -> Option<usize> {
    let hlen = ETH_HLEN + if vlan.is_some() { VLAN_HLEN } else { 0 };
    let h = buf.get_mut(..hlen)?;
    set_macs(h, dst, src);
    let mut off = 2 * ETH_ALEN;
    if let Some(id) = vlan {
        h[off..off + 2].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        h[off + 2..off + 4].copy_from_slice(&(id & 0x0fff).to_be_bytes());
        off += VLAN_HLEN;
    }
    h[off..off + 2].copy_from_slice(&ethertype.to_be_bytes());
    Some(hlen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_classes() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(!MacAddr([0x02, 0, 0, 0, 0, 1]).is_multicast());
        assert!(MacAddr::ZERO.is_zero());
    }

    #[test]
    fn header_helpers_respect_bounds() {
        let a = MacAddr([1; 6]);
        let b = MacAddr([2; 6]);
        let mut short = [0u8; 11];
        assert!(!set_macs(&mut short, a, b));
        assert!(!reply_macs(&mut short, a));
        assert_eq!(write_header(&mut short, a, b, ETHERTYPE_IPV4, None), None);

        let mut buf = [0u8; 18];
        assert_eq!(
            write_header(&mut buf, a, b, ETHERTYPE_ARP, Some(0x1abc)),
            Some(18)
        );
        assert_eq!(&buf[12..], &[0x81, 0x00, 0x0a, 0xbc, 0x08, 0x06]);
        assert!(reply_macs(&mut buf, MacAddr([3; 6])));
        assert_eq!(dst_mac(&buf), Some(b));
        assert_eq!(src_mac(&buf), Some(MacAddr([3; 6])));
    }
}
