"""`fastcam eval` / `fastcam explain` / `fastcam photos` end to end on a tiny
torchvision model and tiny images, and the harness's parts (files, boxes,
intervals, --normalize)."""
import csv
import json
import math

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from fastcam.apps.cli import main
from fastcam.evaluation import EvalError, files, tables

TINY = ["--model", "torchvision:resnet18", "--size", "64", "--no-progress"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a.png": (40, 48), "b.png": (48, 40), "c.jpg": (36, 36)}.items():
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(d / name)
    (d / "broken.png").write_bytes(b"not an image at all")
    (d / "labels.txt").write_text("image,class\na.png,1\nb,2\nc.jpg,3\nbroken.png,4\n")
    (d / "boxes.txt").write_text("a,0,0,24,20\nb,10,10,30,30\nb,0,0,5,5\n")   # none for c
    return d


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("w")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), d / "r18.pt")
    torch.save({"conv1.weight": torch.zeros(1)}, d / "bad.pt")
    return d


def _eval(folder, out, *extra):
    return main(["eval", "--images", str(folder), "--out", str(out), "--steps", "4", *TINY, *extra])


def test_eval_end_to_end(folder, weights, tmp_path, capsys):
    rc = _eval(folder, tmp_path, "--weights", str(weights / "r18.pt"), "--labels",
               str(folder / "labels.txt"), "--boxes", str(folder / "boxes.txt"),
               "--methods", "gradcam,cam", "--metrics", "ad,ai,ag,add,insertion,deletion,pointing,energy")
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "broken.png" in captured.err and "not evaluated" in captured.err      # reported at the end
    assert "c.jpg" in captured.err                                               # no box in it
    table = tables.read_table_csv(tmp_path / "eval_table.csv")
    assert table[("gradcam", "ad")]["n"] == 3
    assert table[("cam", "pointing")]["n"] == 2            # c has no box: left out, not zero
    assert table[("cam", "seconds_per_image")]["mean"] >= 0
    for key, row in table.items():
        if key[1] != "seconds_per_image":
            assert row["ci95_low"] <= row["mean"] <= row["ci95_high"]
    with open(tmp_path / "eval_per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2
    assert {r["image"] for r in rows} == {"a.png", "b.png", "c.jpg"}
    assert {r["target"] for r in rows if r["image"] == "b.png"} == {"2"}
    # the table's mean is the mean of the per-image values
    ad = [float(r["ad"]) for r in rows if r["method"] == "gradcam"]
    assert table[("gradcam", "ad")]["mean"] == pytest.approx(np.mean(ad), rel=1e-5)
    md = (tmp_path / "eval_table.md").read_text()
    assert "| gradcam |" in md and "Student-t" in md
    timings = json.loads((tmp_path / "eval_timings.json").read_text())
    assert set(timings["method_seconds"]) == {"gradcam", "cam"}
    assert set(timings["metric_seconds"]) == {"ad", "ai", "ag", "add", "insertion", "deletion",
                                              "pointing", "energy"}
    assert timings["failed"][0]["image"] == "broken.png"
    cmd = (tmp_path / "eval_command.txt").read_text()
    assert cmd.startswith("fastcam eval --images") and "--methods gradcam,cam" in cmd


def test_eval_predicted_class_without_labels(folder, tmp_path, capsys):
    assert _eval(folder, tmp_path, "--methods", "gradcam", "--metrics", "ad") == 0
    with open(tmp_path / "eval_per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(r["target"] == r["predicted"] for r in rows) and len(rows) == 3


def test_eval_missing_label_is_reported_and_the_rest_goes_on(folder, tmp_path, capsys):
    labels = tmp_path / "l.csv"
    labels.write_text("a.png,1\n")
    assert _eval(folder, tmp_path / "o", "--labels", str(labels), "--methods", "cam",
                 "--metrics", "ad") == 0
    err = capsys.readouterr().err
    assert "b.png: no class for it" in err
    assert tables.read_table_csv(tmp_path / "o" / "eval_table.csv")[("cam", "ad")]["n"] == 1


@pytest.mark.parametrize("extra, message", [
    (["--methods", "gradcam,nope"], "unknown method(s) ['nope']"),
    (["--metrics", "ad,iou"], "unknown metric(s) ['iou']"),
    (["--metrics", "pointing"], "need --boxes"),
    (["--weights", "/no/such/file.pt"], "no such file"),
    (["--normalize", "sometimes"], "--normalize 'sometimes'"),
])
def test_eval_usage_errors(folder, tmp_path, capsys, extra, message):
    assert _eval(folder, tmp_path, *extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_eval_mismatched_state_dict(folder, weights, tmp_path, capsys):
    assert _eval(folder, tmp_path, "--weights", str(weights / "bad.pt")) == 2
    err = capsys.readouterr().err
    assert "does not match the model" in err and len(err.strip().splitlines()) == 1


def test_eval_empty_folder_and_only_unreadable(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _eval(tmp_path / "empty", tmp_path / "o") == 2
    assert "no images" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"garbage")
    assert _eval(tmp_path / "bad", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "x.png" in err and "could be evaluated" in err
    assert _eval(tmp_path / "nowhere", tmp_path / "o") == 2
    assert "no such folder" in capsys.readouterr().err


def test_explain_writes_overlays_and_maps(folder, tmp_path, capsys):
    rc = main(["explain", str(folder / "a.png"), str(folder / "c.jpg"), str(folder / "gone.png"),
               "--method", "gradcam", "--out", str(tmp_path), "--model", "torchvision:resnet18",
               "--size", "64"])
    captured = capsys.readouterr()
    assert rc == 1 and "gone.png" in captured.err                   # reported; the others written
    assert "predicted" in captured.out
    for stem in ("a", "c"):
        m = np.load(tmp_path / f"{stem}_gradcam.npy")
        assert m.shape == (64, 64) and 0 <= m.min() and m.max() <= 1
        with Image.open(tmp_path / f"{stem}_gradcam.png") as im, Image.open(next(folder.glob(stem + ".*"))) as src:
            # the whole image under an 18-pixel title band
            assert im.size == (src.size[0], src.size[1] + 18)
    assert main(["explain", str(folder / "a.png"), "--method", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown method" in capsys.readouterr().err


def test_explain_bundled_model_names_the_class(tmp_path, capsys):
    assert main(["photos", "--out", str(tmp_path / "p")]) == 0
    written = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert len(written) == 8 and "summer_palace.png" in written and "cameraman.png" in written
    rc = main(["explain", str(tmp_path / "p" / "coffee.png"), "--method", "cam",
               "--out", str(tmp_path / "o")])
    assert rc == 0 and "espresso" in capsys.readouterr().out


def test_transform_boxes_hand_computed():
    # 448×448 -> resize 256 (scale 4/7) -> centre crop 224 (offset 16)
    assert files.transform_boxes([(112, 112, 224, 224)], (448, 448)) == [(48.0, 48.0, 112.0, 112.0)]
    assert files.transform_boxes([(0, 0, 448, 448)], (448, 448)) == [(0.0, 0.0, 224.0, 224.0)]
    assert files.transform_boxes([(0, 0, 20, 20)], (448, 448)) == []          # outside the crop
    # 300 high × 600 wide -> 256 × 512 -> crop rows 16.., columns 144..
    sy, sx, top, left = files.crop_geometry(300, 600)
    assert (top, left) == (16, 144) and sy == pytest.approx(256 / 300) and sx == pytest.approx(512 / 600)


def test_labels_and_boxes_files(tmp_path):
    names = ["x/cat.png", "dog.jpg"]
    p = tmp_path / "l.csv"
    p.write_text("# comment\nimage,class,name\ncat,281,tabby\ndog.jpg\t207\n")
    assert files.read_labels(str(p), names) == {"x/cat.png": 281, "dog.jpg": 207}
    p.write_text("cat,281\ndog,tabby\n")
    with pytest.raises(EvalError, match="not a class index"):
        files.read_labels(str(p), names)
    b = tmp_path / "b.csv"
    b.write_text("image,x0,y0,x1,y1\ncat 1 2 3 4\ncat,5,6,7,8\n")
    assert files.read_boxes(str(b), names) == {"x/cat.png": [(1, 2, 3, 4), (5, 6, 7, 8)]}
    b.write_text("cat,5,6,5,8\n")
    with pytest.raises(EvalError, match="empty box"):
        files.read_boxes(str(b), names)


def test_t_interval_hand_computed():
    n, mean, half = tables.t_interval(np.array([1.0, 2.0, 3.0, np.nan]))
    assert n == 3 and mean == 2.0
    assert half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)      # t_{0.975, 2} · s/√n, s = 1
    n, mean, half = tables.t_interval(np.array([5.0]))
    assert n == 1 and mean == 5.0 and math.isnan(half)


def test_eval_sanity_writes_the_per_step_table_and_the_plot(folder, weights, tmp_path, capsys):
    rc = _eval(folder, tmp_path, "--weights", str(weights / "r18.pt"), "--labels", str(folder / "labels.txt"),
               "--methods", "gradcam,fakecam", "--metrics", "ad,sanity", "--sanity-steps", "3")
    out = capsys.readouterr().out
    assert rc == 0 and "sanity (cascade, 3 layer groups from the top)" in out
    with open(tmp_path / "eval_sanity.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], int(r["step"])) for r in rows] == [(m, t) for m in ("gradcam", "fakecam")
                                                            for t in range(4)]
    fake = [float(r["ssim"]) for r in rows if r["method"] == "fakecam"]
    assert fake == [1.0] * 4                              # ignores the model: never changes
    grad = [float(r["spearman"]) for r in rows if r["method"] == "gradcam"]
    assert grad[0] == pytest.approx(1.0, abs=1e-6) and grad[-1] < 0.9
    assert rows[1]["randomised"].split()[0] == "fc"       # from the top
    with Image.open(tmp_path / "eval_sanity.png") as im:
        assert im.size[0] > 500 and im.size[1] > 200
    table = tables.read_table_csv(tmp_path / "eval_table.csv")
    assert ("gradcam", "ad") in table and not any(k == "sanity" for _, k in table)


def test_eval_prints_the_published_table_beside_the_run(folder, weights, tmp_path, capsys):
    rc = _eval(folder, tmp_path, "--weights", str(weights / "r18.pt"), "--labels", str(folder / "labels.txt"),
               "--methods", "gradcam,fakecam", "--metrics", "ad,ag,ai", "--published", "opticam-resnet50")
    out = capsys.readouterr().out
    assert rc == 0 and "Yours / published" in out
    out = out[out.index("Yours / published"):]
    table = tables.read_table_csv(tmp_path / "eval_table.csv")
    row = next(ln for ln in out.splitlines() if ln.startswith("| gradcam |"))
    assert f"{table[('gradcam', 'ad')]['mean']:.1f} / 12.2" in row and "/ 17.6" in row and "/ 44.4" in row
    assert next(ln for ln in out.splitlines() if ln.startswith("| opticam |")).startswith("| opticam | – / 1.5")
    assert "| ablationcam | – / 12.5" in out
    assert main(["eval", "--images", str(folder), "--out", str(tmp_path), "--published", "nope", *TINY]) == 2
    assert main(["eval", "--images", str(folder), "--out", str(tmp_path), "--metrics", "sanity",
                 "--sanity-layers", "top", *TINY]) == 2


def test_eval_precision_runs_methods_and_metrics_and_is_recorded(folder, weights, tmp_path, capsys,
                                                               monkeypatch):
    from fastcam import engine

    if not engine.cpu_supports(torch.bfloat16):
        pytest.skip("this CPU has no native bf16")
    ran = []
    real = engine.Engine.running

    def spy(self, device):
        ran.append(self.precision)
        return real(self, device)

    monkeypatch.setattr(engine.Engine, "running", spy)
    rc = _eval(folder, tmp_path, "--weights", str(weights / "r18.pt"), "--methods", "gradcam",
               "--metrics", "ad,deletion", "--precision", "bf16")
    assert rc == 0, capsys.readouterr().err
    assert ran and set(ran) == {"bf16"}            # every model pass: method, metrics, prediction
    assert json.loads((tmp_path / "eval_timings.json").read_text())["precision"] == "bf16"
    assert "precision bf16" in (tmp_path / "eval_table.md").read_text()


def test_eval_precision_the_cpu_cannot_run_fails_before_any_work(folder, tmp_path, capsys, monkeypatch):
    from fastcam import engine

    monkeypatch.setattr(engine.precision, "cpu_supports", lambda dtype: False)
    assert _eval(folder, tmp_path, "--precision", "bf16") == 2
    err = capsys.readouterr().err
    assert "fastcam eval: error: --precision bf16" in err and "cannot run on cpu" in err
    assert not (tmp_path / "eval_table.csv").exists()


def test_eval_table_has_the_map_and_mask_metrics(folder, weights, tmp_path, capsys):
    from fastcam.evaluation import evaluate
    from fastcam.methods import GradCAM
    import fastcam.metrics as M

    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()
    x = torch.rand(2, 3, 64, 64)
    boxes = [[(0, 0, 30, 20)], [(10, 10, 60, 40), (0, 50, 8, 64)]]
    names = ["sparseness", "complexity", "relevance_mass_accuracy", "relevance_rank_accuracy"]
    res = evaluate(model, x, ["p", "q"], [1, 2], ["gradcam"], names, layer="2", boxes=boxes)
    maps = GradCAM(model, "2")(x, [1, 2])
    mask = M.boxes_mask(boxes, 2, (64, 64))
    want = {"sparseness": 100 * M.sparseness(maps), "complexity": M.complexity(maps),
            "relevance_mass_accuracy": 100 * M.relevance_mass_accuracy(maps, mask),
            "relevance_rank_accuracy": 100 * M.relevance_rank_accuracy(maps, mask)}
    for k in names:
        np.testing.assert_allclose(res.values[("gradcam", k)], want[k].double().numpy(), rtol=1e-5, atol=1e-6)
    h = res.values[("gradcam", "complexity")]                 # nats, not ×100 (NaN: an all-zero map)
    assert np.isfinite(h).any() and (h[np.isfinite(h)] <= math.log(64 * 64) + 1e-6).all()
    rc = _eval(folder, tmp_path, "--weights", str(weights / "r18.pt"), "--boxes", str(folder / "boxes.txt"),
               "--methods", "gradcam", "--metrics", ",".join(names))
    assert rc == 0, capsys.readouterr().err
    table = tables.read_table_csv(tmp_path / "eval_table.csv")
    assert table[("gradcam", "relevance_rank_accuracy")]["n"] == 2 and table[("gradcam", "sparseness")]["n"] == 3
    assert "complexity: nats" in (tmp_path / "eval_table.md").read_text()


def test_preprocess_resize_maps_boxes_exactly(tmp_path):
    # A white box on black, 96 rows × 128 columns, resized to 32×32 (factors 3 and 4):
    # the antialiased bilinear resize keeps a box whose edges fall on whole output
    # pixels at exactly those pixels (> ½ inside, < ½ outside), and the mapped box
    # must name the same pixels.
    from fastcam.metrics import boxes_mask

    box = (8, 9, 40, 60)                                   # x0, y0, x1, y1: columns 8..39, rows 9..59
    img = np.zeros((96, 128, 3), dtype=np.uint8)
    img[box[1]:box[3], box[0]:box[2]] = 255
    Image.fromarray(img).save(tmp_path / "box.png")
    batch = files.load_images([str(tmp_path / "box.png")], ["box.png"], 32, "resize")
    assert batch.sizes == [(96, 128)]
    mapped = files.transform_boxes([box], batch.sizes[0], 32, "resize")
    assert mapped == [(2.0, 3.0, 10.0, 20.0)]             # x·32/128, y·32/96: no offset, no rounding
    bright = batch.x[0].mean(0) > 0.5
    assert torch.equal(bright, boxes_mask([mapped], 1, (32, 32))[0])
    assert bright.sum() == 8 * 17
    # the crop of the same image cuts the border: a different mapping
    crop = files.transform_boxes([box], (96, 128), 32, "crop")
    sy, sx, top, left = files.crop_geometry(96, 128, 32)
    assert left > 0 and crop == [(max(8 * sx - left, 0.0), 9 * sy - top, 40 * sx - left, 60 * sy - top)]
    with pytest.raises(EvalError, match="preprocess"):
        files.transform_boxes([box], (96, 128), 32, "stretch")


def test_eval_road_is_fastcam_metrics_road_under_the_parts_seed():
    from torch import nn

    from fastcam.evaluation import evaluate
    from fastcam.evaluation.runner import part_seed
    from fastcam.methods import GradCAM
    import fastcam.metrics as M

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()
    x = torch.rand(2, 3, 16, 16)
    res = evaluate(model, x, ["p", "q"], [1, 2], ["gradcam"], ["road_morf", "road_lerf"], layer="2")
    again = evaluate(model, x, ["p", "q"], [1, 2], ["gradcam"], ["road_morf", "road_lerf"], layer="2")
    for k in ("road_morf", "road_lerf"):       # the noise is drawn under the part's seed
        np.testing.assert_array_equal(res.values[("gradcam", k)], again.values[("gradcam", k)])
    torch.manual_seed(part_seed("gradcam", 0))
    maps = GradCAM(model, "2")(x, [1, 2])
    for k in ("morf", "lerf"):
        want = 100 * M.road(model, x, maps, [1, 2], order=k).double().numpy()
        np.testing.assert_allclose(res.values[("gradcam", f"road_{k}")], want, rtol=1e-6, atol=1e-9)
