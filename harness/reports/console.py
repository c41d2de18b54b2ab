"""Tables for the terminal: the preflight plan and the portability matrix. They fit 80
columns, and every cell is plain text (a model id or a path is never read as markup)."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

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
FORMAT_HEADERS = {
    "float32": "f32",
    "bfloat16": "bf16",
    "fp8": "fp8",
    "int8": "int8",
    "int4-g128": "int4",
    "nf4": "nf4",
    "gguf-q8_0": "q8_0",
    "gguf-q4_k_m": "q4_K_M",
}


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
    """Models x (parameters, dtype, target, memory needed and available, verdict), in GiB, in
    80 columns: the memory breakdown is `memory_table`'s, the model type is in `plan_notes`."""
    table = _narrow_table(
        "model", "params", "dtype", "on", "needs", "avail.", "verdict",
        title="Fit on this machine (GiB)",
    )  # fmt: skip
    for plan in plans:
        style = _VERDICT_STYLE.get(plan.verdict, "red")
        verdict = Text(plan.verdict, style=style)
        if plan.parameters is None:
            _add_plain(table, plan.model, *["—"] * 5, verdict)
            continue
        count = plan.parameters
        params = _billions(count.total)
        if count.experts:
            params += f"\n({_billions(count.active)} active)"
        _add_plain(
            table,
            plan.model,
            params,
            plan.weights_format or plan.dtype or "?",
            plan.target,
            _number(plan.need_bytes),
            _number(plan.available_bytes),
            verdict,
        )
    return table


def memory_table(plans: list[ModelPlan]) -> Table:
    """Models x what the memory they need is made of, in GiB."""
    table = _narrow_table(
        "model", "weights", "KV cache", "logits", "activ.", "reserve", "needs",
        title="Memory needed (GiB)",
    )  # fmt: skip
    for plan in plans:
        if plan.parameters is None:
            continue
        sizes = (plan.weights_bytes, plan.kv_cache_bytes, plan.logits_bytes,
                 plan.activations_bytes, plan.reserve_bytes)  # fmt: skip
        _add_plain(table, plan.model, *(_number(n) for n in (*sizes, plan.need_bytes)))
    return table


def formats_table(plans: list[ModelPlan]) -> Table:
    """Models x weight memory in each dtype and common quantization, in GiB."""
    table = _narrow_table(
        "model", *(FORMAT_HEADERS[name] for name in FORMATS_SHOWN),
        title="Weights in memory by format (GiB)",
    )  # fmt: skip
    for plan in plans:
        if plan.parameters is None:
            continue
        sizes = weights_by_format(plan.parameters.total)
        _add_plain(table, plan.model, *(_number(sizes[name]) for name in FORMATS_SHOWN))
    return table


def plan_json(hardware: Hardware, plans: list[ModelPlan], problems: dict[str, list[str]]) -> dict:
    """`plan --json`: the hardware, each model's plan with its numbers in bytes, and why an
    engine cannot run here."""
    return {
        "hardware": hardware.to_dict(),
        "models": [plan.to_dict() for plan in plans],
        "engine_problems": problems,
    }


def plan_notes(plans: list[ModelPlan]) -> list[str]:
    """What the tables cannot show: where each architecture came from, and why a fit is unknown."""
    lines = []
    for plan in plans:
        kind = f"{plan.model_type}, " if plan.model_type else ""
        lines.append(f"{plan.model}: {kind}architecture from {plan.config_source}")
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
    mark = {
        True: Text("pass", style="green"),
        False: Text("FAIL", style="red"),
        None: Text("—", style="yellow"),
    }
    for result in results:
        family = result.family
        _add_plain(
            table,
            family.name,
            family.model_type,
            family.covers,
            *(mark[result.checks.get(name)] for name in checks),
            f"{result.seconds:.1f}",
        )
    return table


def _add_plain(table: Table, *cells) -> None:
    table.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in cells))


def _narrow_table(*headers: str, title: str) -> Table:
    """A table for 80 columns: light rules, no outer edge, the first column (model names)
    folded when it must be; numbers right-aligned. Cells are plain text, never markup."""
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column(headers[0], overflow="fold", min_width=8)
    for header in headers[1:]:
        table.add_column(header, justify="right", no_wrap=True)
    return table


def _number(size: int) -> str:
    return f"{size / GIB:,.1f}"


def _gib(size: int) -> str:
    return f"{size / GIB:,.1f} GiB"


def _billions(count: int) -> str:
    return f"{count / 1e9:,.2f}B" if count >= 1e8 else f"{count / 1e6:,.1f}M"
