"""ADVISE end to end on CPU: torchvision ResNet-50 (random init), ``layer4``,
batch 8 at 224×224, pixel-space images with ImageNet normalisation. One timed
run (an ADVISE call takes seconds). The baseline is the floor every gradient CAM
pays — ADVISE's own network part: one forward and the two backward passes of
the c1 and c2 probabilities to the target layer. The ADVISE row's note gives the
time per image and its split (network / KDE / maps / AVX, the AVX part split
into the masked forwards and SSIM+FSIM) from the call's record."""
import torch
import torchvision

from fastcam.methods.advise import ADVISE

from conftest import SMOKE

BATCH, SIZE = (2, 64) if SMOKE else (8, 224)
IMNET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
GROUP = f"advise resnet50 B{BATCH} {SIZE}px"


def _setup():
    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval()
    x = torch.rand(BATCH, 3, SIZE, SIZE)
    return model, x


def test_floor_forward_two_backward(benchmark):
    model, x = _setup()
    captured = {}
    handle = model.layer4.register_forward_hook(lambda m, i, o: captured.__setitem__("A", o))
    xn = torchvision.transforms.functional.normalize(x, *IMNET)

    def floor():
        probs = model(xn).softmax(1)
        top2 = probs.detach().topk(2, dim=1).indices
        g1 = torch.autograd.grad(probs.gather(1, top2[:, :1]).sum(), captured["A"], retain_graph=True)
        g2 = torch.autograd.grad(probs.gather(1, top2[:, 1:]).sum(), captured["A"])
        return g1, g2

    benchmark.group = GROUP
    benchmark.extra_info["baseline"] = True
    try:
        benchmark.pedantic(floor, rounds=3, iterations=1, warmup_rounds=1)
    finally:
        handle.remove()


def test_fastcam_advise(benchmark):
    model, x = _setup()
    cam = ADVISE(model, "layer4", normalize=IMNET)
    benchmark.group = GROUP
    maps = benchmark.pedantic(cam, args=(x,), rounds=1, iterations=1, warmup_rounds=0)
    assert maps.shape == (BATCH, SIZE, SIZE)
    e = cam.last.extra
    s = e["seconds"]
    n_scored = int(e["scored"].sum())
    benchmark.extra_info.update({k: round(v, 4) for k, v in s.items()})
    benchmark.extra_info["scored_candidates"] = n_scored
    benchmark.extra_info["note"] = (
        f"{s['total'] / BATCH:.3f} s/image; network {s['network']:.2f} s, KDE {s['kde']:.2f} s, "
        f"maps {s['maps']:.2f} s, AVX {s['avx']:.2f} s ({n_scored} candidates)")
