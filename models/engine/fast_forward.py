"""The engine's own forward pass for Llama-family decoders (Llama, Mistral: SmolLM2 is
one), over the model's own modules and weights.

Why: transformers' forward spends more time around the products than in them at the
few rows of a decode step. On a 2-core EPYC, SmolLM2-135M with int8 weights took 41 ms
per one-row step through the Hugging Face modules, 20 ms of it in the linear layers; the
rest went to ~1,700 small tensor operations and the Python of decorators, keyword
plumbing, output records and config lookups per layer. This path runs the same
computation with fewer operations: one fused RMSNorm, the rotary embedding without
concatenations, attention through SDPA with grouped KV heads, and nothing per layer that
the engine does not need.

It calls the model's linear layers (packed, low-precision or plain: whatever the kernel
plan installed), embedding, rotary module and norms' weights, so every weight format
and kernel choice applies unchanged, and it writes the KV through the same
`SlotKVCache.update` as the Hugging Face attention. Hidden-state hooks (LUT, specialists)
get each decoder layer's output exactly where the module hooks would. Any other
architecture, or a Llama variant this path does not know, keeps transformers' forward.
Training and activation extraction always use the Hugging Face model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")


class LlamaFastForward:
    """`__call__(input_ids, position_ids, mask, cache, logits_to_keep, on_layer)` -> logits.

    `mask` is the worker's boolean attention mask ([B, 1, T, K], True = may attend),
    `on_layer(layer, hidden)` (or None) edits a layer's output in place, as the
    hidden-state taps do."""

    def __init__(self, model: nn.Module) -> None:
        cfg = model.config
        self.embed = model.model.embed_tokens
        self.rotary = model.model.rotary_emb
        self.norm = model.model.norm
        self.lm_head = model.lm_head
        self.layers = list(model.model.layers)
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.scale = self.head_dim ** -0.5
        self.eps = [(layer.input_layernorm.variance_epsilon, layer.post_attention_layernorm.variance_epsilon)
                    for layer in self.layers]
        self.final_eps = self.norm.variance_epsilon

    @staticmethod
    def supports(model: nn.Module) -> str | None:
        """None if this path computes `model`'s forward, else why not."""
        cfg = getattr(model, "config", None)
        name = type(model).__name__
        if name not in _ARCHITECTURES:
            return f"{name} is not one of {', '.join(_ARCHITECTURES)}"
        if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "pretraining_tp", 1) != 1:
            return "a Llama variant with another activation or tensor-parallel split"
        if getattr(cfg, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
            return f"attention implementation {cfg._attn_implementation}"
        inner = getattr(model, "model", None)
        layers = getattr(inner, "layers", None)
        if inner is None or layers is None or not hasattr(inner, "rotary_emb"):
            return "unexpected module layout"
        if "forward" in vars(model):
            return "the model's forward is wrapped (dispatched across devices)"
        for layer in layers:
            attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
            if attn is None or mlp is None or any(hasattr(attn, n) for n in ("q_norm", "k_norm")):
                return "unexpected decoder layer"
            if type(mlp).__name__ not in ("LlamaMLP", "MistralMLP"):
                return f"MLP {type(mlp).__name__}"
        return None

    def call_through(self, model: nn.Module, **kwargs) -> torch.Tensor:
        """This forward, called as the model's own: `model(**kwargs)` with this path in
        place of its forward for the one call, so hooks registered on the model (forward
        pre-hooks: tracing, tests holding a step) see every engine pass as before."""
        model.forward = self._forward_kwargs
        try:
            return model(**kwargs)
        finally:
            del model.forward

    def _forward_kwargs(self, *, input_ids, position_ids, attention_mask, cache, logits_to_keep, on_layer=None):
        return self(input_ids, position_ids, attention_mask, cache, logits_to_keep, on_layer)

    def __call__(self, input_ids: torch.Tensor, position_ids: torch.Tensor, mask: torch.Tensor, cache,
                 logits_to_keep: int | torch.Tensor,
                 on_layer: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        hidden = self.embed(input_ids)
        cos, sin = self.rotary(hidden, position_ids)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # [B, 1, T, D]: broadcast over heads
        b, t, _ = hidden.shape
        for i, layer in enumerate(self.layers):
            eps_in, eps_post = self.eps[i]
            attn = layer.self_attn
            x = _rms_norm(hidden, layer.input_layernorm.weight, eps_in)
            q = attn.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attn.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
            k, v = cache.update(k, v, i)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale,
                                                 enable_gqa=self.kv_heads != self.heads)
            hidden = hidden + attn.o_proj(out.transpose(1, 2).reshape(b, t, -1))
            mlp = layer.mlp
            x = _rms_norm(hidden, layer.post_attention_layernorm.weight, eps_post)
            hidden = hidden + mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
            if on_layer is not None:
                on_layer(i, hidden)
        if isinstance(logits_to_keep, int):
            hidden = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
        else:
            hidden = hidden[:, logits_to_keep]
        return self.lm_head(_rms_norm(hidden, self.norm.weight, self.final_eps))


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # As transformers' LlamaRMSNorm: normalized in fp32, cast back, then scaled.
    if x.dtype == torch.float32:
        return F.rms_norm(x, weight.shape, weight, eps)
    return weight * F.rms_norm(x.float(), weight.shape, None, eps).to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x * cos + rotate_half(x) * sin, with rotate_half(x) = (-x2, x1) written into halves
    # of one output instead of a concatenation.
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    out = x * cos
    out[..., :half] -= x2 * sin[..., :half]
    out[..., half:] += x1 * sin[..., half:]
    return out
