"""The GGUF converter in its own sandbox, so that an entry of the machine-wide cache is made by a
process that runs no evaluated code.

A scoring worker imports task modules and may run a model's shipped code; if it wrote the cache,
such code could leave altered weights that a later run, of another config, would load as the
real model. The converter sees only the Python installation, harness, the model's files
(read-only) and one staging directory (writable), and runs only transformers' GGUF reader
(`harness.models.gguf_cache.convert`). The supervisor then hashes what it wrote and records the
manifest; workers see the finished entry read-only. Its network attempts are recorded like a
worker's, under the model's name.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from harness.models.gguf_cache import ConversionFailed, converter_command
from harness.sandbox.bwrap import Layout, SandboxUnavailable, python_paths


def convert_in_sandbox(job, spec, source, destination: Path, dtype: str) -> None:
    """Write the converted copy of `source`'s GGUF file into `destination` (a new directory
    inside a staging directory), from a sandboxed child; ConversionFailed if it did not."""
    from harness.sandbox.supervise import _death, model_paths, start_observed

    scratch = Path(tempfile.mkdtemp(prefix=f"harness-convert-{spec.id}-"))
    layout = Layout(
        read_only=[Path("/usr"), Path("/etc"), *python_paths(), *model_paths(source)],
        writable=[scratch, destination.parent],
    )
    command = converter_command(source, dtype, destination)
    listener = capture = None
    try:
        try:
            sandboxed, listener, capture = start_observed(
                command, layout, scratch, job.evidence, spec.id
            )
        except SandboxUnavailable as exc:
            raise ConversionFailed(f"its sandbox did not start: {exc}") from None
        code = sandboxed.popen.wait()
    finally:
        time.sleep(0.1)  # the last calls of a dying converter reach the listener
        for watcher in (listener, capture):
            if watcher is not None:
                watcher.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    if code != 0:
        raise ConversionFailed(f"the converter stopped ({_death(code)}); see run.log")
