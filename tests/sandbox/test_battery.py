"""The egress battery: hostile model code (remote code, at import and at forward time) and
hostile task code (a `!function` module, at import and at prompt time) try every channel out.
Pass: the canary on the host's loopback receives nothing; the supervisor records every
attempt (the connection channels by their destination, the refused ones by their call);
exit 3; the console, results.json, report.md, report.html and junit.xml give one count."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from ..conftest import SMOKE_DATA, only_run_dir, run_harness, write_config
from ..test_remote_code import remote_code_model

HERE = Path(__file__).resolve().parent
CONNECTING = [1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 16, 20]
REFUSED = {9: "AF_NETLINK", 10: "AF_PACKET", 11: "AF_VSOCK", 18: "setns", 19: "unshare",
           22: "io_uring_setup", 23: "mount", 24: "ptrace", 25: "process_vm_readv"}  # fmt: skip


def attack_module(net: str, port_base: int, canary: int, tag: str, offset: int = 0) -> str:
    text = (HERE / "attacks.py").read_text()
    return text.replace(
        'NET, OFFSET, PORT_BASE, CANARY, TAG = "203.0.113", 0, 8000, 9, "x"',
        f"NET, OFFSET, PORT_BASE, CANARY, TAG = {net!r}, {offset}, {port_base}, {canary}, {tag!r}",
    )


MODELING = """
from transformers import Qwen2ForCausalLM

from .configuration_tiny import TinyCustomConfig
from .attacks_import import run_all as _attack_at_import
from .attacks_forward import run_all as _attack_at_forward

_attack_at_import()


class TinyCustomForCausalLM(Qwen2ForCausalLM):
    config_class = TinyCustomConfig
    _attacked = False

    def forward(self, *args, **kwargs):
        if not TinyCustomForCausalLM._attacked:
            TinyCustomForCausalLM._attacked = True
            _attack_at_forward()
        return super().forward(*args, **kwargs)
"""

UTILS = """
import importlib.util
import os


def _load(name):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_load("attacks_task_import").run_all()
_done = []


def doc_to_text(doc):
    if not _done:
        _done.append(1)
        _load("attacks_task_prompt").run_all()
    return "Q: " + doc["question"] + "\\nA:"
"""


def hostile_task(directory: Path, canary: int) -> Path:
    directory.mkdir(parents=True)
    (directory / "attacks_task_import.py").write_text(
        attack_module("198.51.100", 8000, canary, "task")
    )
    (directory / "attacks_task_prompt.py").write_text(
        attack_module("192.0.2", 9100, canary, "prompt", offset=100)
    )
    (directory / "utils.py").write_text(UTILS)
    (directory / "hostile.yaml").write_text(
        "task: hostile_task\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {SMOKE_DATA / 'en.jsonl'}\n"
        "output_type: multiple_choice\ntest_split: test\n"
        "doc_to_text: !function utils.doc_to_text\n"
        'doc_to_choice: "{{choices}}"\ndoc_to_target: answer\n'
        "metric_list:\n  - metric: acc\n"
        "metadata:\n  version: 1.0\n  language: en\n"
    )
    return directory


@pytest.mark.slow
def test_no_channel_gets_out_and_every_attempt_is_recorded(tmp_path, tiny_model_dir, canary):
    model = remote_code_model(tmp_path, tiny_model_dir)
    (model / "modeling_tiny.py").write_text(MODELING)
    (model / "attacks_import.py").write_text(attack_module("203.0.113", 8000, canary.port, "model"))
    (model / "attacks_forward.py").write_text(
        attack_module("192.0.2", 9000, canary.port, "forward", offset=100)
    )
    tasks = hostile_task(tmp_path / "tasks", canary.port)
    spec = {"id": "m", "path": str(model), "device": "cpu", "trust_remote_code": True}
    config = write_config(
        tmp_path,
        {"name": "battery", "models": [spec], "suites": ["hostile_task"],
         "task_paths": [str(tasks)]},
    )  # fmt: skip
    proc = run_harness("run", str(config), "--limit", "2", "--output", str(tmp_path / "r"))
    output = proc.stdout + proc.stderr
    assert canary.connections == 0, output
    assert proc.returncode == 3, output

    run_dir = only_run_dir(tmp_path / "r")
    results = json.loads((run_dir / "results.json").read_text())
    attempts = results["offline"]["attempts"]
    outside = [a for a in attempts if a["seen_by"].startswith("supervisor")]
    destinations = {(a.get("destination"), a.get("port")) for a in outside}
    for net, base, offset in (("203.0.113", 8000, 0), ("198.51.100", 8000, 0),
                              ("192.0.2", 9000, 100), ("192.0.2", 9100, 100)):  # fmt: skip
        for n in CONNECTING + ([17] if shutil.which("curl") else []):
            assert (f"{net}.{offset + n}", base + n) in destinations, (net, base, n, attempts)
        for n in (21,):
            assert (f"2001:db8::{base + n:x}", base + n) in destinations, (net, base, n)
    names = {a.get("dns_name") for a in outside}
    for tag in ("model", "task", "forward", "prompt"):
        assert f"c4-{tag}.battery.example" in names and f"c5-{tag}.localhost" in names, tag
    refused = [a["host"] for a in outside if a["event"] == "system call refused"]
    for what in REFUSED.values():
        assert sum(what in r for r in refused) >= 4, (what, refused)
    assert all(a.get("pid") for a in outside if a["event"] == "system call refused")
    assert any(a.get("origin") for a in outside), "the witness adds Python frames"

    count = len(attempts)
    assert f"network attempts: {count}" in output
    assert f"Network attempts during the run: **{count}**" in (run_dir / "report.md").read_text()
    html = (run_dir / "report.html").read_text()
    assert re.search(rf"Network attempts during the run: <b>{count}</b>", html)
    assert f"{count} network attempt(s)" in (run_dir / "junit.xml").read_text()
    assert results["exit_code"] == 3
