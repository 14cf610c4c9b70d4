"""Model stage: the U-Nets, their registry and strict checkpoint loading.

``build_model(cfg)`` returns a module mapping ``(B, IN_PLANES, Z, Y, X)`` float32 images in [0, 1]
to ``(B, OUT_PLANES, Z, Y, X)`` logits (no sigmoid inside).
"""
from connectomics.model.checkpoint import CheckpointMismatchError, load_weights, load_weights_file
from connectomics.model.registry import MODEL_REGISTRY, build_model
from connectomics.model.rsunet import RSUNet
from connectomics.model.unet_residual import UNetResidual3D

__all__ = [
    "MODEL_REGISTRY", "CheckpointMismatchError", "RSUNet", "UNetResidual3D", "build_model",
    "load_weights", "load_weights_file",
]
