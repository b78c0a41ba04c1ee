#!/usr/bin/env python3
"""User-space IP-in-IP decapsulator: the tunnel end of a TUN-mode real server in the lab.

    ipip_decap.py --dev NAME [--count-file PATH]

This kernel has no ipip module, so a real server cannot decapsulate the balancer's IP-in-IP
packets itself. This stands in for it: it reads every IPv4 packet of protocol 4 addressed to
the namespace from a raw socket, strips the outer header, and writes the inner packet to a TUN
device NAME (created here, brought up, with reverse-path filtering off), where the kernel
receives it as if it had arrived on a tunnel interface. The inner packet is addressed to the
VIP, which the real server holds on `lo`; its replies go straight to the client.

--count-file: after each packet, the number decapsulated so far is written there (the tests
read it to prove the traffic really came through the tunnel). Runs until SIGTERM. Python
standard library only.
"""

import argparse
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IPPROTO_IPIP = 4


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    for key in ("net/ipv4/conf/%s/rp_filter" % name, "net/ipv4/conf/all/rp_filter"):
        with open("/proc/sys/" + key, "w") as f:
            f.write("0\n")
    return fd


def inner_packet(pkt):
    """The inner IPv4 packet of an IP-in-IP packet (outer header included in `pkt`), or None."""
    if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] != IPPROTO_IPIP:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    total = struct.unpack("!H", pkt[2:4])[0]
    inner = pkt[ihl:total]
    if len(inner) < 20 or inner[0] >> 4 != 4:
        return None
    return inner


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", required=True)
    ap.add_argument("--count-file")
    a = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tun = open_tun(a.dev)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    print("decapsulating IP-in-IP onto %s" % a.dev, flush=True)
    count = 0
    while True:
        inner = inner_packet(sock.recv(65535))
        if inner is None:
            continue
        os.write(tun, inner)
        count += 1
        if a.count_file:
            tmp = a.count_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % count)
            os.replace(tmp, a.count_file)


if __name__ == "__main__":
    main()
