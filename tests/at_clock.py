"""Run a Python module as if the wall clock read another moment: the tests' fixed clocks.

    python tests/at_clock.py 2027-03-01T09:30:00+00:00 -m crabglamp.cli demo --no-serve

The clock starts at that moment and runs on at the real pace (time-machine's `tick`), so a
server started this way ages like any other while its tests run. Only the wall clock moves:
monotonic clocks, which event loops and timeouts use, are left alone.
"""

from __future__ import annotations

import os
import runpy
import sys
from datetime import datetime

import time_machine


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "-m":
        raise SystemExit("usage: at_clock.py ISO-MOMENT -m MODULE [ARGS...]")
    moment = datetime.fromisoformat(argv[0])
    if moment.tzinfo is None:
        raise SystemExit("the moment needs its UTC offset, e.g. 2027-03-01T09:30:00+00:00")
    module, rest = argv[2], argv[3:]
    time_machine.travel(moment, tick=True).start()
    sys.argv = [module, *rest]
    sys.path[0] = os.getcwd()  # as `python -m` has it, not this file's folder
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
