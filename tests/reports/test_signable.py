"""A report ready to sign: a partial run says so in the first lines of report.md, report.html
and junit.xml; a stand-in is marked wherever its name appears; the first screen has the
verdict, the identity of what was scored, the scope, the limitations and a signature block;
gate statuses have their colour, order and counts; chance levels show. Real rendering of a
crafted record (`signable.py`), no mocks."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from harness.record import RunRecord
from harness.reports.html import render_html
from harness.reports.junit import render_junit
from harness.reports.markdown import render_report

from ..records import crafted_record
from .signable import (
    CHANCE,
    LANGUAGES,
    MODELS,
    PARTIAL,
    SKIPPED,
    STAND_IN,
    STATUSES,
    gen_task,
    mc_task,
    signable_record,
)

MARK = "[STAND-IN]"


class TextNodes(HTMLParser):
    """Every text node of a page, with the element it is in."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.nodes: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag not in ("br", "meta", "input", "img", "rect", "line"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop() != tag:
            pass

    def handle_data(self, data):
        if data.strip():
            self.nodes.append((self.stack[-1] if self.stack else "", data.strip()))


def text_nodes(html: str) -> list[tuple[str, str]]:
    parser = TextNodes()
    parser.feed(html)
    return parser.nodes


def visible_text(html: str) -> str:
    """The text of a page or a part of it: block elements apart, inline ones joined."""
    body = html[html.index("<body>") :] if "<body>" in html else html
    body = re.sub(r"<style>.*?</style>", " ", body, flags=re.S)
    body = re.sub(r"</?(span|b|code|a)\b[^>]*>", "", body)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Each table's body rows (header and rule left out), as cells."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
        elif current:
            tables.append(current[2:])
            current = []
    return tables


def html_tables(html: str) -> list[list[str]]:
    """Each table's rows, as their raw HTML."""
    return [
        re.findall(r"<tr[^>]*>.*?</tr>", table, flags=re.S)
        for table in re.findall(r"<table[^>]*>.*?</table>", html, flags=re.S)
    ]


def status_cells(html: str) -> list[tuple[str, str]]:
    """(class, text) of the status cell of every row of the gate check table."""
    table = re.search(r'<table class="checks">.*?</table>', html, flags=re.S).group(0)
    rows = [row for row in re.findall(r"<tr>.*?</tr>", table, flags=re.S) if "<td" in row]
    cells = [re.findall(r'<td class="(s-[^"]*)">([^<]*)</td>', row)[-1] for row in rows]
    assert len(cells) == len(rows)
    return cells


def background(style: str, css_class: str) -> str | None:
    """The background colour a stylesheet gives a class (in its first rule that sets one)."""
    found = re.search(rf"\.{css_class}\b[^{{]*\{{[^}}]*background: (#\w+)", style)
    return found.group(1) if found else None


@pytest.fixture(scope="module")
def record():
    return signable_record()


# ---- partial: the first lines ---------------------------------------------------------------


def test_markdown_says_partial_in_its_first_lines(record):
    lines = render_report(record).splitlines()
    assert lines[0] == "# Run `india-fallback-2026`"
    assert PARTIAL in "\n".join(lines[:3])
    assert "30 of 1,119 items" in lines[2]


def test_html_says_partial_before_anything_else(record):
    html = render_html(record)
    assert "(PARTIAL)" in re.search(r"<title>(.*?)</title>", html).group(1)
    text = visible_text(html)
    assert text.strip().startswith(f"india-fallback-2026 {PARTIAL}")
    assert re.search(r'<div class="banner partial"[^>]*>PARTIAL: 30 of 1,119 items', html)


def test_junit_says_partial_in_its_first_lines_and_every_suite(record):
    xml = render_junit(record)
    assert PARTIAL in xml.splitlines()[1]  # the <testsuites> element
    root = ET.fromstring(xml)
    for suite in root.iter("testsuite"):
        properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert properties["partial"] == PARTIAL, suite.get("name")


def test_a_full_run_has_no_partial_label():
    full = signable_record(partial=False)
    assert "PARTIAL" not in render_report(full)
    assert "PARTIAL" not in visible_text(render_html(full))
    assert "PARTIAL" not in render_junit(full)


# ---- stand-ins: marked wherever the name appears --------------------------------------------


def test_markdown_marks_the_stand_in_in_every_row_and_line(record):
    text = render_report(record)
    tables = markdown_tables(text)
    with_model = [t for t in tables if any(STAND_IN in cell for row in t for cell in row)]
    # verdict, identity, checks, by language, 6 score tables, generation, tokenizer, models,
    # speed
    assert len(with_model) == 14
    for table in with_model:
        for row in table:
            for cell in row:
                if STAND_IN in cell:
                    assert MARK in cell, row
    for line in text.splitlines():
        if STAND_IN in line:
            assert MARK in line, line
    other = MODELS[1]
    assert all(MARK not in cell for t in tables for row in t for cell in row if cell == other)


def test_markdown_has_a_stand_in_block_near_the_top(record):
    head = "\n".join(render_report(record).splitlines()[:8])
    digest = record.models[STAND_IN].identity.digest
    location = record.models[STAND_IN].identity.location
    assert "STAND-IN" in head and "Qwen/Qwen2.5-7B-Instruct" in head
    assert digest in head and location in head


def test_html_marks_the_stand_in_in_every_row_label_and_text(record):
    html = render_html(record)
    for tag, text in text_nodes(html):
        if STAND_IN in text:
            assert MARK in text, (tag, text)
    tables = [rows for rows in html_tables(html) if any(STAND_IN in row for row in rows)]
    # verdict, identity, checks, heatmap, generation, tokenizer, timings, speed, suite files,
    # files read
    assert len(tables) >= 10
    for rows in tables:
        for row in rows:
            if STAND_IN in re.sub(r'href="[^"]*"', "", row):
                assert MARK in row, row
    labels = re.findall(r'<text[^>]*text-anchor="end">([^<]*)</text>', html)
    charts = [label for label in labels if STAND_IN in label]
    assert len(charts) == 2 * len(LANGUAGES)  # a bar per chart, every chart
    assert all(MARK in label for label in charts)


def test_html_stand_in_banner_names_what_ran(record):
    html = render_html(record)
    banner = re.search(r'<div class="banner standin">(.*?)</div>', html, flags=re.S).group(1)
    identity = record.models[STAND_IN].identity
    assert identity.digest in banner and identity.location in banner
    assert "Qwen/Qwen2.5-7B-Instruct" in banner
    assert html.index("banner standin") < html.index('id="verdict"')
    verdict = html[html.index('id="verdict"') : html.index('id="identity"')]
    assert f"Scored with stand-ins, not the configured models: {STAND_IN} {MARK}" in verdict


def test_junit_names_the_stand_in_with_what_ran(record):
    root = ET.fromstring(render_junit(record))
    assert "STAND-IN" in root.get("name")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert f"{STAND_IN} {MARK}" in suites and STAND_IN not in suites
    stand_in = suites[f"{STAND_IN} {MARK}"]
    properties = {p.get("name"): p.get("value") for p in stand_in.iter("property")}
    identity = record.models[STAND_IN].identity
    assert properties["identity.digest"] == identity.digest
    assert properties["identity.location"] == identity.location
    assert properties["stand_in.configured"] == "Qwen/Qwen2.5-7B-Instruct"
    assert MARK not in suites[MODELS[1]].get("name")
    assert "stand_in.configured" not in {p.get("name") for p in suites[MODELS[1]].iter("property")}


# ---- the first screen -----------------------------------------------------------------------


def test_html_first_screen_is_verdict_identity_scope_limitations_signature(record):
    html = render_html(record)
    marks = ['id="verdict"', 'id="identity"', 'id="scope"', 'id="limitations"',
             'id="signature"', 'id="checks"', 'class="heat"']  # fmt: skip
    positions = [html.index(mark) for mark in marks]
    assert positions == sorted(positions)
    first = visible_text(html[: html.index('id="checks"')])
    for model in (*MODELS, SKIPPED):
        assert model in first
    identity = record.models[MODELS[1]].identity
    assert f"org/{MODELS[1]}@{identity.commit}" in first
    assert identity.digest in html[: html.index('id="scope"')]  # shortened, full in title
    assert f'title="{identity.digest}"' in html
    assert record.lock.sha256 in first and "verified" in first
    rendered = record.models[MODELS[1]].chat_template_sha256[:12]
    for expected in ("30 of 1,119 items (PARTIAL)", "Few-shot 3", "bfloat16 on cuda:0",
                     "NVIDIA H200", "bn, hi, mr, ta, te, ur (6)", "6 suites, 12 tasks",
                     f"{MODELS[2]}: off", f"{MODELS[1]}: on, rendered {rendered}"):  # fmt: skip
        assert expected in first, expected
    signature = first[first.index("Signature") :]
    for field in ("Name", "Role", "Organisation", "Date", "Signature"):
        assert field in signature
    assert record.config_hash in signature
    assert f"harness attest {record.run.directory} --verify KEY.pub" in signature
    assert "attestation.intoto.json" in signature


def test_limitations_list_what_is_true(record):
    html = render_html(record)
    limits = visible_text(re.search(r'<ul class="limits">.*?</ul>', html, flags=re.S).group(0))
    assert "PARTIAL: 30 of 1,119 items" in limits
    assert f"STAND-IN: {STAND_IN} {MARK}" in limits
    assert "not marked as reviewed by native speakers: native_hi, native_bn" in limits
    assert "Capture device missing: no /dev/net/tun in this host" in limits
    assert f"Below chance: guessing would score higher: {MODELS[2]} on native_ur_mc" in limits
    for absent in ("Sandbox not enforced", "Kernel layer", "Network attempts", "Gates not judged"):
        assert absent not in limits, absent


def test_limitations_of_an_unprotected_unjudged_run():
    document = signable_record(judged=False).model_dump()
    document["offline"]["sandbox"].update(enforced=False, reason="bubblewrap missing")
    document["offline"]["kernel"].update(enforced=False, reason="no seccomp")
    document["offline"]["attempts"] = [
        {"event": "socket.connect", "host": "huggingface.co", "port": 443, "time": "t"}
    ]
    record = RunRecord.model_validate(document)
    text = render_report(record)
    limits = text[text.index("## Limitations") : text.index("## Signature")]
    assert "**Sandbox not enforced**: bubblewrap missing" in limits
    assert "**Kernel layer not enforced**: no seccomp" in limits
    assert "**Network attempts**: 1 during the run (huggingface.co)" in limits
    assert "**Gates not judged**" in limits
    assert "Capture device missing" not in limits  # no sandbox: no capture device to miss


def test_markdown_opens_with_the_page_to_sign_and_keeps_its_sections(record):
    text = render_report(record)
    order = ["## Verdict", "## Models scored", "## Scope", "## Limitations", "## Signature",
             "## Gate checks", "## Scores", "### By language", "## Generation",
             "## Tokenizer fitness", "## Models", "## Suites", "## Environment",
             "## Offline attestation"]  # fmt: skip
    positions = [text.index(f"\n{heading}\n") for heading in order]
    assert positions == sorted(positions)
    identity = record.models[MODELS[1]].identity
    head = text[: text.index("## Gate checks")]
    assert identity.digest in head and f"org/{MODELS[1]}@{identity.commit}" in head
    assert record.lock.sha256 in head and record.config_hash in head
    assert "- Few-shot: 3" in head and "| Name |" in head


# ---- gate statuses --------------------------------------------------------------------------


def test_html_gives_every_status_its_colour_order_and_count(record):
    html = render_html(record)
    cells = status_cells(html)
    statuses = [cls.split()[0].removeprefix("s-").replace("-", " ") for cls, _ in cells]
    assert statuses == sorted(statuses, key=STATUSES.index)  # worst first
    assert {s: statuses.count(s) for s in set(statuses)} == record.gates.counts
    failing = {"fail", "missing", "inconclusive", "insufficient evidence"}
    for (cls, text), status in zip(cells, statuses, strict=True):
        assert text.startswith(status)
        assert ("failing" in cls.split()) == (status in failing), (cls, status)
    style = re.search(r"<style>(.*?)</style>", html, flags=re.S).group(1)
    colour = {status: background(style, "s-" + status.replace(" ", "-")) for status in STATUSES}
    assert all(colour.values()), colour
    assert colour["fail"] == colour["missing"] != colour["pass"]
    assert colour["inconclusive"] == colour["insufficient evidence"]
    assert len({colour["fail"], colour["inconclusive"], colour["not judged"], colour["pass"]}) == 4
    banner = re.search(r'<div class="verdict (\w+)">\s*(.*?)\s*</div>', html, flags=re.S)
    assert banner.group(1) == "failed"
    assert banner.group(2).startswith(
        "FAILED: 3 fail, 3 missing, 6 inconclusive, 3 insufficient evidence, 3 not judged, 3 pass"
    )


def test_html_explains_the_interval_and_shows_it(record):
    html = render_html(record)
    assert "only when the whole 95% interval of the margin" in html
    assert "fail the run unless <code>decision.inconclusive_fails: false</code>" in html
    assert "fewer than 30 items" in html
    assert "0.350 ± 0.048 (5 items)" in html and "-0.150 [-0.240, -0.060]" in html
    assert "wilson 95%" in html and "exact binomial 95%" in html
    assert "noise" not in html


def test_inconclusive_is_a_warning_when_the_config_says_so():
    record = signable_record(inconclusive_fails=False)
    cells = status_cells(render_html(record))
    for cls, text in cells:
        failing = "failing" in cls.split()
        assert failing == text.startswith(("fail", "missing")), (cls, text)
    text = render_report(record)
    assert "are warnings and do not fail the run" in text
    assert "| inconclusive: " in text and "| **fail**: " in text
    root = ET.fromstring(render_junit(record))
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    warned = cases[(f"{MODELS[0]}.native_ta", "knowledge floor")]  # inconclusive
    assert warned.find("failure") is None
    assert warned.find("system-out").text.startswith("WARNING: native_ta_mc inconclusive")


def test_junit_maps_each_status(record):
    root = ET.fromstring(render_junit(record))
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    for check in record.gates.checks:
        case = cases[(f"{check.model}.{check.suite}", check.gate)]
        if check.status in ("fail", "missing", "inconclusive", "insufficient evidence"):
            assert case.find("failure") is not None, check.status
        elif check.status == "not judged":
            assert case.find("skipped") is not None and case.find("failure") is None
        else:
            assert case.find("failure") is None and case.find("skipped") is None
    model_suites = [s for s in root.iter("testsuite") if s.get("name") != "offline attestation"]
    per_model = len(LANGUAGES) + 1
    assert [int(s.get("tests")) for s in model_suites] == [per_model] * 3 + [0]
    assert sum(int(s.get("failures")) for s in model_suites) == 3 * (per_model - 2)
    assert sum(int(s.get("skipped")) for s in model_suites) == 3


def test_a_partial_run_is_not_judged_anywhere():
    record = signable_record(judged=False)
    text = render_report(record)
    assert "**NOT JUDGED (partial run)**: 21 not judged." in text
    html = render_html(record)
    banner = re.search(r'<div class="verdict (\w+)">\s*(.*?)\s*</div>', html, flags=re.S)
    assert banner.group(1) == "notjudged"
    assert banner.group(2).startswith("NOT JUDGED (partial run): 21 not judged")
    root = ET.fromstring(render_junit(record))
    gate_cases = [c for c in root.iter("testcase") if c.get("classname") != "offline"]
    assert gate_cases and all(c.find("skipped") is not None for c in gate_cases)
    assert root.get("failures") == "0"


# ---- chance ---------------------------------------------------------------------------------


def test_markdown_shows_chance_and_marks_scores_below_it(record):
    text = render_report(record)
    for language in LANGUAGES:
        assert f"| {language} ({mc_task(language)}; chance {CHANCE:.3f}) |" in text
        assert f"({gen_task(language)}; chance" not in text
    rows = [line for line in text.splitlines() if "below chance**" in line and line[0] == "|"]
    assert rows and all(line.startswith(f"| {MODELS[2]} ") for line in rows)
    assert "0.200 ± 0.048 **below chance**" in text


def test_html_draws_chance_in_every_multiple_choice_chart(record):
    html = render_html(record)
    charts = re.findall(r'<div class="chart">.*?</div>', html, flags=re.S)
    assert len(charts) == 2 * len(LANGUAGES)
    for chart in charts:
        multiple_choice = "_mc " in chart
        lines = re.findall(r'<line class="chance" x1="([\d.]+)"[^>]*stroke-dasharray', chart)
        assert len(lines) == (1 if multiple_choice else 0), chart[:80]
    below = [c for c in charts if "▼ below chance" in c]
    assert len(below) == 1 and "native_ur_mc" in below[0]
    heat = re.search(r'<table class="heat">.*?</table>', html, flags=re.S).group(0)
    assert heat.count('class="below"') == 1
    assert heat.count(f'<td class="num">{CHANCE:.3f}</td>') == len(LANGUAGES)


def test_html_heatmap_has_a_legend(record):
    html = render_html(record)
    legend = re.search(r'<div class="legend" id="legend">(.*?)\n</div>', html, flags=re.S).group(1)
    assert legend.count("<rect") >= 11
    text = visible_text(legend)
    assert "0 0.5 1 (chrF 100)" in text
    assert "grey" in text and "not scored" in text
    assert "failed" in text and "did not run" in text
    assert "below chance" in text


# ---- records from before these fields -------------------------------------------------------


def test_a_record_without_scope_stand_ins_or_gates_still_renders():
    record = crafted_record(
        suites={"smoke_en": {"tasks": ["smoke_en"], "languages": {"smoke_en": "en"}}},
        models={
            "tiny": {
                "status": "ok",
                "suites": {"smoke_en": {"status": "ok", "tasks": {"smoke_en": {
                    "metrics": {"acc,none": 0.5, "acc_stderr,none": 0.1},
                    "n_samples": {"original": 10, "effective": 10}}}}},
            }
        },
    )  # fmt: skip
    text = render_report(record)
    assert "**NO GATES**" in text and "- Items scored: 10 items" in text
    assert "PARTIAL" not in text and MARK not in text
    assert "| tiny | 0.500 ± 0.100 |" in text
    html = render_html(record)
    assert 'class="verdict nogates"' in html and MARK not in html
    assert "PARTIAL" not in visible_text(html)
    root = ET.fromstring(render_junit(record))
    assert root.get("name") == "harness: t" and root.get("failures") == "0"
