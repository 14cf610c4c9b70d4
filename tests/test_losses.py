"""Losses against hand-computed values; the Criterion's weighting, breakdown and errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from connectomics.config import get_cfg_defaults
from connectomics.losses import (LOSS_REGISTRY, Criterion, binary_reg, build_criterion, dice_loss, target_names,
                                 weighted_bce)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 3, 4, 4, generator=g) * 3
    targets = [(torch.rand(2, 1, 3, 4, 4, generator=g) > 0.6).float() for _ in range(2)]
    weights = [torch.rand(2, 1, 3, 4, 4, generator=g) * 5 for _ in range(2)]
    return logits, targets, weights


def manual_bce(x, t, w):
    p = 1 / (1 + torch.exp(-x.double()))
    return (-w.double() * (t * torch.log(p) + (1 - t) * torch.log(1 - p))).mean().item()


def test_weighted_bce_matches_formula_and_predecessor(batch):
    logits, (t, _), (w, _) = batch
    x = logits[:, :1]
    assert weighted_bce(x, t, w).item() == pytest.approx(manual_bce(x, t, w), rel=1e-5)
    # the predecessor: BCE on probabilities, mean of w * BCE (not divided by the sum of w)
    predecessor = F.binary_cross_entropy(torch.sigmoid(x), t, w).item()
    assert weighted_bce(x, t, w).item() == pytest.approx(predecessor, rel=1e-4)
    assert weighted_bce(x, t).item() == pytest.approx(manual_bce(x, t, torch.ones_like(t)), rel=1e-5)


def test_dice_by_hand():
    logits = torch.zeros(2, 1, 1, 2, 2)  # p = 0.5 everywhere
    target = torch.tensor([[1.0, 0, 0, 0], [1, 1, 1, 1]]).view(2, 1, 1, 2, 2)
    # sample 0: sum pt = 0.5, sum p = 2, sum t = 1 -> 1 - 101/103; sample 1: 2, 2, 4 -> 1 - 104/106
    expected = ((1 - 101 / 103) + (1 - 104 / 106)) / 2
    assert dice_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)
    weight = torch.tensor([[2.0, 1, 1, 1], [1, 1, 1, 1]]).view(2, 1, 1, 2, 2)
    # sample 0 weighted: sum wpt = 1, sum wp = 2.5, sum wt = 2 -> 1 - 102/104.5
    expected_w = ((1 - 102 / 104.5) + (1 - 104 / 106)) / 2
    assert dice_loss(logits, target, weight).item() == pytest.approx(expected_w, rel=1e-6)


def test_binary_reg_by_hand():
    assert binary_reg(torch.zeros(1, 1, 2, 2, 2)).item() == pytest.approx(0.1 * 100)
    x = torch.tensor([math.log(3.0)])  # p = 0.75 -> 0.1 / 0.25
    assert binary_reg(x).item() == pytest.approx(0.4, rel=1e-6)


def test_loss_weight_applied_once_and_breakdown(batch):
    logits, targets, weights = batch
    crit = Criterion(["foreground", "contour"], [1, 1], [["WeightedBCE"], ["WeightedBCE", "DiceLoss"]],
                     [[2.0], [1.0, 0.5]])
    total, terms = crit(logits, targets, weights)
    fg = manual_bce(logits[:, :1], targets[0], weights[0])
    ct = manual_bce(logits[:, 1:], targets[1], weights[1])
    dice = dice_loss(logits[:, 1:], targets[1], weights[1]).item()
    assert terms["foreground/WeightedBCE"] == pytest.approx(2 * fg, rel=1e-5)  # 2, not 4
    assert terms["contour/WeightedBCE"] == pytest.approx(ct, rel=1e-5)  # the contour's own weight
    assert terms["contour/DiceLoss"] == pytest.approx(0.5 * dice, rel=1e-5)
    assert total.item() == pytest.approx(2 * fg + ct + 0.5 * dice, rel=1e-5)
    assert terms["total"] == pytest.approx(total.item())
    assert list(terms) == ["foreground/WeightedBCE", "contour/WeightedBCE", "contour/DiceLoss", "total"]


def test_zero_weight_losses_are_not_computed(monkeypatch, batch):
    calls = []
    monkeypatch.setitem(LOSS_REGISTRY, "DiceLoss", lambda *a: calls.append(1) or torch.tensor(1.0))
    crit = Criterion(["foreground"], [1], [["DiceLoss", "WeightedBCE"]], [[0, 1]])
    logits, targets, _ = batch
    _, terms = crit(logits[:, :1], targets[:1], None)
    assert not calls and list(terms) == ["foreground/WeightedBCE", "total"]
    with pytest.raises(ValueError, match="every loss weight is 0"):
        Criterion(["foreground"], [1], [["DiceLoss"]], [[0]])


def test_per_loss_weight_lists_and_regularizer(batch):
    logits, targets, weights = batch
    crit = Criterion(["foreground"], [1], [["WeightedBCE", "DiceLoss"]], [[1, 1]], ["BinaryReg"], [0.5])
    x = logits[:, :1].clone().requires_grad_()
    total, terms = crit(x, targets[:1], [[weights[0], None]])
    assert terms["foreground/WeightedBCE"] == pytest.approx(manual_bce(x.detach(), targets[0], weights[0]), rel=1e-5)
    assert terms["foreground/DiceLoss"] == pytest.approx(dice_loss(x, targets[0]).item(), rel=1e-6)
    assert terms["regularizer/BinaryReg"] == pytest.approx(0.5 * binary_reg(x).item(), rel=1e-6)
    total.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_criterion_input_errors(batch):
    logits, targets, weights = batch
    crit = Criterion(["foreground", "contour"], [1, 1], [["WeightedBCE"], ["WeightedBCE"]], [[1], [1]])
    with pytest.raises(ValueError, match="expected 2 channels"):
        crit(logits[:, :1], targets, weights)
    with pytest.raises(ValueError, match="got 1 targets"):
        crit(logits, targets[:1], weights)
    with pytest.raises(ValueError, match=r"target contour has shape \(2, 1, 3, 4, 3\)"):
        crit(logits, [targets[0], targets[1][..., :3]], weights)
    with pytest.raises(ValueError, match="not broadcastable"):
        crit(logits, targets, [weights[0], torch.ones(2, 1, 3, 4, 3)])
    with pytest.raises(ValueError, match="unknown name 'Focal'"):
        Criterion(["foreground"], [1], [["Focal"]], [[1]])
    with pytest.raises(ValueError, match="REGU_WEIGHT"):
        Criterion(["foreground"], [1], [["WeightedBCE"]], [[1]], ["BinaryReg"], [])


def test_build_criterion_from_bc_config(batch):
    cfg = get_cfg_defaults()
    cfg.MODEL.TARGET_OPT = ["0", "4-2-1"]
    cfg.MODEL.OUT_PLANES = 2
    cfg.MODEL.LOSS_OPTION = [["DiceLoss", "WeightedBCE"], ["DiceLoss", "WeightedBCE"]]
    cfg.MODEL.LOSS_WEIGHT = [[0, 1], [0, 1]]
    logits, targets, weights = batch
    total, terms = build_criterion(cfg)(logits, targets, weights)
    assert set(terms) == {"foreground/WeightedBCE", "contour/WeightedBCE", "total"}
    expected = manual_bce(logits[:, :1], targets[0], weights[0]) + manual_bce(logits[:, 1:], targets[1], weights[1])
    assert total.item() == pytest.approx(expected, rel=1e-5)


def test_target_names():
    assert target_names(["0", "4-2-1"]) == ["foreground", "contour"]
    assert target_names(["0", "0"]) == ["foreground", "foreground_2"]
    with pytest.raises(ValueError, match="TARGET_OPT"):
        target_names(["2"])
