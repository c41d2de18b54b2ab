"""Which files make a model or a task what it is: everything that shapes its outputs.

A model is more than its weights: `config.json` (rope_theta, rms_norm_eps), the generation
config, the tokenizer files and chat template, code shipped with the weights, and anything
else in its folder that a loader or that code may read. A task is its YAML (with the files it
includes), the Python modules beside it (`!function`), and its data. Each of these files is
hashed by the supervisor; the digests key the resume cache, are pinned by `harness lock`, and
are re-checked by `harness attest`.

Files that cannot change a score are left out, so a README edit does not invalidate a cache:
documentation, images, and weight files in formats the loader does not read (a repo that has
both `*.safetensors` and `pytorch_model.bin`, or Meta's `original/consolidated.*.pth`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

WEIGHT_SUFFIXES = {
    ".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".h5", ".msgpack", ".onnx", ".gguf",
    ".tflite", ".ot", ".npz",
}  # fmt: skip
"""Formats of weights: hashed when the loader reads them (`weight_files`), skipped otherwise."""

_DOCUMENTATION = re.compile(
    r"^(readme|license|licence|notice|use_policy|model_card|citation)([._-].*)?$|"
    r"\.(md|markdown|rst|png|jpe?g|gif|svg|webp|pdf)$|^\.gitattributes$|^\.gitignore$",
    re.IGNORECASE,
)

ROLES = ("weights", "config", "tokenizer", "chat template", "code", "other")


def model_files(directory: Path, weight_files: list[Path], gguf: bool) -> list[tuple[Path, str]]:
    """(path, role) of every file of a model that shapes its outputs, weights first.

    A GGUF file carries its own configuration, tokenizer and chat template: it is the whole
    model. A model folder contributes every file but documentation, hidden files and weights
    in formats not loaded, in its subfolders too."""
    files = [(path, "weights") for path in weight_files]
    if gguf:
        return files
    loaded = {p.resolve() for p in weight_files}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if _DOCUMENTATION.search(path.name):
            continue
        if path.resolve() in loaded:
            continue  # listed above
        if path.suffix.lower() in WEIGHT_SUFFIXES and not _is_tokenizer(path.name):
            continue  # weights in a format the loader does not read
        files.append((path, _role(path.name)))
    return files


def _is_tokenizer(name: str) -> bool:
    # A few tokenizers ship as `*.model`/`*.bin`-like files (`tokenizer.bin` is rare, but a
    # SentencePiece model named `*.model` is common): those are not weights.
    return name.lower().startswith(("tokenizer", "spiece", "sentencepiece", "vocab"))


def _role(name: str) -> str:
    lower = name.lower()
    if "chat_template" in lower:
        return "chat template"
    if lower.endswith(".py"):
        return "code"
    if lower.startswith(
        (
            "tokenizer",
            "vocab",
            "merges",
            "special_tokens",
            "added_tokens",
            "spiece",
            "sentencepiece",
        )
    ) or lower.endswith((".tiktoken", ".model")):
        return "tokenizer"  # fmt: skip
    if lower.endswith(".json") and "config" in lower or lower.endswith(".index.json"):
        return "config"
    return "other"


def task_files(yaml_paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """(path, role) of the files that define tasks: each YAML, the YAML files it includes
    (followed to the end), and the Python modules in their folders, which `!function`
    references and their imports load. The data files are hashed separately."""
    from lm_eval.tasks._yaml_loader import load_yaml

    seen: dict[Path, str] = {}
    pending = [Path(p) for p in yaml_paths]
    while pending:
        path = pending.pop().resolve()
        if path in seen or not path.is_file():
            continue
        seen[path] = "task definition"
        for module in sorted(path.parent.glob("*.py")):
            seen.setdefault(module.resolve(), "task code")
        try:
            raw = load_yaml(path, resolve_func=False, recursive=False)
        except Exception:
            continue  # a broken YAML fails later with its own message; its bytes are hashed
        included = raw.get("include") if isinstance(raw, dict) else None
        for name in included if isinstance(included, list) else [included]:
            if isinstance(name, str):
                target = Path(name)
                pending.append(target if target.is_absolute() else path.parent / target)
    return sorted(seen.items(), key=lambda item: (item[1] != "task definition", str(item[0])))


def identity_digest(files: Iterable[dict]) -> str:
    """One sha256 over (name, sha256) of every file of an identity, in name order."""
    pairs = sorted((f["name"], f["sha256"]) for f in files)
    return hashlib.sha256("\n".join(f"{n}\t{s}" for n, s in pairs).encode()).hexdigest()


def content_address_problem(path: Path, sha256: str) -> str | None:
    """For a file in the Hugging Face hub cache: whether the blob it points to has the content
    its name promises (the sha256 for large files, the git blob sha1 for small ones). None when
    it does, or when the file is not a hub cache blob."""
    real = path.resolve()
    if real.parent.name != "blobs":
        return None
    name = real.name
    if re.fullmatch(r"[0-9a-f]{64}", name):
        found = sha256
    elif re.fullmatch(r"[0-9a-f]{40}", name):
        data = real.read_bytes()
        found = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
    else:
        return None
    if found == name:
        return None
    return (
        f"{path}: its Hugging Face cache blob {real} is named for content {name}, but its "
        f"content hashes to {found}: the cached file was changed after download. Download "
        "the repo again on a connected machine and copy the cache here."
    )


def source_files(source) -> list[tuple[Path, str]]:
    """(path, role) of every file of a resolved model (`harness.models.ModelSource`)."""
    return model_files(source.directory, source.weight_files, gguf=bool(source.gguf_file))


def describe_files(source, files: list[tuple[Path, str]], on_bytes=None) -> list[dict]:
    """The files of a model hashed, each with its name (relative to the model's folder) and
    role; `PinMismatchError` for a Hugging Face cache blob whose content is not its name."""
    from harness.digests import hash_files
    from harness.errors import PinMismatchError

    digests = hash_files([path for path, _ in files], on_bytes=on_bytes)
    out = []
    for (path, role), digest in zip(files, digests, strict=True):
        problem = content_address_problem(path, digest.sha256)
        if problem:
            raise PinMismatchError(problem)
        try:
            name = path.relative_to(source.directory).as_posix()
        except ValueError:
            name = path.name
        out.append({**digest.to_dict(), "name": name, "role": role})
    return out


def lm_eval_task_hash(samples: list[dict]) -> str | None:
    """lm-eval's own hash of a task as asked (its `task_hashes`: over each item's document,
    prompt and target hashes), or None when the samples do not carry them."""
    from lm_eval.utils import hash_string

    try:
        parts = [s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in samples]
    except (KeyError, TypeError):
        return None
    return hash_string("".join(parts)) if parts else None


_PROBE_CONVERSATION = [
    {"role": "system", "content": "You are a careful assistant."},
    {"role": "user", "content": "Name the capital of France."},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Japan?"},
]


def chat_template_digest(tokenizer) -> str | None:
    """sha256 of a fixed conversation rendered through the tokenizer's chat template: what the
    template does, whichever file it came from. None without a template."""
    import hashlib

    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return None
    for conversation in (_PROBE_CONVERSATION, _PROBE_CONVERSATION[1:]):
        try:
            text = tokenizer.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=True
            )
        except Exception:  # a template that refuses a system turn; try without it
            continue
        return hashlib.sha256(str(text).encode("utf-8")).hexdigest()
    return None
