"""Score-CAM's floor, shared by the Score-CAM benchmarks: the model's K masked
forwards at a given chunk size, on copies prepared in advance (building them is
free), with pytorch-grad-cam's masks (align_corners=True, min-max with +1e-8)."""
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision


def resnet18_case(size: int, layer: str = "layer4"):
    """(model, x, target, A): a seeded random-init ResNet-18 in eval mode, one
    random image (1,3,size,size), its predicted class and the activation of ``layer``."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(1, 3, size, size)
    captured = {}
    with torch.no_grad():
        target = int(model(x).argmax(1))
        h = model.get_submodule(layer).register_forward_hook(
            lambda m, i, o: captured.__setitem__("A", o))
        model(x)
        h.remove()
    return model, x, target, captured["A"]


def k_masked_forwards(model: torch.nn.Module, x: torch.Tensor, A: torch.Tensor, target: int,
                      chunk: int) -> Callable[[], torch.Tensor]:
    """A function running the K = A.shape[1] masked forwards of the image x (1,3,H,W)."""
    up = F.interpolate(A, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=True)[0]
    lo = up.flatten(1).min(1).values[:, None, None]
    hi = up.flatten(1).max(1).values[:, None, None]
    copies = x * ((up - lo) / (hi - lo + 1e-8))[:, None]        # (K, 3, H, W)

    def floor() -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat([model(copies[i:i + chunk])[:, target]
                              for i in range(0, len(copies), chunk)])
    return floor
