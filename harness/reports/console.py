"""Tables for the terminal: the preflight plan and the portability matrix."""

from __future__ import annotations

from rich.table import Table

from harness.capacity.hardware import Hardware
from harness.capacity.memory import GIB
from harness.capacity.preflight import ModelPlan, weights_by_format

_VERDICT_STYLE = {"fits": "green", "tight": "yellow", "unknown": "yellow"}
FORMATS_SHOWN = (
    "float32",
    "bfloat16",
    "fp8",
    "int8",
    "int4-g128",
    "nf4",
    "gguf-q8_0",
    "gguf-q4_k_m",
)


def hardware_line(hardware: Hardware) -> str:
    """One line: CPU memory, then each GPU with its memory, compute capability and bf16."""
    cpu = (
        f"CPU RAM {_gib(hardware.cpu_total_bytes)} ({_gib(hardware.cpu_available_bytes)} available)"
    )
    if not hardware.gpus:
        return f"this machine: {cpu}; no GPU seen by torch"
    gpus = "; ".join(
        f"cuda:{g.index} {g.name} {_gib(g.total_bytes)} ({_gib(g.free_bytes)} free, "
        f"cc {g.compute_capability}, bf16 {'yes' if g.bf16 else 'no'})"
        for g in hardware.gpus
    )
    return f"this machine: {cpu}; {gpus}"


def plan_table(plans: list[ModelPlan]) -> Table:
    """Models x (parameters, dtype, target, memory needed and available, verdict)."""
    table = Table(
        "model",
        "type",
        "params",
        "active",
        "dtype",
        "on",
        "weights",
        "KV cache",
        "logits",
        "needs",
        "available",
        "verdict",
        title="Fit on this machine",
    )
    for plan in plans:
        style = _VERDICT_STYLE.get(plan.verdict, "red")
        verdict = f"[{style}]{plan.verdict}[/{style}]"
        if plan.parameters is None:
            table.add_row(plan.model, plan.model_type or "?", *["—"] * 9, verdict)
            continue
        count = plan.parameters
        table.add_row(
            plan.model,
            plan.model_type,
            _billions(count.total),
            _billions(count.active) if count.experts else "=",
            plan.dtype,
            plan.target,
            _gib(plan.weights_bytes),
            _gib(plan.kv_cache_bytes),
            _gib(plan.logits_bytes),
            _gib(plan.need_bytes),
            _gib(plan.available_bytes),
            verdict,
        )
    return table


def formats_table(plans: list[ModelPlan]) -> Table:
    """Models x weight memory in each dtype and common quantization."""
    table = Table("model", *FORMATS_SHOWN, title="Weights in memory by format")
    for plan in plans:
        if plan.parameters is None:
            continue
        sizes = weights_by_format(plan.parameters.total)
        table.add_row(plan.model, *(_gib(sizes[name]) for name in FORMATS_SHOWN))
    return table


def plan_notes(plans: list[ModelPlan]) -> list[str]:
    """What the tables cannot show: where each architecture came from, and why a fit is unknown."""
    lines = []
    for plan in plans:
        lines.append(f"{plan.model}: architecture from {plan.config_source}")
        if plan.verdict not in ("fits", "unknown"):
            lines.append(f"  {plan.explain()}")
        if plan.note:
            lines.append(f"  {plan.note}")
        if plan.parameters is not None and plan.parameters.mtp:
            lines.append(
                f"  plus {_billions(plan.parameters.mtp)} in multi-token-prediction layers the "
                "checkpoint ships and transformers does not load"
            )
    return lines


def selftest_table(results, checks: tuple[str, ...]) -> Table:
    """Families x checks, pass or fail, with the time each family took."""
    table = Table("family", "model_type", "covers", *checks, "s", title="Portability matrix")
    mark = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "[yellow]—[/yellow]"}
    for result in results:
        family = result.family
        table.add_row(
            family.name,
            family.model_type,
            family.covers,
            *(mark[result.checks.get(name)] for name in checks),
            f"{result.seconds:.1f}",
        )
    return table


def _gib(size: int) -> str:
    return f"{size / GIB:,.1f} GiB"


def _billions(count: int) -> str:
    return f"{count / 1e9:,.2f}B" if count >= 1e8 else f"{count / 1e6:,.1f}M"
