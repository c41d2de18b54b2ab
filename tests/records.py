"""Crafted run records for tests of the readers (gates, history, reports): the fields a test
names, and every other required field filled with a plain value, checked against `RunRecord`."""

from __future__ import annotations

from typing import Any

from harness.record import RunRecord


def crafted_record(
    suites: dict[str, dict[str, Any]] | None = None,
    models: dict[str, dict[str, Any]] | None = None,
    run: dict[str, Any] | None = None,
    **fields: Any,
) -> RunRecord:
    """A valid `RunRecord`. `suites` entries need only `tasks` (and `languages`)."""
    document = {
        "harness_version": "test",
        "status": "complete",
        "run": {
            "name": "t",
            "started": "2026-01-01T00:00:00+00:00",
            "directory": "/t",
            **(run or {}),
        },
        "config": {"name": "t", "suites": list(suites or {})},
        "config_hash": "0" * 64,
        "suites": {
            name: {"kind": "task", "source": "test", **info}
            for name, info in (suites or {}).items()
        },
        "models": models or {},
        "environment": {},
        "offline": {
            "policy": {"mode": "strict", "allow_loopback": True},
            "set_offline_env": True,
            "sandbox": {"enforced": True, "tool": "test"},
            "guard": {
                "installed": True,
                "kind": "test",
                "allow_loopback": True,
                "self_test": {"passed": True, "method": "test"},
                "children": "",
                "scope": "",
            },
            "kernel": {"enforced": True, "method": "test"},
            "isolation": {"isolated": True, "method": "test"},
        },  # fmt: skip
        **fields,
    }
    return RunRecord.model_validate(document)
