"""Peak memory of Score-CAM on ResNet-18, batch 1, each run in a fresh process:
fastcam streams chunks of masked copies; pytorch-grad-cam materialises all K
copies of an image at once. The process's resident memory is sampled every
2 ms during the call; the figure is its peak over the level just before the
call (the lifetime max RSS is dominated by library imports, so it cannot show
the call's own memory)."""
import json
import subprocess
import sys
import textwrap

import pytest

from conftest import SMOKE

SIZE = 64 if SMOKE else 224

SCRIPT = textwrap.dedent("""
    import json, os, sys, threading, time
    import torch, torchvision
    page = os.sysconf("SC_PAGE_SIZE")
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page / 2**20
    peak = [0.0]
    running = [True]
    def sample():
        while running[0]:
            peak[0] = max(peak[0], rss())
            time.sleep(0.002)
    torch.manual_seed(0)
    which, size = sys.argv[1], int(sys.argv[2])
    model = torchvision.models.resnet18().eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        target = int(model(x).argmax(1))
    if which == "fastcam":
        import fastcam
    else:
        import pytorch_grad_cam
    base = rss()
    peak[0] = base
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    if which == "fastcam":
        import fastcam
        from fastcam.compat.numerics import PytorchGradCAMScoreCAM
        PytorchGradCAMScoreCAM(model, "layer4", batch_size=32)(x, [target])
    elif which == "pytorch-grad-cam":
        from pytorch_grad_cam import ScoreCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        cam = ScoreCAM(model, [model.layer4]); cam.batch_size = 32
        cam(x, [ClassifierOutputTarget(target)])
    running[0] = False
    thread.join()
    print(json.dumps({"peak_mib": peak[0], "before_mib": base}))
""")


def _peak(which):
    out = subprocess.run([sys.executable, "-c", SCRIPT, which, str(SIZE)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_rss(record_property, capsys):
    pytest.importorskip("pytorch_grad_cam")
    ours, theirs = _peak("fastcam"), _peak("pytorch-grad-cam")
    ours_add = ours["peak_mib"] - ours["before_mib"]
    theirs_add = theirs["peak_mib"] - theirs["before_mib"]
    with capsys.disabled():
        print(f"\n[scorecam peak RSS, {SIZE}px] fastcam {ours['peak_mib']:.0f} MiB "
              f"(+{ours_add:.0f} for the call), pytorch-grad-cam {theirs['peak_mib']:.0f} MiB "
              f"(+{theirs_add:.0f}); ratio of the calls' growth {ours_add / max(theirs_add, 1):.3f}, "
              f"of total peaks {ours['peak_mib'] / theirs['peak_mib']:.3f}")
    record_property("fastcam_peak_mib", ours["peak_mib"])
    record_property("pytorch_grad_cam_peak_mib", theirs["peak_mib"])
