"""Signed attestation of a run: an in-toto Statement in a DSSE envelope, signed offline.

`harness keygen` makes an Ed25519 key pair; `harness run --sign KEY` ends by writing
`attestation.intoto.json` into the run directory; `harness attest RUN_DIR --verify PUBKEY`
checks the signature and re-hashes every file the statement names. The statement's subjects
are the weight and data files the run recorded (by their recorded path) and the run's own
result files (by their path in the run directory); its predicate (`PREDICATE_TYPE`) is the
scores, gates, offline evidence and environment from results.json.

securesystemslib does the DSSE envelope (pre-authentication encoding, base64, key ids) and the
signature checks; pyca/cryptography reads and writes the PEM keys. Both are imported inside
the functions that need them. No network, no key server, no transparency log: trust in the
public key is the reader's to establish.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.digests import hash_files
from harness.errors import BadInputError

ENVELOPE_NAME = "attestation.intoto.json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://harness.dev/run-record/v1"
"""An identifier, never fetched: the predicate is a digest of a harness results.json
(schema_version 1); a new predicate layout gets a new version here."""

RUN_FILES = ("results.json", "report.md", "report.html", "junit.xml", "run.log")
"""The run's own files that the statement names, with every `samples/**/*.jsonl`."""


@dataclass(frozen=True)
class SubjectCheck:
    """One subject of a verified statement compared with the file on disk now."""

    name: str
    kind: str
    """`run` (a file of the run directory), `weights` or `data`."""
    path: str
    """Where it was read: in the run directory, or the recorded real path."""
    recorded_sha256: str
    current_sha256: str | None
    status: str
    """`match`, `changed` or `missing`."""


@dataclass
class VerifyResult:
    """What `verify_run` found. `ok` only when the signature verifies and nothing differs."""

    ok: bool
    signature_ok: bool
    keyid: str | None = None
    subjects: list[SubjectCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    statement: dict[str, Any] | None = None
    """The signed statement, once its signature verified."""


def generate_key(private_path: Path, public_path: Path) -> None:
    """Write a new Ed25519 key pair: the private key as unencrypted PKCS#8 PEM with mode 0600,
    the public key as SubjectPublicKeyInfo PEM. Never overwrites a file (`BadInputError`)."""
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise BadInputError(
                f"{path}: already exists; keygen never overwrites a key, give another path"
            )
    if private_path.absolute() == public_path.absolute():
        raise BadInputError(f"{private_path}: the private and public key need two files")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(private_path, private_pem, 0o600)
    try:
        _write_new(public_path, public_pem, 0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)  # half a key pair is of no use to anyone
        raise


def check_private_key(private_key: Path) -> str:
    """The key id of a usable signing key, or `BadInputError` naming the file. For the CLI to
    call before a run starts, so a bad `--sign KEY` fails before hours of scoring."""
    return _load_signer(private_key).public_key.keyid


def statement(run_dir: Path) -> dict[str, Any]:
    """The in-toto Statement v1 of a finished run, its run files hashed now."""
    from harness.record import RunRecord, load_record

    loaded = load_record(run_dir / "results.json")
    # load_record returns the typed record (or, in older harness versions, the checked dict)
    record = loaded if isinstance(loaded, RunRecord) else RunRecord.model_validate(loaded)
    if record.status == "running":
        raise BadInputError(
            f"{run_dir / 'results.json'}: status is still `running` (the run has not finished, "
            "or it crashed); only a finished run can be signed"
        )
    subjects: list[dict[str, Any]] = []
    unhashed: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    offline_files = record.offline.files
    for kind, entries in (("weights", offline_files.weights), ("data", offline_files.data)):
        for entry in entries:
            owner = entry.model if kind == "weights" else entry.suite
            if entry.sha256 is None:
                unhashed.append({"kind": kind, "of": owner, "path": entry.path, "note": entry.note})
                continue
            if (entry.path, entry.sha256) in seen:
                continue
            seen.add((entry.path, entry.sha256))
            subjects.append(
                {
                    "name": entry.path,
                    "digest": {"sha256": entry.sha256},
                    "annotations": {
                        "kind": kind,
                        "of": owner,
                        "real_path": entry.real_path or entry.path,
                    },
                }
            )
    for path in run_files(run_dir):
        subjects.append(
            {
                "name": path.relative_to(run_dir).as_posix(),
                "digest": {"sha256": hash_files([path])[0].sha256},
                "annotations": {"kind": "run"},
            }
        )

    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": _predicate(record, unhashed),
    }


def _predicate(record, unhashed: list[dict[str, Any]]) -> dict[str, Any]:
    """What the run found, from its `RunRecord`: scores, gates, offline evidence, environment."""
    models = {
        model_id: {
            "status": model.status,
            "error": model.error,
            "identity": _plain(model.identity),
            "scores": {
                suite: {
                    "status": result.status,
                    "tasks": {
                        task: _plain(info).get("metrics", {}) for task, info in result.tasks.items()
                    },
                }
                for suite, result in model.suites.items()
            },
        }
        for model_id, model in record.models.items()
    }
    offline = record.offline
    return {
        "harness_version": record.harness_version,
        "schema_version": record.schema_version,
        "run": _plain(record.run),
        "status": record.status,
        "exit_code": record.exit_code,
        "config_hash": record.config_hash,
        "models": models,
        "gates": _plain(record.gates),
        "offline": {
            "policy": _plain(offline.policy),
            "sandbox": _plain(offline.sandbox),
            "attempt_count": len(offline.attempts),
            "attempts": [_plain(a) for a in offline.attempts],
            "files_without_digest": unhashed,
        },
        "environment": _plain(record.environment),
    }


def _plain(value: Any) -> Any:
    """A record part as the JSON it was read from (fields absent there stay absent)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_unset=True)
    return value


def run_files(run_dir: Path) -> list[Path]:
    """The run's own files a statement names: `RUN_FILES` that exist, then the sample logs."""
    files = [run_dir / name for name in RUN_FILES if (run_dir / name).is_file()]
    return files + sorted(p for p in (run_dir / "samples").rglob("*.jsonl") if p.is_file())


def sign_run(run_dir: Path, private_key: Path) -> Path:
    """Sign the run's statement with `private_key` and write the DSSE envelope into the run
    directory (`ENVELOPE_NAME`, replaced in one rename). Call it once every report file is
    final: a file written later no longer matches."""
    from securesystemslib.dsse import Envelope

    from harness.reports.files import write_text_atomic

    signer = _load_signer(private_key)  # before hashing: a bad key fails at once
    envelope = Envelope(_canonical(statement(run_dir)), PAYLOAD_TYPE, {})
    envelope.sign(signer)
    path = run_dir / ENVELOPE_NAME
    write_text_atomic(path, json.dumps(envelope.to_dict(), indent=2) + "\n")
    return path


def verify_run(run_dir: Path, public_key: Path) -> VerifyResult:
    """Check the run's envelope against `public_key`, then re-hash every subject of the signed
    statement: run files in `run_dir`, weight and data files at their recorded real path.

    A bad key file, or no envelope, is `BadInputError`; anything else that is wrong (a byte
    changed in the envelope or in a subject, another key) is a result with `ok` false."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import Error as SSlibError
    from securesystemslib.exceptions import VerificationError

    key = _load_public_key(public_key)
    path = run_dir / ENVELOPE_NAME
    if not path.is_file():
        raise BadInputError(
            f"{path}: no such file; this run was not signed (run with --sign KEY to sign one)"
        )
    result = VerifyResult(ok=False, signature_ok=False, keyid=key.keyid)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        _require_canonical_base64(raw)
        envelope = Envelope.from_dict(raw)
    except (ValueError, KeyError, TypeError, AttributeError, SSlibError) as exc:
        result.problems.append(
            f"{path}: not a readable DSSE envelope ({type(exc).__name__}: {exc})"
        )
        return result
    try:
        envelope.verify([key], 1)
    except VerificationError:
        result.problems.append(
            f"{path}: the signature does not verify with {public_key} (key id {key.keyid}): "
            "the envelope was changed, or another key signed it"
        )
        return result
    result.signature_ok = True
    try:
        stmt = _signed_statement(envelope)
    except ValueError as exc:
        result.problems.append(f"{path}: {exc}")
        return result
    result.statement = stmt
    result.subjects = [_check_subject(run_dir, subject) for subject in stmt["subject"]]
    for check in result.subjects:
        if check.status != "match":
            result.problems.append(f"{check.name}: {check.status} since the run was signed")
    named = {s.name for s in result.subjects if s.kind == "run"}
    for extra in run_files(run_dir):
        name = extra.relative_to(run_dir).as_posix()
        if name not in named:
            result.problems.append(f"{name}: in the run directory but not in the attestation")
    result.ok = not result.problems
    return result


def _signed_statement(envelope) -> dict[str, Any]:
    if envelope.payload_type != PAYLOAD_TYPE:
        raise ValueError(f"payload type {envelope.payload_type!r}, expected {PAYLOAD_TYPE!r}")
    try:
        stmt = json.loads(envelope.payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the signed payload is not JSON ({exc})") from None
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        raise ValueError(f"the signed payload is not an in-toto Statement ({STATEMENT_TYPE})")
    if stmt.get("predicateType") != PREDICATE_TYPE:
        raise ValueError(f"predicate type {stmt.get('predicateType')!r}, not {PREDICATE_TYPE}")
    subjects = stmt.get("subject")
    if not isinstance(subjects, list) or not all(
        isinstance(s, dict)
        and isinstance(s.get("name"), str)
        and isinstance(s.get("digest"), dict)
        and isinstance(s["digest"].get("sha256"), str)
        for s in subjects
    ):
        raise ValueError("the statement's subjects are not a list of names with sha256 digests")
    return stmt


def _check_subject(run_dir: Path, subject: dict[str, Any]) -> SubjectCheck:
    annotations = subject.get("annotations") or {}
    kind = str(annotations.get("kind", "run"))
    name, recorded = subject["name"], subject["digest"]["sha256"]
    if kind == "run":
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            return SubjectCheck(name, kind, name, recorded, None, "missing")
        path = run_dir / relative
    else:
        path = Path(str(annotations.get("real_path") or name))
    if not path.is_file():
        return SubjectCheck(name, kind, str(path), recorded, None, "missing")
    current = hash_files([path], verify=True)[0].sha256
    status = "match" if current == recorded else "changed"
    return SubjectCheck(name, kind, str(path), recorded, current, status)


def _require_canonical_base64(raw: dict[str, Any]) -> None:
    """Base64 has spare bits and a URL-safe alphabet: a text that decodes to the same bytes
    would still verify. Only the one standard encoding is accepted, so every changed byte of
    payload or signature fails."""
    texts = [raw["payload"]] + [s["sig"] for s in raw["signatures"]]
    for text in texts:
        if base64.standard_b64encode(base64.b64decode(text, validate=True)).decode() != text:
            raise ValueError("payload or signature is not in standard base64")


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _load_signer(private_key: Path):
    """A securesystemslib `CryptoSigner` for a PEM private key, or `BadInputError`."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner

    data = _read_key(private_key, "private")
    try:
        key = load_pem_private_key(data, password=None)
    except TypeError:
        raise BadInputError(
            f"{private_key}: the private key has a passphrase; harness signs with an "
            "unencrypted key kept with mode 0600 (make one with `harness keygen`)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        hint = " (this is a public key)" if b"PUBLIC KEY" in data else ""
        raise BadInputError(
            f"{private_key}: not a PEM private key{hint}; make one with `harness keygen`"
        ) from None
    try:
        return CryptoSigner(key)
    except ValueError as exc:
        raise BadInputError(f"{private_key}: cannot sign with this key ({exc})") from None


def _load_public_key(public_key: Path):
    """A securesystemslib `SSlibKey` for a PEM public key, or `BadInputError`."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.signer import SSlibKey

    data = _read_key(public_key, "public")
    try:
        return SSlibKey.from_crypto(load_pem_public_key(data))
    except (ValueError, UnsupportedAlgorithm):
        hint = (
            "this is the private key; verify with the public one (written beside it by keygen)"
            if b"PRIVATE KEY" in data
            else "give the public key written by `harness keygen`"
        )
        raise BadInputError(f"{public_key}: not a PEM public key; {hint}") from None


def _read_key(path: Path, which: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInputError(
            f"{path}: cannot read the {which} key ({exc.strerror}); make a key pair with "
            "`harness keygen`"
        ) from None


def _write_new(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise BadInputError(f"{path}: already exists; keygen never overwrites a key") from None
    except OSError as exc:
        raise BadInputError(f"{path}: cannot write the key ({exc.strerror})") from None
    with os.fdopen(handle, "wb") as out:
        os.fchmod(out.fileno(), mode)  # the umask may have taken bits away; never added
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def key_exposure(private_key: Path, config) -> str | None:
    """Why the evaluated code could read `private_key` during a run of `config`, or None.

    In the sandbox the worker sees the Python installation, harness, the task directories, the
    data and the model folders; a key in any of them could be copied into the results the
    supervisor writes, and forge later signatures. Without the sandbox the evaluated code
    shares this process and can read anything: signing is refused then."""
    import sys

    import harness
    from harness.suites.catalog import PROJECT_TASKS

    if not config.offline.sandbox:
        return (
            "the config runs without the sandbox (offline.sandbox: false), so the evaluated "
            "code shares harness's process and could read the key; sign sandboxed runs only"
        )
    key = Path(private_key).expanduser().resolve()
    visible = [Path(sys.prefix), Path(sys.base_prefix), Path(harness.__file__).parent,
               PROJECT_TASKS, *config.task_paths]  # fmt: skip
    if config.data_dir is not None:
        visible.append(config.data_dir)
    for spec in config.models:
        if spec.path is not None:
            visible.append(spec.path if spec.path.is_dir() else spec.path.parent)
    if any(spec.repo for spec in config.models):
        from huggingface_hub import constants

        visible.append(Path(constants.HF_HUB_CACHE))
    for folder in visible:
        if key.is_relative_to(Path(folder).expanduser().resolve()):
            return (
                f"{private_key} is inside {folder}, which the evaluated code can read during "
                "the run; keep the key elsewhere (`harness keygen` writes it to "
                "~/.config/harness/)"
            )
    return None
