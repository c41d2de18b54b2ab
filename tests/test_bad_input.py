"""Bad input gets one clear message naming the file and the fix, exit code 2 (or 1 for a model
that is present but will not load), and never a traceback."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, only_run_dir, run_harness, write_config


def config_for(model: dict, suites=("smoke_en",), **extra) -> dict:
    return {"name": "bad", "models": [{"id": "m", **model}], "suites": list(suites), **extra}


def rename_suite(directory, old: str, new: str) -> None:
    """Rename a copied suite's tasks and files so that they do not clash with the original."""
    for path in list(directory.glob(f"*{old}*")):
        text = path.read_text(encoding="utf-8").replace(old, new)
        path.with_name(path.name.replace(old, new)).write_text(text, encoding="utf-8")
        path.unlink()


def assert_user_error(proc, code: int, *fragments: str) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode == code, output
    assert "Traceback" not in output, output
    assert ("error:" if code == 2 else "failed:") in proc.stderr.lower(), output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in:\n{output}"


def test_malformed_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: bad\nmodels: [\n  - id: m\n suites: x\n", encoding="utf-8")
    proc = run_harness("run", str(path))
    assert_user_error(proc, 2, "broken.yaml", "not valid YAML at line")


def test_unknown_key(tmp_path):
    path = write_config(tmp_path, {**config_for({"path": "x"}), "suits": ["smoke"]})
    proc = run_harness("validate", str(path))
    assert_user_error(proc, 2, "run.yaml", "suits: unknown key", "suites")


def test_missing_model_directory(tmp_path):
    path = write_config(tmp_path, config_for({"path": "no/such/model"}))
    proc = run_harness("run", str(path), "--output", str(tmp_path / "results"))
    assert_user_error(
        proc, 2, "model 'm'", str(tmp_path / "no" / "such" / "model"), "does not exist"
    )
    assert not (tmp_path / "results").exists(), "a run directory was made for bad input"


def test_repo_id_absent_from_the_cache(tmp_path):
    path = write_config(tmp_path, config_for({"repo": "Qwen/Qwen2.5-7B", "revision": "main"}))
    proc = run_harness("validate", str(path), env={"HF_HUB_CACHE": str(tmp_path / "cache")})
    assert_user_error(
        proc, 2, "Qwen/Qwen2.5-7B", "not in the local Hugging Face cache", "hf download"
    )


def test_unknown_task(tmp_path, tiny_model_dir):
    path = write_config(tmp_path, config_for({"path": str(tiny_model_dir)}, suites=["smoke_xx"]))
    proc = run_harness("validate", str(path))
    assert_user_error(proc, 2, "unknown suite 'smoke_xx'", "Did you mean", "smoke_")


def test_task_jsonl_line_that_is_not_json(tmp_path, tiny_model_dir):
    tasks = tmp_path / "tasks"
    shutil.copytree(REPO / "tasks" / "smoke", tasks / "mine")
    rename_suite(tasks / "mine", "smoke", "mine")
    data = tasks / "mine" / "data" / "hi.jsonl"
    lines = data.read_text(encoding="utf-8").splitlines()
    lines[6] = lines[6][:-1]  # drop the closing brace of line 7
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = write_config(
        tmp_path,
        config_for({"path": str(tiny_model_dir)}, suites=["mine"], task_paths=[str(tasks)]),
    )
    proc = run_harness("run", str(path), "--output", str(tmp_path / "results"))
    assert_user_error(proc, 2, f"{data} line 7: not valid JSON")


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_corrupted_weight_file_fails_the_model_and_keeps_the_results(
    tmp_path, tiny_model_dir, damage
):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "model.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes(blob[: len(blob) // 2] if damage == "truncate" else b"\x00" * len(blob))
    path = write_config(tmp_path, config_for({"path": str(model)}))
    proc = run_harness("run", str(path), "--output", str(tmp_path / "results"))
    assert_user_error(proc, 1, "model 'm': could not load", "sha256")
    results = json.loads((only_run_dir(tmp_path / "results") / "results.json").read_text())
    assert results["status"] == "failed"
    assert results["models"]["m"]["status"] == "failed"
    assert (
        results["models"]["m"]["identity"]["weight_files"][0]["size_bytes"]
        == weights.stat().st_size
    )


def test_group_listing_an_unreadable_task(tmp_path, tiny_model_dir):
    tasks = tmp_path / "tasks"
    shutil.copytree(REPO / "tasks" / "smoke", tasks / "mine")
    rename_suite(tasks / "mine", "smoke", "mine")
    (tasks / "mine" / "_mine_template_yaml").unlink()  # every task's include is now missing
    path = write_config(
        tmp_path,
        config_for({"path": str(tiny_model_dir)}, suites=["mine"], task_paths=[str(tasks)]),
    )
    proc = run_harness("validate", str(path))
    assert_user_error(
        proc, 2, "group 'mine'", "lists task 'mine_en'", "mine_en.yaml", "_mine_template_yaml"
    )


# The table of bad input (issue 14): each case writes real files under tmp_path and runs the
# real `harness` command in a subprocess. Every case must end in exit 2 with one message that
# names the file (and key or line) and the fix, no traceback, and no run directory.


def copy_smoke_en(tmp_path, edit=None):
    """The smoke suite's English task copied to `tmp_path/tasks/mine` as `mine_en`, its
    first item changed by `edit(item)`; returns (task_paths, data file)."""
    tasks = tmp_path / "tasks"
    mine = tasks / "mine"
    (mine / "data").mkdir(parents=True)
    source = REPO / "tasks" / "smoke"
    (mine / "_mine_template_yaml").write_text(
        (source / "_smoke_template_yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (mine / "mine_en.yaml").write_text(
        (source / "smoke_en.yaml").read_text(encoding="utf-8").replace("smoke", "mine"),
        encoding="utf-8",
    )
    lines = (source / "data" / "en.jsonl").read_text(encoding="utf-8").splitlines()
    if edit is not None:
        item = json.loads(lines[2])
        edit(item)
        lines[2] = json.dumps(item, ensure_ascii=False)
    data = mine / "data" / "en.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tasks, data


def suite_case(edit, *fragments):
    def make(tmp_path):
        tasks, data = copy_smoke_en(tmp_path, edit)
        config = config_for({"path": "model"}, suites=["mine_en"], task_paths=[str(tasks)])
        return write_config(tmp_path, config), [], [f"{data} line 3:", *fragments]

    return make


def output_is_a_file(tmp_path):
    (tmp_path / "results").write_text("not a directory\n")
    path = write_config(tmp_path, config_for({"path": "model"}))
    return path, [], ["output directory", "results is a file, not a directory", "--output"]


def yaml_syntax_error(tmp_path):
    tasks, _ = copy_smoke_en(tmp_path)
    task = tasks / "mine" / "mine_en.yaml"
    task.write_text(
        task.read_text(encoding="utf-8").replace("test: data/en.jsonl", "test: [data/en.jsonl"),
        encoding="utf-8",
    )
    config = config_for({"path": "model"}, suites=["mine_en"], task_paths=[str(tasks)])
    return (
        write_config(tmp_path, config),
        [],
        [
            f"suite 'mine_en': its task file {task}",
            "not valid YAML at line 6, column",
            "did not find expected ',' or ']'",
            "Fix the file",
        ],
    )


def model_path_is_a_file(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "qwen2"}\n')
    path = write_config(tmp_path, config_for({"path": "model/config.json"}))
    return (
        path,
        [],
        [
            "model 'm'",
            f"{model / 'config.json'}` is a file, not a model directory",
            f"set `path: {model}`",
        ],
    )


def isolate_and_audit(tmp_path):
    path = write_config(tmp_path, config_for({"path": "model"}))
    return path, ["--isolate", "--audit"], ["--isolate and --audit exclude each other"]


def _drop_choices(item):
    del item["choices"]


def _choices_as_string(item):
    item["choices"] = ", ".join(item["choices"])


def _answer_out_of_range(item):
    item["answer"] = 7


BAD_INPUT = {
    "output path is a file": output_is_a_file,
    "item without choices": suite_case(_drop_choices, "no `choices`", "JSON list of strings"),
    "choices as a string": suite_case(
        _choices_as_string, "`choices` is a string, not a list", "JSON list of strings"
    ),
    "answer beyond the choices": suite_case(
        _answer_out_of_range, "`answer` is 7, but there are 4 options", "Give 0 to 3"
    ),
    "task YAML syntax error": yaml_syntax_error,
    "model path is a file": model_path_is_a_file,
    "--isolate with --audit": isolate_and_audit,
}


SUITE_CASES = {"item without choices", "choices as a string", "answer beyond the choices",
               "task YAML syntax error"}  # fmt: skip
"""Cases that index tasks with lm-eval (some 20 s each on a busy 2-core machine): slow here,
and checked without the command line in tests/suites/test_items.py."""


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, id=name, marks=[pytest.mark.slow] if name in SUITE_CASES else [])
        for name, case in BAD_INPUT.items()
    ],
)
def test_bad_input_table(tmp_path, case):
    config, options, fragments = case(tmp_path)
    proc = run_harness("run", str(config), "--output", str(tmp_path / "results"), *options)
    assert_user_error(proc, 2, *fragments)
    assert not list((tmp_path / "results").glob("*/*")), "a run directory was made"


def test_device_cuda_without_that_gpu(tmp_path, tiny_model_dir):
    """Refused before a run directory is made (it was a failed run, exit 1)."""
    import torch

    count = torch.cuda.device_count()
    device = f"cuda:{count}" if count else "cuda"  # a GPU this machine does not have
    path = write_config(tmp_path, config_for({"path": str(tiny_model_dir), "device": device}))
    proc = run_harness("run", str(path), "--output", str(tmp_path / "results"))
    expected = "torch sees no GPU" if not count else f"this machine has {count} GPU(s)"
    assert_user_error(proc, 2, f"model 'm': `device: {device}`", expected, "device: cpu")
    assert not (tmp_path / "results").exists(), "a run directory was made for bad input"


def test_float16_on_the_cpu_is_a_warning(tmp_path, tiny_model_dir):
    """torch computes float16 on a CPU (no error) but about ten times slower than float32:
    the run goes on, and says so."""
    model = {"path": str(tiny_model_dir), "device": "cpu", "dtype": "float16"}
    path = write_config(tmp_path, config_for(model, limit=2, offline={"sandbox": False}))
    proc = run_harness("run", str(path), "--output", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning: model 'm': `dtype: float16` on the CPU" in proc.stderr, proc.stderr
    assert "dtype: float32" in proc.stderr


# Read-only and full disks: real mounts in a private mount namespace (root ignores mode bits,
# so chmod would prove nothing). Skipped where this process may not make one.


def _can_mount() -> bool:
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
        capture_output=True,
    )
    return shutil.which("unshare") is not None and probe.returncode == 0


needs_mounts = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not _can_mount(),
    reason="needs root and `unshare -m` to mount a read-only or full tmpfs",
)


def harness_in_namespace(mount: Path, script: str, *args: str, timeout=900):
    """Run `script` (shell, with $MNT the mount point) then `harness ARGS` in a private mount
    namespace; the mount vanishes with it."""
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "harness", *args])
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", f"{script}\n{command}"],
        cwd=REPO,
        env={**os.environ, "MNT": str(mount)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@needs_mounts
@pytest.mark.parametrize(
    "script, fragments",
    [
        (
            'mount -t tmpfs -o size=1m,ro tmpfs "$MNT"',
            ["cannot write in", "mounted read-only", "writable --output"],
        ),
        (
            'mount -t tmpfs -o size=1m tmpfs "$MNT"\n'
            'dd if=/dev/zero of="$MNT/fill" bs=64k 2>/dev/null',
            ["is full", "0.0 MiB free", "Free some space"],
        ),
    ],
    ids=["read-only", "full"],
)
def test_output_on_an_unwritable_disk(tmp_path, script, fragments):
    mount = tmp_path / "mnt"
    mount.mkdir()
    path = write_config(tmp_path, config_for({"path": "model"}))
    proc = harness_in_namespace(mount, script, "run", str(path), "--output", f"{mount}/results")
    assert_user_error(proc, 2, f"output directory {mount}/results", *fragments)


@needs_mounts
@pytest.mark.slow
def test_disk_filling_up_during_a_run_keeps_what_was_scored(tmp_path, tiny_model_dir):
    """The disk fills up once results.json holds a scored suite: the run stops with one
    message naming the file it could not write, and the last results.json stays whole."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    suites = ["smoke_en", "smoke_fr", "smoke_de", "smoke_hi"]
    config = config_for(
        {"path": str(tiny_model_dir)}, suites=suites, offline={"sandbox": False}, limit=12
    )
    path = write_config(tmp_path, config)
    fill = (
        'mount -t tmpfs -o size=8m tmpfs "$MNT"\n'
        '( until grep -qs samples_file "$MNT"/results/*/*/results.json; do sleep 0.02; done\n'
        '  dd if=/dev/zero of="$MNT/fill" bs=64k 2>/dev/null ) &\n'
        'trap "cp -r $MNT/results ' + str(tmp_path) + '/kept" EXIT'
    )
    proc = harness_in_namespace(mount, fill, "run", str(path), "--output", f"{mount}/results")
    assert_user_error(
        proc, 2, "no space left on the disk", "results.json is kept as last written",
        "scored: m: smoke_en", "run the same command again",
    )  # fmt: skip
    results = json.loads((only_run_dir(tmp_path / "kept") / "results.json").read_text())
    assert results["status"] == "running"
    assert results["models"]["m"]["suites"]["smoke_en"]["status"] == "ok"


def test_item_longer_than_the_context_is_named(tmp_path, tiny_model_dir):
    """lm-eval cuts an item longer than the context window from the left and scores it; the
    console names the item (the tiny model's window is 512 tokens)."""

    def lengthen(item):
        item["question"] = "Which of these is a city? " * 200

    tasks, _ = copy_smoke_en(tmp_path, lengthen)
    config = config_for(
        {"path": str(tiny_model_dir)}, suites=["mine_en"], task_paths=[str(tasks)], limit=4
    )
    proc = run_harness("run", str(write_config(tmp_path, config)), "--output", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning: m: mine_en item 2: " in proc.stderr, proc.stderr
    assert "longer than the model's context window (512); lm-eval cuts it" in proc.stderr
    assert proc.stderr.count("mine_en item") == 1, proc.stderr
