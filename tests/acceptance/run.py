#!/usr/bin/env python3
"""Runs the shared acceptance checks (../shared/acceptance/contract.py) and judges them.

Every check must pass, except the ones named in disputed.txt beside this file: checks we
believe are wrong, each with the evidence and the issue whose note reports it. A disputed
check that fails is still printed, and counted, as a failure; it only does not fail the
run. A disputed check that passes is reported too, so that the list is kept short. Any
other failure, a group that did not run to its end, or a run that did not reach its
summary line fails the run.

Usage: run.py CONTRACT GROUP... (the gateway binary comes from WASMGATE_BIN, as
contract.py reads it).
"""

import os
import re
import subprocess
import sys

DISPUTED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "disputed.txt")
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")


def disputed_names(path=DISPUTED):
    """The check names in `path`: one per line; `#` lines say why, blank lines separate."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#")]


def check_name(fail_line, names):
    """The disputed name a `FAIL name: detail` line is for, if any."""
    text = fail_line[len("FAIL "):]
    return next((n for n in names if text == n or text.startswith(n + ": ")), None)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    contract, groups = sys.argv[1], sys.argv[2:]
    names = disputed_names()
    proc = subprocess.Popen([sys.executable, contract, *groups], stdout=subprocess.PIPE, text=True)
    failed, disputed, summary = [], [], None
    for line in proc.stdout:
        print(line, end="", flush=True)
        line = line.rstrip("\n")
        if line.startswith("FAIL "):
            name = check_name(line, names)
            (disputed if name else failed).append(name or line)
        elif line.startswith("PASS ") and line[len("PASS "):] in names:
            print(f"NOTE a disputed check passed; if it keeps passing, take it out of {DISPUTED}: {line[5:]}")
        summary = SUMMARY.match(line) or summary
    code = proc.wait()
    print()
    if summary is None:
        print(f"acceptance: contract.py ended (exit {code}) without its summary line")
        return 1
    print(f"acceptance: {summary.group(1)} passed, {summary.group(2)} failed, of which "
          f"{len(disputed)} disputed (not passes: see {os.path.relpath(DISPUTED)} for why each is wrong)")
    for name in disputed:
        print(f"  disputed: {name}")
    if failed:
        print(f"acceptance: {len(failed)} failure(s) not disputed:")
        for line in failed:
            print(f"  {line}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
