"""report.html prints on A4 without clipping: headless Chromium prints a realistic report
(`signable.py`: three models, twelve tasks, long paths, full hashes, a stand-in, a partial
scope, every gate status) to PDF; every page is A4, and the text of the PDF (poppler's
pdftotext, which drops what falls outside a page) holds every model name and every hash in
full, and the first page the verdict, identity, scope and limitations.

Chromium is required in CI (HARNESS_REQUIRE_BROWSER=1), like the other browser tests; the text
checks need poppler-utils (pdftotext) and are skipped without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.reports.html import render_html

from .signable import MODELS, PARTIAL, SKIPPED, STAND_IN, every_hash, signable_record
from .test_html import chromium

A4_POINTS = (595.28, 841.89)


@pytest.fixture(scope="module")
def printed(tmp_path_factory) -> tuple[Path, object]:
    record = signable_record()
    page = tmp_path_factory.mktemp("print") / "report.html"
    page.write_text(render_html(record), encoding="utf-8")
    pdf = page.with_suffix(".pdf")
    proc = chromium(page, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert proc.returncode == 0 and pdf.is_file(), proc.stderr[-2000:]
    return pdf, record


def pdftotext(pdf: Path, *flags: str) -> str:
    tool = shutil.which("pdftotext")
    if tool is None:
        pytest.skip("pdftotext is not installed (apt-get install poppler-utils)")
    proc = subprocess.run(
        [tool, "-raw", *flags, str(pdf), "-"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_page_is_a4(printed):
    pdf, _ = printed
    data = pdf.read_bytes()
    pages = re.findall(rb"/Type\s*/Page\b(?!s)", data)
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert len(pages) > 1 and len(boxes) == len(pages)
    for width, height in boxes:
        assert abs(float(width) - A4_POINTS[0]) < 1.5 and abs(float(height) - A4_POINTS[1]) < 1.5


def test_nothing_is_clipped_at_the_right_edge(printed):
    """Text beyond a page's edge is not in pdftotext's output: a clipped table would lose the
    end of a hash or a path. Hashes may wrap (they break anywhere), so whitespace is dropped."""
    pdf, record = printed
    text = re.sub(r"\s+", "", pdftotext(pdf))
    for model in (*MODELS, SKIPPED):
        assert model in text, model
    for digest in every_hash(record):
        assert digest in text, digest
    assert f"{STAND_IN}[STAND-IN]" in text
    assert re.sub(r"\s+", "", PARTIAL) in text
    for model in MODELS:  # the last column of the widest tables
        assert record.models[model].identity.weight_files[-1].sha256 in text


def test_the_first_page_is_the_page_to_sign(printed):
    pdf, record = printed
    first = re.sub(r"\s+", " ", pdftotext(pdf, "-f", "1", "-l", "1"))
    assert first.startswith(f"india-fallback-2026 {PARTIAL}")
    assert "FAILED: 3 fail, 3 missing, 6 inconclusive" in first
    for heading in ("Verdict", "Models scored", "Scope", "Limitations"):
        assert heading in first, heading
    for model in (*MODELS, SKIPPED):
        assert model in first, model
    squeezed = first.replace(" ", "")
    for model in MODELS:
        assert record.models[model].identity.digest in squeezed, model
    assert "not marked as reviewed by native speakers" in first
    assert "Capture device missing" in first
