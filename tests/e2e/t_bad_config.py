#!/usr/bin/env python3
"""bad_config: a config with one bad value (a scheduler, a flag it does not have, a netmask or
table size out of range, limits upside down, ...) makes dpvs exit non-zero within a few seconds, with
exactly one line on stderr that names the offending key. dpvs runs inside the lab's balancer
namespace, so a config wrongly accepted would really start (and be caught still running)."""

import os
import re
import subprocess
import time

from lab import Fail, dpvs_cmd, main, say

# (key that must be named, text in conf/demo.toml, replacement)
CASES = [
    ("sched", 'sched = "rr"', 'sched = "fastest"'),
    ("forward", 'forward = "fnat"', 'forward = "teleport"'),
    ("addr", 'addr = "10.0.0.1/24"', 'addr = "10.0.0.1/33"'),
    ("count", "count = 2", 'count = "two"'),
    ("weight", "weight = 1", "weight = -1"),
    ("sched_flags", 'sched = "rr"', 'sched = "sh"\nsched_flags = ["mh-port"]'),
    ("netmask", 'sched = "rr"', 'sched = "rr"\npersistent = 60\nnetmask = 33'),
    ("persistent", 'sched = "rr"', 'sched = "rr"\npersistent = -5'),
    ("mh_table_size", 'sched = "rr"', 'sched = "mh"\nmh_table_size = 65536'),
    ("lower", "weight = 1", "weight = 1\nupper = 5\nlower = 10"),
]
LIMIT_S = 5


def body(lab):
    problems = []
    env = {k: v for k, v in os.environ.items() if k not in ("RUST_LOG", "RUST_BACKTRACE")}
    for key, old, new in CASES:
        cfg = lab.write_config(replace=[(old, new)],
                               path=os.path.join(lab.state, "bad-%s.toml" % key))
        cmd = lab.nsexec("lb", dpvs_cmd() + ["--config", cfg, "--ipc",
                                             os.path.join(lab.state, "bad.sock")])
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=LIMIT_S, env=env)
        except subprocess.TimeoutExpired:
            problems.append("%s: %r accepted, dpvs still running after %ds" % (key, new, LIMIT_S))
            continue
        dt = time.monotonic() - t0
        err = p.stderr.decode("utf-8", "replace")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        say("%s = %s -> exit %d in %.2fs, stderr: %r" % (key, new.split("=", 1)[1].strip(),
                                                        p.returncode, dt, err[:300]))
        if p.returncode == 0:
            problems.append("%s: %r accepted (exit 0)" % (key, new))
        elif len(lines) != 1:
            problems.append("%s: %d stderr lines, expected exactly 1" % (key, len(lines)))
        elif not re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(key), lines[0]):
            problems.append("%s: the error line does not name the key: %r" % (key, lines[0]))
    if problems:
        raise Fail("; ".join(problems))


if __name__ == "__main__":
    main(body, start_dpvs=False)
