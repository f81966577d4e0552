"""LeGrad (Bousselham et al., 2024): vision-transformer maps from the sensitivity of
each block's class score to that block's attention probabilities.

The pieces a front-end reuses are public here: :class:`AttentionRecorder` (removable
hooks that record, per target block, the post-softmax attention probabilities in the
autograd graph and the block's class logits through a score projection),
:func:`legrad_relevance` (the per-layer patch relevances on the grid from those
records), :func:`resolve_grid`, :func:`vit_score_projection`, :func:`attention_of` and
:func:`check_options`. The native explainer :class:`LeGrad` combines them.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..inputs import check_finite
from ..network.layers import LayerSpec, layer_name
from ..network.tokens import resolve_grid
from .base import BaseCAM, CallContext, CommonOptions, Unpack

#: intermediate tokens (B, N, D) -> class logits (B, C)
ScoreProjection = Callable[[Tensor], Tensor]


def vit_score_projection(model: nn.Module) -> ScoreProjection:
    """TorchCAM 0.5.0's projection for a torchvision ``VisionTransformer``: the
    mean of a block's tokens (prefix tokens included) through the encoder's final
    LayerNorm and the classification head, ``heads(encoder.ln(mean_n z_n))``."""
    norm = getattr(getattr(model, "encoder", None), "ln", None)
    heads = getattr(model, "heads", None)
    if not isinstance(norm, nn.Module) or not isinstance(heads, nn.Module):
        raise ValueError("LeGrad's default score projection needs a torchvision VisionTransformer "
                         "(model.encoder.ln and model.heads); pass score_projection, a function "
                         "mapping a block's tokens (B, N, D) to class logits (B, C)")

    def project(tokens: Tensor) -> Tensor:
        return heads(norm(tokens.mean(dim=1)))
    return project


def attention_of(model: nn.Module, block: nn.Module) -> nn.MultiheadAttention:
    """The block's ``self_attention`` module, checked: batch-first, one packed Q/K/V
    projection, no added key/value tokens. Anything else is a clear error."""
    name = layer_name(model, block)
    attention = getattr(block, "self_attention", None)
    if not isinstance(attention, nn.MultiheadAttention):
        raise TypeError(f"LeGrad target block {name!r} ({type(block).__name__}) has no "
                        "`self_attention` nn.MultiheadAttention child: pass transformer blocks "
                        "such as torchvision's model.encoder.layers[i]")
    if not attention.batch_first:
        raise ValueError(f"LeGrad target block {name!r}: its self_attention is not batch_first; "
                         "LeGrad needs tokens shaped (batch, tokens, embedding)")
    if not attention._qkv_same_embed_dim or attention.in_proj_weight is None:
        raise ValueError(f"LeGrad target block {name!r}: its self_attention has separate "
                         "Q/K/V projections (kdim/vdim); LeGrad needs the packed in_proj_weight")
    if attention.bias_k is not None or attention.bias_v is not None or attention.add_zero_attn:
        raise ValueError(f"LeGrad target block {name!r}: its self_attention adds key/value "
                         "tokens (add_bias_kv / add_zero_attn), which LeGrad does not support")
    return attention


def check_options(prefix_tokens: Any, grid_shape: Any, score_projection: Any) -> None:
    """TypeError / ValueError for LeGrad's arguments of a bad type or value."""
    if isinstance(prefix_tokens, bool) or not isinstance(prefix_tokens, int):
        raise TypeError(f"prefix_tokens must be an int, got {type(prefix_tokens).__name__}")
    if prefix_tokens < 0:
        raise ValueError(f"prefix_tokens must be >= 0, got {prefix_tokens}")
    if grid_shape is not None:
        if (not isinstance(grid_shape, tuple) or len(grid_shape) != 2
                or any(isinstance(d, bool) or not isinstance(d, int) for d in grid_shape)):
            raise TypeError(f"grid_shape must be a tuple of two ints, got {grid_shape!r}")
        if min(grid_shape) <= 0:
            raise ValueError(f"grid_shape dimensions must be positive, got {grid_shape}")
    if score_projection is not None and not callable(score_projection):
        raise TypeError("score_projection must be callable: tokens (B, N, D) -> logits (B, C)")


class AttentionRecorder:
    """Removable hooks on transformer blocks that record what LeGrad differentiates.

    For every block ``l``: a forward hook on ``block.self_attention`` recomputes the
    post-softmax probabilities ``P_l = softmax(q kᵀ/√d)`` (B, heads, N, N) from the
    module's input and its packed ``in_proj`` weights, and replaces the module's
    output by ``out_proj(P_l v)`` — the same values (to rounding) as torchvision's
    fused ``need_weights=False`` path, but with ``P_l`` in the autograd graph; a
    forward hook on the block records its class logits ``projection(z_l)`` (B, C).
    When ``P_l`` would not require grad (frozen parameters) it is made a leaf that does.

    ``cut=True`` hands the next module a detached copy of each block's output: the
    later blocks' logits then do not depend on ``P_l``, so one backward of the sum of
    all blocks' scores gives every ``∂s_l/∂P_l`` (:func:`legrad_relevance` with
    ``joint=True``); the model's output keeps its values but not its graph. With
    ``cut=False`` the model's graph is whole (a front-end whose user keeps the output)
    and each block needs its own backward.

    The hooks live between :meth:`open` and :meth:`close` (or in a ``with`` block),
    and are removed on exit, also on error. Nothing else of the model changes;
    the projection calls the model's own modules (a torchvision ViT's ``encoder.ln``
    and ``heads``), so hooks the user put on those see one more call per block.
    """

    def __init__(self, model: nn.Module, blocks: Sequence[nn.Module],
                 projection: ScoreProjection, *, cut: bool):
        self.blocks = list(blocks)
        self.attention_modules = [attention_of(model, b) for b in self.blocks]
        self.projection = projection
        self.cut = cut
        self._handles: list = []
        self.clear()

    def clear(self) -> None:
        """Forget the last forward's records."""
        n = len(self.blocks)
        self.attentions: list[Optional[Tensor]] = [None] * n    # (B, heads, N, N), in the graph
        self.layer_logits: list[Optional[Tensor]] = [None] * n  # (B, C), in the graph
        self.token_counts: list[Optional[int]] = [None] * n
        self._fresh = [False] * n      # the block's attention ran since its last output

    def open(self) -> "AttentionRecorder":
        if not self._handles:
            self.clear()
            try:
                for i, (block, attention) in enumerate(zip(self.blocks, self.attention_modules)):
                    self._handles.append(attention.register_forward_hook(
                        self._attention_hook(i), with_kwargs=True))
                    self._handles.append(block.register_forward_hook(self._block_hook(i)))
            except BaseException:
                self.close()
                raise
        return self

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "AttentionRecorder":
        return self.open()

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def _attention_hook(self, index: int):
        def hook(module: nn.MultiheadAttention, args: tuple, kwargs: dict, output: Any):
            if not torch.is_grad_enabled():
                raise RuntimeError("LeGrad needs a forward pass with autograd enabled")
            if module.training and module.dropout > 0:
                raise ValueError("LeGrad does not support active attention dropout: call model.eval()")
            names = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask",
                     "average_attn_weights", "is_causal")
            call = dict(zip(names, args)) | kwargs
            query = call.get("query")
            if not isinstance(query, Tensor) or call.get("key") is not query or call.get("value") is not query:
                raise ValueError("LeGrad supports self-attention only (query, key and value the same tensor)")
            if any(call.get(m) is not None for m in ("key_padding_mask", "attn_mask")) or call.get("is_causal"):
                raise ValueError("LeGrad does not support attention masks")
            if query.dim() != 3:
                raise ValueError(f"LeGrad needs attention inputs shaped (batch, tokens, embedding), "
                                 f"got {tuple(query.shape)}")
            P, replayed = _attend(module, query)
            self.attentions[index] = P
            self._fresh[index] = True
            weights = output[1] if isinstance(output, tuple) and len(output) == 2 else None
            return replayed, weights
        return hook

    def _block_hook(self, index: int):
        def hook(block: nn.Module, _inputs: tuple, output: Any):
            if not isinstance(output, Tensor) or output.dim() != 3:
                raise ValueError("LeGrad target blocks must return tokens shaped (batch, tokens, "
                                 f"embedding), got {getattr(output, 'shape', type(output).__name__)}")
            logits = self.projection(output)
            if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != output.shape[0]:
                raise ValueError("score_projection must return class logits shaped (batch, classes), "
                                 f"got {getattr(logits, 'shape', type(logits).__name__)}")
            if not self._fresh[index]:
                raise RuntimeError("the block's self_attention did not run during its forward")
            self._fresh[index] = False
            self.layer_logits[index] = logits
            self.token_counts[index] = output.shape[1]
            return output.detach() if self.cut else None
        return hook

    def collected(self) -> tuple[list[Tensor], list[Tensor]]:
        """(attention probabilities, block logits) of the last forward, per block."""
        if any(a is None for a in self.attentions) or any(s is None for s in self.layer_logits):
            raise RuntimeError("inputs must be forwarded through every LeGrad target block")
        return list(self.attentions), list(self.layer_logits)


def _attend(module: nn.MultiheadAttention, x: Tensor) -> tuple[Tensor, Tensor]:
    """(P, out_proj(P v)) of a packed-projection multi-head self-attention on x (B, N, E);
    the parameters are used directly, so hooks on ``out_proj`` see no extra call."""
    B, N, E = x.shape
    heads = module.num_heads
    q, k, v = F.linear(x, module.in_proj_weight, module.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(B, N, heads, E // heads).transpose(1, 2) for t in (q, k, v))
    P = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(E // heads), dim=-1)
    if not P.requires_grad:
        P.requires_grad_(True)
    out = (P.to(v.dtype) @ v).transpose(1, 2).reshape(B, N, E)
    return P, F.linear(out, module.out_proj.weight, module.out_proj.bias)


def legrad_relevance(layer_scores: Sequence[Tensor], attentions: Sequence[Tensor],
                     prefix_tokens: int, grid_shape: Optional[tuple[int, int]] = None, *,
                     joint: bool, retain_graph: bool = False) -> list[Tensor]:
    """Per block, the patch relevance on the patch grid (B, h, w), float32:
    ``mean_{heads, queries} ReLU(∂s_l/∂P_l)`` with the prefix keys removed
    (LeGrad, eq. 4–5; TorchCAM 0.5.0 ``LeGrad._get_weights``), the N − prefix_tokens
    keys reshaped row-major to ``grid_shape`` (None: square, see :func:`resolve_grid`).
    No normalisation: the map is the blocks' mean, min-max scaled. ``layer_scores[l]``
    (B,) are the target scores of block l's logits; images are independent, so the
    gradient of the batch sum is per image. ``joint=True`` (records of an
    :class:`AttentionRecorder` with ``cut=True``): one backward for all blocks;
    else one per block (the graph kept for the next, and after the last when
    ``retain_graph``)."""
    if len(layer_scores) != len(attentions):
        raise ValueError(f"{len(layer_scores)} block scores for {len(attentions)} attention records")
    with torch.enable_grad():
        if joint:
            grads = torch.autograd.grad(torch.stack([s.sum() for s in layer_scores]).sum(),
                                        list(attentions))
        else:
            grads = [torch.autograd.grad(s.sum(), P, retain_graph=retain_graph or i < len(attentions) - 1)[0]
                     for i, (s, P) in enumerate(zip(layer_scores, attentions))]
    out = []
    for g in grads:
        check_finite(g, "the gradient of the block scores w.r.t. the attention probabilities")
        g = g.float()
        if g.shape[-1] <= prefix_tokens:
            raise ValueError(f"prefix_tokens={prefix_tokens} leaves no patch token of {g.shape[-1]}")
        relevance = torch.relu(g).mean(dim=(1, 2))[:, prefix_tokens:]
        out.append(relevance.reshape(g.shape[0], *resolve_grid(relevance.shape[1], grid_shape)))
    return out


class LeGrad(BaseCAM):
    """LeGrad (Bousselham et al., 2024, "LeGrad: an explainability method for vision
    transformers via feature formation sensitivity"): for each target block l, the
    block's class score ``s_l`` (its tokens through ``score_projection``) differentiated
    w.r.t. the block's post-softmax attention ``P_l``; relevance
    ``R_l = mean_{heads, queries} ReLU(∂s_l/∂P_l)`` over the patch keys (prefix keys
    dropped) on the patch grid; map ``minmax(up(mean_l R_l))`` (the official code
    upsamples each layer and min-max normalises the sum: the same map, upsampling
    being linear). The numerics are TorchCAM 0.5.0's ``LeGrad``: its projection
    ``heads(encoder.ln(mean tokens))`` for a torchvision ``VisionTransformer``, attention
    values not multiplied into the gradients.

    Args:
        model: a ViT whose target blocks have a batch-first ``self_attention``
            ``nn.MultiheadAttention`` child (torchvision's ``EncoderBlock``).
        target_layers: the blocks (modules or dotted names); None -> the last such block.
        score_projection: tokens (B, N, D) -> logits (B, C); None -> the torchvision
            ViT projection above (other models must pass one).
        prefix_tokens: non-patch tokens at the front of the sequence (1: the class token).
        grid_shape: the patch grid (h, w); None -> square.

    Cost: one forward with autograd (the base class's capture: targets and the block
    tokens, recorded on the patch grid in ``last.activations``; its
    :meth:`capture_scope` hooks recompute each target block's attention), one
    backward for all blocks (each block hands the next a detached output, so block
    l's score reaches only ``P_l``). Targets may be class indices or callables (applied to each
    block's projected logits). ``last.low_res`` holds the per-block ``R_l``.
    The model is not changed: the hooks exist only during the call.
    """

    capture = "gradient"

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 score_projection: Optional[ScoreProjection] = None, prefix_tokens: int = 1,
                 grid_shape: Optional[tuple[int, int]] = None, **options: Unpack[CommonOptions]):
        check_options(prefix_tokens, grid_shape, score_projection)
        super().__init__(model, target_layers, **options)
        if self.target_layers is None:
            blocks = [m for m in model.modules()
                      if isinstance(getattr(m, "self_attention", None), nn.MultiheadAttention)]
            if not blocks:
                raise TypeError("LeGrad found no block with a `self_attention` nn.MultiheadAttention "
                                "in the model; pass target_layers (transformer blocks)")
            self.target_layers = blocks[-1:]
        for block in self.target_layers:
            attention_of(model, block)
        self.score_projection = score_projection or vit_score_projection(model)
        self.prefix_tokens = prefix_tokens
        self.grid_shape = grid_shape
        if self.reshape_transform is not None:
            raise ValueError("LeGrad lays the blocks' tokens out itself (prefix_tokens=, grid_shape=) "
                             "and takes no reshape_transform")
        self.reshape_transform = self.token_grid

    def token_grid(self, tokens: Tensor) -> Tensor:
        """A block's tokens (B, N, D) -> the patch tokens on the grid (B, D, h, w)."""
        if tokens.dim() != 3:
            raise ValueError("LeGrad target blocks must return tokens shaped (batch, tokens, "
                             f"embedding), got {tuple(tokens.shape)}")
        B, N, D = tokens.shape
        h, w = resolve_grid(N - self.prefix_tokens, self.grid_shape)
        return tokens[:, self.prefix_tokens:].reshape(B, h, w, D).permute(0, 3, 1, 2)

    def capture_scope(self, layers: list[nn.Module]) -> AttentionRecorder:
        """The capture pass records every target block's attention (in the graph) and
        logits; each block hands the next a detached output (``cut=True``)."""
        return AttentionRecorder(self.model, layers, self.score_projection, cut=True)

    def maps(self, ctx: CallContext) -> Tensor:
        attentions, layer_logits = ctx.captured.collected()
        scores = [ctx.targets.scores(logits.float()) for logits in layer_logits]
        grids = legrad_relevance(scores, attentions, self.prefix_tokens, self.grid_shape, joint=True)
        with torch.no_grad():
            ctx.low_res = grids
            ctx.extra["layer_scores"] = [s.detach() for s in scores]
            cam = torch.stack(grids).mean(0)[:, None]
            return self.combine(cam, torch.ones(cam.shape[0], 1, device=cam.device), ctx.size)
