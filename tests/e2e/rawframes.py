#!/usr/bin/env python3
"""Send malformed Ethernet frames at the balancer with an AF_PACKET raw socket.

    rawframes.py --iface eth0 --dst-mac MAC --kind KIND [--count N] [--vip 10.0.0.100]
                 [--src-ip 10.0.0.2] [--src-mac MAC]

kinds: truncated, ihl_short, bad_total_length, bad_ip_checksum, ip_fragment,
       ip_fragment_tail (a non-first fragment: offset 185, MF clear), unknown_ethertype,
       syn_fin, tcp_truncated, valid_udp (a well-formed control frame)
The source MAC is the interface's own unless --src-mac is given.
Run inside the client namespace. Python standard library only."""

import argparse
import socket
import struct
import sys
import time

KINDS = ("truncated", "ihl_short", "bad_total_length", "bad_ip_checksum", "ip_fragment",
         "ip_fragment_tail", "unknown_ethertype", "syn_fin", "tcp_truncated", "valid_udp")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def ipv4(src, dst, proto, payload, ident=1, flags_frag=0, ihl=5, total_len=None,
         bad_csum=False):
    tl = 20 + len(payload) if total_len is None else total_len
    hdr = struct.pack("!BBHHHBBH4s4s", (4 << 4) | ihl, 0, tl, ident, flags_frag, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    c = csum(hdr)
    if bad_csum:
        c ^= 0x5A5A
    hdr = hdr[:10] + struct.pack("!H", c) + hdr[12:]
    return hdr + payload


def udp(src, dst, sport, dport, data):
    u = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, len(u))
    c = csum(pseudo + u) or 0xFFFF
    return u[:6] + struct.pack("!H", c) + u[8:]


def tcp(src, dst, sport, dport, flags, seq=1000):
    t = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(t))
    c = csum(pseudo + t)
    return t[:16] + struct.pack("!H", c) + t[18:]


def frame(kind, i, a):
    src, dst = a.src_ip, a.vip
    sport = 40000 + (i % 20000)
    ident = 0x1000 + i
    if kind == "truncated":  # IPv4 ethertype, only 12 bytes of IP header
        return 0x0800, ipv4(src, dst, 17, udp(src, dst, sport, 53, b"x"), ident)[:12]
    if kind == "ihl_short":  # IHL = 4 (16 bytes) < 5
        return 0x0800, ipv4(src, dst, 17, udp(src, dst, sport, 53, b"x" * 8), ident, ihl=4)
    if kind == "bad_total_length":  # total length far beyond the frame
        return 0x0800, ipv4(src, dst, 17, udp(src, dst, sport, 53, b"x" * 8), ident,
                            total_len=1400)
    if kind == "bad_ip_checksum":
        return 0x0800, ipv4(src, dst, 17, udp(src, dst, sport, 53, b"x" * 8), ident,
                            bad_csum=True)
    if kind == "ip_fragment":  # first fragment (MF set) of a UDP datagram to the VIP
        return 0x0800, ipv4(src, dst, 17, udp(src, dst, sport, 53, b"x" * 16), ident,
                            flags_frag=0x2000)
    if kind == "ip_fragment_tail":  # last fragment (offset 185 * 8 = 1480, MF clear), no L4 header
        return 0x0800, ipv4(src, dst, 17, b"y" * 32, ident, flags_frag=185)
    if kind == "unknown_ethertype":
        return 0x88B5, b"\0" * 46
    if kind == "syn_fin":
        return 0x0800, ipv4(src, dst, 6, tcp(src, dst, sport, 80, 0x03), ident)
    if kind == "tcp_truncated":  # IP fine, TCP header cut to 8 bytes
        return 0x0800, ipv4(src, dst, 6, tcp(src, dst, sport, 80, 0x02)[:8], ident)
    if kind == "valid_udp":
        return 0x0800, ipv4(src, dst, 17, udp(src, dst, sport, 53, b"ping"), ident)
    raise SystemExit("unknown kind %s" % kind)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--dst-mac", required=True)
    ap.add_argument("--kind", required=True, choices=KINDS)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--vip", default="10.0.0.100")
    ap.add_argument("--src-ip", default="10.0.0.2")
    ap.add_argument("--src-mac", help="default: the interface's own MAC")
    ap.add_argument("--interval", type=float, default=0.002)
    a = ap.parse_args()
    if a.src_mac:
        src_mac = mac(a.src_mac)
    else:
        with open("/sys/class/net/%s/address" % a.iface) as f:
            src_mac = mac(f.read().strip())
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    sent = 0
    for i in range(a.count):
        etype, payload = frame(a.kind, i, a)
        s.send(mac(a.dst_mac) + src_mac + struct.pack("!H", etype) + payload)
        sent += 1
        time.sleep(a.interval)
    s.close()
    print('{"kind": "%s", "sent": %d}' % (a.kind, sent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
