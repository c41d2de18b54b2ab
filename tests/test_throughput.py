"""Peak memory is measured per phase, not since the process began (the phases of a real run
and each model's throughput are checked in test_run.py). The clock runs in a fresh process, as
in `harness run`."""

from __future__ import annotations

import json
import subprocess
import sys

PROGRAM = """
import json
from harness.phases import PhaseClock, peak_rss_bytes

clock = PhaseClock()
with clock.phase("model_load"):
    ballast = bytearray(300 * 2**20)
    ballast[::4096] = b"\\1" * len(ballast[::4096])  # touched: resident
    del ballast
with clock.phase("scoring"):
    pass
print(json.dumps({"phases": clock.to_dict(), "now": peak_rss_bytes()}))
"""


def test_each_phase_has_its_own_peak_memory():
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)
    phases = measured["phases"]
    assert list(phases) == ["model_load", "scoring"]
    grew = phases["model_load"]["peak_rss_bytes"] - phases["scoring"]["peak_rss_bytes"]
    assert grew > 250 * 2**20, phases  # the 300 MiB are not charged to the next phase
    assert measured["now"] < phases["model_load"]["peak_rss_bytes"]
