"""Model stage: the U-Nets and their registry (checkpoints: :mod:`connectomics.checkpoint`).

``build_model(cfg)`` returns a module mapping ``(B, IN_PLANES, Z, Y, X)`` float32 images in [0, 1]
to ``(B, OUT_PLANES, Z, Y, X)`` logits (no sigmoid inside).
"""
from connectomics.model.registry import MODEL_REGISTRY, build_model
from connectomics.model.rsunet import RSUNet
from connectomics.model.unet_residual import UNetResidual3D

__all__ = [
    "MODEL_REGISTRY", "RSUNet", "UNetResidual3D", "build_model",
]
