"""A score names everything that produced it: editing any file that shapes a model's or a
task's outputs (config.json, a tokenizer file or chat template, a task's `!function` module,
its data) scores it again instead of reusing the cache, and shows in `harness attest`; a
README edit changes nothing."""

from __future__ import annotations

import json
import shutil

from .conftest import CHAT_TEMPLATE, run_harness, write_config

TASK = """
task: ident
custom_dataset: !function harness.suites.jsonl.load_local_jsonl
dataset_kwargs:
  data_files: {test: items.jsonl}
process_docs: !function utils.process_docs
output_type: multiple_choice
test_split: test
doc_to_text: "Q: {{question}}\\nA:"
doc_to_choice: "{{choices}}"
doc_to_target: answer
metric_list:
  - {metric: acc, aggregation: mean, higher_is_better: true}
metadata: {version: 1.0, language: en}
"""

UTILS = "def process_docs(dataset):\n    return dataset\n"


def _items(n: int = 4) -> str:
    rows = [
        {"question": f"item {i}", "choices": ["river", "stone", "lamp", "kite"], "answer": i % 4}
        for i in range(n)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows)


def _setup(tmp_path, tiny_model_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "ident.yaml").write_text(TASK)
    (tasks / "utils.py").write_text(UTILS)
    (tasks / "items.jsonl").write_text(_items())
    config = write_config(
        tmp_path,
        {
            "name": "ident",
            "models": [{"id": "m", "path": str(model), "device": "cpu"}],
            "suites": ["ident"],
            "task_paths": [str(tasks)],
        },
    )
    return model, tasks, config


def _run(config, root):
    proc = run_harness("run", str(config), "--output", str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = max((root / "ident").iterdir())
    return run_dir, json.loads((run_dir / "results.json").read_text())


def _reused(results) -> bool:
    return results["models"]["m"]["cache"]["reused"] == ["ident"]


def test_every_file_that_shapes_the_output_is_part_of_the_identity(tmp_path, tiny_model_dir):
    model, tasks, config = _setup(tmp_path, tiny_model_dir)
    root = tmp_path / "results"
    first_dir, first = _run(config, root)
    identity = first["models"]["m"]["identity"]
    roles = {f["name"]: f["role"] for f in identity["other_files"]}
    assert roles["config.json"] == "config" and roles["tokenizer.json"] == "tokenizer"
    assert len(identity["digest"]) == 64
    definitions = {f["name"].rsplit("/", 1)[-1]: f["role"]
                   for f in first["suites"]["ident"]["definition_files"]}  # fmt: skip
    assert definitions == {"ident.yaml": "task definition", "utils.py": "task code"}
    task = first["models"]["m"]["suites"]["ident"]["tasks"]["ident"]
    assert len(task["task_hash"]) == 64 and task["chance"] == 0.25

    _, again = _run(config, root)
    assert _reused(again), "an unchanged model and task come from the cache"
    (model / "README.md").write_text("# a model card edit changes no score\n")
    _, readme = _run(config, root)
    assert _reused(readme), "documentation is not part of the identity"

    edits = {
        "config.json": lambda: _edit_json(model / "config.json", rms_norm_eps=1e-5),
        "tokenizer_config.json": lambda: _edit_json(
            model / "tokenizer_config.json", chat_template=CHAT_TEMPLATE
        ),
        "utils.py": lambda: (tasks / "utils.py").write_text(UTILS + "# edited\n"),
        "items.jsonl": lambda: (tasks / "items.jsonl").write_text(_items(5)),
    }
    for name, edit in edits.items():
        edit()
        _, after = _run(config, root)
        assert not _reused(after), f"editing {name} must score the suite again"

    proc = run_harness("attest", str(first_dir))
    assert proc.returncode == 1
    changed = [line for line in proc.stdout.splitlines() if "changed" in line]
    for name in edits:
        assert any(name in line for line in changed), f"attest does not show {name}:\n{proc.stdout}"
    assert not any("README" in line for line in proc.stdout.splitlines())


def _edit_json(path, **values):
    data = json.loads(path.read_text())
    data.update(values)
    path.write_text(json.dumps(data, indent=2))
