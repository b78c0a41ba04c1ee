#!/usr/bin/env python3
"""Write a dpvs config for one lab run, derived from conf/demo.toml.

    labconf.py --prefix PREFIX [--workers N] [--replace OLD NEW]... [--in FILE] [--out FILE]

--prefix   becomes the EAL --file-prefix (the DPDK runtime directory) and the instance name, so
           runs never collide
--workers  sets [workers] count
--replace  replaces the first occurrence of the text OLD with NEW (tests use it to make a bad
           config); it is an error if OLD is absent
The result must still be valid TOML (checked with tomllib). Python standard library only.
"""

import argparse
import os
import re
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--workers", type=int)
    ap.add_argument("--replace", nargs=2, action="append", default=[], metavar=("OLD", "NEW"))
    ap.add_argument("--in", dest="src", default=os.path.join(HERE, "..", "conf", "demo.toml"))
    ap.add_argument("--out", default="-")
    a = ap.parse_args()

    with open(a.src) as f:
        text = f.read()
    text, n = re.subn(r'("--file-prefix",\s*)"[^"]*"', r'\g<1>"%s"' % a.prefix, text)
    if n != 1:
        sys.exit("labconf: no --file-prefix in %s" % a.src)
    # The instance name too: the daemon claims it machine-wide, and two labs (a test and the
    # demo, or two helpers' tests) must be able to run side by side.
    if re.search(r"(?m)^\s*instance\s*=", text):
        text = re.sub(r'(?m)^(\s*instance\s*=\s*)"[^"]*"', r'\g<1>"%s"' % a.prefix, text, count=1)
    elif re.search(r"(?m)^\[control\]", text):
        text = re.sub(r"(?m)^\[control\]\n", '[control]\ninstance = "%s"\n' % a.prefix, text,
                      count=1)
    else:
        text += '\n[control]\ninstance = "%s"\n' % a.prefix
    if a.workers is not None:
        text, n = re.subn(r"(?m)^(\s*count\s*=\s*)\d+", r"\g<1>%d" % a.workers, text, count=1)
        if n != 1:
            sys.exit("labconf: no [workers] count in %s" % a.src)
    for old, new in a.replace:
        if old not in text:
            sys.exit("labconf: %r not found in %s" % (old, a.src))
        text = text.replace(old, new, 1)
    tomllib.loads(text)  # still TOML
    if a.out == "-":
        sys.stdout.write(text)
    else:
        with open(a.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
