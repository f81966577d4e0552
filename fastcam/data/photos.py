"""Real photographs bundled offline with scikit-image and matplotlib, and one
colour photo shipped with fastcam (``summer_palace.jpg``, CC BY 2.0).

Photos are returned as float32 RGB tensors in ``[0, 1]`` pixel space (not
normalised), preprocessed the standard ImageNet-evaluation way: resize so the
shorter side is ``round(size * 256 / 224)`` (256 for ``size=224``, bilinear,
antialiased), then center-crop ``size x size``.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["PHOTO_NAMES", "load_photos", "load_image", "read_image", "photo_array", "preprocess", "crop_window",
           "uncrop", "to_rgb_float"]


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _motorcycle() -> np.ndarray:
    import skimage.data

    return skimage.data.stereo_motorcycle()[0]  # left view of the stereo pair


def _grace_hopper() -> np.ndarray:
    import matplotlib
    from PIL import Image

    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _summer_palace() -> np.ndarray:
    from PIL import Image

    # scikit-learn's sample "china.jpg" (Tower of Buddhist Incense, Summer Palace,
    # Beijing), CC BY 2.0, danielbuechele on Flickr; shipped here (PHOTO_CREDITS.txt)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "summer_palace.jpg")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# All of these ship inside the installed packages (no network access needed).
_LOADERS: Dict[str, Callable[[], np.ndarray]] = {
    "chelsea": _skimage("chelsea"),  # tabby cat
    "coffee": _skimage("coffee"),  # cup of espresso
    "astronaut": _skimage("astronaut"),  # Eileen Collins portrait
    "rocket": _skimage("rocket"),  # Falcon 9 on the launch pad
    "motorcycle": _motorcycle,  # Middlebury stereo "motorcycle" (left view)
    "grace_hopper": _grace_hopper,  # portrait in navy uniform (matplotlib)
    "summer_palace": _summer_palace,  # palace tower (bundled, CC BY 2.0)
    "cameraman": _skimage("camera"),  # man with camera on a tripod (grayscale photo)
}

#: Names accepted by :func:`load_photos`, in default order.
PHOTO_NAMES: Tuple[str, ...] = tuple(_LOADERS)


def photo_array(name: str) -> np.ndarray:
    """One bundled photo at its original resolution, as its source array
    (uint8 RGB, or 2-D grayscale for ``cameraman``)."""
    if name not in _LOADERS:
        raise KeyError(f"unknown photo name {name!r}; available: {list(PHOTO_NAMES)}")
    return _LOADERS[name]()


def to_rgb_float(arr: np.ndarray) -> np.ndarray:
    """Convert an image array to float32 RGB ``(H, W, 3)`` in ``[0, 1]``.

    Accepts grayscale ``(H, W)`` / ``(H, W, 1)``, gray+alpha ``(H, W, 2)``,
    RGB and RGBA (alpha composited over white); uint8, uint16 (and other
    integer types, scaled by their full range, or by 65535 for int32 data that
    exceeds 8 bits, as PIL returns for 16-bit PNGs), bool and float (clipped).
    """
    a = np.asarray(arr)
    if a.dtype == np.bool_:
        f = a.astype(np.float32)
    elif a.dtype == np.uint8:
        f = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        f = a.astype(np.float32) / 65535.0
    elif np.issubdtype(a.dtype, np.integer):
        hi = 255.0 if a.size == 0 or a.max() <= 255 else 65535.0
        f = a.astype(np.float32) / hi
    else:
        f = a.astype(np.float32)
    f = np.clip(f, 0.0, 1.0)
    if f.ndim == 2:
        f = f[:, :, None]
    if f.ndim != 3:
        raise ValueError(f"expected a 2-D or 3-D image array, got shape {a.shape}")
    c = f.shape[2]
    if c in (2, 4):  # composite over white
        alpha = f[:, :, -1:]
        f = f[:, :, :-1] * alpha + (1.0 - alpha)
        c -= 1
    if c == 1:
        f = np.repeat(f, 3, axis=2)
    elif c != 3:
        raise ValueError(f"unsupported number of channels: {c}")
    return np.ascontiguousarray(f, dtype=np.float32)


def crop_window(height: int, width: int, size: int) -> Tuple[int, int, int, int]:
    """Where :func:`preprocess` takes its ``size x size`` input from an image of
    ``height x width``: ``(resized_h, resized_w, top, left)``. The shorter side is
    resized to ``round(size * 256 / 224)``, the longer to ``int(short * long /
    shorter)`` (truncated, as torchvision's ``resize`` with one size); the window's
    offsets are rounded half to even, as torchvision's ``center_crop``."""
    short = int(round(size * 256 / 224))
    if height <= width:
        new_h, new_w = short, int(short * width / height)
    else:
        new_h, new_w = int(short * height / width), short
    return new_h, new_w, int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))


def _resize_and_crop(t: Tensor, size: int) -> Tensor:
    """``(C, H, W)`` -> ``(C, size, size)`` by :func:`crop_window`: antialiased
    bilinear interpolation (half-pixel centres), then the central window."""
    h, w = t.shape[-2:]
    new_h, new_w, top, left = crop_window(h, w, size)
    if (new_h, new_w) != (h, w):
        t = torch.nn.functional.interpolate(t[None], size=(new_h, new_w), mode="bilinear",
                                            align_corners=False, antialias=True)[0]
    return t[..., top:top + size, left:left + size]


def uncrop(cam: Tensor, height: int, width: int) -> Tuple[Tensor, Tensor]:
    """A map on :func:`preprocess`'s ``(size, size)`` output carried back onto the
    original ``height x width`` image, through the crop and the resize:
    ``(map, inside)``, both ``(height, width)``. Each original pixel centre is
    placed in the resized image (half-pixel centres), shifted by the crop's offset
    and sampled bilinearly from ``cam``; ``inside`` marks the pixels within the
    crop (outside it the map is the nearest edge value: mask it with ``inside``)."""
    if cam.ndim != 2 or cam.shape[0] != cam.shape[1]:
        raise ValueError(f"expected a square (size, size) map, got shape {tuple(cam.shape)}")
    size = cam.shape[0]
    new_h, new_w, top, left = crop_window(height, width, size)
    dev = cam.device
    ys = (torch.arange(height, device=dev, dtype=torch.float32) + 0.5) * (new_h / height) - top
    xs = (torch.arange(width, device=dev, dtype=torch.float32) + 0.5) * (new_w / width) - left
    gy, gx = torch.meshgrid(ys / size * 2 - 1, xs / size * 2 - 1, indexing="ij")
    grid = torch.stack([gx, gy], dim=-1)[None]
    out = torch.nn.functional.grid_sample(cam[None, None].float(), grid, mode="bilinear",
                                          padding_mode="border", align_corners=False)[0, 0]
    inside = (ys[:, None] >= 0) & (ys[:, None] < size) & (xs[None, :] >= 0) & (xs[None, :] < size)
    return out, inside


def preprocess(image: Union[np.ndarray, Tensor], size: int = 224, mode: str = "crop") -> Tensor:
    """``mode="crop"``: resize shorter side to ``round(size*256/224)`` and
    center-crop ``size``; ``"resize"``: resize to ``size × size`` (aspect ratio
    not kept, nothing cut; for datasets already resized). Bilinear, antialiased.

    Args:
        image: ``(H, W[, C])`` array (any dtype handled by :func:`to_rgb_float`)
            or a float ``(3, H, W)`` tensor in ``[0, 1]``.
        size: output side length.
        mode: ``"crop"`` (default) or ``"resize"``.

    Returns:
        float32 tensor ``(3, size, size)`` in ``[0, 1]``.
    """
    if isinstance(image, Tensor):
        t = image.detach().to(torch.float32)
    else:
        t = torch.from_numpy(to_rgb_float(image)).permute(2, 0, 1)
    if mode == "resize":
        if tuple(t.shape[-2:]) != (size, size):
            t = torch.nn.functional.interpolate(t[None], size=(size, size), mode="bilinear",
                                                align_corners=False, antialias=True)[0]
        return t.clamp_(0.0, 1.0).contiguous()
    if mode != "crop":
        raise ValueError(f"mode must be 'crop' or 'resize', got {mode!r}")
    t = _resize_and_crop(t, size)
    return t.clamp_(0.0, 1.0).contiguous()


def read_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """An image file as an array at its own resolution (``(H, W[, C])``, the file's
    dtype; palette, CMYK, YCbCr, LAB, HSV and 1-bit files converted to RGB(A)):
    :func:`to_rgb_float` makes it float RGB."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
            im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
        return np.asarray(im)


def load_image(path: Union[str, os.PathLike], size: int = 224, mode: str = "crop") -> Tensor:
    """Load an image file as a float32 ``(3, size, size)`` tensor in ``[0, 1]``,
    ready for an explainer: ``fastcam.load_image("cat.jpg")[None]`` is a batch of one.

    The ImageNet evaluation crop: the shorter side is resized (bilinear, antialiased)
    to ``round(size * 256 / 224)`` and the centre ``size`` × ``size`` is kept
    (:func:`preprocess`). Grayscale, palette, CMYK and 16-bit files become RGB;
    transparency is composited over white. The tensor is pixel-space, not
    normalised: pass ``normalize="imagenet"`` (or the model's ``(mean, std)``) to the
    explainer, and the same tensor to :func:`fastcam.overlay` to draw the map.

    Args:
        path: any file Pillow reads (JPEG, PNG, WebP, TIFF, ...).
        size: the side of the square crop (224 for ImageNet models).
        mode: ``"crop"`` (default, as above) or ``"resize"`` (a plain resize to
            ``size × size``, for datasets already resized; see :func:`preprocess`).

    Raises:
        FileNotFoundError / PIL.UnidentifiedImageError: the file is missing or not an image.
    """
    return preprocess(read_image(path), size, mode)


def load_photos(
    names: Optional[Sequence[str]] = None, size: int = 224
) -> Tuple[Tensor, List[str]]:
    """Load bundled real photos as one batch.

    Args:
        names: subset of :data:`PHOTO_NAMES` (default: all, in that order:
            chelsea, coffee, astronaut, rocket, motorcycle, grace_hopper,
            summer_palace, cameraman).
        size: output side length (shorter side resized to ``size*256/224``,
            then center crop).

    Returns:
        ``(x, names)`` with ``x`` float32 ``(N, 3, size, size)`` in ``[0, 1]``.
    """
    names = list(PHOTO_NAMES if names is None else names)
    unknown = [n for n in names if n not in _LOADERS]
    if unknown:
        raise KeyError(f"unknown photo name(s) {unknown}; available: {list(PHOTO_NAMES)}")
    x = torch.stack([preprocess(_LOADERS[n](), size) for n in names]) if names else (
        torch.empty(0, 3, size, size)
    )
    return x, names
