"""`junit.xml`: a run's decisions for CI systems, which show JUnit files natively.

One test case per model x suite x gate (failed when a check of that gate on a task of that
suite failed or had no score; skipped when it could not be judged, such as a regression gate
on the first run), one per model x suite for runs without gates (failed when the suite did not
run), and one for the offline attestation (failed on any network attempt).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.gates import FAILING
from harness.record import GateCheckRecord, ModelRecord, RunRecord, as_record


def render_junit(results: RunRecord | dict) -> str:
    """The JUnit XML document of a run's record."""
    results = as_record(results)
    root = ET.Element("testsuites", name=f"harness: {results.run.name}")
    for model, entry in results.models.items():
        suite_el = ET.SubElement(root, "testsuite", name=model)
        for case in _cases(results, model, entry):
            suite_el.append(case)
        _count(suite_el)
    offline = ET.SubElement(root, "testsuite", name="offline attestation")
    attempts = results.offline.attempts
    case = ET.SubElement(offline, "testcase", classname="offline", name="no network attempt")
    if attempts:
        targets = ", ".join(sorted({f"{a.host}:{a.port or ''}" for a in attempts}))
        ET.SubElement(case, "failure", message=f"{len(attempts)} network attempt(s): {targets}")
    _count(offline)
    _count(root)
    root.set("time", f"{results.run.wall_seconds or 0:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _cases(results: RunRecord, model: str, entry: ModelRecord):
    gates = results.gates
    if gates is None:
        for suite in results.config["suites"]:
            scored = entry.suites.get(suite)
            case = ET.Element("testcase", classname=f"{model}.{suite}", name="scored")
            case.set("time", f"{(scored.seconds if scored else 0) or 0:.3f}")
            if scored is None or scored.status != "ok":
                why = (scored.error if scored else None) or entry.error or "not scored"
                ET.SubElement(case, "failure", message=why)
            yield case
        return
    grouped: dict[tuple[str, str], list[GateCheckRecord]] = {}
    for check in gates.checks:
        if check.model == model:
            grouped.setdefault((check.suite, check.gate), []).append(check)
    for (suite, gate), checks in grouped.items():
        case = ET.Element("testcase", classname=f"{model}.{suite}", name=gate)
        bad = [c for c in checks if c.status in FAILING]
        lines = [f"{c.task} {c.metric}: {c.status}: {c.detail}" for c in checks]
        if bad:
            ET.SubElement(case, "failure", message="; ".join(
                f"{c.task} {c.status}: {c.detail}" for c in bad
            )).text = "\n".join(lines)  # fmt: skip
        elif all(c.status == "not judged" for c in checks):
            ET.SubElement(case, "skipped", message=checks[0].detail)
        else:
            ET.SubElement(case, "system-out").text = "\n".join(lines)
        yield case


def _count(element: ET.Element) -> None:
    cases = list(element.iter("testcase"))
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    element.set("errors", "0")
    element.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
