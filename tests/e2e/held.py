"""The drain / delete scenario shared by t_rs_weight0_drain and t_rs_delete."""

import json
import time

from lab import RS_TCP, SVC_TCP, VIP_URL, Fail, check, say, wait_for

HOLD_S = 6


def start_hold(lab):
    """Start a long-lived connection; return (process, stdout path, rs name, start time)."""
    t0 = time.time()
    proc, out, err = lab.client_bg(["hold", VIP_URL, str(HOLD_S), "--gap-timeout", "4"], "hold")

    def which():
        for rs in ("rs1", "rs2"):
            for rec in lab.rs_log(rs):
                if rec.get("event") == "hold_start" and rec.get("t", 0) >= t0 - 1:
                    return rs
        if proc.poll() is not None:
            with open(out) as f:
                raise Fail("hold client ended before reaching a server: %s" % f.read()[-300:])
        return None
    rs = wait_for(which, 10, interval=0.1, what="the held connection to reach a real server")
    say("held connection is on", rs)
    return proc, out, rs, t0


def finish_hold(proc, out, timeout):
    try:
        proc.wait(timeout)
    except Exception:  # noqa: BLE001
        proc.kill()
        raise Fail("hold client still running %ss later" % timeout)
    with open(out) as f:
        lines = [ln for ln in f.read().splitlines() if ln.startswith("{")]
    check(lines, "hold client printed no summary")
    r = json.loads(lines[-1])
    say("hold result:", r)
    return r


def scenario(lab, verb):
    proc, out, rs, t0 = start_hold(lab)
    other = "rs2" if rs == "rs1" else "rs1"
    time.sleep(1.0)  # the connection is established and has carried data
    if verb == "edit":
        lab.ctl_ok(["rs", "edit", SVC_TCP, RS_TCP[rs], "--weight", "0"], json_out=False)
        say("dpvs-ctl rs edit %s %s --weight 0: done" % (SVC_TCP, RS_TCP[rs]))
    else:
        lab.ctl_ok(["rs", "del", SVC_TCP, RS_TCP[rs]], json_out=False)
        say("dpvs-ctl rs del %s %s: done" % (SVC_TCP, RS_TCP[rs]))

    r = lab.client(["http-seq", VIP_URL, "50"], timeout=60, allow_fail=True)
    say("50 new requests:", r["ok"], "ok", r["servers"], r["errors"])
    check(r["failed"] == 0 and r["ok"] == 50, "new requests failed: %s (first: %s)"
          % (r["errors"], (r["first_errors"] or [""])[0]))
    check(r["servers"] == {other: 50},
          "after %s of %s, new requests went to %s; expected all 50 on %s"
          % ("weight 0" if verb == "edit" else "deleting", rs, r["servers"], other))

    h = finish_hold(proc, out, HOLD_S + 20)
    check(h.get("server") in (None, rs), "hold client says it was on %s, the log says %s"
          % (h.get("server"), rs))
    return h, rs
