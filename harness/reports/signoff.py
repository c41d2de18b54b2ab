"""The facts the three reports share, so report.md, report.html and junit.xml say the same
thing in the same words: a model's label (`model_label`: a stand-in is marked in every table),
the partial-run label, the stand-ins, the limitations, the scope, what a signature covers, and
the order and failing set of the gate statuses."""

from __future__ import annotations

from dataclasses import dataclass

from harness.evaluation import primary_metric
from harness.record import GateCheckRecord, GatesRecord, ModelRecord, RunRecord, as_record

STAND_IN_MARK = "[STAND-IN]"
STATUS_ORDER = ("fail", "missing", "inconclusive", "insufficient evidence", "not judged", "pass")
"""Gate statuses, worst first: the order of every tally and check table."""
WARNING_STATUSES = ("inconclusive", "insufficient evidence")
"""Failing when `gates.inconclusive_fails`, a warning otherwise."""


def model_label(model_id: str, results: RunRecord) -> str:
    """A model's name as every table shows it: `id [STAND-IN]` when another model was scored
    in its place, so that no row can be read as the model the config named."""
    entry = results.models.get(model_id)
    return f"{model_id} {STAND_IN_MARK}" if entry is not None and entry.stand_in else model_id


def status_rank(status: str | None) -> int:
    """Where a gate status sorts: worst first, unknown ones last."""
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)


def failing_statuses(gates: GatesRecord) -> frozenset[str]:
    """The statuses that fail the run: inconclusive ones too unless the config says not."""
    failing = {"fail", "missing"}
    if gates.inconclusive_fails:
        failing.update(WARNING_STATUSES)
    return frozenset(failing)


def verdict_word(gates: GatesRecord | None) -> str:
    """PASSED, FAILED, NOT JUDGED (a partial run), or NO GATES."""
    if gates is None:
        return "NO GATES"
    if not gates.judged:
        return "NOT JUDGED (partial run)"
    return "PASSED" if gates.passed else "FAILED"


def tally(gates: GatesRecord) -> str:
    """`2 fail, 1 inconclusive, 9 pass`: the counts, worst first."""
    counts = gates.counts
    return ", ".join(f"{counts[s]} {s}" for s in sorted(counts, key=status_rank) if counts[s])


def partial_label(results: RunRecord) -> str | None:
    """`PARTIAL: 30 of 1,119 items (why)` for a run that covered less than its config; None
    for a full run, or a record written before runs said so."""
    scope = results.scope
    if scope is None or not scope.partial:
        return None
    text = f"PARTIAL: {_items(scope.items_scored, scope.items_total)}"
    return text + (f" ({'; '.join(scope.reasons)})" if scope.reasons else "")


@dataclass(frozen=True)
class StandInFacts:
    """A stand-in as the reports shout it: what the config named, what ran, from where."""

    model: str
    label: str
    configured: str
    scored: str
    location: str | None
    digest: str | None


def stand_ins(results: RunRecord) -> list[StandInFacts]:
    """Every model scored in place of the one the config names."""
    out = []
    for model_id, entry in results.models.items():
        if entry.stand_in is None:
            continue
        identity = entry.identity
        out.append(
            StandInFacts(
                model=model_id,
                label=model_label(model_id, results),
                configured=entry.stand_in.configured,
                scored=entry.stand_in.scored,
                location=identity.location if identity else None,
                digest=identity.digest if identity else None,
            )
        )
    return out


def stand_in_text(s: StandInFacts) -> str:
    """One line of the stand-in block, in plain text."""
    return (
        f"{s.label}: the config names {s.configured}; scored instead: {s.scored} "
        f"(ran from {s.location or 'not recorded'}, digest {s.digest or 'not recorded'})"
    )


def limitations(results: RunRecord) -> list[tuple[str, str]]:
    """What limits the decision, as (title, text) pairs, each present only when true."""
    out: list[tuple[str, str]] = []
    if results.status != "complete":
        code = "-" if results.exit_code is None else results.exit_code
        out.append(("Run not complete", f"status {results.status}, exit code {code}"))
    if partial := partial_label(results):
        out.append(("PARTIAL", partial.removeprefix("PARTIAL: ")))
    elif results.scope is None:
        for model_id, entry in results.models.items():
            if entry.status != "ok":
                label = model_label(model_id, results)
                out.append(("Model not scored", f"{label}: {entry.status} {entry.error or ''}"))
    for s in stand_ins(results):
        out.append((STAND_IN_MARK.strip("[]"), stand_in_text(s)))
    unreviewed = list(results.suites)
    if unreviewed:
        out.append(
            (
                "Native-speaker review",
                "suites not marked as reviewed by native speakers: " + ", ".join(unreviewed),
            )
        )
    offline = results.offline
    sandbox = offline.sandbox
    if not sandbox.enforced:
        out.append(("Sandbox not enforced", sandbox.reason or "not recorded"))
    elif sandbox.capture is None or not sandbox.capture.enabled:
        why = sandbox.capture.reason if sandbox.capture else None
        out.append(("Capture device missing", why or "not recorded"))
    if not offline.kernel.enforced:
        out.append(("Kernel layer not enforced", offline.kernel.reason or "not recorded"))
    if offline.isolation.fallback:
        out.append(("Network namespace not isolated", offline.isolation.reason or "fallback"))
    guard = offline.guard
    if not guard.installed or not guard.self_test.passed:
        state = "not installed" if not guard.installed else "self-test failed"
        out.append(("Network guard", state))
    if attempts := offline.attempts:
        hosts = ", ".join(sorted({a.host for a in attempts}))
        out.append(("Network attempts", f"{len(attempts)} during the run ({hosts})"))
    gates = results.gates
    if gates is None:
        out.append(("No gates", "the config sets none: scores only, no pass or fail"))
    elif not gates.judged:
        out.append(("Gates not judged", "a partial run is not a decision"))
    if below := below_chance(results):
        out.append(
            (
                "Below chance",
                "guessing would score higher: "
                + "; ".join(
                    f"{model_label(m, results)} on {t} ({v:.3f} < {c:.3f})" for m, t, v, c in below
                ),
            )
        )
    return out


def below_chance(results: RunRecord) -> list[tuple[str, str, float, float]]:
    """(model, task, score, chance) for every multiple-choice score below chance."""
    out = []
    for model_id, entry in results.models.items():
        for suite in entry.suites.values():
            for task_name, task in suite.tasks.items():
                _, value, _ = primary_metric(task.metrics)
                if task.chance is not None and value is not None and value < task.chance:
                    out.append((model_id, task_name, value, task.chance))
    return out


def chance_of(results: RunRecord, task: str) -> float | None:
    """The chance level of a multiple-choice task (the same for every model that scored it)."""
    for entry in results.models.values():
        for suite in entry.suites.values():
            found = suite.tasks.get(task)
            if found is not None and found.chance is not None:
                return found.chance
    return None


def scope_facts(results: RunRecord) -> list[tuple[str, str]]:
    """What the run covered, as (name, text) pairs: languages, suites and tasks, items,
    few-shot, chat template per model, dtype and device per model, hardware."""
    infos = results.suites.values()
    languages = sorted({language for info in infos for language in info.languages.values()})
    tasks = list(dict.fromkeys(t for info in results.suites.values() for t in info.tasks))
    suites = list(results.config.get("suites") or results.suites)
    scope = results.scope
    if scope is not None:
        items = _items(scope.items_scored, scope.items_total)
        if scope.partial:
            items += " (PARTIAL)"
    else:
        items = _items(_items_scored(results), None)
    few_shot = results.config.get("num_fewshot")
    facts = [
        ("Languages", ", ".join(languages) + f" ({len(languages)})" if languages else "—"),
        ("Suites", f"{', '.join(suites)} ({len(suites)} suites, {len(tasks)} tasks)"),
        ("Items scored", items),
        ("Few-shot", "each task's own setting" if few_shot is None else str(few_shot)),
        ("Chat template", "; ".join(_chat_template_text(m, results) for m in results.models)),
        (
            "dtype, device",
            "; ".join(
                f"{model_label(m, results)}: "
                + (f"{e.dtype or '—'} on {e.device or '—'}" if e.dtype or e.device else e.status)
                for m, e in results.models.items()
            ),
        ),
        ("Hardware", hardware_line(results.environment)),
    ]
    return facts


def configured_model(results: RunRecord, model_id: str) -> dict:
    """The config's entry for a model (empty for a record without one)."""
    for spec in results.config.get("models") or []:
        if isinstance(spec, dict) and spec.get("id") == model_id:
            return spec
    return {}


def _chat_template_text(model_id: str, results: RunRecord) -> str:
    used = configured_model(results, model_id).get("chat_template")
    state = "—" if used is None else ("on" if used else "off")
    rendered = results.models[model_id].chat_template_sha256
    text = f"{model_label(model_id, results)}: {state}"
    return text + (f", rendered {short_hash(rendered)}" if rendered else "")


def hardware_line(environment: dict) -> str:
    """One line: CPU, CPU count and memory, then each GPU with its memory."""
    hw = environment.get("hardware") or {}
    memory = hw.get("memory_bytes")
    text = f"{hw.get('cpu') or '?'}, {hw.get('cpu_count') or '?'} CPUs"
    text += f", {memory / 2**30:.1f} GiB RAM" if memory else ""
    gpus = hw.get("gpus") or []
    if gpus:
        text += "; " + ", ".join(
            f"{g.get('name', '?')} ({(g.get('memory_bytes') or 0) / 2**30:.1f} GiB)" for g in gpus
        )
    else:
        text += "; no GPU"
    return text + (f"; {hw['os']}" if hw.get("os") else "")


def repo_at_commit(entry: ModelRecord) -> str | None:
    """`org/name@commit` for a model resolved from a repo, else None."""
    identity = entry.identity
    if identity is None or not identity.repo:
        return None
    pinned = identity.commit or identity.revision
    return f"{identity.repo}@{pinned}" if pinned else identity.repo


def short_hash(value: str | None, length: int = 12) -> str:
    if not value:
        return "—"
    return value if len(value) <= length else value[:length] + "…"


def signed_statement(results: RunRecord) -> list[str]:
    """What a signature on the report covers, in plain sentences."""
    run = results.run
    return [
        f"Run {run.name}, started {run.started}, run directory {run.directory}.",
        f"Config {run.config_file or '(not recorded)'}, sha256 {results.config_hash}.",
        f"harness {results.harness_version or '?'}; this report is built from results.json in "
        "that directory.",
        "results.json is signed separately if attestation.intoto.json exists in the run "
        f"directory: verify with `harness attest {run.directory} --verify KEY.pub`.",
    ]


SIGNATURE_FIELDS = ("Name", "Role", "Organisation", "Date", "Signature")


def check_score(check: GateCheckRecord) -> str:
    """`0.620 ± 0.049 (100 items)`."""
    if check.value is None:
        return "—"
    text = f"{check.value:.3f}"
    if check.stderr is not None:
        text += f" ± {check.stderr:.3f}"
    if check.items is not None:
        text += f" ({check.items:,} items)"
    return text


def check_margin(check: GateCheckRecord) -> str:
    """`+0.020 [-0.030, +0.070]`: the margin and its confidence interval."""
    if check.margin is None:
        return "—"
    text = f"{check.margin:+.3f}"
    if check.margin_low is not None and check.margin_high is not None:
        text += f" [{check.margin_low:+.3f}, {check.margin_high:+.3f}]"
    return text


def gates_rule_text(gates: GatesRecord) -> str:
    """The one explanation above the check table: what passing means, and what inconclusive
    does to the run."""
    consequence = (
        "fail the run unless `decision.inconclusive_fails: false`"
        if gates.inconclusive_fails
        else "are warnings and do not fail the run (`decision.inconclusive_fails: false`)"
    )
    return (
        f"A check passes only when the whole {gates.confidence:.0%} interval of the margin "
        "(score minus threshold) is at or above 0. Inconclusive: the interval straddles 0; "
        f"insufficient evidence: fewer than {gates.min_items:,} items; both {consequence}."
    )


def _items(scored: int, total: int | None) -> str:
    return f"{scored:,} of {total:,} items" if total is not None else f"{scored:,} items"


def _items_scored(results: RunRecord) -> int:
    """Items scored over every model and task (not groups), for a record without a scope."""
    leaves = {t for info in results.suites.values() for t in info.tasks}
    return sum(
        task.n_samples.effective
        for entry in results.models.values()
        for suite in entry.suites.values()
        for name, task in suite.tasks.items()
        if task.n_samples and name in leaves
    )


# ---- report.md -------------------------------------------------------------------------------


def sandbox_warning(results: RunRecord | dict) -> str | None:
    """The first-lines label of a run whose evaluated code was not sandboxed."""
    if as_record(results).offline.sandbox.enforced:
        return None
    return (
        "NOT SANDBOXED: the evaluated code ran inside harness's own process "
        "(offline.sandbox: false); the offline evidence comes from inside that process only."
    )


def task_hashes(results: RunRecord, tasks: list[str]) -> list[tuple[str, dict[str, str]]]:
    """(task, {model id: lm-eval's task hash}) for each of `tasks` that has a hash."""
    out = []
    for task in dict.fromkeys(tasks):
        found = {
            model_id: result.task_hash
            for model_id, entry in results.models.items()
            for suite in entry.suites.values()
            if (result := suite.tasks.get(task)) is not None and result.task_hash
        }
        if found:
            out.append((task, found))
    return out
