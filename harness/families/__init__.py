"""Seed model families: bundled reference configs, card figures, and model_type aliases."""

from harness.families.aliases import ALIASES, config_class, is_known, native_model_type
from harness.families.catalog import (
    FAMILIES,
    Family,
    ReferenceModel,
    find_family,
    find_reference,
    reference_models,
)

__all__ = [
    "ALIASES",
    "FAMILIES",
    "Family",
    "ReferenceModel",
    "config_class",
    "find_family",
    "find_reference",
    "is_known",
    "native_model_type",
    "reference_models",
]
