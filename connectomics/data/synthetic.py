"""Synthetic EM volumes with mitochondria: image/label pairs to train and score without downloads.

:mod:`synthetic_shapes` packs the instances (curved tubes and capsules, some in
touching pairs), :mod:`synthetic_image` paints the EM-like image; this module
is the public API: generate a pair, write it, report its sizes, and the thin
config layer :func:`ensure_synthetic`.

Voxels are anisotropic like MitoEM (30 x 8 x 8 nm): objects span about 3.75
times more voxels in y/x than in z. Every random draw comes from
``numpy.random.default_rng(seed)``, so a seed fixes the pair.
"""
import json
import logging
import os

import numpy as np

from connectomics.data.preview import save_overlay_png, save_preview_png
from connectomics.data.synthetic_image import (MYELIN_RADIUS, MYELIN_SHEATH_GREY, add_artefacts, cell_background,
                                               finish_image, paint_dense_bodies, paint_mitochondria, paint_myelin)
from connectomics.data.synthetic_shapes import mean_instance_size, pack_tubes

logger = logging.getLogger(__name__)

__all__ = [
    "ensure_synthetic", "make_synthetic_pair", "save_overlay_png", "save_preview_png",
    "size_statistics", "write_synthetic_pair",
]


def make_synthetic_pair(shape=(48, 192, 192), seed=0, n_instances=None, touching_fraction=0.3,
                        noise=0.06, blur=1.0, artefacts=False, density=0.12, min_size=2000, myelin=0,
                        myelin_sheath=MYELIN_SHEATH_GREY, myelin_radius=MYELIN_RADIUS, dense_bodies=0):
    """An EM-like image and its mitochondria instance labels.

    Args:
        shape: (Z, Y, X) of both volumes; each at least 8.
        seed: fixes every random draw (same seed, same arrays).
        n_instances: instances to place; None: ``density * Z*Y*X / mean size`` (at least 3).
            Crowded volumes may hold fewer.
        touching_fraction: share of the instances in touching pairs (two ids sharing a face).
        noise: standard deviation of the additive noise, in units of the full grey range.
        blur: Gaussian blur sigma in y/x voxels (z gets 0.3 of it).
        artefacts: add a misaligned block of sections and 1-2 missing (near-black) sections.
        density: target foreground fraction used when ``n_instances`` is None.
        min_size: instances smaller than this (voxels, e.g. clipped by the border) become
            background. The default is the evaluator's crumb size: smaller ground truth is
            ignored there, while a prediction of it would count as a false positive.
        myelin: myelinated axons to paint (hard negatives: dark sheaths, seen as rings or long
            bands, that are background), drawn after every other random draw (0: the volumes
            are what they were before this option).
        myelin_sheath: (low, high) grey of the sheaths (fractions of the grey range).
        myelin_radius: (low, high) outer y/x radius of the axons (voxels).
        dense_bodies: near-black homogeneous blobs to paint (hard negatives: lysosomes, lipid
            droplets), drawn last from a generator of their own (0: nothing changes).

    Returns:
        image: uint8 (Z, Y, X); mitochondria dark, cytoplasm mid-grey.
        label: uint32 (Z, Y, X); 0 background, instances numbered 1..N without gaps.
        Sizes span the evaluator's small (< 5e3), medium and large (> 3e4) bins.
    """
    shape = _check_args(shape, touching_fraction, noise, blur, density)
    rng = np.random.default_rng(seed)
    if n_instances is None:
        n_instances = max(3, int(round(density * np.prod(shape) / mean_instance_size())))
    canvas = pack_tubes(shape, rng, int(n_instances), touching_fraction)
    keep_largest_parts(canvas.label, min_size)
    image = cell_background(shape, rng)
    paint_mitochondria(image, canvas, rng)
    if myelin:  # its own generator: the volumes of myelin=0 stay as they were
        paint_myelin(image, canvas.label, np.random.default_rng([seed, 1]), myelin, tuple(myelin_sheath),
                     tuple(myelin_radius))
    if dense_bodies:
        paint_dense_bodies(image, canvas.label, np.random.default_rng([seed, 2]), dense_bodies)
    image = finish_image(image, rng, noise, blur)
    label = canvas.label
    if artefacts:
        add_artefacts(image, label, rng)
    image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, renumber(label)


def _check_args(shape, touching_fraction, noise, blur, density):
    shape = tuple(int(n) for n in np.ravel(shape))
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"synthetic volume shape must be (Z, Y, X) with every size >= 8, got {shape}")
    if not 0.0 <= touching_fraction <= 1.0:
        raise ValueError(f"touching_fraction must lie in [0, 1], got {touching_fraction}")
    if noise < 0 or blur < 0 or density <= 0:
        raise ValueError(f"noise and blur must be >= 0 and density > 0, got {noise}, {blur}, {density}")
    return shape


def renumber(label):
    """Ids made consecutive (1..N, 0 stays 0), same dtype uint32."""
    present = np.bincount(label.reshape(-1)) > 0
    present[0] = False
    lut = np.zeros(present.size, np.uint32)
    lut[present] = np.arange(1, int(present.sum()) + 1, dtype=np.uint32)
    return lut[label]


def keep_largest_parts(label, min_size):
    """In place: each id keeps only its largest 6-connected part; parts under ``min_size`` voxels become 0."""
    import cc3d

    parts = cc3d.connected_components(label, connectivity=6)
    flat = parts.reshape(-1)
    count = np.bincount(flat)
    owner = np.zeros(count.size, np.int64)
    owner[flat] = label.reshape(-1)
    order = np.lexsort((count, owner))  # by owner, then size: the last part of each owner is its largest
    best = np.zeros(int(owner.max()) + 1, np.int64)
    best[owner[order]] = order
    keep = np.zeros(count.size, bool)
    keep[best] = True
    keep &= count >= min_size
    keep[owner == 0] = False
    label[~keep[parts]] = 0
    return label


def size_statistics(label, area_thresholds=(5e3, 3e4)):
    """Instance count, size-bin counts and foreground fraction of a label volume.

    Returns a dict: n_instances, small (< thresholds[0] voxels), medium, large
    (> thresholds[1]), min / median / max size (voxels), foreground (fraction).
    """
    sizes = np.bincount(np.asarray(label).reshape(-1))[1:]
    sizes = sizes[sizes > 0]
    low, high = area_thresholds
    return {
        "n_instances": int(sizes.size),
        "small": int(np.sum(sizes < low)),
        "medium": int(np.sum((sizes >= low) & (sizes <= high))),
        "large": int(np.sum(sizes > high)),
        "min": int(sizes.min()) if sizes.size else 0,
        "median": float(np.median(sizes)) if sizes.size else 0.0,
        "max": int(sizes.max()) if sizes.size else 0,
        "foreground": float(sizes.sum() / max(1, np.asarray(label).size)),
    }


SEED_ATTRIBUTE = "synthetic_seed"  # HDF5 attribute marking a dataset this module wrote
MYELIN_ATTRIBUTE = "synthetic_myelin"  # its count of myelinated axons (absent: 0)
SETTINGS_ATTRIBUTE = "synthetic_settings"  # JSON of its hard-negative settings (absent: myelin only, as above)


def generator_settings(myelin=0, myelin_sheath=MYELIN_SHEATH_GREY, myelin_radius=MYELIN_RADIUS, dense_bodies=0):
    """The hard-negative settings of :func:`make_synthetic_pair` as one comparable dict."""
    if not myelin:  # no axon: its look is moot
        myelin_sheath, myelin_radius = MYELIN_SHEATH_GREY, MYELIN_RADIUS
    return {"myelin": int(myelin), "myelin_sheath": [round(float(v), 6) for v in myelin_sheath],
            "myelin_radius": [round(float(v), 6) for v in myelin_radius], "dense_bodies": int(dense_bodies)}


def config_settings(syn):
    """:func:`generator_settings` of a config's DATASET.SYNTHETIC node, checked (ValueError names the key)."""
    if syn.MYELIN < 0:
        raise ValueError(f"config key DATASET.SYNTHETIC.MYELIN = {syn.MYELIN}: must be >= 0 (axons per volume)")
    if syn.DENSE_BODIES < 0:
        raise ValueError(f"config key DATASET.SYNTHETIC.DENSE_BODIES = {syn.DENSE_BODIES}: must be >= 0 "
                         "(bodies per volume)")
    low_high = list(syn.MYELIN_SHEATH)
    if len(low_high) != 2 or not 0.0 <= low_high[0] <= low_high[1] <= 1.0:
        raise ValueError(f"config key DATASET.SYNTHETIC.MYELIN_SHEATH = {low_high}: must be [low, high] "
                         "with 0 <= low <= high <= 1 (grey fractions)")
    radius = list(syn.MYELIN_RADIUS)
    if len(radius) != 2 or not 2.0 <= radius[0] <= radius[1]:
        raise ValueError(f"config key DATASET.SYNTHETIC.MYELIN_RADIUS = {radius}: must be [low, high] "
                         "with 2 <= low <= high (y/x voxels)")
    return generator_settings(syn.MYELIN, low_high, radius, syn.DENSE_BODIES)


def _settings_tag(settings):
    """A short text of the non-default hard-negative settings (empty for none; a myelin-only
    setting keeps the text it had before the other settings existed)."""
    default = generator_settings()
    tag = f":myelin{settings['myelin']}" if settings["myelin"] else ""
    for key, short in (("myelin_sheath", "sheath"), ("myelin_radius", "radius"), ("dense_bodies", "dense")):
        if settings[key] != default[key]:
            tag += f":{short}{settings[key]}"
    return tag


def write_synthetic_pair(image_spec, label_spec, shape, seed, png=None, **kwargs):
    """Generate a pair and write it: ``image_spec`` / ``label_spec`` are ``file.h5[:key]`` (key default 'main').

    Each write is atomic (:func:`connectomics.storage.write_volume`); image and
    label may be two keys of one file. ``label_spec`` may be empty (image only).
    The datasets get an HDF5 attribute ``synthetic_seed``. ``png``: also write a
    preview PNG there. ``kwargs`` go to :func:`make_synthetic_pair`.
    Returns :func:`size_statistics` of the label.
    """
    from connectomics.storage import format_of, parse_spec, write_volume

    for spec in (image_spec, label_spec):
        if spec and format_of(parse_spec(spec)[0]) != "hdf5":
            raise ValueError(f"synthetic volumes are written as HDF5: {spec} must name a .h5 file")
    targets = [(os.path.abspath(p), k or "main") for p, k in map(parse_spec, (image_spec, label_spec or ""))]
    if label_spec and targets[0] == targets[1]:
        raise ValueError(f"image and label would share one dataset ({image_spec}, {label_spec}): "
                         "give them different files or keys, e.g. train.h5:image and train.h5:label")
    image, label = make_synthetic_pair(shape, seed, **kwargs)
    settings = generator_settings(**{k: kwargs[k] for k in ("myelin", "myelin_sheath", "myelin_radius", "dense_bodies")
                                     if k in kwargs})
    attrs = {SEED_ATTRIBUTE: int(seed), MYELIN_ATTRIBUTE: settings["myelin"], SETTINGS_ATTRIBUTE: json.dumps(settings)}
    for spec, volume in ((image_spec, image), (label_spec, label)):
        if spec:
            write_volume(spec, volume, attrs=attrs)
    if png:
        save_preview_png(image, label, png)
    return size_statistics(label)


def _dataset_state(spec):
    """``(state, (seed, shape, settings))`` of the volume ``spec``: state 'missing', 'synthetic'
    (written by this module, with the settings it was made with, :func:`generator_settings`)
    or 'user' (settings None)."""
    import h5py

    from connectomics.storage import VolumeError, format_of, parse_spec

    path, key = parse_spec(spec)
    if not os.path.exists(path):
        return "missing", None
    if format_of(path) != "hdf5":
        return "user", None
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise VolumeError(f"{path} is not a readable HDF5 file ({err})") from None
    with f:
        if key is None:
            names = list(f.keys())
            key = "main" if "main" in f or not names else names[0]
        if key not in f:
            return "missing", None
        attrs = f[key].attrs
        if SEED_ATTRIBUTE not in attrs:
            return "user", None
        if SETTINGS_ATTRIBUTE in attrs:
            settings = generator_settings(**json.loads(attrs[SETTINGS_ATTRIBUTE]))
        else:  # written before the other hard negatives existed
            settings = generator_settings(int(attrs.get(MYELIN_ATTRIBUTE, 0)))
        return "synthetic", (int(attrs[SEED_ATTRIBUTE]), tuple(int(n) for n in f[key].shape), settings)


def synthetic_jobs(cfg):
    """(image_spec, label_spec, seed, config keys) of every volume pair the config names.

    Training volumes use ``SYNTHETIC.SEED``, validation ``SEED + 1``, inference
    ``SEED + 2``; the j-th of several '@'-joined volumes adds ``3 * j``.
    """
    from connectomics.storage import split_names

    groups = (("DATASET", "IMAGE_NAME", "DATASET", "LABEL_NAME", 0),
              ("DATASET", "VAL_IMAGE_NAME", "DATASET", "VAL_LABEL_NAME", 1),
              ("INFERENCE", "IMAGE_NAME", "EVAL", "GT_NAME", 2))
    jobs = []
    for sec_i, key_i, sec_l, key_l, offset in groups:
        images, labels = split_names(cfg[sec_i][key_i]), split_names(cfg[sec_l][key_l])
        keys = f"{sec_i}.{key_i} / {sec_l}.{key_l}"
        if images and labels and len(labels) != len(images):  # no image: the pair is off, nothing to make
            raise ValueError(f"config keys {keys}: {len(images)} image(s) but {len(labels)} label(s); "
                             "synthetic data needs one label per image")
        for j, image in enumerate(images):
            jobs.append((image, labels[j] if labels else "", cfg.DATASET.SYNTHETIC.SEED + offset + 3 * j, keys))
    return jobs


def synthetic_identities(cfg):
    """``{spec: 'synthetic:<seed>:<shape>'}`` of the volumes :func:`ensure_synthetic` makes (or has made)
    for ``cfg``: their content follows from the seed and shape alone (empty when SYNTHETIC is off;
    volumes a user wrote are left out)."""
    syn = cfg.DATASET.SYNTHETIC
    if not syn.ENABLED:
        return {}
    tag = _settings_tag(config_settings(syn))
    out = {}
    for image_spec, label_spec, seed, _ in synthetic_jobs(cfg):
        for spec in (image_spec, label_spec):
            if spec and _dataset_state(spec)[0] != "user":
                out[spec] = f"synthetic:{seed}:{list(syn.SHAPE)}" + tag
    return out


def ensure_synthetic(cfg):
    """Write the synthetic volumes a config names but that do not exist yet.

    Only when ``cfg.DATASET.SYNTHETIC.ENABLED``. For each pair of
    (DATASET.IMAGE_NAME, DATASET.LABEL_NAME), (DATASET.VAL_IMAGE_NAME,
    DATASET.VAL_LABEL_NAME) and (INFERENCE.IMAGE_NAME, EVAL.GT_NAME) (paths
    already absolute) whose image or label is missing, a pair of shape
    ``SYNTHETIC.SHAPE`` is generated and both are written; an empty label name
    means image only, an empty image name skips the pair. A pair this module
    wrote with another seed or shape (``DATASET.SYNTHETIC.SEED 10`` where seed-0
    volumes lie) is generated again, with a warning: the files then always hold
    what the config says. A pair is never regenerated over a volume this module
    did not write: that raises FileExistsError naming it. Returns the list of
    specs written.
    """
    syn = cfg.DATASET.SYNTHETIC
    if not syn.ENABLED:
        return []
    try:
        _check_args(syn.SHAPE, 0.0, 0.0, 0.0, 1.0)
    except ValueError as err:
        raise ValueError(f"config key DATASET.SYNTHETIC.SHAPE: {err}") from err
    settings = config_settings(syn)
    written = []
    for image_spec, label_spec, seed, keys in synthetic_jobs(cfg):
        specs = [s for s in (image_spec, label_spec) if s]
        states = {spec: _dataset_state(spec) for spec in specs}
        kinds = [state[0] for state in states.values()]
        wanted = (seed, tuple(syn.SHAPE), settings)
        other = [f"{spec} (seed {state[1][0]}, shape {state[1][1]}{_settings_tag(state[1][2]) or ', plain'})"
                 for spec, state in states.items() if state[0] == "synthetic" and state[1] != wanted]
        if "missing" not in kinds and not other:
            continue
        users = [spec for spec, state in states.items() if state[0] == "user"]
        if users:
            raise FileExistsError(
                f"config keys {keys}: {', '.join(users)} exists but its partner is missing or synthetic data of "
                "other settings; synthetic data (DATASET.SYNTHETIC.ENABLED) would overwrite it: name both or "
                "neither")
        if other:
            logger.warning("config keys %s: %s hold synthetic data of other settings than DATASET.SYNTHETIC "
                           "(seed %d, shape %s%s): generating them again", keys, ", ".join(other), seed,
                           tuple(syn.SHAPE), _settings_tag(settings) or ", plain")
        stats = write_synthetic_pair(image_spec, label_spec, tuple(syn.SHAPE), seed, **settings)
        logger.info("synthetic data for %s: wrote %s (shape %s, seed %d): %d instances "
                    "(%d small, %d medium, %d large), foreground %.1f%%", keys, " and ".join(specs),
                    tuple(syn.SHAPE), seed, stats["n_instances"], stats["small"], stats["medium"],
                    stats["large"], 100 * stats["foreground"])
        written.extend(specs)
    return written
