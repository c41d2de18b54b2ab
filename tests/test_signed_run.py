"""`harness keygen`, `harness run --sign KEY` and `harness attest RUN_DIR --verify KEY.pub`
end to end: a signed run verifies, a changed byte in a report or a model file does not, and
a key the evaluated code could read is refused before the run."""

from __future__ import annotations

import shutil

from .conftest import only_run_dir, run_harness, write_config


def test_sign_verify_and_tamper(tmp_path, tiny_model_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    key = tmp_path / "keys" / "signing.key"
    proc = run_harness("keygen", "--private", str(key))
    assert proc.returncode == 0, proc.stderr
    assert key.stat().st_mode & 0o777 == 0o600 and (tmp_path / "keys" / "signing.key.pub").is_file()
    config = write_config(
        tmp_path,
        {"name": "signed", "models": [{"id": "m", "path": str(model), "device": "cpu"}],
         "suites": ["smoke_ko"]},
    )  # fmt: skip
    root = tmp_path / "results"
    proc = run_harness("run", str(config), "--sign", str(key), "--output", str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run_dir(root)
    assert (run_dir / "attestation.intoto.json").is_file() and "signed:" in proc.stderr

    public = f"{key}.pub"
    proc = run_harness("attest", str(run_dir), "--verify", public)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "signature verified" in proc.stderr

    report = run_dir / "report.md"
    report.write_text(report.read_text().replace("smoke_ko", "smoke_kx", 1))
    proc = run_harness("attest", str(run_dir), "--verify", public)
    assert proc.returncode == 1 and "report.md" in proc.stderr

    other = tmp_path / "other.key"
    assert run_harness("keygen", "--private", str(other)).returncode == 0
    proc = run_harness("attest", str(run_dir), "--verify", f"{other}.pub")
    assert proc.returncode == 1 and "does NOT verify" in proc.stderr


def test_a_key_the_evaluated_code_could_read_is_refused(tmp_path, tiny_model_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    inside = model / "signing.key"
    assert run_harness("keygen", "--private", str(inside)).returncode == 0
    entry = {"id": "m", "path": str(model), "device": "cpu"}
    config = write_config(tmp_path, {"name": "s", "models": [entry], "suites": ["smoke_ko"]})
    proc = run_harness("run", str(config), "--sign", str(inside), "--output", str(tmp_path / "r"))
    assert proc.returncode == 2 and "the evaluated code can read" in proc.stderr
    outside = tmp_path / "keys" / "k"
    assert run_harness("keygen", "--private", str(outside)).returncode == 0
    unsandboxed = write_config(
        tmp_path,
        {"name": "s", "models": [entry], "suites": ["smoke_ko"], "offline": {"sandbox": False}},
        name="unsandboxed.yaml",
    )
    proc = run_harness("run", str(unsandboxed), "--sign", str(outside))
    assert proc.returncode == 2 and "sign sandboxed runs only" in proc.stderr
    assert not (tmp_path / "r").exists()
