"""ADVISE's candidates on the committed evaluation's photos: for every photo,
each scored candidate (one Grad-CAM per KDE peak count) with its channel count,
its AVX score and its Average Drop, the candidate AVX picks, and the mean AD an
oracle choosing by AD would get. The same inputs as the committed `fastcam eval`
run (bundled EfficientNet-Lite0, layer _head_act, ground-truth labels, masks
before normalisation). Usage:

    fastcam photos --out /tmp/fastcam-photos
    python benchmarks/eval_advise_candidates.py /tmp/fastcam-photos > benchmarks/results/eval_advise_candidates.txt
"""
import os
import sys

import torch

import fastcam
from fastcam import metrics
from fastcam.evaluation.files import list_image_names, load_images, match_labels, read_label_rows


def main(folder: str) -> None:
    root, names = list_image_names(folder)
    batch = load_images([os.path.join(root, n) for n in names], names, 224)
    labels = match_labels("tests/data/photos_labels.csv", read_label_rows("tests/data/photos_labels.csv"),
                          batch.names)
    targets = torch.tensor([labels[n] for n in batch.names])
    model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
    norm = model.normalization
    cam = fastcam.ADVISE(model, "_head_act", normalize=norm)
    picked_ad, oracle_ad = [], []
    print("photo, candidate: channels, AVX, AD (×100); * = AVX's choice")
    for i, name in enumerate(batch.names):
        x = batch.x[i:i + 1]
        cam(x, targets[i:i + 1])
        ex = cam.last.extra
        scored = ex["scored"][0].nonzero().flatten().tolist()
        cands = ex["candidates"][0, scored]
        ad = 100 * metrics.average_drop(model, x.expand(len(scored), -1, -1, -1), cands,
                                        targets[i].repeat(len(scored)), normalize=norm)
        best = int(ex["best"][0])
        rows = []
        for j, g in enumerate(scored):
            star = "*" if g == best else " "
            rows.append(f"{star}{int(ex['candidate_channels'][0, g])}ch avx {float(ex['avx'][0, g]):.3f} "
                        f"AD {float(ad[j]):.1f}")
            if g == best:
                picked_ad.append(float(ad[j]))
        oracle_ad.append(float(ad.min()))
        print(f"{name}: " + "; ".join(rows))
    print(f"mean AD of AVX's choice {sum(picked_ad) / len(picked_ad):.1f}; "
          f"of the oracle choice by AD {sum(oracle_ad) / len(oracle_ad):.1f} (n = {len(oracle_ad)})")


if __name__ == "__main__":
    main(sys.argv[1])
