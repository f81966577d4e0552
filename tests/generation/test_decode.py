"""``decode_uint8``: every colour mode it names becomes the RGB uint8 that PIL's
own conversion gives (alpha over white), in the crop/resize geometry, without a
warning (a user's run prints nothing of ours but the summary)."""
import io
import warnings

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from fastcam.generation.decode import decode_uint8, geometry


def _encoded(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def _rgb(seed: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _expected(rgb: np.ndarray, size: int, mode: str) -> torch.Tensor:
    g = geometry(rgb.shape[0], rgb.shape[1], size, mode)
    t = torch.from_numpy(rgb.copy()).permute(2, 0, 1)
    t = TF.resize(t, [g.height, g.width], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return t[:, g.top:g.top + size, g.left:g.left + size]


@pytest.mark.parametrize("mode", ["crop", "resize"])
@pytest.mark.parametrize("kind", ["RGB", "L", "P", "RGBA", "LA", "I;16"])
def test_modes_become_pils_rgb_without_a_warning(kind, mode):
    rgb = _rgb(1, 37, 50)
    im = Image.fromarray(rgb)
    if kind == "L":
        im = im.convert("L")
        want = np.repeat(np.asarray(im)[:, :, None], 3, axis=2)
    elif kind == "P":
        im = im.convert("P")
        want = np.asarray(im.convert("RGB"))
    elif kind in ("RGBA", "LA"):
        alpha = np.random.default_rng(2).integers(0, 256, (37, 50), dtype=np.uint8)
        base = rgb if kind == "RGBA" else np.asarray(im.convert("L"))[:, :, None]
        im = Image.fromarray(np.concatenate([base, alpha[:, :, None]], axis=2), kind)
        c, a = base.astype(np.int64), alpha[:, :, None].astype(np.int64)
        want = np.broadcast_to((c * a + 255 * (255 - a) + 127) // 255, rgb.shape).astype(np.uint8)
    elif kind == "I;16":
        hi = rgb[:, :, 0].astype(np.uint16) * 257            # 16-bit whose high byte is the 8-bit value
        im = Image.fromarray(hi)
        want = np.repeat(rgb[:, :, :1], 3, axis=2)
    else:
        want = rgb
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = decode_uint8(_encoded(im, "PNG"), 32, mode)
    assert (got.height, got.width) == (37, 50)
    assert got.image.dtype == torch.uint8 and got.image.shape == (3, 32, 32) and got.image.is_contiguous()
    assert torch.equal(got.image, _expected(np.ascontiguousarray(want), 32, mode))


def test_a_jpeg_decodes_without_a_warning():
    data = _encoded(Image.fromarray(_rgb(3, 375, 500)), "JPEG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # torch.from_numpy warns on Pillow's read-only array
        got = decode_uint8(data, 224)
    assert got.image.shape == (3, 224, 224) and (got.height, got.width) == (375, 500)
