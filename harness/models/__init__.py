"""Models: find their files (`resolve`), load them (`load`), and the engine that runs them
(`engines`: transformers, or vLLM for models spread over many GPUs)."""

from harness.models.load import LoadedModel, load_model
from harness.models.resolve import ModelSource, resolve_model_source

__all__ = [
    "LoadedModel",
    "ModelSource",
    "load_model",
    "resolve_model_source",
]
