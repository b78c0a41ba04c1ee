#!/usr/bin/env python3
"""Draws the chart of a bench/run.sh results file: forwarded Mpps and busy cycles per packet of
the FullNAT established-flow runs against the number of concurrent flows, with testpmd's I/O
ceiling from the same run for reference.

    python3 bench/plot.py bench/results/DATE.json [OUT.png]

Needs matplotlib (Debian: python3-matplotlib, for /usr/bin/python3).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def flows(text):
    """'1M' -> 1000000."""
    mult = {"K": 10**3, "M": 10**6}.get(text[-1:].upper(), 1)
    return int(float(text.rstrip("KkMm")) * mult)


def series(runs, expect, traffic):
    """(flows, forwarded Mpps, cycles/packet) of the max-rate runs of one mode, by flows."""
    pts = []
    for r in runs:
        g, d = r.get("gen") or {}, r.get("dut") or {}
        if (r["kind"] == "dpvs" and r["status"] == "ok" and r["expect"] == expect
                and r["traffic"] == traffic and g.get("target_rate") is None):
            pts.append((flows(r["flows"]), g["received_pps"] / 1e6, d.get("cycles_per_pkt")))
    return sorted(pts)


def testpmd(runs, mode):
    """Mean (forwarded Mpps, cycles/packet) of the testpmd runs of a mode, or None."""
    v = [((r["gen"] or {}).get("received_pps", 0) / 1e6, r["dut"]["cycles_per_pkt"])
         for r in runs if r["kind"] == "testpmd" and r["expect"] == mode
         and r["status"] == "ok" and r.get("dut") and r["dut"].get("cycles_per_pkt")]
    if not v:
        return None
    return sum(x for x, _ in v) / len(v), sum(y for _, y in v) / len(v)


def main():
    src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else src.rsplit(".", 1)[0] + ".png"
    doc = json.load(open(src))
    runs = doc["runs"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for traffic, style in (("est-tcp", "o-"), ("est-udp", "s--")):
        pts = series(runs, "fnat", traffic)
        if not pts:
            continue
        x = [p[0] for p in pts]
        ax1.plot(x, [p[1] for p in pts], style, label="dpvs FullNAT " + traffic)
        ax2.plot(x, [p[2] for p in pts], style, label="dpvs FullNAT " + traffic)
    for mode, color in (("io", "tab:gray"), ("macswap", "tab:green")):
        t = testpmd(runs, mode)
        if t:
            ax1.axhline(t[0], color=color, ls=":", label="testpmd %s" % mode)
            ax2.axhline(t[1], color=color, ls=":", label="testpmd %s" % mode)
            if mode == "io":
                ax2.axhline(2.5 * t[1], color="tab:red", ls="-.", lw=0.8,
                            label="target: 2.5 x testpmd io")
    for ax, label in ((ax1, "forwarded Mpps"), (ax2, "busy cycles / packet")):
        ax.set_xscale("log")
        ax.set_xlabel("concurrent flows")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    title = "DPVS-RS, 1 worker on memif, %s%s" % (doc.get("date", ""),
                                                  " (smoke)" if doc.get("smoke") else "")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
