"""``MODEL_REGISTRY`` (architecture name -> constructor) and ``build_model(cfg)``.

The config stops here: each architecture has a translator from ``cfg.MODEL`` to the plain
arguments of its constructor.
"""
import logging

from connectomics.data.targets import target_channels
from connectomics.model.rsunet import RSUNet
from connectomics.model.unet_residual import UNetResidual3D

logger = logging.getLogger(__name__)

MODEL_REGISTRY = {
    "rsunet": RSUNet,
    "unet_residual_3d": UNetResidual3D,
}


def _common_args(m):
    return dict(in_channels=m.IN_PLANES, out_channels=m.OUT_PLANES, filters=list(m.FILTERS),
                norm=m.NORM_MODE, act=m.ACT_MODE)


def _rsunet_args(m):
    # one decoder per target: ['0', '4-2-1'] -> foreground and contour decoders of 1 channel each
    decoders = [target_channels(t) for t in m.TARGET_OPT]
    return dict(_common_args(m), decoder_channels=decoders, partial_conv=bool(m.PARTIAL_CONV))


def _unet_residual_args(m):
    if m.PARTIAL_CONV:
        raise ValueError("config key MODEL.PARTIAL_CONV = True is only supported by "
                         "MODEL.ARCHITECTURE rsunet (unet_residual_3d pads by replication)")
    return dict(_common_args(m), pad_mode=m.PAD_MODE, embedding=bool(m.EMBEDDING),
                conv_z=m.CONV_Z)


_CONFIG_ARGS = {"rsunet": _rsunet_args, "unet_residual_3d": _unet_residual_args}


def build_model(cfg):
    """The network named by ``cfg.MODEL.ARCHITECTURE``, on the CPU, freshly initialised.

    Input ``(B, MODEL.IN_PLANES, Z, Y, X)`` float32 in [0, 1]; output ``(B, MODEL.OUT_PLANES, Z, Y, X)``
    logits (``MODEL.OUTPUT_ACT`` is applied by inference, the losses work on logits).
    """
    name = cfg.MODEL.ARCHITECTURE
    if name not in MODEL_REGISTRY:
        raise ValueError(f"config key MODEL.ARCHITECTURE = {name!r} is unknown; valid: "
                         f"{', '.join(sorted(MODEL_REGISTRY))}")
    args = _CONFIG_ARGS[name](cfg.MODEL)
    model = MODEL_REGISTRY[name](**args)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("model %s %s: %d parameters", name, args, n_params)
    return model
