"""`make gpu-check`: what harness does on one NVIDIA GPU, checked in one run of a few minutes.

Checks, each printed as PASS or FAIL with its numbers (exit status 1 on any FAIL):

1. the selftest matrix (`harness selftest`'s families) on the device in bfloat16: load, a finite
   forward pass, lm-eval's loglikelihoods against the model's own forward pass, greedy
   generation with the KV cache against a cache-free argmax, bfloat16 against float32 (CPU);
2. shared-context loglikelihoods (`harness.shared_prefix`) against lm-eval's own HFLM on the
   device, every request of native multiple-choice items, per family;
3. a random-weight model with Qwen2.5-1.5B's layers scored on the native suites through
   harness's scorer (`make_lm` + `evaluate_suite`, what `harness run`'s worker calls) and
   through lm-eval's HFLM directly: the same scores, and the items/s ratio;
4. `device_map: auto`: the model spread by accelerate gives the logits of the one-device load;
5. the preflight's GPU figures (`harness.capacity`) against torch.cuda.mem_get_info, and its
   planned memory against the peak torch allocated while scoring.

`--device cpu --small` runs the same code on a tiny model, one family and one language (the
GPU-only checks 4 and 5 say SKIP), so the script itself is tested on any machine
(tests/test_gpu_check.py). The report also goes to bench/results/gpu-check-DATE.txt (or `--out`).

Usage: python bench/gpu_check.py [--device cuda] [--small] [--limit N] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NATIVE = REPO / "tasks" / "native"

QWEN25_1_5B = {
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "vocab_size": 151936,
}
"""Qwen2.5-1.5B's hyperparameters (its config.json), put over the bundled Qwen2.5-0.5B-Instruct
reference config (harness/families/reference), whose other keys the two models share."""

BF16_LOGLIKELIHOOD_TOLERANCE = 0.01
"""lm-eval's loglikelihood against the model's own forward pass, both in bfloat16 on the
device: the same arithmetic, batched and padded differently, so bfloat16's rounding (8 bits of
mantissa) moves each log-probability by a fraction of itself (relative)."""
NEAR_TIE = 0.1
"""A cached greedy token may differ from the cache-free argmax only where the two logits are
this close (bfloat16 rounds the two paths differently)."""
SHARED_RELATIVE = 1e-4
"""Shared-context loglikelihoods against lm-eval's, float32 on the device (relative)."""


class Report:
    """Lines printed as they come and kept for the dated file; every check's verdict."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.failed: list[str] = []

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def check(self, name: str, passed: bool | None, detail: str) -> bool:
        verdict = "SKIP" if passed is None else ("PASS" if passed else "FAIL")
        if passed is False:
            self.failed.append(name)
        self.say(f"{verdict}  {name}: {detail}")
        return bool(passed)


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


# 1. The selftest matrix on the device in bfloat16.


def selftest_matrix(report: Report, device: str, families: list, scratch: Path) -> None:
    import torch

    from harness.config import ModelSpec
    from harness.families.selftest import (
        _PROMPTS,
        BF16_MAX_TOLERANCE,
        BF16_MEAN_TOLERANCE,
        build_replica,
    )
    from harness.models import load_model, resolve_model_source

    report.say(f"== 1. selftest matrix on {device} in bfloat16")
    for family in families:
        started = time.perf_counter()
        directory = scratch / family.name
        notes, ok = [], True
        try:
            original = build_replica(family, directory)
            spec = ModelSpec(id=family.name, path=directory, dtype="bfloat16", device=device)
            loaded = load_model(spec, resolve_model_source(spec))
            model, tok = loaded.model, loaded.tokenizer
            assert str(model.dtype) == "torch.bfloat16", f"loaded as {model.dtype}"
            assert str(model.device).startswith(device.split(":")[0]), f"on {model.device}"
            ids = tok(_PROMPTS[0][0], return_tensors="pt").input_ids
            with torch.no_grad():
                logits = model(ids.to(model.device)).logits.float()
            assert torch.isfinite(logits).all(), "logits are not finite"
            notes.append(f"load+forward ok ({loaded.parameters:,} params)")

            gap = _lm_eval_gap(model, tok, device, _PROMPTS)
            ok &= gap <= BF16_LOGLIKELIHOOD_TOLERANCE
            notes.append(f"lm-eval relative gap {gap:.1e}")

            ties, worst = _cached_generation(model, tok, ids)
            ok &= worst <= NEAR_TIE
            notes.append(f"generate: {ties} near-tie differences (max {worst:.3f})")

            with torch.no_grad():
                full = torch.log_softmax(original(ids).logits.float(), dim=-1)
            low = torch.log_softmax(logits.cpu(), dim=-1)
            diff = (full - low).abs()
            mean, most = float(diff.mean()), float(diff.max())
            ok &= mean <= BF16_MEAN_TOLERANCE and most <= BF16_MAX_TOLERANCE
            notes.append(f"bf16 vs fp32 |dlog p| mean {mean:.4f} max {most:.4f}")
            del model, loaded, original
        except Exception as exc:  # a family fails, the matrix goes on
            ok = False
            notes.append(f"{type(exc).__name__}: {str(exc).strip()[:200]}")
        seconds = time.perf_counter() - started
        report.check(f"selftest {family.name}", ok, f"{'; '.join(notes)} [{seconds:.1f}s]")
        _free(device)


def _lm_eval_gap(model, tok, device: str, prompts) -> float:
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=2, device=device)
    requests = [
        Instance("loglikelihood", doc={}, arguments=pair, idx=i) for i, pair in enumerate(prompts)
    ]
    scored = lm.loglikelihood(requests, disable_tqdm=True)
    worst = 0.0
    for (context, continuation), (logprob, _) in zip(prompts, scored, strict=True):
        head = tok(context, add_special_tokens=False).input_ids
        tail = tok(continuation, add_special_tokens=False).input_ids
        with torch.no_grad():
            out = model(torch.tensor([head + tail], device=model.device)).logits[0]
        logp = torch.log_softmax(out, dim=-1).float()  # in the model's dtype, as lm-eval does
        expected = sum(float(logp[len(head) + i - 1, t]) for i, t in enumerate(tail))
        worst = max(worst, abs(expected - logprob) / max(abs(expected), 1e-9))
    return worst


def _cached_generation(model, tok, ids, steps: int = 6) -> tuple[int, float]:
    """Greedy generation with the KV cache, read back by one cache-free forward pass over what
    it produced: at each step the produced token must be the argmax, or within `NEAR_TIE` of
    it. Returns the number of near-tie differences and the largest logit gap."""
    import torch

    ids = ids.to(model.device)
    with torch.no_grad():
        produced = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=steps,
            min_new_tokens=steps,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
        logits = model(produced, use_cache=False).logits[0].float()
    ties, worst = 0, 0.0
    for step in range(steps):
        position = ids.shape[1] + step - 1
        token = int(produced[0, position + 1])
        row = logits[position]
        gap = float(row.max() - row[token])
        if gap > 0:
            ties += 1
        worst = max(worst, gap)
    return ties, worst


def _free(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


# 2. Shared-context loglikelihoods against lm-eval's HFLM.


def native_requests(lm, languages: list[str], per_language: int) -> list:
    """lm-eval's tokenized requests for native multiple-choice items (reading passages first,
    the long shared contexts), encoded by lm-eval's HFLM."""
    requests = []
    for code in languages:
        lines = (NATIVE / code / "mc.jsonl").read_text(encoding="utf-8").splitlines()
        items = sorted((json.loads(line) for line in lines), key=lambda i: not i.get("passage"))
        for item in items[:per_language]:
            context = f"{item.get('passage', '')}\n{item['question']}\nAnswer:".lstrip()
            for choice in item["choices"]:
                context_ids, continuation_ids = lm._encode_pair(context, f" {choice}")
                requests.append(((context, f" {choice}"), context_ids, continuation_ids))
    return requests


def shared_context(
    report: Report, device: str, families: list, scratch: Path, languages: list[str]
) -> None:
    from lm_eval.models.huggingface import HFLM

    from harness.config import ModelSpec
    from harness.models import load_model, resolve_model_source
    from harness.shared_prefix import SharedPrefixScorer

    report.say(f"== 2. shared-context loglikelihoods vs lm-eval's HFLM on {device}, float32")
    for family in families:
        if family.name == "deepseek-v3.2":  # its cache cannot be shared: lm-eval scores it
            continue
        directory = scratch / family.name
        try:
            spec = ModelSpec(id=family.name, path=directory, dtype="float32", device=device)
            loaded = load_model(spec, resolve_model_source(spec))
            lm = HFLM(
                pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=4, device=device
            )
            requests = native_requests(lm, languages, 4)
            synchronize(device)
            began = time.perf_counter()
            theirs = lm._loglikelihood_tokens(requests, disable_tqdm=True)
            synchronize(device)
            middle = time.perf_counter()
            scorer = SharedPrefixScorer(lm.model, max_length=lm.max_length, batch_size=4)
            ours = scorer.score(requests)
            synchronize(device)
            ended = time.perf_counter()
            worst, flags = 0.0, 0
            for (mine, my_greedy), (their, their_greedy) in zip(ours, theirs, strict=True):
                worst = max(worst, abs(mine - their) / max(abs(their), 1e-9))
                flags += my_greedy != their_greedy
            report.check(
                f"shared-context {family.name}",
                worst <= SHARED_RELATIVE and flags == 0,
                f"{len(requests)} requests, max relative gap {worst:.1e} (allowed "
                f"{SHARED_RELATIVE:.0e}), greedy flags differing {flags}; lm-eval "
                f"{middle - began:.2f}s, shared {ended - middle:.2f}s",
            )
            del lm, loaded, scorer
        except Exception as exc:
            report.check(f"shared-context {family.name}", False, f"{type(exc).__name__}: {exc}")
        _free(device)


# 3. A seed family's model on the native suites, through harness and through lm-eval.


def build_model(directory: Path, small: bool, device: str) -> int:
    """Qwen2.5-1.5B's layers with random weights (or, `small`, the selftest's tiny replica's
    size), the selftest's small tokenizer, saved in Hugging Face layout in bfloat16. The
    vocabulary stays the real model's size (its logits are most of the scoring work); token ids
    beyond the tokenizer's decode to nothing. Returns the parameter count."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from harness.families.catalog import find_reference
    from harness.families.tiny import shrink, train_tokenizer

    reference = dict(find_reference("Qwen/Qwen2.5-0.5B-Instruct").config())
    tokenizer = train_tokenizer()
    if small:
        fields = shrink(reference, len(tokenizer), tokenizer.eos_token_id)
    else:
        fields = {**reference, **QWEN25_1_5B}
        fields.update(eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)
    fields.pop("model_type", None)
    fields["pad_token_id"] = tokenizer.pad_token_id
    config = Qwen2Config(**{k: v for k, v in fields.items() if k not in ("torch_dtype", "dtype")})
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    count = sum(p.numel() for p in model.parameters())
    del model
    _free(device)
    return count


def leaf_items(raw: dict) -> int:
    """Items lm-eval scored, over its leaf tasks (`n-samples`: effective counts)."""
    counts = raw.get("n-samples") or {}
    return sum(int(entry.get("effective") or 0) for entry in counts.values())


def suite_scores(
    report: Report, device: str, directory: Path, suite: str, limit: int | None, dtype: str
) -> dict:
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from harness.config import ModelSpec
    from harness.evaluation import evaluate_suite, make_lm, task_metrics
    from harness.models import load_model, resolve_model_source
    from harness.suites import PROJECT_TASKS, SuiteCatalog

    report.say(f"== 3. {suite} (limit {limit} per task) through harness and lm-eval, {dtype}")
    spec = ModelSpec(
        id="qwen2.5-1.5b-random", path=directory, dtype=dtype, device=device, batch_size=16
    )
    loaded = load_model(spec, resolve_model_source(spec))
    measured: dict = {"spec": spec, "parameters": loaded.parameters}

    lm_eval_lm = HFLM(
        pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=16, device=device
    )
    synchronize(device)
    began = time.perf_counter()
    theirs = simple_evaluate(
        model=lm_eval_lm,
        tasks=[suite],
        task_manager=TaskManager(include_path=str(PROJECT_TASKS)),
        limit=limit,
    )
    synchronize(device)
    their_seconds = time.perf_counter() - began

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    ours_lm = make_lm(loaded, spec)
    synchronize(device)
    began = time.perf_counter()
    ours = evaluate_suite(ours_lm, suite, SuiteCatalog().local, spec=spec, limit=limit)
    synchronize(device)
    our_seconds = time.perf_counter() - began
    if device.startswith("cuda"):
        measured["peak_allocated"] = torch.cuda.max_memory_allocated()

    mine, their = task_metrics(ours), task_metrics(theirs)
    differing = [
        task
        for task in sorted(set(mine) | set(their))
        if (mine.get(task) or {}).get("metrics") != (their.get(task) or {}).get("metrics")
    ]
    items = leaf_items(theirs)
    report.check(
        "native suites: same scores",
        not differing and leaf_items(ours) == items > 0,
        f"{len(their)} tasks and groups, {items} items; "
        + (f"differing: {', '.join(differing[:8])}" if differing else "every metric identical"),
    )
    ours_rate, their_rate = items / our_seconds, items / their_seconds
    report.check(
        "native suites: items/s",
        True,
        f"harness {ours_rate:.1f} items/s ({our_seconds:.1f}s), lm-eval HFLM {their_rate:.1f} "
        f"items/s ({their_seconds:.1f}s), ratio harness/lm-eval {ours_rate / their_rate:.2f}",
    )
    measured["model"] = loaded
    return measured


# 4. device_map: auto.


def device_map_auto(report: Report, device: str, directory: Path, loaded) -> None:
    import torch

    from harness.config import ModelSpec
    from harness.models import load_model, resolve_model_source
    from harness.models.engines import placed_on

    report.say("== 4. device_map: auto")
    if not device.startswith("cuda"):
        report.check("device_map auto", None, "needs a GPU (harness refuses it on a CPU)")
        return
    spec = ModelSpec(id="spread", path=directory, dtype=loaded.dtype, device_map="auto")
    spread = load_model(spec, resolve_model_source(spec))
    ids = loaded.tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        one = loaded.model(ids.to(loaded.model.device)).logits.float().cpu()
        many = spread.model(ids.to(spread.model.device)).logits.float().cpu()
    gap = float((one - many).abs().max())
    places = placed_on(spread.model, spread.device)
    report.check(
        "device_map auto",
        gap == 0.0,
        f"placed on {places} ({torch.cuda.device_count()} GPU(s)); max |logit difference| "
        f"against the one-device load {gap:.1e}",
    )
    del spread
    _free(device)


# 5. The preflight's figures against torch's.


def preflight_figures(report: Report, device: str, measured: dict, suite: str) -> None:
    import torch

    from harness.capacity.hardware import detect_hardware
    from harness.capacity.preflight import plan_models
    from harness.config import RunConfig
    from harness.models import resolve_model_source
    from harness.suites import SuiteCatalog

    report.say("== 5. preflight GPU figures vs torch")
    if not device.startswith("cuda"):
        report.check("preflight GPU figures", None, "no GPU on this machine")
        return
    gib = 1024**3
    hardware = detect_hardware()
    free, total = torch.cuda.mem_get_info(0)
    gpu = hardware.gpus[0] if hardware.gpus else None
    report.check(
        "preflight GPU memory",
        gpu is not None and gpu.total_bytes == total and abs(gpu.free_bytes - free) < gib,
        f"harness sees {len(hardware.gpus)} GPU(s); GPU 0 total {gpu.total_bytes / gib:.2f} "
        f"GiB free {gpu.free_bytes / gib:.2f} GiB; torch.cuda.mem_get_info total "
        f"{total / gib:.2f} GiB free {free / gib:.2f} GiB"
        if gpu
        else "harness sees no GPU",
    )
    spec = measured["spec"]
    config = RunConfig.model_validate(
        {"name": "gpu-check", "models": [spec.model_dump(exclude_none=True)], "suites": [suite]}
    )
    suites = SuiteCatalog().check([suite])
    [plan] = plan_models(
        config, hardware, sources={spec.id: resolve_model_source(spec)}, suites=suites
    )
    model = measured["model"].model
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    peak = measured.get("peak_allocated", 0)
    report.check(
        "preflight weights",
        abs(plan.weights_bytes - weights) <= 0.05 * weights,
        f"planned {plan.weights_bytes / gib:.3f} GiB, loaded {weights / gib:.3f} GiB",
    )
    report.check(
        "preflight peak",
        peak <= plan.need_bytes,
        f"planned need {plan.need_bytes / gib:.2f} GiB (weights, KV cache "
        f"{plan.kv_cache_bytes / gib:.2f}, logits {plan.logits_bytes / gib:.2f}, activations "
        f"{plan.activations_bytes / gib:.2f}, reserve {plan.reserve_bytes / gib:.2f}; batch "
        f"{plan.batch}, context {plan.context}, verdict {plan.verdict}); "
        f"torch.cuda.max_memory_allocated while harness scored {peak / gib:.2f} GiB "
        f"(ratio {peak / max(plan.need_bytes, 1):.2f})",
    )


def environment(device: str) -> str:
    from importlib.metadata import version

    import torch
    import transformers

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "none used"
    return (
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {platform.node()}; "
        f"Python {platform.python_version()}; torch {torch.__version__} (CUDA "
        f"{torch.version.cuda}); transformers {transformers.__version__}; lm-eval "
        f"{version('lm_eval')}; harness {version('harness')}; GPU: {gpu}"
    )


def unmet_requirements(roots=("harness", "lm-eval", "datasets", "evaluate", "transformers")):
    """The requirements of harness and the packages that score with it that the environment
    does not meet (a server's own packages next to the wheels of `make gpu-wheelhouse`): one
    line each, e.g. "datasets needs pyarrow>=24.0.0, has 21.0.0"."""
    from importlib.metadata import PackageNotFoundError, distribution
    from importlib.metadata import version as installed

    from packaging.requirements import Requirement

    found, seen, todo = [], set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for line in needs:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            try:
                have = installed(requirement.name)
            except PackageNotFoundError:
                found.append(f"{name} needs {requirement}, not installed")
                continue
            if not requirement.specifier.contains(have, prereleases=True):
                found.append(f"{name} needs {requirement}, has {have}")
            todo.append(requirement.name)
    return sorted(set(found))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--small", action="store_true", help="tiny model, one family, one language")
    parser.add_argument("--limit", type=int, default=None, help="items per task (default 20)")
    parser.add_argument("--dtype", default="float32", help="dtype of check 3 (default float32)")
    parser.add_argument("--out", type=Path, default=None, help="report file")
    args = parser.parse_args(argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("FAIL  torch sees no CUDA device (run with --device cpu --small to try on a CPU)")
        return 1
    from harness import progress
    from harness.families.catalog import FAMILIES, find_family

    progress.quiet_third_party_bars()
    report = Report()
    report.say(f"harness GPU check: {environment(args.device)}")
    for line in unmet_requirements():  # not a failure by itself: the checks below tell
        report.say(f"NOTE  unmet requirement: {line}")
    started = time.perf_counter()
    families = [find_family("qwen2.5")] if args.small else list(FAMILIES)
    languages = ["en"] if args.small else ["en", "hi", "ar", "ko"]
    suite = "native_en" if args.small else "native"
    limit = args.limit if args.limit is not None else (4 if args.small else 20)
    with tempfile.TemporaryDirectory(prefix="harness-gpu-check-") as scratch:
        scratch = Path(scratch)
        selftest_matrix(report, args.device, families, scratch)
        shared_context(report, args.device, families, scratch, languages)
        directory = scratch / "qwen2.5-1.5b-random"
        count = build_model(directory, args.small, args.device)
        report.say(f"model: Qwen2.5{'' if args.small else '-1.5B'} layers, {count:,} parameters")
        measured = suite_scores(report, args.device, directory, suite, limit, args.dtype)
        device_map_auto(report, args.device, directory, measured["model"])
        preflight_figures(report, args.device, measured, suite)
    seconds = time.perf_counter() - started
    verdict = f"FAIL ({', '.join(report.failed)})" if report.failed else "PASS"
    report.say(f"== {verdict} in {seconds:.0f}s")
    out = args.out or REPO / "bench" / "results" / f"gpu-check-{datetime.date.today()}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(report.lines) + "\n", encoding="utf-8")
    print(f"report written to {out}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
