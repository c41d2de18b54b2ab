"""report.html opens offline in a real headless Chromium (Debian's package), with no console
messages, shows the verdict first, and links to per-sample logs that exist; junit.xml has one
case per model x suite x gate.

The browser runs in a network namespace with no interface where the test can make one (as
root), so the page could not fetch anything even if it tried. CI installs Chromium and sets
HARNESS_REQUIRE_BROWSER=1, which turns a missing browser into a failure instead of a skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.reports.html import render_html

from ..conftest import only_run_dir, run_harness, write_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FAILED_BANNER = (249, 214, 211)
PASSED_BANNER = (217, 242, 220)


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory, tiny_model_dir) -> Path:
    root = tmp_path_factory.mktemp("gated")
    config = write_config(
        root,
        {
            "name": "gated",
            "description": "Two stand-ins, one gate they pass and one they fail.",
            "models": [
                {"id": "first", "path": str(tiny_model_dir), "device": "cpu"},
                {"id": "second", "path": str(tiny_model_dir), "device": "cpu"},
            ],
            "suites": ["native_hi", "smoke_en"],
            "gates": [
                {"name": "hindi floor", "language": "hi", "metric": "acc", "min": 0.0},
                {"name": "english floor", "suite": "smoke_en", "min": 0.99},
            ],
            # --limit makes the run partial; judge it anyway, on its few items, so that one
            # gate passes and one fails.
            "decision": {"judge_partial": True, "min_items": 1},
        },
    )
    proc = run_harness("run", str(config), "--limit", "4", "--output", str(root / "results"))
    assert proc.returncode == 4, proc.stdout + proc.stderr
    return only_run_dir(root / "results")


def chromium(page: Path, *flags: str) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        if os.environ.get("HARNESS_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={page.parent / '.chromium-profile'}",
        "--enable-logging=stderr", "--v=0", *flags, page.as_uri(),
    ]  # fmt: skip
    if os.geteuid() == 0 and shutil.which("unshare"):
        command = ["unshare", "-n", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def console_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


def banner_pixels(png: Path, colour: tuple[int, int, int]) -> int:
    """Pixels of the banner's colour in the top of the page: the verdict is what shows first."""
    from PIL import Image

    with Image.open(png) as image:
        top = image.convert("RGB").crop((0, 0, image.width, 400))
        return sum(n for n, rgb in top.getcolors(1 << 20) if _close(rgb, colour))


def _close(a, b, tolerance=4) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def test_the_page_asks_for_nothing_outside_itself(gated_run):
    html = (gated_run / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<link" not in html and "@import" not in html and "url(" not in html


def test_html_opens_in_chromium_and_shows_the_verdict_first(gated_run):
    page = gated_run / "report.html"
    dom = chromium(page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_lines(dom) == []
    text = re.sub(r"<[^>]+>", " ", dom.stdout)
    assert re.search(r"FAILED:\s+2 fail,\s+2 pass", text)
    assert text.index("Verdict") < text.index("Scores") < text.index("Offline attestation")
    assert "english floor" in text and "smoke_en" in text and "native_hi_mc" in text

    shot = gated_run / "report.png"
    proc = chromium(page, f"--screenshot={shot}", "--window-size=1280,1600")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    assert console_lines(proc) == []
    assert banner_pixels(shot, FAILED_BANNER) > 20_000  # the red FAILED banner, at the top
    assert banner_pixels(shot, PASSED_BANNER) < 5_000


def test_a_passing_run_shows_a_green_verdict(gated_run, tmp_path):
    results = json.loads((gated_run / "results.json").read_text())
    results["gates"].update(passed=True, counts={"pass": 4})
    for check in results["gates"]["checks"]:
        check["status"] = "pass"
    page = tmp_path / "report.html"
    page.write_text(render_html(results), encoding="utf-8")
    shot = tmp_path / "report.png"
    proc = chromium(page, f"--screenshot={shot}", "--window-size=1280,1600")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert banner_pixels(shot, PASSED_BANNER) > 20_000
    assert banner_pixels(shot, FAILED_BANNER) < 5_000


def test_links_lead_to_the_per_sample_logs(gated_run):
    html = (gated_run / "report.html").read_text(encoding="utf-8")
    links = re.findall(r'href="([^"]+)"', html)
    assert len(links) == 2 * 3  # two models x (native_hi_mc, native_hi_gen, smoke_en)
    for link in links:
        lines = (gated_run / link).read_text(encoding="utf-8").splitlines()
        assert len(lines) == 4 and json.loads(lines[0])["doc_id"] == 0


def test_junit_has_a_case_per_model_suite_and_gate(gated_run):
    root = ET.parse(gated_run / "junit.xml").getroot()
    cases = {(case.get("classname"), case.get("name")): case for case in root.iter("testcase")}
    assert set(cases) == {
        ("first.native_hi", "hindi floor"), ("first.smoke_en", "english floor"),
        ("second.native_hi", "hindi floor"), ("second.smoke_en", "english floor"),
        ("offline", "no network attempt"),
    }  # fmt: skip
    assert cases[("first.smoke_en", "english floor")].find("failure") is not None
    assert cases[("first.native_hi", "hindi floor")].find("failure") is None
    assert root.get("tests") == "5" and root.get("failures") == "2"
