"""The options every method takes (normalize, precision, compile, reshape_transform,
progress) are declared once,
on BaseCAM: a constructor forwards them with ``**options`` and neither re-declares
nor drops one; ``inspect.signature`` / ``help`` still show them."""
import inspect

import pytest
import torch
from torch import nn

from fastcam.compat import numerics
from fastcam.methods import METHODS, BaseCAM
from fastcam.methods.base import CommonOptions, Unpack, common_options

COMMON = {p.name: p.default for p in common_options()}
CLASSES = sorted({*METHODS.values(),
                  *(c for c in vars(numerics).values()
                    if isinstance(c, type) and issubclass(c, BaseCAM) and c is not BaseCAM)},
                 key=lambda c: c.__name__)


def test_the_common_options_are_the_base_keywords_and_the_typed_dict():
    assert COMMON == {"normalize": None, "precision": "fp32", "compile": False,
                      "reshape_transform": None, "progress": None}
    assert set(CommonOptions.__annotations__) == set(COMMON)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_no_constructor_redeclares_or_drops_a_common_option(cls):
    init = next(k.__dict__["__init__"] for k in cls.__mro__ if "__init__" in k.__dict__)
    if init is BaseCAM.__init__:
        return
    code = init.__code__
    declared = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    assert not set(COMMON) & set(declared), f"{cls.__name__} re-declares {set(COMMON) & set(declared)}"
    assert code.co_flags & inspect.CO_VARKEYWORDS, f"{cls.__name__} drops the common options"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_the_signature_shows_the_common_options(cls):
    params = inspect.signature(cls).parameters
    for name, default in COMMON.items():
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, (cls.__name__, name)
        assert params[name].default == default, (cls.__name__, name)
    assert "Unpack" not in str(inspect.signature(cls))


def test_a_subclass_forwarding_options_reaches_the_engine():
    class _Probe(BaseCAM):
        def __init__(self, model, target_layers=None, *, k: int = 1,
                     **options: Unpack[CommonOptions]):
            super().__init__(model, target_layers, **options)
            self.k = k

        def channel_weights(self, ctx):
            return [torch.ones(ctx.x.shape[0], ctx.activations[0].shape[1])]

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2)).eval()
    cam = _Probe(model, "1", k=2, normalize=((0.5,) * 3, (0.2,) * 3), precision="bf16")
    assert cam.engine.precision == "bf16" and cam.normalize[0] == (0.5,) * 3 and cam.k == 2
    assert list(inspect.signature(_Probe).parameters)[-6:] == ["k", "normalize", "precision",
                                                                "compile", "reshape_transform",
                                                                "progress"]
    with pytest.raises(TypeError, match="mode"):
        _Probe(model, "1", mode="x")
