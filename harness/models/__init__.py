"""Models: find their files (`resolve`), fingerprint them (`identity`), load them (`load`)."""

from harness.models.identity import WeightFile, hash_weight_files
from harness.models.load import LoadedModel, load_model
from harness.models.resolve import ModelSource, resolve_model_source

__all__ = [
    "LoadedModel",
    "ModelSource",
    "WeightFile",
    "hash_weight_files",
    "load_model",
    "resolve_model_source",
]
