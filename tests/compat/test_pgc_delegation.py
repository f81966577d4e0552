"""pytorch-grad-cam's methods that fastcam does not reimplement come from the
installed pytorch-grad-cam, with a warning, so its README's import line works."""
import importlib
import sys

import pytest

pytest.importorskip("pytorch_grad_cam")


def _fresh_front_end():
    sys.modules.pop("fastcam.compat.pytorch_grad_cam", None)
    return importlib.import_module("fastcam.compat.pytorch_grad_cam")


def test_readme_import_line_works_and_says_which_classes_are_not_fastcams():
    import pytorch_grad_cam

    front = _fresh_front_end()
    # names still delegated (whichever they are as fastcam implements more of grad-cam)
    delegated = sorted(front.DELEGATED)[:3]
    if not delegated:
        pytest.skip("fastcam implements every name of pytorch-grad-cam")
    namespace = {}
    with pytest.warns(UserWarning, match="does not implement") as record:
        exec("from fastcam.compat.pytorch_grad_cam import GradCAM, HiResCAM, ScoreCAM, "
             f"GradCAMPlusPlus, XGradCAM, {', '.join(delegated)}", namespace)
    warned = sorted({str(w.message).split()[4].rstrip(":") for w in record})
    assert warned == delegated
    for name in delegated:
        assert namespace[name] is getattr(pytorch_grad_cam, name)
    assert namespace["HiResCAM"] is front.HiResCAM and front.HiResCAM is not pytorch_grad_cam.HiResCAM
    assert namespace["GradCAM"] is front.GradCAM and front.GradCAM is not pytorch_grad_cam.GradCAM
    assert namespace["ScoreCAM"].__module__.startswith("fastcam.")


def test_unknown_names_still_raise():
    front = _fresh_front_end()
    with pytest.raises(AttributeError, match="NoSuchCAM"):
        front.NoSuchCAM
    with pytest.raises(ImportError):
        exec("from fastcam.compat.pytorch_grad_cam import NoSuchCAM", {})
