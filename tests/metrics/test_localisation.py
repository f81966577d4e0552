"""Pointing game and energy-based pointing game against hand-computed values."""
import math

import pytest
import torch

from fastcam.metrics import boxes_mask, energy_pointing_game, pointing_game


def _peak(H, W, i, j, value=1.0):
    m = torch.zeros(1, H, W)
    m[0, i, j] = value
    return m


def test_box_edges_are_half_open_on_pixel_centres():
    m = _peak(4, 4, 1, 2)                       # peak at row 1, column 2
    assert pointing_game(m, [[(2, 1, 3, 2)]], tolerance=0).item() == 1.0    # exactly that pixel
    assert pointing_game(m, [[(0, 0, 2, 4)]], tolerance=0).item() == 0.0    # columns 0, 1 (x1 exclusive)
    assert pointing_game(m, [[(3, 0, 4, 4)]], tolerance=0).item() == 0.0    # column 3 only
    assert pointing_game(m, [[(2.5, 1, 3, 2)]], tolerance=0).item() == 1.0  # centre 2.5 on the edge: in
    assert pointing_game(m, [[(2.6, 1, 3, 2)]], tolerance=0).item() == 0.0  # centre left of the box
    assert pointing_game(m, [[(0, 2, 4, 4)]], tolerance=0).item() == 0.0    # rows 2, 3
    mask = boxes_mask([[(1, 1, 3, 3)]], 1, (4, 4))
    assert mask[0].int().tolist() == [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]


def test_tolerance_is_euclidean_distance_between_pixel_centres():
    m = _peak(11, 11, 5, 5)
    right3 = [[(8, 5, 9, 6)]]                   # pixel (5, 8): 3 px away
    assert pointing_game(m, right3, tolerance=2.9).item() == 0.0
    assert pointing_game(m, right3, tolerance=3).item() == 1.0
    diag5 = [[(9, 8, 10, 9)]]                   # pixel (8, 9): sqrt(3² + 4²) = 5 px away
    assert pointing_game(m, diag5, tolerance=4.9).item() == 0.0
    assert pointing_game(m, diag5, tolerance=5).item() == 1.0
    assert pointing_game(m, diag5).item() == 1.0          # the paper's 15 px default


def test_several_boxes_are_a_union():
    m = torch.tensor([[[1.0, 0, 0, 0], [0, 0, 0, 3]]])   # minmax -> [[1/3,0,0,0],[0,0,0,1]], sum 4/3
    a, b = (0, 0, 1, 1), (3, 1, 4, 2)                     # pixel (0,0); pixel (1,3)
    assert energy_pointing_game(m, [[a]]).item() == pytest.approx(0.25)
    assert energy_pointing_game(m, [[b]]).item() == pytest.approx(0.75)
    assert energy_pointing_game(m, [[a, b]]).item() == pytest.approx(1.0)
    assert energy_pointing_game(m, [[a, a]]).item() == pytest.approx(0.25)   # overlap counted once
    assert pointing_game(m, [[a]], tolerance=0).item() == 0.0
    assert pointing_game(m, [[a, b]], tolerance=0).item() == 1.0


def test_energy_min_max_normalises_first():
    m = torch.tensor([[[2.0, 2.0], [2.0, 4.0]]])         # minmax -> [[0,0],[0,1]]
    assert energy_pointing_game(m, [[(1, 1, 2, 2)]]).item() == pytest.approx(1.0)
    assert energy_pointing_game(m, [[(0, 0, 2, 1)]]).item() == pytest.approx(0.0)
    m2 = torch.tensor([[[0.0, 1.0, 2.0, 3.0]]])           # minmax -> 0, 1/3, 2/3, 1 ; sum 2
    assert energy_pointing_game(m2, [[(2, 0, 4, 1)]]).item() == pytest.approx((2 / 3 + 1) / 2)
    # scaling the map changes nothing
    assert energy_pointing_game(7 * m2 + 5, [[(2, 0, 4, 1)]]).item() == pytest.approx(5 / 6)


def test_constant_maps():
    for value in (0.0, 0.7):
        m = torch.full((1, 4, 4), value)
        box = [[(0, 0, 2, 2)]]                            # 4 of 16 pixels
        assert pointing_game(m, box, tolerance=0).item() == 0.0     # points nowhere: a miss
        assert pointing_game(m, [[(0, 0, 4, 4)]]).item() == 0.0
        assert energy_pointing_game(m, box).item() == pytest.approx(0.25)   # evenly spread


def test_batch_with_an_image_without_boxes():
    maps = torch.stack([_peak(6, 6, 0, 0)[0], _peak(6, 6, 5, 5)[0], _peak(6, 6, 2, 3)[0]])
    boxes = [[(0, 0, 1, 1)], [(0, 0, 3, 3)], []]
    pg = pointing_game(maps, boxes, tolerance=0)
    assert pg[:2].tolist() == [1.0, 0.0] and math.isnan(pg[2].item())
    en = energy_pointing_game(maps, boxes)
    assert en[:2].tolist() == [1.0, 0.0] and math.isnan(en[2].item())
    assert float(torch.nanmean(pg)) == 0.5
    # the same with a (B,H,W) mask instead of boxes
    mask = boxes_mask(boxes, 3, (6, 6))
    assert torch.equal(pointing_game(maps, mask, tolerance=0)[:2], pg[:2])
    assert torch.allclose(energy_pointing_game(maps, mask)[:2], en[:2])


def test_rejects_bad_input():
    m = torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match="2 maps"):
        pointing_game(m, [[(0, 0, 1, 1)]])
    with pytest.raises(ValueError, match="invalid box"):
        energy_pointing_game(m, [[(3, 0, 1, 1)], []])
    with pytest.raises(ValueError, match="x0, y0, x1, y1"):
        pointing_game(m, [[(0, 0, 1)], []])
    with pytest.raises(ValueError, match=r"\(B,H,W\)"):
        pointing_game(torch.rand(4, 4), [[(0, 0, 1, 1)]])
    with pytest.raises(ValueError, match="NaN"):
        energy_pointing_game(torch.full((1, 2, 2), float("nan")), [[(0, 0, 1, 1)]])
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(m, [[], []], tolerance=-1)
