"""A realistic record of a run an official would be asked to sign: three models (one a
stand-in), one model skipped, six languages with a multiple-choice and a short-answer task
each, long paths and full hashes, a partial scope, a lock file, and gate checks with every
status. Built through `crafted_record`, so it is a valid `RunRecord`."""

from __future__ import annotations

import hashlib
from typing import Any

from harness.record import RunRecord

from ..records import crafted_record

LANGUAGES = ("hi", "bn", "ta", "te", "mr", "ur")
STAND_IN = "qwen2.5-7b-instruct"
MODELS = (STAND_IN, "llama-3.1-8b-instruct", "sarvam-1-2b-multilingual-instruct")
SKIPPED = "glm-4-9b-chat"
STAND_IN_PATH = "/srv/airgap/stand-ins/tiny-qwen2-for-smoke-tests-only"
CHANCE = 0.25
STATUSES = ("fail", "missing", "inconclusive", "insufficient evidence", "not judged", "pass")
PARTIAL = "PARTIAL: 30 of 1,119 items (limit 5 items per task; model glm-4-9b-chat skipped: not on this machine)"  # noqa: E501


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def mc_task(language: str) -> str:
    return f"native_{language}_mc"


def gen_task(language: str) -> str:
    return f"native_{language}_gen"


def _snapshot(model: str) -> str:
    return f"/srv/airgap/hf-cache/hub/models--org--{model}/snapshots/{sha(model)[:40]}"


def _identity(model: str) -> dict[str, Any]:
    stand_in = model == STAND_IN
    where = STAND_IN_PATH if stand_in else _snapshot(model)
    shards = [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)]
    return {
        "kind": "directory" if stand_in else "repo",
        "location": where,
        "directory": where,
        "repo": None if stand_in else f"org/{model}",
        "revision": None if stand_in else "main",
        "commit": None if stand_in else sha(model)[:40],
        "weight_files": [
            {"path": f"{where}/{s}", "real_path": f"{where}/{s}", "size_bytes": 3_900_000_000,
             "sha256": sha(f"{model}/{s}")}
            for s in shards
        ],
        "other_files": [
            {"path": f"{where}/{name}", "real_path": f"{where}/{name}", "size_bytes": 7_031,
             "sha256": sha(f"{model}/{name}"), "name": name, "role": role}
            for name, role in (("config.json", "config"), ("tokenizer.json", "tokenizer"),
                               ("tokenizer_config.json", "chat template"))
        ],
        "digest": sha(f"digest of {model}"),
    }  # fmt: skip


def _scores(model_index: int, language_index: int) -> tuple[float, float]:
    value = 0.35 + 0.08 * model_index + 0.05 * language_index
    if model_index == 2 and language_index == 5:
        value = 0.2  # below chance
    return round(value, 3), 0.048


def _model(model_index: int, model: str) -> dict[str, Any]:
    suites = {}
    for li, language in enumerate(LANGUAGES):
        acc, stderr = _scores(model_index, li)
        suites[f"native_{language}"] = {
            "status": "ok",
            "seconds": 41.5 + li,
            "tasks": {
                mc_task(language): {
                    "metrics": {"acc,none": acc, "acc_stderr,none": stderr},
                    "n_samples": {"original": 100, "effective": 5},
                    "samples_file": f"samples/{model}/{mc_task(language)}.jsonl",
                    "task_hash": sha(f"{mc_task(language)} as asked"),
                    "chance": CHANCE,
                },
                gen_task(language): {
                    "metrics": {"exact_match,none": acc / 2, "exact_match_stderr,none": 0.03,
                                "chrf,none": 40.0 + li, "chrf_stderr,none": 2.0},
                    "n_samples": {"original": 80, "effective": 5},
                    "samples_file": f"samples/{model}/{gen_task(language)}.jsonl",
                    "generation": {"answers": 5, "thought": 0, "hit_token_limit": li % 2},
                    "task_hash": sha(f"{gen_task(language)} as asked by {model}"),
                },
            },
        }  # fmt: skip
    return {
        "status": "ok",
        "suites": suites,
        "identity": _identity(model),
        "stand_in": {"configured": "Qwen/Qwen2.5-7B-Instruct",
                     "scored": f"directory {STAND_IN_PATH}"}
        if model == STAND_IN else None,
        "chat_template_sha256": sha(f"{model} rendered chat"),
        "dtype": "bfloat16",
        "device": "cuda:0",
        "parameters": 7_615_616_512,
        "load_seconds": 12.4,
        "hash_seconds": 31.0,
        "tokenizer": {
            language: {"tokens_per_word": 2.1, "tokens_per_char": 0.4, "roundtrip_lossless": 1.0,
                       "unknown_rate": 0.0, "median_item_tokens": 180, "context_window": 32768,
                       "context_share": 0.0055}
            for language in LANGUAGES
        },
        "throughput": {"load_seconds": 12.4, "loaded_from": "disk",
                       "loglikelihood_items_per_second": 41.3,
                       "generation_tokens_per_second": 812.0, "peak_rss_bytes": 9 * 2**30,
                       "peak_gpu_bytes": 17 * 2**30},
    }  # fmt: skip


def _checks(judged: bool) -> list[dict[str, Any]]:
    checks = []
    for mi, model in enumerate(MODELS):
        for li, language in enumerate(LANGUAGES):
            turn = mi * len(LANGUAGES) + li
            status = STATUSES[turn % len(STATUSES)] if judged else "not judged"
            value, stderr = _scores(mi, li)
            threshold = 0.5
            margin = value - threshold
            checks.append(
                {
                    "gate": "knowledge floor", "rule": "min", "model": model,
                    "suite": f"native_{language}", "task": mc_task(language), "language": language,
                    "metric": "acc", "value": None if status == "missing" else value,
                    "stderr": None if status == "missing" else stderr, "items": 5,
                    "reference": threshold, "reference_stderr": None, "threshold": threshold,
                    "margin": None if status == "missing" else margin,
                    "margin_low": None if status == "missing" else margin - 0.09,
                    "margin_high": None if status == "missing" else margin + 0.09,
                    "method": "wilson 95%", "chance": CHANCE, "status": status,
                    "detail": f"{status} on {mc_task(language)}",
                }
            )  # fmt: skip
        checks.append(
            {
                "gate": "better than guessing", "rule": "above_chance", "model": model,
                "suite": "native_ur", "task": mc_task("ur"), "language": "ur", "metric": "acc",
                "value": 0.3, "stderr": 0.05, "items": 5, "reference": CHANCE,
                "reference_stderr": None, "threshold": CHANCE, "margin": 0.05,
                "margin_low": -0.04, "margin_high": 0.14, "method": "exact binomial 95%",
                "chance": CHANCE, "status": "inconclusive" if judged else "not judged",
                "detail": "interval straddles chance",
            }
        )  # fmt: skip
    return checks


def signable_record(
    judged: bool = True, inconclusive_fails: bool = True, partial: bool = True
) -> RunRecord:
    """The record; `judged=False` is what a partial run gives by default (every check not
    judged)."""
    checks = _checks(judged)
    counts: dict[str, int] = {}
    verdicts: dict[str, dict[str, str]] = {}
    for check in checks:
        counts[check["status"]] = counts.get(check["status"], 0) + 1
        verdicts.setdefault(check["model"], {})[check["language"]] = check["status"]
    failing = {"fail", "missing"} | (
        {"inconclusive", "insufficient evidence"} if inconclusive_fails else set()
    )
    models = {model: _model(i, model) for i, model in enumerate(MODELS)}
    models[SKIPPED] = {"status": "skipped", "error": "not on this machine"}
    suites = {
        f"native_{language}": {
            "kind": "group",
            "source": f"/opt/harness/tasks/native/{language}/native_{language}.yaml",
            "tasks": [mc_task(language), gen_task(language)],
            "languages": {mc_task(language): language, gen_task(language): language},
            "definition_files": [
                {
                    "path": f"/opt/harness/tasks/native/{language}/{name}",
                    "size_bytes": 412,
                    "sha256": sha(f"{language}/{name}"),
                    "name": f"native/{language}/{name}",
                    "role": "task definition",
                }
                for name in (f"native_{language}_mc.yaml", f"native_{language}_gen.yaml")
            ],
        }  # fmt: skip
        for language in LANGUAGES
    }
    directory = "/srv/evaluations/results/india-fallback-2026/20261202T004044Z"
    return crafted_record(
        suites=suites,
        models=models,
        run={
            "name": "india-fallback-2026",
            "directory": directory,
            "config_file": "/srv/evaluations/configs/india-fallback-2026.yaml",
            "finished": "2026-12-02T01:40:44+00:00",
            "wall_seconds": 3602.5,
        },
        config={
            "name": "india-fallback-2026",
            "description": "Open-weight fallback candidates for India.",
            "suites": list(suites),
            "models": [{"id": m, "chat_template": m != MODELS[2]} for m in (*MODELS, SKIPPED)],
            "num_fewshot": 3,
        },
        config_hash=sha("config"),
        environment={
            "packages": {"python": "3.11.7", "lm_eval": "0.4.13", "torch": "2.13.0"},
            "hardware": {
                "cpu": "AMD EPYC 9654",
                "cpu_count": 16,
                "memory_bytes": 128 * 2**30,
                "os": "Linux 6.8",
                "machine": "x86_64",
                "gpus": [
                    {
                        "index": 0,
                        "name": "NVIDIA H200",
                        "memory_bytes": 141 * 10**9,
                        "compute_capability": "9.0",
                    }
                ],
            },
        },  # fmt: skip
        gates={
            "confidence": 0.95,
            "min_items": 30,
            "inconclusive_fails": inconclusive_fails,
            "judged": judged,
            "passed": judged and not any(c["status"] in failing for c in checks),
            "counts": counts,
            "verdicts": verdicts,
            "checks": checks,
        },
        scope={
            "partial": partial,
            "reasons": ["limit 5 items per task", f"model {SKIPPED} skipped: not on this machine"]
            if partial
            else [],
            "items_scored": 30 if partial else 1119,
            "items_total": 1119,
        },
        lock={
            "path": "/srv/evaluations/configs/india-fallback-2026.lock.json",
            "sha256": sha("lock"),
            "verified": True,
        },
        offline={
            "policy": {"mode": "strict", "allow_loopback": True},
            "set_offline_env": True,
            "sandbox": {
                "enforced": True,
                "tool": "bubblewrap 0.8.0",
                "namespaces": ["user", "network", "pid"],
                "capture": {"enabled": False, "reason": "no /dev/net/tun in this host"},
                "self_test": {"passed": True, "method": "probe"},
            },
            "guard": {
                "installed": True,
                "kind": "audit hook",
                "allow_loopback": True,
                "self_test": {"passed": True, "method": "probe"},
                "children": "",
                "scope": "",
            },
            "kernel": {"enforced": True, "method": "seccomp", "denies": ["bpf", "ptrace"]},
            "isolation": {"isolated": True, "method": "bubblewrap", "interfaces": ["lo"]},
            "files": {
                "weights": [
                    {**f, "model": m, "role": "weights"}
                    for m in MODELS
                    for f in _identity(m)["weight_files"]
                ],
                "data": [
                    {
                        "path": f"/opt/harness/tasks/native/{lang}/mc.jsonl",
                        "size_bytes": 44_224,
                        "sha256": sha(f"{lang} data"),
                        "suite": f"native_{lang}",
                    }
                    for lang in LANGUAGES
                ],
            },
        },  # fmt: skip
        exit_code=4,
    )


def every_hash(record: RunRecord) -> list[str]:
    """Every sha256 the report must print in full."""
    hashes = [record.config_hash, record.lock.sha256]
    for entry in record.models.values():
        if entry.identity is not None:
            hashes.append(entry.identity.digest)
            hashes += [f.sha256 for f in entry.identity.weight_files + entry.identity.other_files]
        if entry.chat_template_sha256:
            hashes.append(entry.chat_template_sha256)
    return hashes
