"""Signed attestation: real Ed25519 keys, a real DSSE envelope, real files changed on disk."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from harness.errors import BadInputError
from harness.record import check_record
from harness.signing import (
    ENVELOPE_NAME,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    check_private_key,
    generate_key,
    sign_run,
    statement,
    verify_run,
)

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_entry(path: Path) -> dict:
    return {
        "path": str(path),
        "real_path": str(path.resolve()),
        "size_bytes": path.stat().st_size,
        "sha256": sha256(path),
    }


def write_run(root: Path) -> Path:
    """A finished run with one model, one suite, one network attempt and every report file;
    its weight and data files are small real files beside it."""
    weights = root / "model" / "model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(bytes(range(256)) * 16)
    data = root / "tasks" / "en.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text('{"question": "2+2?", "choices": ["4", "5"], "answer": 0}\n')
    run = root / "results" / "signing" / "20261202T000000Z"
    samples = run / "samples" / "m"
    samples.mkdir(parents=True)
    record = {
        "schema_version": 1,
        "harness_version": "0.1.0",
        "status": "complete",
        "run": {
            "name": "signing",
            "started": "2026-12-02T00:00:00+00:00",
            "finished": "2026-12-02T00:01:00+00:00",
            "wall_seconds": 60.0,
            "config_file": "signing.yaml",
            "command": ["harness", "run", "signing.yaml"],
            "directory": str(run),
            "phases": {"scoring": {"seconds": 50.0}},
        },
        "config": {"name": "signing"},
        "config_hash": "c" * 64,
        "suites": {
            "smoke": {
                "kind": "group",
                "source": "tasks/smoke",
                "tasks": ["smoke_en"],
                "data_files": [file_entry(data)],
            }
        },
        "models": {
            "m": {
                "status": "ok",
                "identity": {
                    "kind": "local",
                    "location": str(weights.parent),
                    "directory": str(weights.parent),
                    "weight_files": [file_entry(weights)],
                },
                "suites": {
                    "smoke": {
                        "status": "ok",
                        "tasks": {
                            "smoke_en": {
                                "metrics": {"acc,none": 0.625, "acc_stderr,none": 0.1},
                                "samples_file": "samples/m/smoke_en.jsonl",
                            }
                        },
                    }
                },
            }
        },
        "environment": {"packages": {"harness": "0.1.0"}, "hardware": {"cpu": "test"}},
        "offline": {
            "policy": {"mode": "strict"},
            "set_offline_env": True,
            "sandbox": {"enforced": True, "tool": "bubblewrap"},
            "guard": {
                "installed": True,
                "kind": "audit hook",
                "allow_loopback": False,
                "self_test": {"passed": True, "method": "a refused probe"},
                "children": "sandboxed",
                "scope": "supervisor",
            },
            "kernel": {"enforced": True, "method": "seccomp"},
            "isolation": {"isolated": True, "method": "network namespace"},
            "attempts": [{"event": "socket.connect", "host": "10.0.0.1", "port": 443, "time": "t"}],
            "files": {
                "weights": [{"model": "m", **file_entry(weights)}],
                "data": [{"suite": "smoke", **file_entry(data)}],
            },
        },
        "gates": {
            "baseline": None,
            "confidence": 0.95,
            "min_items": 20,
            "inconclusive_fails": True,
            "passed": True,
            "counts": {"pass": 1},
            "verdicts": {"m": {"en": "pass"}},
            "checks": [
                {
                    "gate": "English above chance",
                    "rule": "min",
                    "model": "m",
                    "suite": "smoke",
                    "task": "smoke_en",
                    "language": "en",
                    "metric": "acc",
                    "value": 0.625,
                    "stderr": 0.1,
                    "reference": 0.4,
                    "reference_stderr": None,
                    "threshold": 0.4,
                    "margin": 0.225,
                    "margin_low": 0.027,
                    "margin_high": 0.388,
                    "method": "wilson 95%",
                    "status": "pass",
                    "detail": "0.625 meets 0.4 by 0.225",
                }
            ],
        },
        "exit_code": 3,
    }
    check_record(record)
    (run / "results.json").write_text(json.dumps(record, indent=2))
    (run / "report.md").write_text("# signing\n\n| model | en |\n| m | 0.625 |\n")
    (run / "report.html").write_text("<html><body>0.625</body></html>\n")
    (run / "junit.xml").write_text('<testsuites tests="1" failures="0"/>\n')
    (run / "run.log").write_text("scoring m on smoke\n")
    (samples / "smoke_en.jsonl").write_text('{"doc_id": 0, "acc": 1.0}\n')
    return run


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return write_run(tmp_path)


@pytest.fixture
def keys(tmp_path) -> tuple[Path, Path]:
    private, public = tmp_path / "keys" / "harness.key", tmp_path / "keys" / "harness.pub"
    generate_key(private, public)
    return private, public


def flip_byte(path: Path, index: int = -1) -> None:
    blob = bytearray(path.read_bytes())
    blob[index] ^= 0x01
    path.write_bytes(bytes(blob))


def read_envelope(run: Path) -> dict:
    return json.loads((run / ENVELOPE_NAME).read_text())


def write_envelope(run: Path, envelope: dict) -> None:
    (run / ENVELOPE_NAME).write_text(json.dumps(envelope, indent=2))


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path):
    private, public = tmp_path / "k" / "harness.key", tmp_path / "k" / "harness.pub"
    old_mask = os.umask(0)  # the mode must not depend on a lax umask
    try:
        generate_key(private, public)
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = private.read_bytes(), public.read_bytes()

    with pytest.raises(BadInputError, match="harness.key: already exists"):
        generate_key(private, tmp_path / "k" / "other.pub")
    with pytest.raises(BadInputError, match="harness.pub: already exists"):
        generate_key(tmp_path / "k" / "other.key", public)
    assert (private.read_bytes(), public.read_bytes()) == before
    assert not (tmp_path / "k" / "other.key").exists()
    assert not (tmp_path / "k" / "other.pub").exists()

    generate_key(tmp_path / "k" / "second.key", tmp_path / "k" / "second.pub")
    assert (tmp_path / "k" / "second.key").read_bytes() != private.read_bytes()


def test_statement_names_every_file_with_its_sha256_and_carries_the_scores(run_dir):
    root = run_dir.parents[2]
    weights, data = root / "model" / "model.safetensors", root / "tasks" / "en.jsonl"
    stmt = statement(run_dir)

    assert stmt["_type"] == STATEMENT_TYPE and stmt["predicateType"] == PREDICATE_TYPE
    digests = {s["name"]: s["digest"]["sha256"] for s in stmt["subject"]}
    run_names = ["results.json", "report.md", "report.html", "junit.xml", "run.log"]
    expected = {str(weights): weights, str(data): data}
    expected |= {name: run_dir / name for name in run_names}
    expected["samples/m/smoke_en.jsonl"] = run_dir / "samples" / "m" / "smoke_en.jsonl"
    assert digests == {name: sha256(path) for name, path in expected.items()}

    predicate = stmt["predicate"]
    assert predicate["models"]["m"]["scores"]["smoke"]["tasks"]["smoke_en"]["acc,none"] == 0.625
    assert predicate["models"]["m"]["identity"]["weight_files"][0]["sha256"] == sha256(weights)
    assert predicate["status"] == "complete" and predicate["exit_code"] == 3
    assert predicate["config_hash"] == "c" * 64
    assert predicate["gates"]["passed"] is True
    assert predicate["offline"]["attempt_count"] == 1
    assert predicate["offline"]["attempts"][0]["host"] == "10.0.0.1"
    assert predicate["offline"]["sandbox"]["enforced"] is True
    assert predicate["environment"]["packages"] == {"harness": "0.1.0"}
    assert predicate["run"]["name"] == "signing"


def test_sign_then_verify(run_dir, keys):
    private, public = keys
    path = sign_run(run_dir, private)
    assert path == run_dir / ENVELOPE_NAME

    envelope = read_envelope(run_dir)
    assert envelope["payloadType"] == PAYLOAD_TYPE
    [signature] = envelope["signatures"]
    assert signature["keyid"] == check_private_key(private)
    payload = base64.b64decode(envelope["payload"])
    assert json.loads(payload) == statement(run_dir)

    # The envelope is plain DSSE: pyca/cryptography alone checks it over the PAE bytes.
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    pae = b"DSSEv1 %d %b %d %b" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload), payload)
    load_pem_public_key(public.read_bytes()).verify(base64.b64decode(signature["sig"]), pae)

    result = verify_run(run_dir, public)
    assert result.ok and result.signature_ok and not result.problems, result.problems
    assert len(result.subjects) == 8
    assert {c.status for c in result.subjects} == {"match"}
    assert result.statement == statement(run_dir)


def test_a_changed_byte_in_a_weight_file_fails_and_is_named(run_dir, keys):
    private, public = keys
    sign_run(run_dir, private)
    weights = run_dir.parents[2] / "model" / "model.safetensors"
    flip_byte(weights)

    result = verify_run(run_dir, public)
    assert not result.ok and result.signature_ok
    [bad] = [c for c in result.subjects if c.status != "match"]
    assert bad.name == str(weights) and bad.kind == "weights" and bad.status == "changed"
    assert bad.current_sha256 == sha256(weights) != bad.recorded_sha256
    assert any(str(weights) in p for p in result.problems)


def test_a_changed_byte_in_the_report_fails_and_is_named(run_dir, keys):
    private, public = keys
    sign_run(run_dir, private)
    flip_byte(run_dir / "report.md", 3)

    result = verify_run(run_dir, public)
    assert not result.ok and result.signature_ok
    assert [(c.name, c.status) for c in result.subjects if c.status != "match"] == [
        ("report.md", "changed")
    ]


def test_a_removed_sample_log_or_an_added_one_fails(run_dir, keys):
    private, public = keys
    sign_run(run_dir, private)
    (run_dir / "samples" / "m" / "smoke_en.jsonl").rename(run_dir / "samples" / "m" / "x.jsonl")

    result = verify_run(run_dir, public)
    assert not result.ok
    assert [(c.name, c.status) for c in result.subjects if c.status != "match"] == [
        ("samples/m/smoke_en.jsonl", "missing")
    ]
    assert any(
        p.startswith("samples/m/x.jsonl: in the run directory but not") for p in result.problems
    )


def test_a_modified_statement_in_the_payload_fails_the_signature(run_dir, keys):
    private, public = keys
    sign_run(run_dir, private)
    # Raise the score in the report and in the signed statement, and re-encode the payload.
    report = run_dir / "report.md"
    report.write_text(report.read_text().replace("0.625", "0.925"))
    envelope = read_envelope(run_dir)
    stmt = json.loads(base64.b64decode(envelope["payload"]))
    stmt["predicate"]["models"]["m"]["scores"]["smoke"]["tasks"]["smoke_en"]["acc,none"] = 0.925
    for subject in stmt["subject"]:
        if subject["name"] == "report.md":
            subject["digest"]["sha256"] = sha256(report)
    envelope["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    write_envelope(run_dir, envelope)

    result = verify_run(run_dir, public)
    assert not result.ok and not result.signature_ok and result.statement is None
    assert "signature does not verify" in result.problems[0]


def test_any_changed_character_of_the_signature_or_payload_fails(run_dir, keys):
    private, public = keys
    sign_run(run_dir, private)
    original = read_envelope(run_dir)
    payload = original["payload"]
    # Every character of the signature, the payload's ends (base64's spare bits live in the
    # last characters) and a stride through its middle.
    positions = [("sig", i) for i in range(len(original["signatures"][0]["sig"]))]
    payload_positions = set(range(8)) | set(range(len(payload) - 8, len(payload)))
    payload_positions |= set(range(0, len(payload), 97))
    positions += [("payload", i) for i in sorted(payload_positions)]
    for field, index in positions:
        envelope = json.loads(json.dumps(original))
        holder = envelope["signatures"][0] if field == "sig" else envelope
        text = holder[field]
        if text[index] == "=":
            continue
        replacement = B64[(B64.index(text[index]) + 1) % 64]
        holder[field] = text[:index] + replacement + text[index + 1 :]
        write_envelope(run_dir, envelope)
        result = verify_run(run_dir, public)
        assert not result.ok and not result.signature_ok, (field, index)

    write_envelope(run_dir, original)
    assert verify_run(run_dir, public).ok


def test_a_changed_payload_type_or_key_id_fails(run_dir, keys):
    private, public = keys
    sign_run(run_dir, private)
    original = read_envelope(run_dir)
    for change in (
        lambda e: e.update(payloadType="application/json"),
        lambda e: e["signatures"][0].update(keyid="0" * 64),
        lambda e: e.update(signatures=[]),
        lambda e: e.pop("payload"),
    ):
        envelope = json.loads(json.dumps(original))
        change(envelope)
        write_envelope(run_dir, envelope)
        result = verify_run(run_dir, public)
        assert not result.ok and not result.signature_ok and result.problems


def test_another_key_does_not_verify(run_dir, keys, tmp_path):
    private, _ = keys
    sign_run(run_dir, private)
    generate_key(tmp_path / "other.key", tmp_path / "other.pub")

    result = verify_run(run_dir, tmp_path / "other.pub")
    assert not result.ok and not result.signature_ok
    assert "other.pub" in result.problems[0]


def test_an_envelope_copied_to_another_run_fails(run_dir, keys, tmp_path):
    private, public = keys
    sign_run(run_dir, private)
    other = write_run(tmp_path / "second")
    results = json.loads((other / "results.json").read_text())
    results["models"]["m"]["suites"]["smoke"]["tasks"]["smoke_en"]["metrics"]["acc,none"] = 0.9
    (other / "results.json").write_text(json.dumps(results, indent=2))
    shutil.copy(run_dir / ENVELOPE_NAME, other / ENVELOPE_NAME)

    result = verify_run(other, public)
    assert not result.ok and result.signature_ok
    assert ("results.json", "changed") in [(c.name, c.status) for c in result.subjects]


def test_a_run_without_an_envelope_says_how_to_sign_it(run_dir, keys):
    _, public = keys
    with pytest.raises(BadInputError, match=r"attestation.intoto.json: no such file.*--sign KEY"):
        verify_run(run_dir, public)


def test_bad_key_files_are_bad_input_naming_the_file(run_dir, keys, tmp_path):
    private, public = keys
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    for key in (public, garbage, tmp_path / "absent.key"):
        with pytest.raises(BadInputError, match=str(key.name)):
            sign_run(run_dir, key)
    assert not (run_dir / ENVELOPE_NAME).exists()
    with pytest.raises(BadInputError, match="this is a public key"):
        check_private_key(public)

    sign_run(run_dir, private)
    with pytest.raises(BadInputError, match="harness.key: not a PEM public key; this is the priv"):
        verify_run(run_dir, private)
    with pytest.raises(BadInputError, match="garbage.pem"):
        verify_run(run_dir, garbage)


def test_a_passphrase_protected_key_is_refused(run_dir, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = tmp_path / "locked.key"
    key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(BadInputError, match="locked.key: the private key has a passphrase"):
        sign_run(run_dir, key)


def test_a_run_still_running_is_not_signed(run_dir, keys):
    private, _ = keys
    results = json.loads((run_dir / "results.json").read_text())
    results["status"] = "running"
    (run_dir / "results.json").write_text(json.dumps(results))
    with pytest.raises(BadInputError, match="still `running`"):
        sign_run(run_dir, private)
    assert not (run_dir / ENVELOPE_NAME).exists()
