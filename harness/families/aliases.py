"""Architectures that reuse another one under a new `model_type`, loaded without remote code.

Kimi-K2 ships `model_type: kimi_k2` with `architectures: [DeepseekV3ForCausalLM]` and an
`auto_map` into code in its repo; its tensors are DeepSeek-V3's, so transformers' own
`deepseek_v3` classes load it and nothing shipped with the weights has to run.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import BadInputError

ALIASES: dict[str, str] = {
    "kimi_k2": "deepseek_v3",
}
"""model_type in a config.json -> the transformers model_type that loads it."""


def native_model_type(model_type: str) -> str:
    """The transformers model_type that builds `model_type` (itself when it is not an alias)."""
    return ALIASES.get(model_type, model_type)


def is_known(model_type: str | None) -> bool:
    """Whether the installed transformers builds this model_type, directly or via an alias."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return model_type is not None and native_model_type(model_type) in CONFIG_MAPPING


def config_class(model_type: str):
    """The transformers config class for `model_type`, following aliases."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return CONFIG_MAPPING[native_model_type(model_type)]


def alias_config(directory: Path):
    """The config in `directory` (whose model_type is an alias) as its native config class.

    The alias model_type is dropped, not kept: transformers picks the checkpoint conversions
    (DeepSeek-V3's per-expert tensors fused into one) by `config.model_type`, and under the
    alias name it finds none and leaves the experts randomly initialized.
    """
    values = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    alias = values.pop("model_type")
    return config_class(alias).from_dict(values)


def unknown_architecture(model_type: str | None, where: str) -> BadInputError:
    """The error for a config whose model_type the installed transformers cannot build."""
    import transformers

    aliases = ", ".join(f"{alias} -> {native}" for alias, native in ALIASES.items())
    return BadInputError(
        f"{where}: model_type '{model_type}' is not an architecture transformers "
        f"{transformers.__version__} knows, and it is not an alias harness maps ({aliases}). "
        "Install a transformers version that has it, or, if it reuses a known architecture, "
        "add it to ALIASES in harness/families/aliases.py."
    )
