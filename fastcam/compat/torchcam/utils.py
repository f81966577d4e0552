"""TorchCAM's ``torchcam.utils``: overlaying a CAM on its image."""
from __future__ import annotations

from typing import Union

import numpy as np
from PIL import Image as _PIL
from PIL.Image import Image

__all__ = ["overlay_mask"]


def overlay_mask(img: Image, mask: Image, colormap: Union[str, "matplotlib.colors.Colormap"] = "jet",
                 alpha: float = 0.7) -> Image:
    """``img`` blended with the colormapped ``mask``, as ``torchcam.utils.overlay_mask``.

    The mask (a grayscale PIL image, e.g. ``to_pil_image(cam, mode="F")`` of a map
    in [0, 1]) is resized to the image's size (bicubic), its values squared and
    passed through ``colormap`` (matplotlib name or object; RGBA bytes, alpha
    dropped); the result is ``alpha · img + (1 − alpha) · colored`` (PIL's
    ``Image.blend`` for an "L" or "RGB" image, which is then converted to RGB).

    Raises:
        TypeError: ``img`` or ``mask`` is not a PIL image.
        ValueError: ``alpha`` is not a float in [0, 1), or ``img`` has neither 1 nor 3 bands.
    """
    from matplotlib import colormaps

    if not isinstance(img, Image) or not isinstance(mask, Image):
        raise TypeError("img and mask arguments need to be PIL.Image")
    if not isinstance(alpha, float) or not 0 <= alpha < 1:
        raise ValueError("alpha argument is expected to be of type float between 0 and 1")
    bands = len(img.getbands())
    if bands not in (1, 3):
        raise ValueError("img argument needs to be a grayscale or RGB image")
    cmap = colormaps.get_cmap(colormap)
    resized = np.asarray(mask.resize(img.size, resample=_PIL.Resampling.BICUBIC))
    colored = cmap(resized ** 2, bytes=True)[:, :, :3]
    if img.mode in ("L", "RGB") and colored.ndim == 3:
        return _PIL.blend(_PIL.fromarray(colored), img.convert("RGB"), alpha)
    background = np.asarray(img)
    if bands == 1:
        background = np.repeat(background[..., None], 3, axis=-1)
    return _PIL.fromarray((alpha * background + (1 - alpha) * colored).astype(np.uint8))
