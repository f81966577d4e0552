"""fastcam.compat.torchcam against the real TorchCAM 0.5.0: same scripts, same maps."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

tc_methods = pytest.importorskip("torchcam.methods")
tc_utils = pytest.importorskip("torchcam.utils")
from torchcam.methods.core import _CAM as _TorchCAMBase  # noqa: E402

from fastcam.compat.torchcam import methods as fc_methods  # noqa: E402
from fastcam.compat.torchcam import utils as fc_utils  # noqa: E402
from fastcam.compat.torchcam.methods.core import MissingForwardError  # noqa: E402
from fastcam.methods.gradcam_plusplus import GradCAMPlusPlus as NativeGradCAMPlusPlus  # noqa: E402
from fastcam.compat import numerics  # noqa: E402
from fastcam.compat.numerics import normalize  # noqa: E402

LAYER = {"resnet18": "layer4", "vgg16": "features.29"}
GRADIENT = ["GradCAM", "GradCAMpp", "XGradCAM", "LayerCAM"]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: getattr(torchvision.models, name)(weights=None).eval() for name in LAYER}


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def close(ours: torch.Tensor, theirs: torch.Tensor, tol: float = 1e-4) -> None:
    """Within tol of TorchCAM, relative to the map's scale (raw maps can be ~1e-4 in size)."""
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    scale = max(float(theirs.abs().max()), 1e-30)
    torch.testing.assert_close(ours, theirs, atol=tol * scale, rtol=tol)


def run(cls, model, x, class_idx, layer, normalized=(True, False), **kwargs):
    """Both calls of one forward: maps per `normalized` (the graph kept between them)."""
    with cls(model, layer, **kwargs) as cam:
        out = model(x)
        return [cam(class_idx, out, normalized=n, retain_graph=i + 1 < len(normalized))
                for i, n in enumerate(normalized)]


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


@pytest.mark.parametrize("arch", list(LAYER))
@pytest.mark.parametrize("name", GRADIENT)
def test_gradient_methods_match_torchcam(models, x, arch, name):
    model = models[arch]
    ours = run(getattr(fc_methods, name), model, x, [1, 7], LAYER[arch])
    theirs = run(getattr(tc_methods, name), model, x, [1, 7], LAYER[arch])
    for a, b in zip(ours, theirs):
        assert len(a) == 1 and a[0].shape == (2, *a[0].shape[1:])
        close(a[0], b[0])
    assert float(ours[0][0].max()) == pytest.approx(1.0, abs=1e-3)     # normalized (max − min + 1e-8)
    assert all(p.grad is None for p in model.parameters())              # autograd.grad only


def test_cam_matches_torchcam_and_needs_no_scores(models, x):
    model = models["resnet18"]
    with fc_methods.CAM(model, "layer4", "fc") as cam, tc_methods.CAM(model, "layer4", "fc") as ref:
        with torch.inference_mode():
            model(x)
        for normalized in (True, False):
            close(cam(3, normalized=normalized)[0], ref(3, normalized=normalized)[0])
        close(cam([3, 4])[0], ref([3, 4])[0])
    with pytest.raises(ValueError, match="multiple fully connected"):
        fc_methods.CAM(models["vgg16"], "features.29")     # vgg16 has three Linear layers
    assert hook_count(models["vgg16"]) == 0


@pytest.mark.parametrize("arch,layer", [("resnet18", "layer1"), ("vgg16", "features.3")])
def test_scorecam_matches_torchcam(models, arch, layer):
    model = models[arch]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    maps = []
    for cls in (fc_methods.ScoreCAM, tc_methods.ScoreCAM):
        with cls(model, layer, batch_size=48) as cam:    # a chunk size that does not divide B·K
            with torch.no_grad():
                model(x)
            maps.append(cam([5, 9], normalized=False)[0])
    close(maps[0], maps[1])
    close(normalize(maps[0]), _TorchCAMBase._normalize(maps[1].clone()))


def _torchcam_normal(std: float, shapes: list[tuple[int, ...]], seed: int) -> list[torch.Tensor]:
    """The draws TorchCAM makes from the global generator after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    return [torch.distributions.normal.Normal(0, std).sample(s) for s in shapes]


def test_iscam_matches_torchcam(models):
    """resnet18 only: IS-CAM's copies are Score-CAM's times N (vgg16: see test_scorecam_*)."""
    model, layer = models["resnet18"], "layer1"
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    maps = []
    for cls in (fc_methods.ISCAM, tc_methods.ISCAM):
        with cls(model, layer, batch_size=40, num_samples=2) as cam:
            with torch.no_grad():
                model(x)
            maps.append(cam([5, 9], normalized=False)[0])
    close(maps[0], maps[1])


def test_sscam_matches_torchcam_given_its_noise(models):
    model, N, std = models["resnet18"], 2, 2.0
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with tc_methods.SSCAM(model, "layer1", batch_size=40, num_samples=N, std=std) as ref:
        with torch.no_grad():
            model(x)
        K = ref.hook_a[0].shape[1]
        noise = torch.stack(_torchcam_normal(std, [(2, K, 32, 32)] * N, seed=5))   # (N, B, K, H, W)
        torch.manual_seed(5)
        theirs = ref([5, 9], normalized=False)[0]
    with fc_methods.SSCAM(model, "layer1", batch_size=40, num_samples=N, std=std) as cam:
        cam._method._noise = lambda image, channel, sample, size, like: noise[sample, image, channel]
        with torch.no_grad():
            model(x)
        close(cam([5, 9], normalized=False)[0], theirs)


@pytest.mark.parametrize("arch", list(LAYER))
def test_smoothgradcampp_matches_torchcam_given_its_noise(models, x, arch):
    model, N, std = models[arch], 2, 0.3
    noise = torch.stack(_torchcam_normal(std, [tuple(x.shape)] * N, seed=6))          # (N, B, C, H, W)
    maps = []
    with tc_methods.SmoothGradCAMpp(model, LAYER[arch], num_samples=N, std=std) as ref:
        model(x)
        torch.manual_seed(6)
        theirs = ref([1, 7], normalized=False)[0]
    with fc_methods.SmoothGradCAMpp(model, LAYER[arch], num_samples=N, std=std) as cam:
        cam._method._noise = lambda image, sample, shape, like: noise[sample, image]
        with torch.no_grad():                   # the scores are not used: no autograd needed
            model(x)
        close(cam([1, 7], normalized=False)[0], theirs)
    assert all(p.grad is None for p in model.parameters())


def test_legrad_matches_torchcam():
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                               hidden_dim=16, mlp_dim=32, num_classes=10).eval()
    torch.nn.init.normal_(vit.heads.head.weight, std=0.5)     # torchvision's zero head: constant scores
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    blocks = list(vit.encoder.layers)
    before = hook_count(vit)
    maps = {}
    for tag, module in (("ours", fc_methods), ("theirs", tc_methods)):
        with module.LeGrad(vit, blocks) as cam:
            scores = vit(x)
            maps[tag] = [cam([3, 7], scores, normalized=n, retain_graph=True)[0] for n in (True, False)]
            scores[:, 0].sum().backward()            # the user's graph is whole
        vit.zero_grad(set_to_none=True)
    for a, b in zip(maps["ours"], maps["theirs"]):
        close(a, b)
    assert hook_count(vit) == before


def test_several_layers_and_fuse_cams(models, x):
    model = models["resnet18"]
    layers = ["layer3", "layer4"]
    for name in ("GradCAM", "LayerCAM"):      # LayerCAM scales by tanh(2·M) before fusing
        ours = run(getattr(fc_methods, name), model, x, 2, layers, normalized=(True,))[0]
        theirs = run(getattr(tc_methods, name), model, x, 2, layers, normalized=(True,))[0]
        assert [m.shape[-1] for m in ours] == [4, 2]
        for a, b in zip(ours, theirs):
            close(a, b)
        fused = getattr(fc_methods, name).fuse_cams(ours)
        close(fused, getattr(tc_methods, name).fuse_cams(theirs))
        assert fused.shape == (2, 4, 4)
        close(getattr(fc_methods, name).fuse_cams(ours, (8, 8)),
              getattr(tc_methods, name).fuse_cams(theirs, (8, 8)))


def test_refinecam_and_finercam_match_torchcam(models, x):
    model = models["resnet18"]
    out = {}
    for tag, module in (("ours", fc_methods), ("theirs", tc_methods)):
        with module.RefineCAM(model, ["layer3", "layer4"], base_method=module.LayerCAM) as cam:
            out[tag, "refine"] = cam([0, 1], model(x))[0]
        with module.FinerCAM(model, "layer4", base_method=module.GradCAMpp) as cam:
            s = model(x)
            out[tag, "finer"] = cam([0, 1], s, normalized=False, retain_graph=True)[0]
            out[tag, "finer-explicit"] = cam(3, s, comparison_idx=[[4, 5], [6, 7]])[0]
    for kind in ("refine", "finer", "finer-explicit"):
        close(out["ours", kind], out["theirs", kind])
    assert hook_count(model) == 0


def test_target_callables_and_auto_layer(models, x, caplog):
    model = models["resnet18"]
    target = [lambda row: row[3] - row[4], lambda row: row[8]]
    maps = []
    for module in (fc_methods, tc_methods):
        with module.GradCAM(model, input_shape=(3, 64, 64)) as cam:      # target_layer=None
            assert cam.target_names == ["layer4"]
            maps.append(cam(scores=model(x), targets=target)[0])
    close(maps[0], maps[1])
    assert "layer4" in caplog.text


def test_fastcam_numerics_are_the_native_method(models, x):
    """numerics="fastcam": the maps are the native GradCAMPlusPlus's low-resolution maps."""
    model = models["resnet18"]
    with fc_methods.GradCAMpp(model, "layer4", numerics="fastcam") as cam:
        ours = cam([1, 7], model(x), normalized=False)[0]
    native = NativeGradCAMPlusPlus(model, "layer4")
    native(x, [1, 7])
    close(ours, native.last.low_res[0])


@pytest.mark.parametrize("name,cls", [("GradCAMpp", numerics.TorchCAMGradCAMPlusPlus),
                                      ("XGradCAM", numerics.TorchCAMXGradCAM),
                                      ("LayerCAM", numerics.TorchCAMLayerCAM), ("GradCAM", None)])
def test_torchcam_numerics_are_the_compat_numerics_classes(models, name, cls):
    """numerics="torchcam" builds fastcam.compat.numerics' class (GradCAM has none:
    TorchCAM's weights are fastcam's); numerics="fastcam" the native class."""
    model = models["resnet18"]
    front = getattr(fc_methods, name)
    with front(model, "layer4") as cam:
        assert type(cam._method) is (cls or front.native)
    with front(model, "layer4", numerics="fastcam") as cam:
        assert type(cam._method) is front.native


def test_normalize_is_torchcams_over_all_but_the_batch_dim():
    """The front-end's map scaling (compat.numerics.normalize) on 2-D and 3-D maps."""
    g = torch.Generator().manual_seed(9)
    for shape in [(2, 5, 7), (2, 3, 5, 7)]:
        m = torch.randn(shape, generator=g)
        close(normalize(m, spatial_dims=m.dim() - 1), _TorchCAMBase._normalize(m.clone()))


@pytest.mark.parametrize("name", ["GradCAM", "ScoreCAM", "CAM"])
def test_remove_hooks_and_context_manager_leave_no_hooks(models, name):
    model = models["resnet18"]
    before = hook_count(model)
    cam = getattr(fc_methods, name)(model, "layer4")
    assert hook_count(model) > before
    cam.remove_hooks()
    cam.reset_hooks()
    assert hook_count(model) == before and cam.hook_a == [None]
    with getattr(fc_methods, name)(model, "layer4") as cam:
        assert hook_count(model) > before
    assert hook_count(model) == before and cam.hook_a == [None]
    with pytest.raises(KeyError):
        with getattr(fc_methods, name)(model, "layer4"):
            raise KeyError("the user's error propagates")
    assert hook_count(model) == before


def test_disable_hooks_records_nothing(models, x):
    model = models["resnet18"]
    with fc_methods.GradCAM(model, "layer4", enable_hooks=False) as cam:
        out = model(x)
        with pytest.raises(MissingForwardError):
            cam(0, out)
        cam.enable_hooks()
        out = model(x)
        cam.disable_hooks()
        model(x[:1])                  # not recorded
        assert cam(0, out)[0].shape == (2, 2, 2)


def test_clear_errors(models, x):
    model = models["resnet18"]
    with fc_methods.GradCAM(model, "layer4") as cam:
        with pytest.raises(AssertionError, match="run the model"):     # TorchCAM's exception type
            cam(0, torch.zeros(2, 1000))
        out = model(x)
        for bad in (-1, 1000, 2.0, True, [1], [1, 2, 3], "3", None):
            with pytest.raises(ValueError):
                cam(bad, out)
        with pytest.raises(ValueError, match="scores"):
            cam(1)
        with pytest.raises(ValueError, match="exactly one"):
            cam(1, out, targets=lambda r: r[0])
        with torch.no_grad():
            out = model(x)
        with pytest.raises(RuntimeError, match="autograd"):
            cam(1, out)
    with pytest.raises(ValueError, match="layer4x"):
        fc_methods.GradCAM(model, "layer4x")
    with pytest.raises(TypeError):
        fc_methods.GradCAM(model, 4)
    with pytest.raises(ValueError, match="targets"):
        with fc_methods.CAM(model, "layer4") as cam:
            model(x)
            cam(targets=lambda r: r[0])
    with fc_methods.ScoreCAM(model, "layer4", batch_size=4) as cam:
        with torch.no_grad():
            model(x[:, :, :32, :32])
        with pytest.raises(ValueError, match="outside"):
            cam(1000)
    with pytest.raises(AssertionError, match="input"):
        with fc_methods.ScoreCAM(model, "layer4") as cam:
            cam.hook_a = [torch.zeros(2, 4, 2, 2)]                    # activations but no input
            cam(0)
    assert hook_count(model) == 0


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_overlay_mask_equals_torchcam(mode):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).convert(mode)
    mask = Image.fromarray(rng.random((4, 5)).astype(np.float32), mode="F")
    for colormap, alpha in (("jet", 0.7), ("viridis", 0.3)):
        ours = fc_utils.overlay_mask(img, mask, colormap, alpha)
        theirs = tc_utils.overlay_mask(img, mask, colormap, alpha)
        assert ours.mode == theirs.mode == "RGB" and ours.size == img.size
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    with pytest.raises(ValueError):
        fc_utils.overlay_mask(img, mask, alpha=1.0)
    with pytest.raises(TypeError):
        fc_utils.overlay_mask(np.asarray(img), mask)


# TorchCAM's README "Usage" example with a random-init model (no download), a synthetic
# image instead of the file it reads, and GradCAM (the README's SmoothGradCAMpp draws noise).
README_SCRIPT = '''
import torch
from torchvision.transforms.functional import normalize, resize, to_pil_image
from torchvision.models import resnet18
from {pkg}.methods import GradCAM
from {pkg}.utils import overlay_mask

torch.manual_seed(0)
model = resnet18().eval()
img = torch.randint(0, 256, (3, 96, 80), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
input_tensor = normalize(resize(img, (224, 224)) / 255., [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])

with GradCAM(model) as cam_extractor:
    out = model(input_tensor.unsqueeze(0))
    activation_map = cam_extractor(out.squeeze(0).argmax().item(), out)

result = overlay_mask(to_pil_image(img), to_pil_image(activation_map[0].squeeze(0), mode='F'), alpha=0.5)
'''


def test_torchcam_readme_script_runs_unchanged():
    runs = {}
    for pkg in ("torchcam", "fastcam.compat.torchcam"):
        runs[pkg] = {}
        exec(compile(README_SCRIPT.format(pkg=pkg), f"<readme:{pkg}>", "exec"), runs[pkg])
    ours, theirs = runs["fastcam.compat.torchcam"], runs["torchcam"]
    close(ours["activation_map"][0], theirs["activation_map"][0])
    assert ours["activation_map"][0].shape == (1, 7, 7)
    diff = np.abs(np.asarray(ours["result"], dtype=int) - np.asarray(theirs["result"], dtype=int))
    assert ours["result"].size == (80, 96) and diff.max() <= 1      # uint8 rounding of ~1e-7 map differences
    assert hook_count(ours["model"]) == 0


def test_scorecam_bf16_reruns_stay_close(models):
    from fastcam.engine import cpu_supports
    if not cpu_supports(torch.bfloat16):
        pytest.skip("this CPU runs no bf16 autocast")
    model = models["resnet18"]
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(8))
    maps = []
    for precision in ("fp32", "bf16"):
        with fc_methods.ScoreCAM(model, "layer1", batch_size=128, precision=precision) as cam:
            with torch.no_grad():
                model(x)
            maps.append(cam([5, 9])[0])
    assert maps[1].dtype == torch.float32 and (maps[0] - maps[1]).abs().max() < 0.05
    with pytest.raises(ValueError, match="precision"):
        fc_methods.ScoreCAM(model, "layer1", precision="fp8")
    assert hook_count(model) == 0


def test_calls_under_inference_mode(models, x):
    """TorchCAM's README runs ScoreCAM's forward under inference mode; a gradient
    extractor may be called inside it (its forward ran with autograd)."""
    model = models["resnet18"]
    with fc_methods.GradCAM(model, "layer4") as cam:
        out = model(x)
        outside = cam(1, out, retain_graph=True)[0]
        with torch.inference_mode():
            inside = cam(1, out)[0]
    close(inside, outside)
    with fc_methods.CAM(model, "layer4", "fc") as cam, torch.inference_mode():
        model(x)
        assert cam(1)[0].shape == (2, 2, 2)


def test_reshape_transform_matches_torchcam(models, x):
    """The transform applies to the activation and to its gradient, as in TorchCAM."""
    model = models["resnet18"]
    transform = lambda t: t.flip(-1)[:, :256]          # noqa: E731 (a spatial flip and a channel slice)
    maps = [run(module.XGradCAM, model, x, [1, 7], "layer4", reshape_transform=transform)
            for module in (fc_methods, tc_methods)]
    for a, b in zip(*maps):
        close(a[0], b[0])
    with pytest.raises(ValueError, match="reshape_transform"):
        fc_methods.GradCAM(model, None, reshape_transform=transform)


def test_layer_search_is_torchcams():
    """The front-end's automatic layer (fastcam's find_spatial_layer with the root as a
    candidate) is the one TorchCAM's own search picks, for images and for volumes."""
    from torch import nn
    from torchcam.methods._utils import locate_candidate_layer as theirs
    from torchvision.models import resnet18

    from fastcam.compat.torchcam.methods.core import locate_candidate_layer as ours

    volume = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                           nn.Flatten(), nn.Linear(4, 2))
    dense = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    for model, shape in [(resnet18().eval(), (3, 64, 64)), (volume, (1, 6, 6, 6)), (dense, (3, 2, 2))]:
        assert ours(model, shape) == theirs(model, shape)
    assert ours(dense, (3, 2, 2)) is None
