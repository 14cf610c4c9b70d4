"""Training data: volumes from files -> windows -> augmentation -> targets and weights.

``build_train_loader(cfg, start_iter)`` is the config door; everything below
takes plain arguments.
"""
import logging

import fastremap
import numpy as np
import torch

from connectomics.data.sampling import WindowSampler, sample_rng
from connectomics.storage import VolumeError, read_volume, split_names

logger = logging.getLogger(__name__)


def prepare_image(image, spec):
    """(Z, Y, X) uint8; float images in [0, 1] are scaled to 0..255."""
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3:
        raise VolumeError(f"{spec}: expected a 3D (Z, Y, X) image, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating) and image.size and image.min() >= 0 and image.max() <= 1:
        return np.rint(image * 255).astype(np.uint8)
    raise VolumeError(f"{spec}: expected a uint8 image (or float in [0, 1]), got {image.dtype}")


def prepare_label(label, spec, binary=False):
    """(Z, Y, X) uint32 with consecutive ids (0 stays background)."""
    if label.ndim == 4 and label.shape[0] == 1:
        label = label[0]
    if label.ndim != 3:
        raise VolumeError(f"{spec}: expected a 3D (Z, Y, X) label, got shape {label.shape}")
    if np.issubdtype(label.dtype, np.floating):
        if not np.all(np.mod(label, 1) == 0):
            raise VolumeError(f"{spec}: label holds non-integer values")
        label = label.astype(np.int64)
    if binary:
        label = (label > 0).astype(np.uint8)
    label = np.ascontiguousarray(label)
    label, _ = fastremap.renumber(label, preserve_zero=True, in_place=True)
    return label.astype(np.uint32, copy=False)


def pad_volume(volume, pad):
    """Mirror-pad (reflect) ``pad`` voxels per side of each axis (z, y, x)."""
    if not any(pad):
        return volume
    for axis, (p, n) in enumerate(zip(pad, volume.shape)):
        if p >= n:
            raise VolumeError(f"padding {p} on axis {'zyx'[axis]} needs a volume larger than {p} (got {n})")
    return np.pad(volume, [(p, p) for p in pad], mode="reflect")


def load_training_volumes(image_specs, label_specs, mask_specs=(), pad=(0, 0, 0), scale=(1, 1, 1),
                          erosion=0, binary=False, chunk=None):
    """Read, rescale, widen borders and pad every training volume.

    ``chunk``: None for whole volumes, or ``(chunk_num, chunk_id, overlap)`` to read one
    chunk of each (mirrored at the volume border, see ``connectomics.data.chunks``).
    Returns lists of uint8 images, uint32 labels and (optional) uint8 masks.
    """
    images, labels, masks = [], [], []
    for i, (ispec, lspec) in enumerate(zip(image_specs, label_specs)):
        mspec = mask_specs[i] if mask_specs else None
        image, label, mask = _read_pair(ispec, lspec, mspec, pad, chunk)
        image, label = prepare_image(image, ispec), prepare_label(label, lspec, binary)
        if image.shape != label.shape:
            raise VolumeError(f"image {ispec} has shape {image.shape} but label {lspec} has {label.shape}")
        if mask is not None and mask.shape != image.shape:
            raise VolumeError(f"mask {mspec} has shape {mask.shape}, image {ispec} {image.shape}")
        if any(s != 1 for s in scale):
            from scipy.ndimage import zoom

            image, label = zoom(image, scale, order=1), zoom(label, scale, order=0)
            mask = None if mask is None else zoom(mask, scale, order=0)
        if erosion:
            from connectomics.data.targets import widen_border

            label = widen_border(label, erosion)
        images.append(image)
        labels.append(label)
        if mask is not None:
            masks.append((mask > 0).astype(np.uint8))
        if not label.any():
            logger.warning("label %s holds no foreground%s: the model learns background there only; check "
                           "DATASET.LABEL_NAME (and DATASET.LABEL_BINARY for 0/255 masks)", lspec,
                           "" if chunk is None else f" in chunk {chunk[1]}")
        logger.info("training volume %s: %s, %d instances", ispec, image.shape, int(label.max()))
    return images, labels, (masks or None)


def _read_pair(ispec, lspec, mspec, pad, chunk):
    """Image, label and mask arrays (mask None): whole and mirror-padded, or one padded chunk."""
    specs = (ispec, lspec, mspec)
    if chunk is None:
        arrays = [_squeeze(read_volume(s)) if s else None for s in specs]
        _check_shapes(specs, [None if a is None else a.shape for a in arrays])
        return [None if a is None else pad_volume(a, pad) for a in arrays]
    from connectomics.data.chunks import chunk_box, read_chunk, volume_shape

    shapes = [volume_shape(s) if s else None for s in specs]
    _check_shapes(specs, shapes)
    chunk_num, chunk_id, overlap = chunk
    box = chunk_box(shapes[0], chunk_num, chunk_id, overlap)
    return [read_chunk(s, box, pad) if s else None for s in specs]


def _check_shapes(specs, shapes):
    """VolumeError unless the (image, label, mask) shapes are 3D and equal, checked before padding.

    ``specs``: the three volume names (mask may be None); ``shapes``: their stored shapes.
    """
    names = ("image", "label", "mask")
    for name, spec, shape in zip(names, specs, shapes):
        if spec and len(shape) != 3:
            raise VolumeError(f"{name} {spec}: expected a 3D (Z, Y, X) volume, got shape {tuple(shape)}")
    for name, spec, shape in zip(names[1:], specs[1:], shapes[1:]):
        if spec and tuple(shape) != tuple(shapes[0]):
            raise VolumeError(f"image {specs[0]} has shape {tuple(shapes[0])} but {name} {spec} has {tuple(shape)}")


def _squeeze(array):
    return array[0] if array.ndim == 4 and array.shape[0] == 1 else array


class TrainingSamples(torch.utils.data.Dataset):
    """Map-style dataset: item ``i`` is the ``i``-th training sample of the run.

    Returns ``(image (1, Z, Y, X) float32 in [0, 1], [targets (C_i, Z, Y, X)], [weights or None])``.
    """

    def __init__(self, sampler, augmentor, target_opts, weight_opts, seed, label_smooth=None,
                 reject_after_aug=False):
        self.sampler, self.augmentor = sampler, augmentor
        self.target_opts, self.weight_opts = list(target_opts), [list(w) for w in weight_opts]
        self.seed, self.label_smooth, self.reject_after_aug = seed, label_smooth, reject_after_aug

    def __len__(self):
        return 2 ** 62  # indices come from the sampler passed to the DataLoader

    def _one(self, rng):
        image, label, _, _ = self.sampler.sample(rng)
        image = image.astype(np.float32) / 255.0
        if self.augmentor is not None:
            image, label = self.augmentor(image, label, rng)
        return image, label

    def __getitem__(self, index):
        from connectomics.data.targets import build_targets, build_weights, smooth_labels

        rng = sample_rng(self.seed, index)
        image, label = self._one(rng)
        if self.reject_after_aug and self.sampler.reject_size >= 0:
            for _ in range(50):
                if np.count_nonzero(label) > self.sampler.reject_size or rng.random() >= self.sampler.reject_p:
                    break
                image, label = self._one(rng)
        targets = build_targets(label, self.target_opts)
        weights = build_weights(targets, self.weight_opts, label)
        if self.label_smooth:
            targets = [smooth_labels(t, self.label_smooth) for t in targets]
        return np.ascontiguousarray(image[None], dtype=np.float32), targets, weights


def collate_samples(batch):
    """Stack samples into ``(image (B,1,Z,Y,X), [targets (B,C,Z,Y,X)], [weights or None])`` tensors."""
    images = torch.from_numpy(np.stack([b[0] for b in batch]))
    targets = [torch.from_numpy(np.stack([b[1][i] for b in batch])) for i in range(len(batch[0][1]))]
    weights = [None if batch[0][2][i] is None else torch.from_numpy(np.stack([b[2][i] for b in batch]))
               for i in range(len(batch[0][2]))]
    return images, targets, weights


def _worker_init(_):
    torch.set_num_threads(1)


def sample_loader(dataset, batch_size, indices, num_workers):
    """A DataLoader over the sample ``indices`` (any iterable with a length), in order."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=indices,
        num_workers=num_workers, collate_fn=collate_samples, worker_init_fn=_worker_init,
        pin_memory=torch.cuda.is_available(), persistent_workers=False,
        prefetch_factor=2 if num_workers else None)


def build_train_dataset(cfg, chunk_id=None):
    """The config door: volumes (or chunk ``chunk_id`` of each), sampler, augmentor -> :class:`TrainingSamples`."""
    from connectomics.data.augmentation import build_train_augmentor

    d = cfg.DATASET
    augmentor = build_train_augmentor(cfg)
    sample_size = augmentor.sample_size if augmentor is not None else tuple(cfg.MODEL.INPUT_SIZE)
    images, labels, masks = load_training_volumes(
        split_names(d.IMAGE_NAME), split_names(d.LABEL_NAME), split_names(d.VALID_MASK_NAME),
        pad=d.PAD_SIZE, scale=d.DATA_SCALE, erosion=d.LABEL_EROSION, binary=d.LABEL_BINARY,
        chunk=None if chunk_id is None else (tuple(d.DATA_CHUNK_NUM), chunk_id, d.DATA_CHUNK_STRIDE))
    sampler = WindowSampler(images, labels, sample_size, masks, d.REJECT_SAMPLING.SIZE_THRES,
                            d.REJECT_SAMPLING.P, d.DATA_INVALID_THRES[0], int(d.DATA_INVALID_THRES[1]))
    return TrainingSamples(sampler, augmentor, cfg.MODEL.TARGET_OPT, cfg.MODEL.WEIGHT_OPT, cfg.SYSTEM.SEED,
                           d.LABEL_SMOOTH if d.USE_LABEL_SMOOTH else None, d.REJECT_SAMPLING.AFTER_AUG)

