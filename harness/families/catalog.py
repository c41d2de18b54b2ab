"""The seed model families and their bundled reference configs (data in `reference/`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

_REFERENCE = resources.files("harness.families") / "reference"


@dataclass(frozen=True)
class ReferenceModel:
    """A seed model: its repo id, the bundled config that gives its shapes, and its card figures."""

    repo: str
    family: str
    """The transformers `model_type` of the model (or its alias)."""
    config_file: str | None
    """Bundled config.json copy in `harness/families/reference/`; None when none was found."""
    card_total: float | None = None
    """Total parameters in billions, as the model card states them."""
    card_active: float | None = None
    card_includes_mtp: bool = False
    tolerance: float = 0.01
    note: str = ""

    def config(self) -> dict:
        """The bundled config.json as a dict; raises LookupError when none was found."""
        if self.config_file is None:
            raise LookupError(f"no config.json was found for {self.repo}: {self.note}")
        return reference_config(self.config_file)


@dataclass(frozen=True)
class Family:
    """One architecture line that `harness selftest` checks."""

    name: str
    model_type: str
    reference: str | None
    """Repo id whose bundled config is shrunk; None: transformers' own defaults for model_type."""
    covers: str


FAMILIES: tuple[Family, ...] = (
    Family("qwen2.5", "qwen2", "Qwen/Qwen2.5-7B", "Qwen2.5, R1-Distill-Qwen"),
    Family("k2-think", "qwen2", "LLM360/K2-Think", "K2-Think (Qwen2.5-32B shapes)"),
    Family("qwen3", "qwen3", "Qwen/Qwen3-8B", "Qwen3 dense"),
    Family("qwen3-moe", "qwen3_moe", "Qwen/Qwen3-30B-A3B", "Qwen3 MoE"),
    Family("glm-4", "glm4", None, "GLM-4-0414 (transformers defaults: no config found)"),
    Family("glm-4.5", "glm4_moe", "zai-org/GLM-4.5", "GLM-4.5, 4.5-Air, 4.6"),
    Family("deepseek-v2", "deepseek_v2", "deepseek-ai/DeepSeek-V2-Lite", "DeepSeek-V2 (MLA)"),
    Family("deepseek-v3", "deepseek_v3", "deepseek-ai/DeepSeek-V3", "DeepSeek-V3, R1"),
    Family("deepseek-v3.2", "deepseek_v32", "deepseek-ai/DeepSeek-V3.2", "DeepSeek-V3.2(-Exp)"),
    Family("kimi-k2", "kimi_k2", "moonshotai/Kimi-K2-Instruct", "Kimi-K2 (alias of deepseek_v3)"),
)


@cache
def reference_models() -> tuple[ReferenceModel, ...]:
    """Every seed model listed in `reference/models.yaml`, found or not."""
    data = yaml.safe_load((_REFERENCE / "models.yaml").read_text(encoding="utf-8"))
    return tuple(
        ReferenceModel(
            repo=entry["repo"],
            family=entry["family"],
            config_file=entry.get("config"),
            card_total=entry.get("card_total"),
            card_active=entry.get("card_active"),
            card_includes_mtp=entry.get("card_includes_mtp", False),
            tolerance=entry.get("tolerance", 0.01),
            note=" ".join(entry.get("note", "").split()),
        )
        for entry in data["models"]
    )


def find_reference(repo: str) -> ReferenceModel | None:
    """The seed model with this repo id (case-insensitive), if harness knows it."""
    wanted = repo.lower()
    return next((m for m in reference_models() if m.repo.lower() == wanted), None)


def find_family(name: str) -> Family:
    """The family called `name`; raises KeyError listing the known names."""
    for family in FAMILIES:
        if family.name == name:
            return family
    raise KeyError(f"unknown family '{name}'; known: {', '.join(f.name for f in FAMILIES)}")


@cache
def reference_config(file_name: str) -> dict:
    """A bundled config.json, parsed (cached; callers must not mutate it)."""
    return json.loads((_REFERENCE / file_name).read_text(encoding="utf-8"))
