#!/usr/bin/env python3
"""rs_weight0_drain: while a long-lived connection is held on one real server, set that
server's weight to 0: 50 new requests all go to the other server, and the held connection
completes intact."""

from held import HOLD_S, scenario
from lab import check, main


def body(lab):
    h, rs = scenario(lab, "edit")
    check(h["result"] == "completed" and h["bytes"] == HOLD_S,
          "the held connection on %s did not complete after weight 0: result %s, %s of %d bytes"
          " after %ss" % (rs, h["result"], h["bytes"], HOLD_S, h["elapsed_s"]))
    lab.check_alive()


if __name__ == "__main__":
    main(body)
