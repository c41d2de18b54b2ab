"""The Python API: `run`, `plan`, `compare`, `attest` and `lock` take `str` or `Path` and return
typed records with a short repr. Run in a child process: the functions that read files go
offline in their own process, and an audit hook cannot be removed from pytest's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from .conftest import REPO, write_config

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import harness

    config, out = sys.argv[1], sys.argv[2]
    first = harness.run(config, output_dir=out)       # str paths
    second = harness.run(Path(config), output_dir=Path(out), )
    checked = harness.attest(str(first.run_dir))
    compared = harness.compare(first.run_dir, str(second.run_dir))
    pinned = harness.lock(config, output=str(Path(out) / "pins.json"))
    planned = harness.plan(config)
    validated = harness.validate(Path(config))
    print(json.dumps({
        "reprs": [repr(x) for x in (first, checked, compared, pinned, planned, validated)],
        "types": [type(x).__name__ for x in (first, checked, compared, pinned, planned, validated)],
        "exit_codes": [first.exit_code, second.exit_code],
        "attest_ok": checked.ok, "files": len(checked.files),
        "verdicts": sorted({r.verdict for r in compared.rows}), "rows": len(compared.rows),
        "lock_path": str(pinned.path), "lock_models": sorted(pinned.lock.models),
        "plan_models": [p.model for p in planned.models], "plan_fits": planned.fits,
        "valid": validated.ok,
    }))
    """
)


@pytest.mark.slow
def test_api_functions_take_str_or_path_and_return_short_typed_records(tmp_path, tiny_model_dir):
    config = write_config(
        tmp_path,
        {
            "name": "api",
            "models": [{"id": "tiny", "path": str(tiny_model_dir)}],
            "suites": ["smoke_en"],
            "limit": 3,
        },
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(config), str(tmp_path / "out")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["types"] == [
        "RunResult",
        "Attestation",
        "Comparison",
        "LockResult",
        "CapacityPlan",
        "ValidationReport",
    ]
    for text in found["reprs"]:  # one line, short, whatever the paths are
        assert len(text.replace(str(tmp_path), "T")) < 160 and "\n" not in text, text
    assert found["exit_codes"] == [0, 0]
    assert found["attest_ok"] and found["files"] > 0
    assert found["rows"] == 1 and found["verdicts"] == ["same"]  # the same model twice
    assert found["lock_path"] == str(tmp_path / "out" / "pins.json")
    assert found["lock_models"] == ["tiny"]
    assert json.loads((tmp_path / "out" / "pins.json").read_text())["models"]["tiny"]["files"]
    assert found["plan_models"] == ["tiny"] and found["plan_fits"] is True
    assert found["valid"] is True
