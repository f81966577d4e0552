"""Ablation-CAM (Desai & Ramaswamy, "Ablation-CAM: Visual Explanations for Deep
Convolutional Network via Gradient-free Localization", WACV 2020)."""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ..inputs import at_least_fp32
from ..network.layers import LayerSpec
from ..network.linear_head import LinearHead, find_linear_head
from ..network.split import Prefix, Tail
from ..perturbation.channel_ablation import (ablated_copies, channels_to_ablate,
                                             effective_ablations)
from ..perturbation.masked_scores import callable_score, class_score
from ..progress import counted
from ..targets import Targets
from .base import BaseCAM, CallContext, CommonOptions, Unpack


class AblationCAM(BaseCAM):
    """Ablation-CAM: channel k is weighted by the relative drop of the target
    score when its feature map is ablated (paper eq. 3),
    ``w_k = (y_c − y_c^k) / y_c``, and the map is ``minmax(up(ReLU(Σ_k w_k A_k)))``
    (eq. 4). No gradients.

    How it runs: the model is split at the target layer
    (:func:`fastcam.network.split.split`); the prefix runs once on the batch and
    only the tail runs on the ablated activations — each a copy of the image's
    ``A`` with one channel replaced by the ablation value — ``batch_size`` copies
    at a time (the engine's :meth:`~fastcam.engine.Engine.stream_scores`, under
    the engine's precision). When the tail starts with a linear map of the
    activation — global average pooling + fc (ResNet, EfficientNet), or
    flatten + fc with 1×1/2×2 max pooling — the ablation is exact algebra on the
    first linear layer: ``pre^k = pre + W_k·(v − F_k)`` with ``F_k`` channel k's
    pooled features and v the ablation value, for all K channels in one product;
    on GAP + fc that is ``y_c^k = y_c − W[c,k]·(mean(A_k) − v)`` and no tail
    forward runs at all (``fast_path="auto"``; ``"never"`` forces the tail). The
    head's algebra runs in float32 whatever the precision.

    Args:
        batch_size: ablated copies per tail forward (pytorch-grad-cam's
            ``batch_size``, the memory bound; the engine may pick a smaller chunk).
        ratio_channels_to_ablate: pytorch-grad-cam's experimental shortcut
            (1.0: every channel). Below 1 only the channels its rule selects are
            ablated (:func:`~fastcam.perturbation.channel_ablation.channels_to_ablate`)
            and the others get weight 0, with its bookkeeping.

    An ablated channel is set to 0 (the paper; :meth:`ablation_values`).
    pytorch-grad-cam's ablation values (``min − (i+1)·1e7`` unless the minimum
    is 0): :class:`fastcam.compat.numerics.PytorchGradCAMAblationCAM`.

    The target score is the raw logit for class indices (the paper's ``y_c``),
    or a callable's value on the tail's output. An image whose target score is
    0 has no weights (``ValueError``: eq. 3 divides by it).

    Token models (ViT): with a ``reshape_transform`` set (the attribute, e.g.
    from the pytorch-grad-cam front-end with ``AblationLayerVit``) the model is
    not split. The layer's raw output is taken as tokens with the channel on the
    last axis ((B, N, D), as timm's and torchvision's ViTs; the class token
    included), ``A = reshape_transform(tokens)`` is the (B, D, h, w) activation,
    and channel k is ablated in token space — ``tokens[..., k]`` of every token
    set to the ablation value (pytorch-grad-cam's rule takes the minimum over
    all tokens) — while the whole model re-runs from the input with
    the layer's output replaced by the ablated copy (a temporary forward hook),
    ``batch_size`` copies at a time: pytorch-grad-cam's ``AblationLayerVit``
    inside its ``AblationCAM``. Channel selection and weights are as above.

    ``last.extra``: per layer ``"ablated_scores"`` (B, K: the original score
    where a channel was not ablated), ``"ablated"`` (B, K bool), ``"path"``
    (``"linear-head"``, ``"tail"`` or ``"tokens"``) and ``"tail_rows"`` (ablated
    rows the tail, or for ``"tokens"`` the whole model, ran).
    """

    #: ``"split"``; with a ``reshape_transform`` a full forward whose raw token
    #: outputs the base keeps in ``ctx.raw_outputs`` (see the class docstring)
    capture = "split"
    capture_with_transform = "forward"
    keeps_raw_outputs = True

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 batch_size: int = 32, ratio_channels_to_ablate: float = 1.0,
                 fast_path: Literal["auto", "never"] = "auto", **options: Unpack[CommonOptions]):
        super().__init__(model, target_layers, **options)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(ratio_channels_to_ablate, bool) or not isinstance(ratio_channels_to_ablate, (int, float)):
            raise TypeError("ratio_channels_to_ablate must be a number in (0, 1], got "
                            f"{type(ratio_channels_to_ablate).__name__}")
        if not 0.0 < float(ratio_channels_to_ablate) <= 1.0:
            raise ValueError(f"ratio_channels_to_ablate must be in (0, 1], got {ratio_channels_to_ablate}")
        if fast_path not in ("auto", "never"):
            raise ValueError(f"fast_path must be 'auto' or 'never', got {fast_path!r}")
        self.batch_size = batch_size
        self.ratio_channels_to_ablate = float(ratio_channels_to_ablate)
        self.fast_path = fast_path

    def ablation_values(self, A: Tensor) -> Tensor:
        """(B, batch_size) float32: the value an ablated channel of image b gets at
        position i of a batch of copies — 0, the paper's (sec. 3). ``A`` is the
        (B, K, h, w) activation (or the (B, N·D, 1, 1) tokens of a token model)."""
        return torch.zeros(A.shape[0], self.batch_size, dtype=torch.float32, device=A.device)

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        targets = ctx.targets
        if targets.indices is not None and targets.indices.is_inference():
            targets = Targets(targets.indices.clone(), None)
        original = ctx.scores.detach().float()
        if bool((original == 0).any()):
            bad = (original == 0).nonzero()[:, 0].tolist()
            raise ValueError(f"Ablation-CAM divides by the target score (paper eq. 3); it is 0 "
                             f"for image(s) {bad}")
        weights, extra = [], {"ablated_scores": [], "ablated": [], "path": [], "tail_rows": []}
        tokens = ctx.raw_outputs or None       # a ViT's tokens (capture_with_transform)
        for i, A in enumerate(ctx.activations):
            A = A.detach()
            B, K, h, w = A.shape
            if tokens is not None:
                T = tokens[i]
                if T.shape[0] != B or T.shape[-1] != K:
                    raise ValueError(f"the target layer's tokens have shape {tuple(T.shape)}; "
                                     f"the reshaped activation {tuple(A.shape)} needs the "
                                     f"batch first and its {K} channels last")
                values = self.ablation_values(T.reshape(B, -1, 1, 1))
            else:
                values = self.ablation_values(A)    # (B, chunk)
            image, channel, value = self._ablations(A, values)
            if tokens is None:
                prefix, tail = ctx.splits[i]
            head = (find_linear_head(tail, h, w)
                    if tokens is None and self.fast_path == "auto" else None)
            with torch.inference_mode():
                if tokens is not None:
                    s = self._token_scores(ctx.layers[i], ctx.x_model, tokens[i], targets,
                                           image, channel, value)
                    rows = int(image.numel())
                elif head is not None:
                    s = self._head_scores(head, A, targets, image, channel, value)
                    rows = 0
                else:
                    s = self._tail_scores(prefix, tail, ctx.x_model, A, targets, image,
                                          channel, value)
                    rows = int(image.numel())
            ablated = torch.zeros(B, K, dtype=torch.bool, device=A.device)
            ablated[image, channel] = True
            scores = original[:, None].expand(B, K).clone()
            scores[image, channel] = s.float()
            weights.append((original[:, None] - scores) / original[:, None])
            extra["ablated_scores"].append(scores)
            extra["ablated"].append(ablated)
            extra["path"].append("tokens" if tokens is not None else
                                 "linear-head" if head is not None else "tail")
            extra["tail_rows"].append(rows)
        ctx.extra.update(extra)
        return weights

    def _ablations(self, A: Tensor, values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(image, channel, value) of every ablated copy of the batch."""
        B, K = A.shape[:2]
        if self.ratio_channels_to_ablate == 1.0:
            image = torch.arange(B, device=A.device).repeat_interleave(K)
            channel = torch.arange(K, device=A.device).repeat(B)
            return image, channel, values[image, channel % self.batch_size]
        image, channel, value = [], [], []
        for b, listed in enumerate(channels_to_ablate(A, self.ratio_channels_to_ablate)):
            c, pos = effective_ablations(listed, self.batch_size)
            image.append(torch.full_like(c, b))
            channel.append(c)
            value.append(values[b, pos])
        return torch.cat(image), torch.cat(channel), torch.cat(value)

    @staticmethod
    def _score_fn(targets: Targets):
        if targets.indices is not None:
            return class_score(targets.indices, "logit")
        return callable_score(targets.callables)

    def _tail_scores(self, prefix: Prefix, tail: Tail, x_model: Tensor, A: Tensor,
                     targets: Targets, image: Tensor, channel: Tensor, value: Tensor) -> Tensor:
        """The tail's target scores on the ablated copies, ``batch_size`` at a time."""
        engine = self.engine.part(tail)
        score_fn = counted(self._score_fn(targets), image.numel())
        A = A.contiguous()
        if not (tail.n_sides or tail.mode == "hooks"):
            return engine.stream_scores(
                image.numel(), lambda a, b: ablated_copies(A, image[a:b], channel[a:b], value[a:b]),
                image, score_fn, self.batch_size)
        # the tail needs values of its prefix call besides A: one image at a time
        out = torch.empty(image.numel(), dtype=torch.float32, device=A.device)
        for b in range(A.shape[0]):
            rows = (image == b).nonzero()[:, 0]
            if not rows.numel():
                continue
            self.engine.run_prefix(prefix, x_model[b:b + 1])
            Ab, cb, vb = A[b:b + 1], channel[rows], value[rows]
            zero = torch.zeros_like(cb)
            out[rows] = engine.stream_scores(
                rows.numel(), lambda a, e: ablated_copies(Ab, zero[a:e], cb[a:e], vb[a:e]),
                image[rows], score_fn, self.batch_size).float()
        return out

    def _token_scores(self, layer: nn.Module, x_model: Tensor, tokens: Tensor,
                      targets: Targets, image: Tensor, channel: Tensor,
                      value: Tensor) -> Tensor:
        """The model's target scores on copies of the input whose ``layer`` output is
        ``tokens[image[j]]`` with channel ``channel[j]`` (last axis) set to ``value[j]``,
        ``batch_size`` copies at a time (a forward hook substitutes the output)."""
        # channel-first contiguous copy, so ablated_copies sets one row per copy
        T = tokens.movedim(-1, 1).contiguous()
        rows: dict[str, Tensor] = {}

        def build(a: int, e: int) -> Tensor:
            rows["out"] = ablated_copies(T, image[a:e], channel[a:e], value[a:e]).movedim(1, -1)
            return x_model[image[a:e]]

        def substitute(module, _inputs, output):
            if output.shape[1:] != rows["out"].shape[1:]:
                raise ValueError(f"target layer {type(module).__name__} gave {tuple(output.shape)} "
                                 f"on a copy, {tuple(rows['out'].shape)} expected")
            return rows["out"].to(output.dtype)

        handle = layer.register_forward_hook(substitute)
        try:
            return self.engine.stream_scores(image.numel(), build, image,
                                             self._score_fn(targets), self.batch_size)
        finally:
            handle.remove()

    def _head_scores(self, head: LinearHead, A: Tensor, targets: Targets, image: Tensor,
                     channel: Tensor, value: Tensor) -> Tensor:
        """The target scores of the ablated copies through the tail's linear head:
        ``pre^k = pre + Σ_p W[:, k, p]·(v − F[k, p])`` (F: the pooled features)."""
        A = at_least_fp32(A)
        B, K = A.shape[:2]
        if head.pool == "mean":
            F = A.mean(dim=(2, 3))[:, :, None]                                 # (B, K, 1)
        elif head.k > 1:
            F = torch.nn.functional.max_pool2d(A, head.k).flatten(2)
        else:
            F = A.flatten(2)
        P = F.shape[2]
        W = at_least_fp32(head.linear.weight.detach())
        if W.shape[1] != K * P:
            raise ValueError(f"the tail's linear layer takes {W.shape[1]} features; the "
                             f"activation pools to {K}×{P}")
        W = W.view(-1, K, P)
        bias = head.linear.bias
        pre = torch.einsum("okp,bkp->bo", W, F)
        if bias is not None:
            pre = pre + at_least_fp32(bias.detach())
        f, v = F[image, channel], value.to(F.dtype)                            # (n, P), (n,)
        identity_rest = len(list(head.rest.graph.nodes)) == 2
        if identity_rest and targets.indices is not None:
            c = targets.indices[image]
            Wc = W[c, channel, :]                                              # (n, P)
            return pre[image, c] + (Wc * (v[:, None] - f)).sum(1)
        score_fn = self._score_fn(targets)
        rest = self.engine.part(head.rest)
        out = torch.empty(image.numel(), dtype=torch.float32, device=A.device)
        O = W.shape[0]
        step = max(self.batch_size, self.batch_size * K * A.shape[2] * A.shape[3] // max(O, 1))
        for a in range(0, image.numel(), step):
            e = min(image.numel(), a + step)
            delta = torch.einsum("onp,np->no", W[:, channel[a:e], :], v[a:e, None] - f[a:e])
            rows = pre[image[a:e]] + delta
            out[a:e] = score_fn(rest.forward(rows), image[a:e]).float()
        return out
