"""Heat-map overlays and PNG comparison grids (matplotlib, Agg backend).

:func:`overlay` alpha-blends a colour-mapped class-activation map onto an
image and returns a PIL image (:func:`save_overlay` writes it);
:func:`save_grid` writes one PNG with one row per image and one column per
CAM method.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["overlay", "save_overlay", "save_grid"]

ImageLike = Union["PIL.Image.Image", Tensor, np.ndarray]  # noqa: F821 (PIL is imported lazily)


def _array(a: Union[Tensor, np.ndarray]) -> np.ndarray:
    if isinstance(a, Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _image_hwc(image: ImageLike) -> np.ndarray:
    """An image as float32 ``(H, W, 3)`` in [0, 1]:

    * a PIL image (converted to RGB);
    * ``uint8`` ``(H, W, 3)`` / ``(H, W, 1)`` / ``(H, W)`` (or ``(3, H, W)``) holding
      0–255, divided by 255;
    * floating ``(3, H, W)`` / ``(1, H, W)`` (torch's layout, which wins when the
      shape is ambiguous), ``(H, W, 3)`` or ``(H, W)`` in [0, 1].

    Values outside the range are a ``ValueError`` (never clipped); other dtypes a
    ``TypeError``."""
    if hasattr(image, "convert") and hasattr(image, "mode"):          # a PIL image
        image = np.asarray(image.convert("RGB"))
    img = _array(image)
    shape = tuple(img.shape)
    if img.dtype == np.uint8:
        if img.ndim == 3 and img.shape[2] not in (1, 3) and img.shape[0] in (1, 3):
            img = np.moveaxis(img, 0, -1)
        img = img.astype(np.float32) / 255.0
    elif np.issubdtype(img.dtype, np.floating):
        img = img.astype(np.float32)
        if img.ndim == 3 and img.shape[0] in (1, 3):
            img = np.moveaxis(img, 0, -1)
        if not np.isfinite(img).all():
            raise ValueError("image contains NaN or infinite values")
        if img.size and (img.min() < 0.0 or img.max() > 1.0):
            raise ValueError(f"a float image must be in [0, 1], got values in [{img.min():g}, "
                             f"{img.max():g}] (pass uint8 for 0-255 pixels; un-normalise first)")
    else:
        raise TypeError(f"image must be a PIL image, uint8 (0-255) or float in [0, 1]; got {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3):
        raise ValueError(f"expected an image (H, W, 3), (3, H, W) or (H, W); got shape {shape}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return img


def _get_cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def _blend(image: ImageLike, cam: Union[Tensor, np.ndarray], alpha: float, colormap: str) -> np.ndarray:
    """``uint8`` ``(H, W, 3)``: ``(1 - alpha) * image + alpha * colormap(cam)``."""
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    img = _image_hwc(image)
    h, w = img.shape[:2]
    c = torch.as_tensor(_array(cam)).to(torch.float32)
    while c.ndim > 2 and c.shape[0] == 1:
        c = c[0]
    if c.ndim != 2:
        raise ValueError(f"expected a map (H, W), got shape {tuple(c.shape)}")
    if not bool(torch.isfinite(c).all()):
        raise ValueError("map contains NaN or infinite values")
    if c.numel() and (float(c.min()) < 0.0 or float(c.max()) > 1.0):
        raise ValueError(f"the map must be in [0, 1] (fastcam's maps are), got values in "
                         f"[{float(c.min()):g}, {float(c.max()):g}]")
    if tuple(c.shape) != (h, w):
        c = torch.nn.functional.interpolate(
            c[None, None], size=(h, w), mode="bilinear", align_corners=False
        )[0, 0]
        c = c.clamp(0.0, 1.0)  # only rounding: bilinear weights of values in [0, 1]
    heat = _get_cmap(colormap)(c.numpy())[..., :3].astype(np.float32)
    out = (1.0 - alpha) * img + alpha * heat
    return np.rint(out * 255.0).astype(np.uint8)


def overlay(image: ImageLike, cam: Union[Tensor, np.ndarray], alpha: float = 0.5,
            colormap: str = "jet") -> "PIL.Image.Image":  # noqa: F821
    """A class-activation map drawn over an image: ``(1 - alpha) * image + alpha *
    colormap(cam)``, as a PIL RGB image of the image's size.

    Args:
        image: a PIL image; ``uint8`` ``(H, W, 3)`` pixels 0–255 (what
            ``np.asarray(PIL image)`` gives); or a float ``(3, H, W)`` tensor
            (or ``(H, W, 3)`` array) in [0, 1] — e.g. ``x[i]`` of a batch given
            to an explainer with ``normalize``. Values outside the range are a
            ``ValueError``, never clipped.
        cam: a map ``(H, W)`` in [0, 1] (``maps[i]`` of an explainer); another
            size is resized bilinearly to the image's.
        alpha: weight of the heat map in [0, 1] (0 = image only, 1 = map only).
        colormap: any matplotlib colormap name ("jet", "viridis", ...).
    """
    from PIL import Image

    return Image.fromarray(_blend(image, cam, alpha, colormap))


def save_overlay(path: Union[str, os.PathLike], image: ImageLike, cam: Union[Tensor, np.ndarray],
                 alpha: float = 0.5, colormap: str = "jet") -> None:
    """Write :func:`overlay` ``(image, cam, alpha, colormap)`` to ``path`` (the format
    from its extension: .png, .jpg, ...; parent folders are created)."""
    out = os.fspath(path)
    parent = os.path.dirname(out)
    if parent:
        os.makedirs(parent, exist_ok=True)
    overlay(image, cam, alpha=alpha, colormap=colormap).save(out)


def save_grid(
    path: Union[str, os.PathLike],
    images: Union[Tensor, np.ndarray],
    cams: Mapping[str, Union[Tensor, np.ndarray]],
    row_labels: Optional[Sequence[str]] = None,
    col_labels: Optional[Sequence[str]] = None,
    alpha: float = 0.5,
    colormap: str = "jet",
    dpi: int = 80,
    cell_inches: float = 2.0,
    title: Optional[str] = None,
) -> None:
    """Write ONE PNG grid comparing CAM methods.

    Row ``i`` shows ``images[i]`` followed by ``overlay(images[i],
    cams[method][i])`` for each method (dict order). Column titles go on top,
    ``row_labels`` (e.g. ``"tabby 0.87"``) on the left.

    Args:
        path: output PNG path (parent directories are created).
        images: ``(N, 3, H, W)`` in ``[0, 1]``.
        cams: ``{method_name: (N, H, W) maps in [0, 1]}``.
        row_labels: ``N`` strings (optional).
        col_labels: ``1 + len(cams)`` column titles; default ``["image",
            *cams]``. A list of ``len(cams)`` titles is also accepted (then
            "image" is prepended).
        alpha, colormap: passed to :func:`overlay`.
        dpi, cell_inches: output resolution; each cell is ``cell_inches``
            square (160 px at the defaults) plus margins for labels.
        title: a line above the grid (e.g. the model and precision), or None.
    """
    # Figure + FigureCanvasAgg render with Agg and never touch pyplot or a
    # display backend (safe in threads / headless).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = int(images.shape[0])
    methods = list(cams)
    ncols = 1 + len(methods)
    if col_labels is None:
        col_labels = ["image", *methods]
    col_labels = list(col_labels)
    if len(col_labels) == len(methods):
        col_labels = ["image", *col_labels]
    if len(col_labels) != ncols:
        raise ValueError(f"need {ncols} column labels, got {len(col_labels)}")
    if row_labels is not None and len(row_labels) != n:
        raise ValueError(f"need {n} row labels, got {len(row_labels)}")
    for m in methods:
        if int(cams[m].shape[0]) != n:
            raise ValueError(f"cams[{m!r}] has {cams[m].shape[0]} maps for {n} images")
    if n == 0:
        raise ValueError("no images")

    left = 0.35 * cell_inches if row_labels is not None else 0.05 * cell_inches
    titled_cols = any("\n" in str(t) for t in col_labels)
    top = (0.3 if titled_cols else 0.18) * cell_inches + (0.16 * cell_inches if title else 0.0)
    fig_w = left + ncols * cell_inches
    fig_h = top + n * cell_inches
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(
        left=left / fig_w, right=1.0, top=1.0 - top / fig_h, bottom=0.0, wspace=0.02, hspace=0.02
    )
    axes = fig.subplots(n, ncols, squeeze=False)
    for i in range(n):
        img = _image_hwc(images[i])
        for j in range(ncols):
            ax = axes[i][j]
            if j == 0:
                ax.imshow(img, interpolation="nearest")
            else:
                ax.imshow(
                    _blend(images[i], cams[methods[j - 1]][i], alpha, colormap),
                    interpolation="nearest",
                )
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if i == 0:
                ax.set_title(str(col_labels[j]), fontsize=9)
        if row_labels is not None:
            axes[i][0].set_ylabel(str(row_labels[i]), fontsize=9)
    if title:
        fig.suptitle(str(title), fontsize=10, y=1.0 - 0.03 * cell_inches / fig_h, va="top")
    out = os.fspath(path)
    parent = os.path.dirname(out)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(out, format="png", dpi=dpi)
