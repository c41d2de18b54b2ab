"""Exact parameter counts from a config.json alone: no weights, no torch.

One formula covers the seed architectures: token embeddings and an untied head, standard
attention (MHA/GQA, optional q/k norms and biases, head_dim wider than hidden), DeepSeek's
multi-head latent attention (low-rank q and kv, decoupled rope) with V3.2's sparse-attention
indexer, dense MLPs, and mixture-of-experts layers with shared experts, dense first layers and a
router (with DeepSeek-V3's score-correction bias, a tensor in the checkpoint though transformers
keeps it as a buffer). Multi-token-prediction layers are counted apart: transformers does not
build them, the checkpoints ship them.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.families.aliases import native_model_type

_MLA = {"deepseek_v2", "deepseek_v3", "deepseek_v32"}
_FORMULA_TYPES = _MLA | {"qwen2", "qwen3", "qwen3_moe", "glm4", "glm4_moe", "llama", "mistral"}


@dataclass(frozen=True)
class ParameterCount:
    """Parameters of one architecture, as the checkpoint holds them."""

    total: int
    """Every tensor transformers loads (embeddings, layers, norms, head; MTP excluded)."""
    active: int
    """Used per token: `total` minus the routed experts a token does not visit."""
    embedding: int
    """Input embedding plus the untied output head."""
    mtp: int = 0
    """Multi-token-prediction module(s) shipped in the checkpoint beyond `total`."""
    method: str = "formula"
    """`formula` (this module) or `meta` (counted by building the model on the meta device)."""

    @property
    def experts(self) -> bool:
        return self.active != self.total


def count_parameters(config: dict) -> ParameterCount:
    """Count the parameters of the architecture a config.json describes.

    Seed architectures use the formula; any other model_type transformers knows is built on the
    meta device (no memory) and counted. Raises KeyError for a config missing a size key.
    """
    model_type = native_model_type(config.get("model_type", ""))
    if model_type not in _FORMULA_TYPES:
        return count_by_instantiation(config)
    shape = _Shape(config, model_type)
    layers = [shape.layer(index) for index in range(shape.layers)]
    embedding = shape.vocab * shape.hidden * (1 if shape.tied else 2)
    total = embedding + shape.hidden + sum(total for total, _ in layers)
    active = embedding + shape.hidden + sum(active for _, active in layers)
    return ParameterCount(total=total, active=active, embedding=embedding, mtp=shape.mtp())


def count_by_instantiation(config: dict) -> ParameterCount:
    """Build the model on torch's meta device and count its parameters and persistent buffers."""
    import torch
    from transformers import AutoModelForCausalLM

    from harness.families.aliases import config_class

    settings = {k: v for k, v in config.items() if k not in ("model_type", "quantization_config")}
    model_config = config_class(config["model_type"])(**settings)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config)
    total = sum(p.numel() for p in model.parameters())
    for module in model.modules():
        for name, buffer in module.named_buffers(recurse=False):
            if name not in module._non_persistent_buffers_set:
                total += buffer.numel()
    embedding = model.get_input_embeddings().weight.numel()
    head = model.get_output_embeddings()
    if head is not None and head.weight is not model.get_input_embeddings().weight:
        embedding += head.weight.numel()
    return ParameterCount(total=total, active=total, embedding=embedding, method="meta")


class _Shape:
    """The size keys of one config, read once, with the per-architecture conventions."""

    def __init__(self, config: dict, model_type: str):
        c = config
        self.model_type = model_type
        self.hidden = c["hidden_size"]
        self.vocab = c["vocab_size"]
        self.layers = c["num_hidden_layers"]
        self.tied = bool(c.get("tie_word_embeddings", False))
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads") or self.heads
        self.head_dim = c.get("head_dim") or self.hidden // self.heads
        self.intermediate = c["intermediate_size"]
        self.config = c

    # Attention -----------------------------------------------------------------------------

    def attention(self) -> int:
        if self.model_type in _MLA:
            return self._latent_attention()
        c, h, q, kv = self.config, self.hidden, self.heads * self.head_dim, self.kv_heads
        width = h * q + 2 * h * kv * self.head_dim + q * h
        bias = bool(c.get("attention_bias", False)) and self.model_type != "mistral"
        qkv_bias = self.model_type == "qwen2" or bias
        o_bias = self.model_type in ("llama", "qwen3", "qwen3_moe") and bias
        width += (q + 2 * kv * self.head_dim) * qkv_bias + h * o_bias
        qk_norm = self.model_type in ("qwen3", "qwen3_moe") or (
            self.model_type == "glm4_moe" and c.get("use_qk_norm", False)
        )
        return width + 2 * self.head_dim * qk_norm

    def _latent_attention(self) -> int:
        c, h, n = self.config, self.hidden, self.heads
        nope, rope, v = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
        q_rank, kv_rank = c.get("q_lora_rank"), c["kv_lora_rank"]
        bias = bool(c.get("attention_bias", False))
        if q_rank:
            q = h * q_rank + q_rank * bias + q_rank + q_rank * n * (nope + rope)
        else:
            q = h * n * (nope + rope)
        kv = h * (kv_rank + rope) + (kv_rank + rope) * bias + kv_rank + kv_rank * n * (nope + v)
        out = n * v * h + h * bias
        return q + kv + out + self._indexer()

    def _indexer(self) -> int:
        """DeepSeek-V3.2's lightning indexer (sparse attention): q from the q latent, one key."""
        c = self.config
        if self.model_type != "deepseek_v32":
            return 0
        heads, dim = c["index_n_heads"], c["index_head_dim"]
        return c["q_lora_rank"] * heads * dim + self.hidden * dim + 2 * dim + self.hidden * heads

    # MLP -----------------------------------------------------------------------------------

    def is_moe_layer(self, index: int) -> bool:
        c = self.config
        if self.model_type == "qwen3_moe":
            return (
                c.get("num_experts", 0) > 0
                and index not in c.get("mlp_only_layers", [])
                and (index + 1) % c.get("decoder_sparse_step", 1) == 0
            )
        if self.model_type in _MLA or self.model_type == "glm4_moe":
            if not c.get("n_routed_experts"):
                return False
            return (
                index >= c.get("first_k_dense_replace", 0)
                and index % c.get("moe_layer_freq", 1) == 0
            )
        return False

    def moe(self) -> tuple[int, int]:
        """(total, active) parameters of one mixture-of-experts block."""
        c, h = self.config, self.hidden
        inner = c["moe_intermediate_size"]
        if self.model_type == "qwen3_moe":
            experts, shared = c["num_experts"], 0
        else:
            experts, shared = c["n_routed_experts"], c.get("n_shared_experts") or 0
        chosen = c["num_experts_per_tok"]
        expert = 3 * h * inner
        router = experts * h
        if self.model_type in ("deepseek_v3", "deepseek_v32", "glm4_moe"):
            router += experts  # the score-correction bias ships with every router
        fixed = router + shared * expert
        return fixed + experts * expert, fixed + chosen * expert

    # Layers --------------------------------------------------------------------------------

    def layer(self, index: int) -> tuple[int, int]:
        """(total, active) parameters of decoder layer `index`."""
        norms = (4 if self.model_type == "glm4" else 2) * self.hidden
        fixed = norms + self.attention()
        if self.is_moe_layer(index):
            total, active = self.moe()
            return fixed + total, fixed + active
        dense = fixed + 3 * self.hidden * self.intermediate
        return dense, dense

    def mtp(self) -> int:
        """Multi-token-prediction modules as DeepSeek-V3 and GLM-4.5 checkpoints store them: one
        more decoder layer each, two input norms, a 2h->h projection, a final norm, and their own
        copy of the embedding and output head."""
        count = self.config.get("num_nextn_predict_layers") or 0
        if not count:
            return 0
        h = self.hidden
        layer, _ = self.layer(self.layers)
        return count * (layer + 3 * h + 2 * h * h + 2 * self.vocab * h)
