"""What every augmentation shares: its probability, its stage, array checks, crops.

Arrays: image float32 (Z, Y, X) in [0, 1]; label integer (Z, Y, X), 0 =
background. A transform never modifies its inputs; it returns new arrays (or
the inputs themselves when it leaves them unchanged). Randomness comes only
from the ``numpy.random.Generator`` passed in.
"""
import numpy as np


class Transform:
    """Base class. ``stage`` tells :class:`Compose` where the transform runs.

    Stages, in the order Compose applies them: 'warp' (in-plane geometric
    resampling, fused into one resampling), 'section' (artefacts that change
    the z or y/x extent), 'intensity' (image only, after the crop to the input
    size), 'flip' (last).
    """

    stage = "intensity"

    def __init__(self, p=1.0):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: probability p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def margin(self):
        """Extra (z, y, x) voxels this transform consumes from its input (stage 'section')."""
        return (0, 0, 0)

    def __call__(self, image, label, rng):
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def check_pair(image, label, keep_uint8=False):
    """Return (float32 image, label) after checking shapes and dtypes.

    With ``keep_uint8`` a uint8 image is returned as is (0..255 standing for [0, 1]).
    """
    image = np.asarray(image)
    if not (keep_uint8 and image.dtype == np.uint8):
        image = image.astype(np.float32, copy=False)
    label = np.asarray(label)
    if image.ndim != 3:
        raise ValueError(f"augmentation expects a (Z, Y, X) image, got shape {image.shape}")
    if label.shape != image.shape:
        raise ValueError(f"label shape {label.shape} differs from image shape {image.shape}")
    if not (np.issubdtype(label.dtype, np.integer) or label.dtype == bool):
        raise TypeError(f"label must hold integer instance ids, got dtype {label.dtype}")
    return image, label


def center_slices(shape, size):
    """Slices that cut a centred ``size`` box out of ``shape`` (each size <= shape)."""
    if any(s > n for s, n in zip(size, shape)):
        raise ValueError(f"cannot crop {tuple(size)} out of {tuple(shape)}")
    return tuple(slice((n - s) // 2, (n - s) // 2 + s) for n, s in zip(shape, size))


def random_box(shape, ratio, rng):
    """Slices of a random cuboid with sides ``ratio`` * shape (at least 1) inside ``shape``."""
    sides = [max(1, int(round(n * ratio))) for n in shape]
    starts = [int(rng.integers(0, n - s + 1)) for n, s in zip(shape, sides)]
    return tuple(slice(a, a + s) for a, s in zip(starts, sides))
