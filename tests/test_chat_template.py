"""`chat_template: true` wraps every prompt in the tokenizer's chat template (through lm-eval's
own `apply_chat_template`); a tokenizer without one is refused with a clear message."""

from __future__ import annotations

import json

from .conftest import only_run_dir, run_harness, write_config


def test_prompts_use_the_chat_template(tmp_path, tiny_chat_model_dir):
    model = tiny_chat_model_dir
    config = write_config(
        tmp_path,
        {
            "name": "chat",
            "models": [
                {"id": "plain", "path": str(model), "device": "cpu"},
                {"id": "chat", "path": str(model), "device": "cpu", "chat_template": True},
            ],
            "suites": ["smoke_ko"],
        },
    )
    proc = run_harness("run", str(config), "--limit", "2", "--output", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run_dir(tmp_path / "r")
    plain = json.loads((run_dir / "samples" / "plain" / "smoke_ko.jsonl").open().readline())
    chat = json.loads((run_dir / "samples" / "chat" / "smoke_ko.jsonl").open().readline())
    assert plain["prompt"].startswith("Q: ")
    assert chat["prompt"].startswith("<|user|>Q: ") and chat["prompt"].endswith("<|assistant|>")


def test_chat_template_without_one_fails_that_model(tmp_path, tiny_model_dir):
    config = write_config(
        tmp_path,
        {
            "name": "nochat",
            "models": [
                {"id": "m", "path": str(tiny_model_dir), "device": "cpu", "chat_template": True}
            ],
            "suites": ["smoke_ko"],
        },
    )
    proc = run_harness("run", str(config), "--limit", "2", "--output", str(tmp_path / "r"))
    assert proc.returncode == 1
    assert "has no chat template" in proc.stderr and "Traceback" not in proc.stderr
