"""GGUF weights dequantized once, then loaded from safetensors.

transformers dequantizes a GGUF file on every load (for SmolLM2-135M on two CPU cores, about
20 s with its tokenizer, and twice the weights' size in memory at the peak). The first load
keeps the result, the float tensors and the tokenizer in Hugging Face layout, in a directory
named by the GGUF file's sha256, the dtype and the transformers version; later loads read it
memory-mapped (about 2 s, peak memory near the weights' size). The tensors are exactly the
ones the GGUF load produced, so scores do not change.

The copy is derived data that a later run trusts, so its sha256 is kept beside it and checked
on every load (about a second for 540 MB, which also warms the page cache for the mapped read):
a copy that changed is converted again, and the run's attestation names both the GGUF file
and the copy it read.

transformers refuses `save_pretrained` on a GGUF-loaded model, so the tensors are written with
safetensors' `save_model` (which keeps tied weights tied) and the config without its GGUF
`quantization_config`. The directory is written under a temporary name and renamed when
complete: a crash leaves no half-written entry, and two runs converting at once both succeed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger("harness")

_COMPLETE = "COMPLETE"
_WEIGHTS = "model.safetensors"


class ConvertedGGUF:
    """The converted copy of one GGUF file at one dtype."""

    def __init__(self, root: Path, gguf_sha256: str, dtype: str) -> None:
        import transformers

        name = f"{gguf_sha256[:32]}-{dtype}-transformers{transformers.__version__}"
        self.holder = root / name
        """The one directory the conversion writes in (a sandboxed worker may write only it)."""
        self.directory = self.holder / "copy"
        self.gguf_sha256 = gguf_sha256

    def ready(self) -> bool:
        """Whether a complete converted copy is there to load."""
        return (self.directory / _COMPLETE).is_file()

    def verified(self):
        """The copy's weights file (a `FileDigest`) when it is as written, else None (with a
        warning for a copy that changed)."""
        from harness.digests import hash_files

        if not self.ready():
            return None
        try:
            kept = json.loads((self.directory / _COMPLETE).read_text("utf-8"))["safetensors_sha256"]
            [digest] = hash_files([self.directory / _WEIGHTS])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("GGUF copy %s unreadable (%s); converting again", self.directory, exc)
            return None
        if digest.sha256 != kept:
            log.warning("GGUF copy %s changed since written; converting again", self.directory)
            return None
        return digest

    def store(self, model, tokenizer) -> None:
        """Keep a GGUF-loaded model and its tokenizer; a failure only costs the next load."""
        from safetensors.torch import save_model

        from harness.digests import hash_files

        temporary = self.holder / f".copy.{os.getpid()}.tmp"
        try:
            shutil.rmtree(temporary, ignore_errors=True)
            temporary.mkdir(parents=True)  # holder included
            config = model.config.to_dict()
            config.pop("quantization_config", None)
            (temporary / "config.json").write_text(json.dumps(config, indent=2), "utf-8")
            model.generation_config.save_pretrained(temporary)
            save_model(model, str(temporary / _WEIGHTS))
            tokenizer.save_pretrained(temporary)
            [digest] = hash_files([temporary / _WEIGHTS])
            marker = {"gguf_sha256": self.gguf_sha256, "safetensors_sha256": digest.sha256}
            (temporary / _COMPLETE).write_text(json.dumps(marker, indent=2), "utf-8")
            if self.directory.exists():
                shutil.rmtree(self.directory, ignore_errors=True)
            os.replace(temporary, self.directory)
        except OSError as exc:
            log.warning("could not keep the converted GGUF weights in %s: %s", self.directory, exc)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
