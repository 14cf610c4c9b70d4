"""Training augmentation for EM volumes: geometric, section artefacts, intensity.

``build_train_augmentor(cfg)`` is the only function that reads the config
(``cfg.AUGMENTOR``, ``cfg.MODEL.INPUT_SIZE``, ``cfg.DATASET.DO_2D``); every
transform takes plain arguments and an explicit ``numpy.random.Generator``.
"""
from connectomics.data.augmentation.base import Transform
from connectomics.data.augmentation.compose import Compose
from connectomics.data.augmentation.geometric import Elastic, Flip, Rescale, Rotate, warp
from connectomics.data.augmentation.intensity import CutBlur, CutNoise, Grayscale, MotionBlur
from connectomics.data.augmentation.sections import Misalignment, MissingParts, MissingSection
from connectomics.data.augmentation.smooth import smooth_label_edges

__all__ = [
    "Compose", "CutBlur", "CutNoise", "Elastic", "Flip", "Grayscale", "Misalignment", "MissingParts",
    "MissingSection", "MotionBlur", "Rescale", "Rotate", "Transform", "build_train_augmentor",
    "smooth_label_edges", "warp",
]


def _transforms(do_2d):
    """(config section name, constructor) pairs in the order Compose runs them within a stage."""
    return [
        ("ROTATE", lambda c: Rotate(p=c.P)),
        ("RESCALE", lambda c: Rescale(p=c.P)),
        ("ELASTIC", lambda c: Elastic(p=c.P, alpha=c.ALPHA, sigma=c.SIGMA)),
        ("MISALIGNMENT", None if do_2d else lambda c: Misalignment(
            p=c.P, displacement=c.DISPLACEMENT, rotate_ratio=c.ROTATE_RATIO)),
        ("MISSINGSECTION", None if do_2d else lambda c: MissingSection(p=c.P, num_sections=c.NUM_SECTION)),
        ("CUTNOISE", lambda c: CutNoise(p=c.P, length_ratio=c.LENGTH_RATIO, scale=c.SCALE)),
        ("CUTBLUR", lambda c: CutBlur(
            p=c.P, length_ratio=c.LENGTH_RATIO, down_min=c.DOWN_RATIO_MIN, down_max=c.DOWN_RATIO_MAX,
            downsample_z=c.DOWNSAMPLE_Z)),
        ("MOTIONBLUR", lambda c: MotionBlur(p=c.P, sections=c.SECTIONS, kernel_size=c.KERNEL_SIZE)),
        ("MISSINGPARTS", lambda c: MissingParts(p=c.P, slice_p=c.SLICE_P, half_width=c.HALF_WIDTH)),
        ("GRAYSCALE", lambda c: Grayscale(p=c.P)),
        ("FLIP", lambda c: Flip(p=c.P, do_ztrans=c.DO_ZTRANS)),
    ]


def build_train_augmentor(cfg):
    """Compose of the enabled AUGMENTOR transforms, or None when nothing is enabled.

    In 2D (DATASET.DO_2D) MisAlignment and MissingSection are skipped. A bad
    parameter raises ValueError naming the AUGMENTOR key.
    """
    aug = cfg.AUGMENTOR
    transforms = []
    for name, make in _transforms(cfg.DATASET.DO_2D):
        if make is None or not aug[name].ENABLED:
            continue
        try:
            transforms.append(make(aug[name]))
        except ValueError as err:
            raise ValueError(f"config section AUGMENTOR.{name}: {err}") from err
    if not transforms and not aug.SMOOTH:
        return None
    return Compose(transforms, cfg.MODEL.INPUT_SIZE, smooth=aug.SMOOTH)
