"""The Python API leaves the calling process as it was: the sandboxed worker carries the
guard, the filter and the offline variables, not the caller."""

from __future__ import annotations

import os
import socket

import pytest


@pytest.mark.slow
def test_run_leaves_the_calling_process_as_it_was(tmp_path, tiny_model_dir):
    import harness
    from harness.config import RunConfig
    from harness.record import RunRecord

    before = dict(os.environ)
    config = RunConfig.model_validate(
        {"name": "api", "models": [{"id": "tiny", "path": str(tiny_model_dir)}],
         "suites": ["smoke_en"], "limit": 2}
    )  # fmt: skip
    result = harness.run(config, output_dir=tmp_path / "out")
    assert result.exit_code == 0, result.failures
    assert result.data["offline"]["sandbox"]["enforced"] is True
    assert result.data["models"]["tiny"]["status"] == "ok"
    assert result.data["models"]["tiny"]["suites"]["smoke_en"]["status"] == "ok"
    assert dict(os.environ) == before
    RunRecord.model_validate(result.data)  # what was written matches the published schema

    server = socket.create_server(("127.0.0.1", 0))
    with socket.create_connection(server.getsockname(), timeout=5) as client:
        client.sendall(b"still here")
        connection, _ = server.accept()
        assert connection.recv(16) == b"still here"
        connection.close()
    server.close()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW) as netlink:
        assert netlink.family == socket.AF_NETLINK  # no seccomp filter left in this process


def test_a_model_over_several_nodes_is_refused_in_the_sandbox(tmp_path, tiny_model_dir):
    from ..conftest import run_harness, write_config

    spec = {"id": "big", "path": str(tiny_model_dir), "backend": "vllm", "nodes": 2}
    config = write_config(tmp_path, {"name": "n", "models": [spec], "suites": ["smoke_en"]})
    proc = run_harness("run", str(config), "--output", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "sandbox: false" in proc.stderr and "Traceback" not in proc.stderr
    assert "invalid config" in proc.stderr
    assert not (tmp_path / "r").exists()
