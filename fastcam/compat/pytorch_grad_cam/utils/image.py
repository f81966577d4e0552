"""Image helpers with pytorch-grad-cam's names, defaults and results
(``pytorch_grad_cam.utils.image``).

OpenCV (``opencv-python-headless``, already a dependency of pytorch-grad-cam)
is needed only by :func:`show_cam_on_image` and :func:`show_factorization_on_image`
and imported when they are called; matplotlib only for the latter's legend.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["COLORMAP_JET", "show_cam_on_image", "preprocess_image", "deprocess_image",
           "scale_cam_image", "scale_accross_batch_and_channels", "create_labels_legend",
           "show_factorization_on_image"]

#: ``cv2.COLORMAP_JET`` (its value, so that importing this module needs no OpenCV)
COLORMAP_JET = 2


def _cv2():
    try:
        import cv2
    except ImportError as err:      # pragma: no cover - depends on the environment
        raise ImportError("fastcam's show_cam_on_image, show_factorization_on_image and sobel_cam "
                          "need OpenCV: pip install 'fastcam[compat]' (opencv-python-headless)") from err
    return cv2


def _check_overlay_args(img: np.ndarray, image_weight: float) -> np.ndarray:
    """The image as an array, after checking it is in [0, 1] and the weight too."""
    img = np.asarray(img)
    if np.max(img) > 1:
        raise ValueError("The input image should np.float32 in the range [0, 1]")
    if image_weight < 0 or image_weight > 1:
        raise ValueError(f"image_weight should be in the range [0, 1]. Got: {image_weight}")
    return img


def show_cam_on_image(img: np.ndarray, mask: np.ndarray, use_rgb: bool = False,
                      colormap: int = COLORMAP_JET, image_weight: float = 0.5) -> np.ndarray:
    """Overlay a CAM on an image; uint8 (H, W, 3).

    ``heat = colormap(uint8(255·mask)) / 255`` (OpenCV's colour map, BGR unless
    ``use_rgb``), ``out = (1 − image_weight)·heat + image_weight·img``, scaled by
    its maximum and returned as ``uint8(255·out)`` — pytorch-grad-cam's formula
    and defaults. ``img`` must be float in [0, 1] (RGB with ``use_rgb=True``).

    Better than pytorch-grad-cam: the arguments are checked before any work and
    raise ``ValueError`` (theirs: a bare ``Exception``, still caught by ``except
    Exception``), and a mask outside [0, 1] is clipped instead of wrapping
    around in the uint8 conversion (identical output for valid masks).
    """
    img = _check_overlay_args(img, image_weight)
    cv2 = _cv2()
    heatmap = cv2.applyColorMap(np.uint8(255 * np.clip(mask, 0, 1)), colormap)
    if use_rgb:
        heatmap = cv2.cvtColor(heatmap, cv2.COLOR_BGR2RGB)
    heatmap = np.float32(heatmap) / 255
    cam = (1 - image_weight) * heatmap + image_weight * img
    cam = cam / np.max(cam)
    return np.uint8(255 * cam)


def preprocess_image(img: np.ndarray, mean: Sequence[float] = (0.5, 0.5, 0.5),
                     std: Sequence[float] = (0.5, 0.5, 0.5)) -> torch.Tensor:
    """An (H, W, C) image -> a normalised (1, C, H, W) tensor: torchvision's
    ``ToTensor`` (uint8 divided by 255, float kept as it is, dtype kept) then
    ``(x − mean)/std`` per channel, as pytorch-grad-cam (defaults 0.5/0.5)."""
    arr = np.array(img, copy=True)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    if t.dtype == torch.uint8:
        t = t.to(torch.get_default_dtype()).div(255)
    if not t.is_floating_point():
        raise TypeError(f"preprocess_image needs a float or uint8 image, got {arr.dtype}")
    m = torch.as_tensor(mean, dtype=t.dtype).reshape(-1, 1, 1)
    s = torch.as_tensor(std, dtype=t.dtype).reshape(-1, 1, 1)
    return ((t - m) / s).unsqueeze(0)


def deprocess_image(img: np.ndarray) -> np.ndarray:
    """Contrast-stretch any array for display, uint8: centre, divide by
    ``std + 1e-5``, scale by 0.1, shift to 0.5, clip to [0, 1], times 255
    (pytorch-grad-cam's, after keras-grad-cam)."""
    img = img - np.mean(img)
    img = img / (np.std(img) + 1e-5)
    img = np.clip(img * 0.1 + 0.5, 0, 1)
    return np.uint8(img * 255)


def scale_cam_image(cam, target_size: Optional[Sequence[int]] = None) -> np.ndarray:
    """Per-map min-max scaling ``(m − min)/(1e-7 + max − min)``, then (optionally)
    bilinear resizing to ``target_size``, given as (width, height) — or
    (width, height, depth) for 3-D maps — like ``cv2.resize``. float32.

    Same results as pytorch-grad-cam's (OpenCV's INTER_LINEAR is the half-pixel
    bilinear rule of ``F.interpolate(align_corners=False)``), computed for the
    whole batch at once; 3-D maps are resized with ``scipy.ndimage.zoom`` as there.
    """
    if isinstance(cam, torch.Tensor):
        cam = cam.detach().cpu().numpy()
    cam = np.asarray(cam)
    if not np.issubdtype(cam.dtype, np.floating):
        cam = cam.astype(np.float32)
    if len(cam) == 0:
        return cam.astype(np.float32)
    axes = tuple(range(1, cam.ndim))
    lo = cam.min(axis=axes, keepdims=True)
    shifted = cam - lo
    scaled = (shifted / (1e-7 + shifted.max(axis=axes, keepdims=True))).astype(np.float32)
    if target_size is None:
        return scaled
    if scaled.ndim == 3:
        W, H = int(target_size[0]), int(target_size[1])
        up = F.interpolate(torch.from_numpy(scaled)[:, None], size=(H, W), mode="bilinear",
                           align_corners=False)
        return up[:, 0].numpy()
    from scipy.ndimage import zoom
    factors = [t / s for s, t in zip(scaled.shape[1:], tuple(target_size)[::-1])]
    return np.float32([zoom(m, factors) for m in scaled])


def scale_accross_batch_and_channels(tensor: Union[np.ndarray, torch.Tensor],
                                     target_size: Optional[Sequence[int]]) -> np.ndarray:
    """:func:`scale_cam_image` of every (image, channel) map of a (B, C, h, w)
    batch: float32 (B, C, H, W) with ``target_size`` = (W, H) (``None``: no
    resizing). pytorch-grad-cam's function (FullGrad's per-channel scaling; the
    spelling is theirs), all B·C maps scaled and resized at once."""
    B, C = tensor.shape[:2]
    scaled = scale_cam_image(tensor.reshape(B * C, *tensor.shape[2:]), target_size)
    return scaled.reshape(B, C, *scaled.shape[1:])


def create_labels_legend(concept_scores: np.ndarray,
                         labels: Union[Mapping[int, str], Sequence[str]],
                         top_k: int = 2) -> list[str]:
    """For each concept (row of ``concept_scores``, (n_concepts, n_categories)),
    its ``top_k`` highest-scoring categories as ``"name:score"`` lines, highest
    first, ``name`` being the first three comma-separated parts of
    ``labels[category]`` and ``score`` with 2 decimals — pytorch-grad-cam's
    legend text for :func:`show_factorization_on_image`. Equal scores: the higher
    category index first.

    Better than pytorch-grad-cam: ``top_k`` outside [1, n_categories] (theirs
    silently returns fewer lines) and a ``labels`` mapping or list missing a
    needed category (theirs: a bare ``KeyError``/``IndexError`` mid-loop) raise
    ``ValueError`` naming what is wrong.
    """
    if isinstance(concept_scores, torch.Tensor):
        concept_scores = concept_scores.detach().cpu().numpy()
    scores = np.asarray(concept_scores)
    if scores.ndim != 2:
        raise ValueError(f"concept_scores must be (n_concepts, n_categories), got shape {scores.shape}")
    if not 1 <= top_k <= scores.shape[1]:
        raise ValueError(f"top_k must be in [1, {scores.shape[1]}] (the number of categories), "
                         f"got {top_k}")
    top = np.argsort(scores, axis=1, kind="stable")[:, ::-1][:, :top_k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    if isinstance(labels, Mapping):
        missing = sorted({int(c) for c in top.ravel()} - {int(k) for k in labels})
    else:
        missing = sorted({int(c) for c in top.ravel() if c >= len(labels)})
    if missing:
        raise ValueError(f"labels has no name for categories {missing} (among the top-{top_k} "
                         "of the concepts); give a name for every category")
    names = {int(c): ",".join(labels[int(c)].split(",")[:3]) for c in np.unique(top)}
    return ["\n".join(f"{names[int(c)]}:{v:.2f}" for c, v in zip(row, values))
            for row, values in zip(top, top_scores)]


def _rainbow(n: int) -> list[np.ndarray]:
    """``n`` RGBA colours of matplotlib's ``gist_rainbow`` at 0, 1/n, 2/n, ...
    (pytorch-grad-cam's default, after DFF's ``utils.py``)."""
    import matplotlib
    cmap = matplotlib.colormaps["gist_rainbow"]
    return [np.array(cmap(x)) for x in np.arange(n) * (1.0 / n)]


def _legend_image(height: int, width: int, colors: Sequence[np.ndarray],
                  concept_labels: Sequence[str]) -> np.ndarray:
    """The legend panel: one coloured line and label per component, rendered by
    matplotlib (Agg, off-screen, no pyplot state) on a ``width`` × ``height``
    figure, as uint8 RGB (height, width, 3)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    n = len(concept_labels)
    px = 1 / matplotlib.rcParams["figure.dpi"]
    fig = Figure(figsize=(width * px, height * px))
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lines = [Line2D([0], [0], color=colors[i], lw=5 * height / 256) for i in range(n)]
    ax.legend(lines, concept_labels, mode="expand", fancybox=True, shadow=True,
              fontsize=int(14 * height / 256 / max(1, n / 6)))
    fig.tight_layout(pad=0, w_pad=0, h_pad=0)
    ax.axis("off")
    canvas.draw()
    data = np.asarray(canvas.buffer_rgba())[..., :3]
    return _cv2().resize(np.ascontiguousarray(data), (width, height))


def show_factorization_on_image(img: np.ndarray, explanations: np.ndarray,
                                colors: Optional[Sequence[np.ndarray]] = None,
                                image_weight: float = 0.5,
                                concept_labels: Optional[Sequence[str]] = None) -> np.ndarray:
    """Colour-code component maps (deep feature factorization) over an image; uint8.

    ``img`` (H, W, 3) RGB float in [0, 1]; ``explanations`` (n, H, W) in [0, 1].
    Each pixel takes the colour of its strongest component (first on ties) —
    ``colors[i]``'s RGB, by default ``gist_rainbow`` at ``i/n`` — with HSV value
    ``uint8(255·strength)`` (OpenCV's uint8 HSV conversions), and the result is
    ``uint8(255·(image_weight·img + (1 − image_weight)·colour))``. With
    ``concept_labels`` (one per component) a legend of the same size is
    rendered by matplotlib and put to the right: (H, 2W, 3). pytorch-grad-cam's
    function and defaults; here one HSV conversion for the whole image instead
    of one full-image conversion per component.

    Better than pytorch-grad-cam: ``explanations`` is not modified (theirs
    zeroes every component outside its winning pixels, in place); strengths
    outside [0, 1] are clipped instead of wrapping around in the uint8
    conversion; mismatched shapes, too few ``colors``, a ``concept_labels``
    list whose length is not n (matplotlib's legend would drop the extra ones
    or components) and an image outside [0, 1] raise ``ValueError``; the legend
    is drawn off-screen without touching pyplot or ``rcParams`` (theirs sets
    ``rcParams['legend.fontsize']`` for the whole process); the default colours
    work with matplotlib ≥ 3.9 (theirs call the removed ``plt.cm.get_cmap``).
    """
    img = _check_overlay_args(img, image_weight)
    if isinstance(explanations, torch.Tensor):
        explanations = explanations.detach().cpu().numpy()
    explanations = np.asarray(explanations)
    if explanations.ndim != 3 or explanations.shape[1:] != img.shape[:2]:
        raise ValueError(f"explanations must be (n_components, H, W) for an image of "
                         f"{img.shape[:2]}, got {explanations.shape}")
    n = explanations.shape[0]
    colors = _rainbow(n) if colors is None else list(colors)
    if len(colors) < n:
        raise ValueError(f"{len(colors)} colors for {n} components")
    if concept_labels is not None and len(concept_labels) != n:
        raise ValueError(f"{len(concept_labels)} concept_labels for {n} components")
    cv2 = _cv2()
    rgb = np.uint8(np.stack([np.asarray(c[:3], dtype=np.float64) for c in colors[:n]])[:, None] * 255)
    hue_saturation = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, 0]            # (n, 3)
    winner = explanations.argmax(axis=0)
    strength = np.take_along_axis(explanations, winner[None], axis=0)[0]
    hsv = hue_saturation[winner]
    hsv[..., 2] = np.uint8(255 * np.clip(strength, 0, 1))
    mask = np.float32(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)) / 255
    result = np.uint8((img * image_weight + mask * (1 - image_weight)) * 255)
    if concept_labels is None:
        return result
    legend = _legend_image(result.shape[0], result.shape[1], colors, list(concept_labels))
    return np.hstack((result, legend))
