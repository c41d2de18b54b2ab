"""`junit.xml`: a run's decisions for CI systems, which show JUnit files natively.

One test case per model x suite x gate, one per model x suite for runs without gates (failed
when the suite did not run), and one for the offline attestation (failed on any network
attempt). A gate's case fails on a `fail` or `missing` check, and on an `inconclusive` or
`insufficient evidence` one when the config makes those fail (`gates.inconclusive_fails`; a
warning in its output otherwise); it is skipped when nothing in it was judged (a partial run,
a regression gate on the first night).

A partial run says so in the name of the document and in a property of every suite; a model
scored by a stand-in is named `id [STAND-IN]` and carries what was configured, what ran, from
where, and its digest as properties.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.record import GateCheckRecord, ModelRecord, RunRecord, as_record
from harness.reports.signoff import (
    WARNING_STATUSES,
    failing_statuses,
    model_label,
    partial_label,
    stand_ins,
)


def render_junit(results: RunRecord | dict) -> str:
    """The JUnit XML document of a run's record."""
    results = as_record(results)
    partial = partial_label(results)
    name = f"harness: {results.run.name}"
    if partial:
        name += f" [{partial}]"
    if found := stand_ins(results):
        name += f" [STAND-IN: {', '.join(s.model for s in found)}]"
    root = ET.Element("testsuites", name=name)
    for model, entry in results.models.items():
        suite_el = ET.SubElement(root, "testsuite", name=model_label(model, results))
        _properties(suite_el, results, partial, entry)
        for case in _cases(results, model, entry):
            suite_el.append(case)
        _count(suite_el)
    offline = ET.SubElement(root, "testsuite", name="offline attestation")
    _properties(offline, results, partial, None)
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


def _properties(
    suite_el: ET.Element, results: RunRecord, partial: str | None, entry: ModelRecord | None
) -> None:
    values: list[tuple[str, str]] = []
    if partial:
        values.append(("partial", partial))
    if entry is not None:
        identity = entry.identity
        if entry.stand_in is not None:
            values += [
                ("stand-in", "STAND-IN: not the model the config names"),
                ("stand_in.configured", entry.stand_in.configured),
                ("stand_in.scored", entry.stand_in.scored),
            ]
        if identity is not None:
            values.append(("identity.location", identity.location))
            if identity.digest:
                values.append(("identity.digest", identity.digest))
    if results.gates is not None and not results.gates.judged:
        values.append(("gates", "not judged (partial run)"))
    if values:
        properties = ET.SubElement(suite_el, "properties")
        for key, value in values:
            ET.SubElement(properties, "property", name=key, value=value)


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
    failing = failing_statuses(gates)
    grouped: dict[tuple[str, str], list[GateCheckRecord]] = {}
    for check in gates.checks:
        if check.model == model:
            grouped.setdefault((check.suite, check.gate), []).append(check)
    for (suite, gate), checks in grouped.items():
        case = ET.Element("testcase", classname=f"{model}.{suite}", name=gate)
        bad = [c for c in checks if c.status in failing]
        lines = [f"{c.task} {c.metric}: {c.status}: {c.detail}" for c in checks]
        if bad:
            ET.SubElement(case, "failure", message="; ".join(
                f"{c.task} {c.status}: {c.detail}" for c in bad
            )).text = "\n".join(lines)  # fmt: skip
        elif all(c.status == "not judged" for c in checks):
            ET.SubElement(case, "skipped", message=checks[0].detail)
        else:
            warned = [c for c in checks if c.status in WARNING_STATUSES]
            notes = [f"WARNING: {c.task} {c.status}: {c.detail}" for c in warned]
            ET.SubElement(case, "system-out").text = "\n".join(notes + lines)
        yield case


def _count(element: ET.Element) -> None:
    cases = list(element.iter("testcase"))
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    element.set("errors", "0")
    element.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
