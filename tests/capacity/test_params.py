"""Parameter counts from the bundled reference configs: against each model card, against the
exact counts recorded with the configs (SOURCES.md), and against what transformers builds."""

from __future__ import annotations

import pytest

from harness.capacity.params import count_by_instantiation, count_parameters
from harness.families import FAMILIES, reference_models

FOUND = [m for m in reference_models() if m.config_file]
NOT_FOUND = [m for m in reference_models() if not m.config_file]

# Exact counts computed independently when the configs were collected (SOURCES.md, section 1
# and 3): total / active, MTP excluded.
RECORDED = {
    "Qwen/Qwen2.5-0.5B-Instruct": (494_032_768, None),
    "Qwen/Qwen2.5-7B": (7_615_616_512, None),
    "Qwen/Qwen2.5-32B": (32_763_876_352, None),
    "Qwen/Qwen3-0.6B": (596_049_920, None),
    "Qwen/Qwen3-8B": (8_190_735_360, None),
    "Qwen/Qwen3-30B-A3B": (30_532_122_624, 3_353_032_704),
    "Qwen/Qwen3-235B-A22B": (235_093_634_560, 22_190_763_520),
    "deepseek-ai/DeepSeek-V2-Lite": (15_706_484_224, 2_661_150_208),
    "deepseek-ai/DeepSeek-V3": (671_026_419_200, 37_552_297_472),
    "deepseek-ai/DeepSeek-R1": (671_026_419_200, 37_552_297_472),
    "deepseek-ai/DeepSeek-V3.2": (671_877_944_064, 38_403_822_336),
    "moonshotai/Kimi-K2-Instruct": (1_026_408_232_448, 32_861_500_928),
    "zai-org/GLM-4.5": (352_797_829_024, 33_632_266_144),
}


def test_every_reference_model_against_its_card(capsys):
    """The acceptance table: each seed model, its card figure and the computed count."""
    rows, off = [], []
    for model in FOUND:
        count = count_parameters(model.config())
        total = count.total + (count.mtp if model.card_includes_mtp else 0)
        gap = total / (model.card_total * 1e9) - 1
        active = f"{count.active / 1e9:8.2f}B" if count.experts else "       ="
        card_active = f"{model.card_active}B" if model.card_active else ""
        rows.append(
            f"{model.repo:34} card {model.card_total:>7}B computed {total / 1e9:9.2f}B "
            f"({gap:+.2%}, allowed {model.tolerance:.0%})  active {active} card {card_active}"
        )
        if abs(gap) > model.tolerance:
            off.append(model.repo)
    rows += [f"{m.repo:34} no config.json found: {m.note}" for m in NOT_FOUND]
    with capsys.disabled():
        print("\n" + "\n".join(rows))
    assert not off, f"computed totals off the card: {off}"
    assert all(m.tolerance == 0.01 or m.note for m in FOUND), "a wider tolerance needs a reason"


@pytest.mark.parametrize("model", FOUND, ids=lambda m: m.repo)
def test_counts_equal_those_recorded_with_the_configs(model):
    count = count_parameters(model.config())
    total, active = RECORDED[_base(model)]
    assert count.total == total
    assert count.active == (active if active is not None else total)


@pytest.mark.parametrize(
    "config_file", sorted({m.config_file for m in FOUND}), ids=lambda name: name
)
def test_formula_equals_the_model_transformers_builds(config_file):
    """Build each real architecture on the meta device (no memory) and count its tensors."""
    from harness.families.catalog import reference_config

    config = reference_config(config_file)
    built = count_by_instantiation(config)
    assert built.method == "meta"
    assert count_parameters(config).total == built.total


@pytest.mark.parametrize("model_type", ["llama", "mistral", "glm4"])
def test_formula_for_architectures_without_a_bundled_config(model_type):
    """SmolLM2 (llama, read from its GGUF), Mistral-style and GLM-4-0414 shapes."""
    config = {
        "model_type": model_type,
        "vocab_size": 1000,
        "hidden_size": 64,
        "intermediate_size": 160,
        "num_hidden_layers": 3,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "attention_bias": True,
        "tie_word_embeddings": model_type == "llama",
        "pad_token_id": 0,
    }
    assert count_parameters(config).total == count_by_instantiation(config).total


def test_models_without_a_config_say_so():
    names = {m.repo for m in NOT_FOUND}
    assert {"zai-org/GLM-4-9B-0414", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"} <= names
    for model in NOT_FOUND:
        with pytest.raises(LookupError, match="no config.json was found"):
            model.config()


def test_k2_think_is_planned_with_qwen25_32b_shapes():
    from harness.families import find_reference

    k2 = find_reference("llm360/k2-think")
    assert k2.config() == find_reference("Qwen/Qwen2.5-32B").config()
    assert "Qwen2.5-32B" in k2.note


def test_an_architecture_without_a_formula_is_counted_on_the_meta_device():
    config = {
        "model_type": "gemma2",
        "vocab_size": 1000,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
    }
    from transformers import AutoModelForCausalLM, Gemma2Config

    model = AutoModelForCausalLM.from_config(
        Gemma2Config(**{k: v for k, v in config.items() if k != "model_type"})
    )
    count = count_parameters(config)
    assert count.method == "meta"
    assert count.total == sum(p.numel() for p in model.parameters())


def _base(model) -> str:
    """Models that borrow another's config are recorded under that one."""
    by_file = {m.config_file: m.repo for m in FOUND if m.repo in RECORDED}
    return model.repo if model.repo in RECORDED else by_file[model.config_file]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_formula_on_every_family_replica(family, bias):
    """The shrunk configs `harness selftest` builds, with and without attention biases."""
    from harness.families.selftest import reference_config_for
    from harness.families.tiny import shrink

    config = shrink(reference_config_for(family), vocab_size=300, eos_token_id=0)
    config["attention_bias"] = bias
    assert count_parameters(config).total == count_by_instantiation(config).total
