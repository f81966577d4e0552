"""Sparseness, complexity and the relevance accuracies against hand-computed
values and their edge cases (the Quantus parity is tests/metrics/test_quantus_parity.py)."""
import math

import pytest
import torch

import fastcam.metrics as M


def test_sparseness_hand_computed():
    one_hot = torch.zeros(1, 4, 5)
    one_hot[0, 2, 3] = 0.7
    assert M.sparseness(one_hot).item() == pytest.approx(1 - 1 / 20)        # the maximum, 1 − 1/N
    assert M.sparseness(torch.full((1, 3, 3), 0.4)).item() == pytest.approx(0.0)
    assert M.sparseness(torch.zeros(1, 3, 3)).item() == 0.0
    # a = (1, 2, 3, 4) sorted: Σ (2k − N − 1) a_k = −3 − 2 + 3 + 12 = 10; / (N Σ a = 40) = 0.25
    m = torch.tensor([[[4.0, 1.0], [3.0, 2.0]]])
    assert M.sparseness(m).item() == pytest.approx(0.25)
    assert M.sparseness(-m).item() == pytest.approx(0.25)                     # absolute values
    assert M.sparseness(torch.cat([m, 10 * m])).tolist() == pytest.approx([0.25, 0.25])   # scale invariant


def test_complexity_hand_computed():
    assert M.complexity(torch.full((1, 4, 4), 0.3)).item() == pytest.approx(math.log(16))   # uniform: ln N
    one_hot = torch.zeros(1, 4, 4)
    one_hot[0, 1, 1] = 2.0
    assert M.complexity(one_hot).item() == pytest.approx(0.0)
    m = torch.tensor([[[1.0, 1.0], [2.0, 0.0]]])                               # p = ¼, ¼, ½, 0
    assert M.complexity(m).item() == pytest.approx(1.5 * math.log(2))
    assert math.isnan(M.complexity(torch.zeros(1, 2, 2)).item())


def test_relevance_accuracies_hand_computed():
    m = torch.tensor([[[4.0, 3.0], [2.0, -1.0]]])
    inside = torch.tensor([[[False, True], [True, False]]])
    assert M.relevance_mass_accuracy(m, inside).item() == pytest.approx(5 / 9)      # positive part: 4+3+2
    assert M.relevance_rank_accuracy(m, inside).item() == pytest.approx(1 / 2)      # top-2: 4 (out), 3 (in)
    boxes = [[(1, 0, 2, 2)]]                                                        # column 1: 3 and −1
    assert M.relevance_mass_accuracy(m, boxes).item() == pytest.approx(3 / 9)
    assert M.relevance_rank_accuracy(m, boxes).item() == pytest.approx(1 / 2)
    none = torch.zeros(1, 2, 2, dtype=torch.bool)
    assert math.isnan(M.relevance_mass_accuracy(m, none).item())
    assert math.isnan(M.relevance_rank_accuracy(m, none).item())
    assert math.isnan(M.relevance_mass_accuracy(torch.zeros(1, 2, 2), inside).item())   # no mass at all


def test_bad_maps_are_refused():
    with pytest.raises(ValueError, match=r"\(B,H,W\)"):
        M.sparseness(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="floating point"):
        M.complexity(torch.zeros(1, 2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="NaN"):
        M.sparseness(torch.tensor([[[float("nan"), 1.0]]]))
    with pytest.raises(ValueError, match="box mask"):
        M.relevance_rank_accuracy(torch.zeros(1, 2, 2), torch.zeros(1, 3, 3, dtype=torch.bool))
