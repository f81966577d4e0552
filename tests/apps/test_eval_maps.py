"""`fastcam eval --maps STORE`: the metrics of the maps a `fastcam generate` run
stored equal those of `eval` computing the maps itself; what it refuses. Tiny
synthetic images and a seeded random ResNet-18 at 64 px (and 20 of the shared
ImageNet images with the bundled model, where they are)."""
import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastcam import METHODS
from fastcam.apps.cli import main
from fastcam.evaluation.stored import open_stored
from fastcam.generation.manifest import make_manifest

N_IMAGES = 6
MODEL = ["--model", "torchvision:resnet18", "--size", "64", "--preprocess", "resize"]
METRICS = "ad,ai,ag,add,insertion,deletion,road_morf,pointing,energy,sparseness,complexity"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "imagenet-val"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(d / f"im{i}.png")
    (d / "labels.csv").write_text("image,class\n" + "".join(f"im{i},{3 * i}\n" for i in range(N_IMAGES)))
    (d / "boxes.csv").write_text("".join(f"im{i},{i},{2 * i},{20 + i},{30}\n" for i in range(N_IMAGES)))
    return d


def _generate(images: Path, store: Path, method: str, *extra: str) -> None:
    with torch.random.fork_rng():
        code = main(["generate", "--images", str(images), "--out", str(store), "--method", method,
                     "--target", str(images / "labels.csv"), "--batch-size", "4", "--workers", "0",
                     "--no-progress", *MODEL, *extra])
    assert code == 0


def _eval(images: Path, out: Path, *extra: str, data: Path = None) -> int:
    data = data or images
    return main(["eval", "--images", str(images), "--labels", str(data / "labels.csv"), "--boxes",
                 str(data / "boxes.csv"), "--out", str(out), "--no-progress", "--steps", "4",
                 "--batch-size", "4", "--metrics", METRICS, *MODEL, *extra])


def _rows(path: Path) -> dict:
    with open(path, newline="") as f:
        return {(r["image"], r["method"]): r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def stores(images, tmp_path_factory):
    d = tmp_path_factory.mktemp("stores")
    out = {}
    for method in ("gradcam", "liftcam"):
        out[method] = d / f"{method}.zarr"
        _generate(images, out[method], method, "--save", "low-res", "--dtype", "float32")
    out["gradcam-f16"] = d / "gradcam-f16.zarr"
    _generate(images, out["gradcam-f16"], "gradcam")
    return out


def test_eval_maps_equals_eval_computing_the_maps(images, stores, tmp_path):
    assert _eval(images, tmp_path / "computed", "--methods", "gradcam,liftcam") == 0
    assert _eval(images, tmp_path / "stored", "--maps", f"gradcam={stores['gradcam']}",
                 "--maps", str(stores["liftcam"])) == 0
    a, b = _rows(tmp_path / "computed" / "eval_per_image.csv"), _rows(tmp_path / "stored" / "eval_per_image.csv")
    assert a.keys() == b.keys() and len(a) == 2 * N_IMAGES
    for key, row in a.items():
        assert row["target"] == b[key]["target"]
        for k in METRICS.split(","):
            assert float(b[key][k]) == pytest.approx(float(row[k]), abs=2e-3, nan_ok=True), (key, k)
    # a stored method's time is what generate recorded for its rows (the per-chunk tables)
    import json

    import pyarrow.parquet as pq
    recorded = sum(sum(pq.read_table(t, columns=["seconds"]).column(0).to_pylist())
                   for t in sorted((stores["liftcam"] / "images").glob("part-*.parquet")))
    timings = json.loads((tmp_path / "stored" / "eval_timings.json").read_text())
    assert timings["method_seconds"]["liftcam"] == pytest.approx(recorded) and recorded > 0


def test_maps_reconstructed_from_low_res_are_the_methods_maps():
    """What eval --maps does with a store's low-res maps (minmax of the bilinear
    upsampling) gives every method's own maps, for the methods of the published run."""
    torch.manual_seed(0)
    import torchvision

    model = torchvision.models.resnet18(num_classes=10).eval()
    x, y = torch.rand(2, 3, 64, 64), torch.tensor([1, 7])
    options = {"opticam": {"max_iter": 3}, "scorecam": {"batch_size": 256}, "advise": {"upsample": "bicubic"}}
    for name in ("cam", "gradcam", "gradcam++", "liftcam", "shapcam", "opticam", "advise", "ablationcam",
                 "scorecam", "fakecam", "advise-bilinear"):
        name, options["advise"] = ("advise", {"upsample": "bilinear"}) if name == "advise-bilinear" \
            else (name, options["advise"])
        cam = METHODS[name](model, target_layers="layer4", **options.get(name, {}))
        with torch.random.fork_rng():
            torch.manual_seed(1)
            maps = cam(x, y)
        low = cam.last.low_res[0]
        got = METHODS[name].maps_from_low_res(low.float(), (64, 64), options.get(name))
        torch.testing.assert_close(got, maps, atol=1e-5, rtol=0,
                                   msg=lambda m, n=name: f"{n}: {m}")


def test_images_list_file_evaluates_the_listed_images(images, stores, tmp_path):
    listing = tmp_path / "some.txt"
    listing.write_text(f"# two of them\n{images / 'im3.png'}\n{images / 'im1.png'}\n")
    assert _eval(listing, tmp_path / "list", "--maps", str(stores["gradcam"]), data=images) == 0
    rows = _rows(tmp_path / "list" / "eval_per_image.csv")
    assert [Path(k[0]).name for k in rows] == ["im3.png", "im1.png"]
    full = _rows(_eval_once(images, stores, tmp_path))
    for (name, m), row in rows.items():
        assert row["ad"] == full[(Path(name).name, m)]["ad"]


def _eval_once(images, stores, tmp_path) -> Path:
    out = tmp_path / "full"
    assert _eval(images, out, "--maps", str(stores["gradcam"])) == 0
    return out / "eval_per_image.csv"


@pytest.mark.parametrize("extra, message", [
    (["--preprocess", "crop"], "preprocess"),
    (["--normalize", "none"], "normalize"),
    (["--layer", "layer3"], "layer"),
    (["--size", "72"], "size"),
])
def test_a_store_made_with_other_settings_is_refused(images, stores, tmp_path, capsys, extra, message):
    assert _eval(images, tmp_path / "o", "--maps", str(stores["gradcam"]), *extra) == 2
    err = capsys.readouterr().err
    assert "made with other settings" in err and message in err


def test_a_store_without_the_targets_is_refused(images, stores, tmp_path, capsys):
    labels = tmp_path / "other.csv"
    labels.write_text("".join(f"im{i},{3 * i + 1}\n" for i in range(N_IMAGES)))
    assert main(["eval", "--images", str(images), "--labels", str(labels), "--out", str(tmp_path / "o"),
                 "--no-progress", "--metrics", "ad", *MODEL, "--maps", str(stores["gradcam"])]) == 2
    assert "no map of 6 of the 6 image(s) for their target class" in capsys.readouterr().err


def test_float16_maps_are_refused_for_ranking_metrics_only(images, stores, tmp_path, capsys):
    assert _eval(images, tmp_path / "o", "--maps", str(stores["gradcam-f16"])) == 2
    err = capsys.readouterr().err
    assert "float16 maps tie" in err and "insertion" in err
    assert main(["eval", "--images", str(images), "--labels", str(images / "labels.csv"), "--out",
                 str(tmp_path / "ok"), "--no-progress", "--metrics", "ad,ag,sparseness", *MODEL,
                 "--maps", str(stores["gradcam-f16"])]) == 0
    a = _rows(tmp_path / "ok" / "eval_per_image.csv")
    b = _rows(_eval_once(images, stores, tmp_path))
    for key, row in a.items():    # float16 against float32 maps: close, not equal
        assert float(row["ad"]) == pytest.approx(float(b[key]["ad"]), abs=0.2)


@pytest.mark.parametrize("extra, message", [
    (["--methods", "gradcam"], "--methods with --maps"),
    (["-o", "gradcam.batch_size=2"], "-o with --maps"),
    (["--maps", "STORE2"], "both hold gradcam maps"),
])
def test_maps_usage_errors(images, stores, tmp_path, capsys, extra, message):
    extra = [str(stores["gradcam"]) if e == "STORE2" else e for e in extra]
    assert _eval(images, tmp_path / "o", "--maps", str(stores["gradcam"]), *extra) == 2
    assert message in capsys.readouterr().err


def test_maps_names_and_stores_checked(images, stores, tmp_path, capsys):
    assert _eval(images, tmp_path / "o", "--maps", f"liftcam={stores['gradcam']}") == 2
    assert "holds gradcam maps" in capsys.readouterr().err
    assert _eval(images, tmp_path / "o", "--maps", str(tmp_path / "nothing.zarr")) == 2
    assert "no such store" in capsys.readouterr().err
    assert _eval(images, tmp_path / "o", "--maps", str(images)) == 2
    assert "not a fastcam generate store" in capsys.readouterr().err


def test_generate_records_normalize(images, tmp_path):
    store = tmp_path / "n.zarr"
    _generate(images, store, "gradcam", "--normalize", "0.5,0.5,0.5/0.25,0.25,0.25")
    assert open_stored(str(store)).meta["normalize"] == [[0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]


def test_generate_target_file_names_images_by_stem(tmp_path):
    """eval's labels CSV names images without the extension (the shared ImageNet
    labels do); generate matches the stem when no other image shares it."""
    for name in ("a.jpg", "b.png", "c.png", "c.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    labels = tmp_path / "labels.csv"
    labels.write_text("image,class\na,1\nb.png,2\nc,3\nc.jpg,4\nc.png,5\n")
    manifest, _ = make_manifest(str(tmp_path), str(labels))
    got = dict(zip(manifest.ids, manifest.targets.tolist()))
    assert got == {"a.jpg": 1, "b.png": 2, "c.jpg": 4, "c.png": 5}     # "c" names neither c.*
    (tmp_path / "c.jpg").unlink()
    labels.write_text("image,class\na,1\nb,2\nc,3\n")
    manifest, _ = make_manifest(str(tmp_path), str(labels))
    assert dict(zip(manifest.ids, manifest.targets.tolist()))["c.png"] == 3
    Image.new("RGB", (8, 8)).save(tmp_path / "c.jpg")             # "c" is now ambiguous
    with pytest.raises(Exception, match="no class for 2 image"):
        make_manifest(str(tmp_path), str(labels))


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/imagenet-val beside the repository")
def test_shared_images_eval_maps_equals_eval(tmp_path):
    listing = tmp_path / "first20.txt"
    paths = sorted(p for p in (SHARED / "images").iterdir())[:20]
    listing.write_text("".join(f"{p}\n" for p in paths))
    common = ["--preprocess", "resize", "--normalize", "0.5,0.5,0.5/0.5,0.5,0.5"]
    metrics = "ad,ai,ag,add,pointing,energy,sparseness,relevance_mass_accuracy,relevance_rank_accuracy"
    store = tmp_path / "gradcam.zarr"
    assert main(["generate", "--images", str(listing), "--out", str(store), "--method", "gradcam",
                 "--target", str(SHARED / "labels.csv"), "--save", "low-res", "--dtype", "float32",
                 "--workers", "0", "--batch-size", "10", "--no-progress", *common]) == 0
    ev = ["eval", "--images", str(listing), "--labels", str(SHARED / "labels.csv"), "--boxes",
          str(SHARED / "boxes.csv"), "--metrics", metrics, "--batch-size", "10", "--no-progress", *common]
    assert main([*ev, "--out", str(tmp_path / "a"), "--methods", "gradcam"]) == 0
    assert main([*ev, "--out", str(tmp_path / "b"), "--maps", str(store)]) == 0
    a, b = _rows(tmp_path / "a" / "eval_per_image.csv"), _rows(tmp_path / "b" / "eval_per_image.csv")
    assert a.keys() == b.keys() and len(a) == 20
    for key, row in a.items():
        for k in metrics.split(","):
            assert float(b[key][k]) == pytest.approx(float(row[k]), abs=2e-3, nan_ok=True), (key, k)
    assert os.path.exists(tmp_path / "b" / "eval_table.md")
