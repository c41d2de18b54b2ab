"""Peak memory is measured per phase, not since the process began (the phases of a real run
and each model's throughput are checked in test_run.py)."""

from __future__ import annotations

from harness.phases import PhaseClock, peak_rss_bytes


def test_each_phase_has_its_own_peak_memory():
    clock = PhaseClock()
    with clock.phase("model_load"):
        ballast = bytearray(300 * 2**20)  # touched: resident
        ballast[::4096] = b"\1" * len(ballast[::4096])
        del ballast
    with clock.phase("scoring"):
        pass
    phases = clock.to_dict()
    assert list(phases) == ["model_load", "scoring"]
    grew = phases["model_load"]["peak_rss_bytes"] - phases["scoring"]["peak_rss_bytes"]
    assert grew > 250 * 2**20, phases  # the 300 MiB are not charged to the next phase
    assert peak_rss_bytes() < phases["model_load"]["peak_rss_bytes"]
