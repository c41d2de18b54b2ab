"""The portability matrix: does each seed architecture work on this software stack?

Per family: shrink its reference config, build the model with random weights and a small
tokenizer, save it in Hugging Face layout, load it back through the loader `harness run` uses,
and check forward, lm-eval loglikelihood scoring, greedy generation, save/reload and bfloat16.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.families.catalog import FAMILIES, Family, find_reference

BF16_MEAN_TOLERANCE = 0.01
BF16_MAX_TOLERANCE = 0.1
"""Allowed mean and largest |log p(bfloat16) - log p(float32)| over every position and token, in
nats. The max is looser than rounding alone needs: at a near-tie a MoE router can pick another
expert in bfloat16, which moves that one position more."""
LOGLIKELIHOOD_TOLERANCE = 1e-4
"""Largest allowed gap between lm-eval's loglikelihood and one computed from our forward pass."""

CHECKS = ("load", "forward", "lm-eval", "generate", "save/reload", "bf16")

_PROMPTS = (
    ("The capital of France is", " Paris."),
    ("La capitale de la France est", " Paris."),
    ("भारत की राजधानी", " नई दिल्ली है।"),
)


@dataclass
class FamilyResult:
    """The outcome of every check for one family."""

    family: Family
    checks: dict[str, bool | None] = field(default_factory=dict)
    """Check name -> passed; None when an earlier failure left it unrun."""
    details: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(self.checks.get(name) for name in CHECKS)


def reference_config_for(family: Family) -> dict:
    """The config a family's replica is shrunk from: its reference model's config.json, or
    transformers' defaults for its model_type when no config was found."""
    if family.reference is None:
        from harness.families.aliases import config_class

        return config_class(family.model_type)().to_dict()
    return dict(find_reference(family.reference).config())


def build_replica(family: Family, directory: Path):
    """Build `family`'s tiny random-weight replica, save it with its tokenizer in Hugging Face
    layout in `directory`, and return the model as built (float32, eval mode).

    The saved config.json gets back the identity keys of the real one (an alias model_type, its
    architectures and auto_map), so that loading it goes the way it will for the real weights.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from harness.families.aliases import config_class
    from harness.families.tiny import shrink, train_tokenizer

    reference = reference_config_for(family)
    tokenizer = train_tokenizer()
    tiny = shrink(reference, len(tokenizer), tokenizer.eos_token_id)
    config = config_class(family.model_type)(**{k: v for k, v in tiny.items() if k != "model_type"})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    directory.mkdir(parents=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    path = directory / "config.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    saved.update(
        {
            key: reference[key]
            for key in ("model_type", "architectures", "auto_map")
            if reference.get(key)
        }
    )
    path.write_text(json.dumps(saved, indent=2), encoding="utf-8")
    return model


def run_selftest(
    families: list[str] | None = None, progress: Callable[[str], None] = lambda _: None
) -> list[FamilyResult]:
    """Run every check for the named families (all by default) and return their results."""
    from harness.families.catalog import find_family

    chosen = [find_family(name) for name in families] if families else list(FAMILIES)
    results = []
    with tempfile.TemporaryDirectory(prefix="harness-selftest-") as scratch:
        for family in chosen:
            progress(family.name)
            results.append(_check_family(family, Path(scratch) / family.name))
    return results


def _check_family(family: Family, directory: Path) -> FamilyResult:
    result = FamilyResult(family)
    started = time.perf_counter()
    steps = _Steps(family, directory, result)
    for name, step in (
        ("load", steps.build_and_load),
        ("forward", steps.forward),
        ("save/reload", steps.save_reload),
        ("lm-eval", steps.lm_eval),
        ("generate", steps.generate),
        ("bf16", steps.bf16),
    ):
        if result.checks.get("load") is False:
            result.checks[name] = None
            continue
        try:
            result.details[name] = step()
            result.checks[name] = True
        except Exception as exc:  # a check fails, the matrix goes on
            result.checks[name] = False
            result.details[name] = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    result.seconds = time.perf_counter() - started
    return result


class _Steps:
    """The checks of one family, in order, sharing the model they build."""

    def __init__(self, family: Family, directory: Path, result: FamilyResult):
        self.family = family
        self.directory = directory
        self.result = result

    def build_and_load(self) -> str:
        self.original = build_replica(self.family, self.directory)
        self.loaded = self._load("float32")
        self.ids = self.loaded.tokenizer(_PROMPTS[0][0], return_tensors="pt").input_ids
        layers = self.original.config.num_hidden_layers
        return f"{self.loaded.parameters:,} parameters, {layers} layers"

    def forward(self) -> str:
        import torch

        logits = self._logits(self.loaded.model)
        vocab = self.loaded.model.config.vocab_size
        assert logits.shape == (1, self.ids.shape[1], vocab), f"logits shape {logits.shape}"
        assert torch.isfinite(logits).all(), "logits are not finite"
        return f"logits {tuple(logits.shape)}"

    def save_reload(self) -> str:
        import torch

        before, after = self._logits(self.original), self._logits(self.loaded.model)
        assert torch.equal(before, after), (
            f"logits differ after save and reload (max {float((before - after).abs().max())})"
        )
        return "identical logits"

    def lm_eval(self) -> str:
        import torch
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM

        lm = HFLM(pretrained=self.loaded.model, tokenizer=self.loaded.tokenizer, batch_size=2)
        requests = [
            Instance("loglikelihood", doc={}, arguments=pair, idx=i)
            for i, pair in enumerate(_PROMPTS)
        ]
        scored = lm.loglikelihood(requests, disable_tqdm=True)
        worst = 0.0
        for (context, continuation), (logprob, _) in zip(_PROMPTS, scored, strict=True):
            tok = self.loaded.tokenizer
            head = tok(context, add_special_tokens=False).input_ids
            tail = tok(continuation, add_special_tokens=False).input_ids
            ids = torch.tensor([head + tail])
            with torch.no_grad():
                logp = torch.log_softmax(self.loaded.model(ids).logits[0].float(), dim=-1)
            expected = sum(float(logp[len(head) + i - 1, t]) for i, t in enumerate(tail))
            worst = max(worst, abs(expected - logprob))
        assert worst <= LOGLIKELIHOOD_TOLERANCE, f"lm-eval differs from forward by {worst:.2e}"
        return f"{len(requests)} requests, max gap {worst:.1e}"

    def generate(self) -> str:
        """Greedy generation with the KV cache must pick the tokens a cache-free argmax does."""
        import torch

        model, steps = self.loaded.model, 6
        with torch.no_grad():
            produced = model.generate(
                self.ids,
                attention_mask=torch.ones_like(self.ids),
                max_new_tokens=steps,
                min_new_tokens=steps,
                do_sample=False,
                pad_token_id=self.loaded.tokenizer.pad_token_id,
            )[0, self.ids.shape[1] :].tolist()
            ids = self.ids
            manual = []
            for _ in range(steps):
                token = int(model(ids, use_cache=False).logits[0, -1].argmax())
                manual.append(token)
                ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
        assert produced == manual, f"cached generation {produced} != recomputed {manual}"
        return f"{steps} tokens match a cache-free argmax"

    def bf16(self) -> str:
        import torch

        half = self._load("bfloat16")
        assert str(half.model.dtype) == "torch.bfloat16", f"loaded as {half.model.dtype}"
        full = torch.log_softmax(self._logits(self.loaded.model).float(), dim=-1)
        low = torch.log_softmax(self._logits(half.model).float(), dim=-1)
        gap = (full - low).abs()
        mean, worst = float(gap.mean()), float(gap.max())
        assert mean <= BF16_MEAN_TOLERANCE and worst <= BF16_MAX_TOLERANCE, (
            f"bfloat16 log-probs differ by {mean:.4f} on average, {worst:.4f} at most "
            f"(allowed {BF16_MEAN_TOLERANCE}, {BF16_MAX_TOLERANCE})"
        )
        return f"|dlog p| mean {mean:.4f}, max {worst:.4f}"

    # ---------------------------------------------------------------------------------------

    def _load(self, dtype: str):
        from harness.config import ModelSpec
        from harness.models import load_model, resolve_model_source

        spec = ModelSpec(id=self.family.name, path=self.directory, dtype=dtype, device="cpu")
        return load_model(spec, resolve_model_source(spec))

    def _logits(self, model):
        import torch

        with torch.no_grad():
            return model(self.ids).logits
