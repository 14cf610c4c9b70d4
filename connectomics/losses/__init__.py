"""Losses stage: weighted BCE and Dice on logits, the BinaryReg regulariser, the Criterion.

``build_criterion(cfg)(logits, targets, weights) -> (total_loss, {term_name: float})``.
"""
from connectomics.losses.criterion import Criterion, build_criterion, target_names
from connectomics.losses.losses import LOSS_REGISTRY, REGULARIZER_REGISTRY, binary_reg, dice_loss, weighted_bce

__all__ = [
    "LOSS_REGISTRY", "REGULARIZER_REGISTRY", "Criterion", "binary_reg", "build_criterion",
    "dice_loss", "target_names", "weighted_bce",
]
