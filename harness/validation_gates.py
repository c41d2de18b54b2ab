"""`validate`'s gate checks: each gate's suites, tasks, languages and metric exist in the
config's suites, found from the task YAML (`harness.suites.metrics`) before anything is
scored. Without them a misspelt metric is found only after hours of scoring, when the gate has
nothing to judge."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.config import Gate, RunConfig
    from harness.suites.catalog import SuiteCatalog, SuiteInfo


def check_gates(
    config: RunConfig, catalog: SuiteCatalog | None, infos: dict[str, SuiteInfo], report
) -> None:
    """Add to `report` a finding for each gate that names something the config's suites do
    not have (`infos`: the suites that could be read, from `catalog`)."""
    if not config.gates or catalog is None:
        return
    metrics = _metrics_by_task(catalog, infos)
    unread = [s for s in config.suites if s not in infos]
    for gate in config.gates:
        subject = f"gate {gate.label()}"
        picked, unknown = _selected(gate, infos)
        if unknown and not unread:
            report.add("error", subject, unknown, "Name one of the config's suites or tasks.")
            continue
        if unknown:
            report.add(
                "warning",
                subject,
                f"{unknown} (suite {', '.join(unread)} could not be read, so this is not sure)",
            )
            continue
        picked = list(dict.fromkeys(picked))  # a suite that is one task is named twice
        if gate.metric is None or not picked:
            continue
        known = {task: metrics.get(task) for task in picked}
        reported = set().union(*(m for m in known.values() if m is not None))
        unsure = sorted(task for task, m in known.items() if m is None)
        if gate.metric in reported:
            continue
        if unsure:
            report.add(
                "warning",
                subject,
                f"metric '{gate.metric}': not reported by any task whose YAML names its metrics;"
                f" not checked for {', '.join(unsure[:5])} (metrics set in Python code)",
            )
            continue
        report.add(
            "error",
            subject,
            f"metric '{gate.metric}' is not reported by the tasks it selects "
            f"({_short(picked)}): they report {', '.join(sorted(reported)) or 'nothing'}. "
            "The gate would have nothing to judge after scoring.",
            f"Set `metric:` to one of {', '.join(sorted(reported))}, or leave it out (each "
            "task's primary metric)."
            if reported
            else "Leave `metric:` out.",
        )


def _selected(gate: Gate, infos: dict[str, SuiteInfo]) -> tuple[list[str], str | None]:
    """The suites and tasks the gate selects, as `harness.gates` will; and what it names that
    none of the suites has."""
    if gate.suite is not None:
        names = gate.names("suite")
        missing = [n for n in names if n not in infos]
        picked = [t for n in names if n in infos for t in (n, *infos[n].tasks)]
        what = "suite"
    elif gate.task is not None:
        names = gate.names("task")
        every = {t for name, info in infos.items() for t in (name, *info.tasks)}
        missing = [n for n in names if n not in every]
        picked = [n for n in names if n in every]
        what = "task"
    else:
        names = gate.names("language")
        languages = {lang for info in infos.values() for lang in info.languages.values()}
        missing = [n for n in names if n not in languages]
        picked = [
            t
            for info in infos.values()
            for t, lang in info.languages.items()
            if lang in names  # fmt: skip
        ]
        what = "language"
    if not missing:
        return picked, None
    return picked, (
        f"names {what} {', '.join(repr(n) for n in missing)}, which no suite of the config has "
        f"(suites: {', '.join(infos) or 'none readable'})"
    )


def _metrics_by_task(catalog: SuiteCatalog, infos: dict[str, SuiteInfo]) -> dict[str, set | None]:
    """Suite or task name -> the metrics its YAML reports (None: not said in YAML)."""
    from harness.suites.metrics import reported_metrics

    index = catalog.manager_for(list(infos)).task_index if infos else {}
    found: dict[str, set | None] = {}
    for name, info in infos.items():
        for task in (name, *info.tasks):
            entry = index.get(task)
            cfg = (entry.cfg or {}) if entry is not None else {}
            if entry is not None and entry.kind.name == "GROUP" and not cfg:
                found[task] = set()  # a group without an aggregate reports nothing itself
            else:
                found[task] = reported_metrics(cfg) if entry is not None else None
    return found


def _short(names: list[str]) -> str:
    return ", ".join(names[:4]) + (f", +{len(names) - 4} more" if len(names) > 4 else "")
