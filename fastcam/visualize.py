"""Heat-map overlays and PNG comparison grids (matplotlib, Agg backend).

:func:`overlay` alpha-blends a colour-mapped class-activation map onto an
image; :func:`save_grid` writes one PNG with one row per image and one column
per CAM method.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["overlay", "save_grid"]


def _to_numpy(a: Union[Tensor, np.ndarray]) -> np.ndarray:
    if isinstance(a, Tensor):
        return a.detach().to("cpu", torch.float32).numpy()
    return np.asarray(a, dtype=np.float32)


def _image_hwc(image: Union[Tensor, np.ndarray]) -> np.ndarray:
    """``(3, H, W)`` (or ``(H, W, 3)`` array) in [0,1] -> float32 ``(H, W, 3)``."""
    img = _to_numpy(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[0] in (1, 3):
        img = np.moveaxis(img, 0, -1)  # torch CHW (takes precedence if ambiguous)
    if img.ndim != 3 or img.shape[2] not in (1, 3):
        raise ValueError(f"expected image (3, H, W), got shape {tuple(image.shape)}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.clip(np.nan_to_num(img), 0.0, 1.0)


def _get_cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def overlay(
    image: Union[Tensor, np.ndarray],
    cam: Union[Tensor, np.ndarray],
    alpha: float = 0.5,
    colormap: str = "jet",
) -> np.ndarray:
    """Blend a heat map onto an image.

    Args:
        image: RGB image ``(3, H, W)`` with values in ``[0, 1]``.
        cam: saliency map ``(H, W)`` in ``[0, 1]`` (values are clipped; if its
            size differs from the image it is bilinearly resized).
        alpha: weight of the heat map (``0`` = image only, ``1`` = map only).
        colormap: any matplotlib colormap name.

    Returns:
        ``uint8`` RGB array ``(H, W, 3)``: ``(1 - alpha) * image + alpha *
        colormap(cam)``.
    """
    img = _image_hwc(image)
    h, w = img.shape[:2]
    c = cam.detach() if isinstance(cam, Tensor) else torch.as_tensor(np.asarray(cam))
    c = c.to("cpu", torch.float32)
    while c.ndim > 2 and c.shape[0] == 1:
        c = c[0]
    if c.ndim != 2:
        raise ValueError(f"expected cam (H, W), got shape {tuple(c.shape)}")
    if tuple(c.shape) != (h, w):
        c = torch.nn.functional.interpolate(
            c[None, None], size=(h, w), mode="bilinear", align_corners=False
        )[0, 0]
    c = torch.nan_to_num(c).clamp(0.0, 1.0).numpy()
    heat = _get_cmap(colormap)(c)[..., :3].astype(np.float32)
    out = (1.0 - alpha) * img + alpha * heat
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


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
                    overlay(images[i], cams[methods[j - 1]][i], alpha=alpha, colormap=colormap),
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
