"""Models: find their files (`resolve`) and load them (`load`)."""

from harness.models.load import LoadedModel, load_model
from harness.models.resolve import ModelSource, resolve_model_source

__all__ = [
    "LoadedModel",
    "ModelSource",
    "load_model",
    "resolve_model_source",
]
