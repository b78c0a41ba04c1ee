#!/usr/bin/env python3
"""rs_delete: while a long-lived connection is held on one real server, delete that server:
50 new requests all go to the other server, and the held connection is cut cleanly (RST or
EOF reaches the client), not left hanging until a timeout."""

from held import HOLD_S, scenario
from lab import check, main


def body(lab):
    h, rs = scenario(lab, "del")
    check(h["result"] != "completed",
          "the held connection on %s survived the deletion of its real server (%d bytes)"
          % (rs, h["bytes"]))
    check(h["result"] in ("reset", "eof"),
          "the held connection on %s was not cut cleanly: result %s after %ss (%s of %d bytes);"
          " expected a RST or EOF" % (rs, h["result"], h["elapsed_s"], h["bytes"], HOLD_S))
    lab.check_alive()


if __name__ == "__main__":
    main(body)
