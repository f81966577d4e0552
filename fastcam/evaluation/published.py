"""Published numbers to put beside a ``fastcam eval`` table (``--published``).

Opti-CAM (Zhang et al., "Opti-CAM: Optimizing saliency maps for
interpretability", CVIU 248 (2024) 104101): Table 1 (ImageNet validation,
ground-truth class, masks before normalisation; AD↓ / AG↑ / AI↑ and seconds per
image) and Table 3 (insertion↑ / deletion↓), for torchvision's ResNet-50 and
VGG16 with batch normalisation. Ablation-CAM is not a fastcam method: its row
is shown with the published values only. Values as quoted in fastcam's issue 17
(not re-read from the paper in this offline environment).
"""
from __future__ import annotations

import math

from .claims import Claim
from .runner import METRICS, EvalResult

_NAN = float("nan")

#: key -> (title, {method: {metric: value}}); metrics as in ``fastcam eval`` (×100), plus seconds per image
PUBLISHED: dict[str, tuple[str, dict[str, dict[str, float]]]] = {
    "opticam-resnet50": ("Opti-CAM paper (Zhang et al. 2024), ResNet-50: Table 1 (AD, AG, AI, s/img) and "
                         "Table 3 (insertion, deletion)", {
        "fakecam": {"ad": 0.8, "ag": 1.6, "ai": 46.0},
        "gradcam": {"ad": 12.2, "ag": 17.6, "ai": 44.4, "seconds": 0.03, "insertion": 66.3, "deletion": 14.7},
        "gradcam++": {"ad": 12.9, "ag": 16.0, "ai": 42.1, "seconds": 0.03, "insertion": 66.0, "deletion": 14.7},
        "scorecam": {"ad": 8.6, "ag": 26.6, "ai": 56.7, "seconds": 15.22, "insertion": 65.7, "deletion": 16.3},
        "ablationcam": {"ad": 12.5, "ag": 16.4, "ai": 42.8},
        "opticam": {"ad": 1.5, "ag": 68.8, "ai": 92.8, "seconds": 4.15, "insertion": 62.0, "deletion": 19.7},
    }),
    "opticam-vgg16": ("Opti-CAM paper (Zhang et al. 2024), VGG16 (torchvision vgg16_bn): Table 1 (AD, AG, AI, "
                      "s/img) and Table 3 (insertion, deletion)", {
        "fakecam": {"ad": 0.5, "ag": 0.6, "ai": 42.6},
        "gradcam": {"ad": 14.2, "ag": 14.7, "ai": 40.6, "seconds": 0.02, "insertion": 64.1, "deletion": 11.6},
        "gradcam++": {"ad": 17.1, "ag": 10.2, "ai": 33.4, "seconds": 0.02, "insertion": 62.9, "deletion": 12.2},
        "scorecam": {"ad": 13.5, "ag": 15.6, "ai": 41.7, "seconds": 3.11, "insertion": 62.5, "deletion": 12.1},
        "ablationcam": {"ad": 15.5, "ag": 12.6, "ai": 36.9},
        "opticam": {"ad": 1.3, "ag": 71.2, "ai": 92.7, "seconds": 3.94, "insertion": 59.2, "deletion": 11.0},
    }),
}

def _opticam(metric: str) -> tuple[tuple[str, float], ...]:
    table = PUBLISHED["opticam-resnet50"][1]
    return tuple((m, v[metric]) for m, v in table.items() if metric in v)


#: the papers' claims fastcam's eval can judge (:func:`fastcam.evaluation.claims.judge`):
#: each method better than each rival on the metric. Published numbers only where
#: fastcam has them (Opti-CAM's Table 1, ResNet-50: another model, other images).
PAPER_CLAIMS: tuple[Claim, ...] = (
    Claim("opticam", ("gradcam", "gradcam++", "scorecam", "ablationcam"), "ad",
          "Opti-CAM, Zhang et al. 2024, Table 1, ResNet-50", _opticam("ad")),
    Claim("opticam", ("gradcam", "gradcam++", "scorecam", "ablationcam"), "ag",
          "Opti-CAM, Zhang et al. 2024, Table 1, ResNet-50", _opticam("ag")),
    Claim("liftcam", ("gradcam", "gradcam++", "scorecam"), "ad", "LIFT-CAM, Jung & Oh 2021"),
    Claim("shapcam", ("gradcam", "scorecam"), "ad", "Shap-CAM, Zheng et al. ECCV 2022"),
    Claim("shapcam", ("gradcam", "scorecam"), "insertion", "Shap-CAM, Zheng et al. ECCV 2022"),
    Claim("advise", ("gradcam",), "ad", "ADVISE, Dehshibi et al. 2024"),
)

_COLUMNS = ("ad", "ag", "ai", "insertion", "deletion", "seconds")


def _fmt(v: float, digits: int = 1) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def published_comparison(result: EvalResult, key: str) -> str:
    """A Markdown table: per method of the published table (and of the run), each
    column as ``yours / published`` (– where one side has no value). Yours is the
    mean over the images (×100), seconds per image for ``s/img``."""
    if key not in PUBLISHED:
        raise ValueError(f"unknown published table {key!r}; choose from {sorted(PUBLISHED)}")
    title, table = PUBLISHED[key]
    methods = list(table) + [m for m in result.methods if m not in table]
    cols = [c for c in _COLUMNS if c == "seconds" or c in result.metrics or any(c in r for r in table.values())]
    head = [("s/img" if c == "seconds" else f"{METRICS[c].title} {'↑' if METRICS[c].higher_is_better else '↓'}")
            for c in cols]
    lines = [f"Yours / published — {title}", "",
             "| Method | " + " | ".join(head) + " |", "|---|" + "---:|" * len(cols)]
    for m in methods:
        cells = []
        for c in cols:
            digits = 2 if c == "seconds" else 1
            if m not in result.methods:
                mine = _NAN
            elif c == "seconds":
                mine = result.seconds_per_image(m)
            elif c in result.metrics:
                mine = float(result.values[(m, c)][~_isnan(result.values[(m, c)])].mean()) \
                    if (~_isnan(result.values[(m, c)])).any() else _NAN
            else:
                mine = _NAN
            cells.append(f"{_fmt(mine, digits)} / {_fmt(table.get(m, {}).get(c, _NAN), digits)}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _isnan(a):
    import numpy as np

    return np.isnan(a)
