"""Augmentation: alignment of image and label, id preservation, shapes, determinism."""
import numpy as np
import pytest

from connectomics.config import get_cfg_defaults
from connectomics.data.augmentation import (Compose, CutBlur, CutNoise, Elastic, Flip, Grayscale, Misalignment,
                                            MissingParts, MissingSection, MotionBlur, Rescale, Rotate,
                                            build_train_augmentor, warp)

INPUT = (6, 48, 64)  # non-square slices on purpose


def load_cfg(opts=()):
    """Defaults plus overrides (no whole-config validation: only AUGMENTOR / MODEL / DATASET matter)."""
    cfg = get_cfg_defaults()
    cfg.merge_from_list(list(opts))
    return cfg


def _labels(shape, seed=0, n=14):
    """Ellipsoid instances with large, scattered ids."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    label = np.zeros(shape, np.uint32)
    for i in range(n):
        c = rng.uniform(0, 1, 3) * shape
        r = rng.uniform(0.08, 0.2, 2) * min(shape[1:])
        label[((z - c[0]) / 3) ** 2 + ((y - c[1]) / r[0]) ** 2 + ((x - c[2]) / r[1]) ** 2 < 1] = 1000 + 37 * i
    return label


def _image_of(label):
    """A deterministic function of the label: 0 on background, one grey level per id."""
    return np.where(label > 0, (label % 5 + 1) / 6.0, 0).astype(np.float32)


def _interior(label):
    """Voxels whose in-plane 3x3 window is uniform, away from the slice edge."""
    inner = np.zeros(label.shape, bool)
    c = label[:, 1:-1, 1:-1]
    same = np.ones(c.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            same &= c == label[:, 1 + dy:label.shape[1] - 1 + dy, 1 + dx:label.shape[2] - 1 + dx]
    inner[:, 1:-1, 1:-1] = same
    return inner


def _check_aligned(image, label, source_label, min_fraction=0.98):
    assert set(np.unique(label)) <= set(np.unique(source_label))
    inner = _interior(label)
    assert inner.sum() > 0.3 * label.size
    match = np.abs(image - _image_of(label)) < 1e-3
    assert match[inner].mean() >= min_fraction


def _pair(shape, seed=0):
    label = _labels(shape, seed)
    return _image_of(label), label


GEOMETRIC = [
    Rotate(p=1.0), Rescale(p=1.0), Elastic(p=1.0, alpha=16, sigma=4), Elastic(p=1.0, alpha=40, sigma=6),
    Flip(p=1.0, do_ztrans=True), Misalignment(p=1.0, displacement=8, rotate_ratio=0.0),
    Misalignment(p=1.0, displacement=8, rotate_ratio=1.0), MissingSection(p=1.0, num_sections=2),
]
INTENSITY = [
    Grayscale(p=1.0), MotionBlur(p=1.0), CutBlur(p=1.0), CutNoise(p=1.0),
    MissingParts(p=1.0, slice_p=1.0, half_width=6),
]


@pytest.mark.parametrize("transform", GEOMETRIC, ids=lambda t: repr(t)[:40])
def test_geometric_alone_in_compose_stays_aligned(transform):
    compose = Compose([transform], INPUT, smooth=False)
    image, label = _pair(compose.sample_size)
    for seed in range(4):
        out_image, out_label = compose(image, label, np.random.default_rng(seed))
        assert out_image.shape == out_label.shape == INPUT
        assert out_image.dtype == np.float32 and out_label.dtype == label.dtype
        assert out_image.flags.c_contiguous and out_label.flags.c_contiguous
        _check_aligned(out_image, out_label, label)


@pytest.mark.parametrize("transform", GEOMETRIC, ids=lambda t: repr(t)[:40])
def test_geometric_called_alone_stays_aligned(transform):
    image, label = _pair((6, 50, 70))
    out_image, out_label = transform(image, label, np.random.default_rng(1))
    assert out_image.shape == out_label.shape
    _check_aligned(out_image, out_label, label)


@pytest.mark.parametrize("transform", INTENSITY, ids=lambda t: type(t).__name__)
def test_intensity_never_touches_the_label(transform):
    image, label = _pair((6, 40, 56))
    image = image * 0.5 + 0.25  # room for grey-value changes both ways
    before = image.copy()
    out_image, out_label = transform(image, label, np.random.default_rng(3))
    np.testing.assert_array_equal(out_label, label)
    np.testing.assert_array_equal(image, before)  # inputs are not modified
    assert out_image.shape == image.shape and out_image.dtype == np.float32
    assert 0.0 <= out_image.min() and out_image.max() <= 1.0
    assert not np.array_equal(out_image, image)


def test_full_augmentor_shapes_ids_and_determinism():
    cfg = load_cfg(opts=["MODEL.INPUT_SIZE", "[8, 48, 64]"])
    compose = build_train_augmentor(cfg)
    assert len(compose.transforms) == 11
    image, label = _pair(compose.sample_size)
    ids = set(np.unique(label))
    outs = []
    for seed in (0, 0, 1):
        out_image, out_label = compose(image, label, np.random.default_rng(seed))
        assert out_image.shape == out_label.shape == (8, 48, 64)
        assert set(np.unique(out_label)) <= ids
        assert 0 <= out_image.min() and out_image.max() <= 1
        outs.append((out_image, out_label))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    assert not np.array_equal(outs[0][0], outs[2][0])


def test_uint8_image_is_read_as_fraction():
    compose = Compose([Rotate(p=1.0), Elastic(p=1.0)], INPUT, smooth=False)
    image, label = _pair(compose.sample_size)
    as_uint8 = np.round(image * 255).astype(np.uint8)
    a, _ = compose(as_uint8, label, np.random.default_rng(5))
    b, _ = compose(as_uint8.astype(np.float32) / 255, label, np.random.default_rng(5))
    assert a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_no_border_is_ever_sampled():
    """Worst-case margins: with a full-foreground sample no zero (outside) value appears."""
    transforms = [Rotate(p=1.0), Rescale(p=1.0, low=0.8, high=0.8), Elastic(p=1.0, alpha=16),
                  Misalignment(p=1.0, displacement=10, rotate_ratio=0.5), MissingSection(p=1.0)]
    compose = Compose(transforms, INPUT, smooth=False)
    shape = compose.sample_size
    for seed in range(8):
        rng = np.random.default_rng(seed)
        out_image, out_label = compose(np.full(shape, 0.5, np.float32), np.ones(shape, np.uint16), rng)
        assert out_image.min() > 0.49 and out_label.min() == 1


def test_sample_size_rules():
    cfg = load_cfg(opts=["MODEL.INPUT_SIZE", "[36, 320, 320]"])
    compose = build_train_augmentor(cfg)
    # 336 + 16 margin: half-diagonal of the 336^2 warp output / 0.8 + 16 px elastic, both sides
    assert compose.warp_size == (38, 336, 336)
    assert compose.sample_size == (38, 626, 626)
    assert Compose([], (4, 32, 48)).sample_size == (4, 32, 48)
    assert Compose([Rescale(p=0.5)], (4, 32, 48)).sample_size == (4, 40, 60)
    sizes = Compose([Rotate(), Elastic(alpha=3)], (4, 31, 48)).sample_size
    assert all((s - n) % 2 == 0 for s, n in zip(sizes, (4, 31, 48)))
    cfg_2d = load_cfg(opts=["MODEL.INPUT_SIZE", "[1, 64, 64]", "DATASET.DO_2D", "True"])
    names = [type(t).__name__ for t in build_train_augmentor(cfg_2d).transforms]
    assert "MissingSection" not in names and "Misalignment" not in names
    assert build_train_augmentor(cfg_2d).sample_size[0] == 1


def test_build_returns_none_when_disabled_and_names_bad_keys():
    opts = []
    for name in ("ROTATE", "RESCALE", "FLIP", "ELASTIC", "GRAYSCALE", "MISSINGPARTS", "MISSINGSECTION",
                 "MISALIGNMENT", "MOTIONBLUR", "CUTBLUR", "CUTNOISE"):
        opts += [f"AUGMENTOR.{name}.ENABLED", "False"]
    assert build_train_augmentor(load_cfg(opts=opts + ["AUGMENTOR.SMOOTH", "False"])) is None
    only_smooth = build_train_augmentor(load_cfg(opts=opts))
    assert only_smooth.sample_size == tuple(load_cfg().MODEL.INPUT_SIZE)
    with pytest.raises(ValueError, match="AUGMENTOR.ROTATE"):
        build_train_augmentor(load_cfg(opts=["AUGMENTOR.ROTATE.P", "1.5"]))


def test_compose_rejects_wrong_inputs():
    compose = Compose([Rotate()], INPUT)
    image, label = _pair(compose.sample_size)
    with pytest.raises(ValueError, match="sample_size"):
        compose(image[:, 1:], label[:, 1:], np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        compose(image, label, np.random.RandomState(0))
    with pytest.raises(TypeError, match="integer"):
        compose(image, label.astype(np.float32), np.random.default_rng(0))


def test_warp_identity_is_a_centre_crop():
    image, label = _pair((3, 20, 30))
    out_image, out_label = warp(image, label, np.eye(2), None, (12, 18))
    np.testing.assert_array_equal(out_image, image[:, 4:16, 6:24])
    np.testing.assert_array_equal(out_label, label[:, 4:16, 6:24])


def test_flip_rules_and_non_square():
    flip = Flip(do_ztrans=True)
    volume = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    np.testing.assert_array_equal(flip.apply(volume, [1, 0, 0, 1, 1]), volume[::-1])  # transposes skipped
    square = np.arange(3 * 3 * 3).reshape(3, 3, 3)
    np.testing.assert_array_equal(flip.apply(square, [0, 1, 0, 1, 0]), square[:, ::-1].transpose(0, 2, 1))
    np.testing.assert_array_equal(flip.apply(square, [0, 0, 0, 0, 1]), square.transpose(2, 1, 0))
    seen = {tuple(flip.draw(np.random.default_rng(s))) for s in range(60)}
    assert len(seen) > 20


def test_elastic_displacement_is_bounded_and_smooth():
    field = Elastic(alpha=16, sigma=4).draw(np.random.default_rng(0), (64, 80))[1]
    assert field.shape == (2, 64, 80) and np.abs(field).max() <= 16
    assert np.abs(np.diff(field, axis=1)).max() < 0.5 * np.abs(field).max()


def test_missing_section_drops_interior_slices_together():
    image, label = _pair((8, 20, 20))
    tagged = image + np.arange(8, dtype=np.float32)[:, None, None]
    out_image, out_label = MissingSection(num_sections=2)(tagged, label, np.random.default_rng(0))
    kept = np.round(out_image[:, 0, 0] - image[0, 0, 0]).astype(int)
    assert len(kept) == 6 and kept[0] == 0 and kept[-1] == 7
    np.testing.assert_array_equal(out_label, label[kept])


def test_misalignment_rotation_angle_keeps_box_inside():
    t = Misalignment(displacement=16)
    theta = t.max_angle((320, 320))
    assert 0 < np.degrees(theta) < 4.1  # predecessor's bound (4.04 deg) read outside the slice
    h = 319 / 2
    assert h * (np.cos(theta) + np.sin(theta)) <= h + 8 + 1e-9


def test_missing_parts_band_width():
    parts = MissingParts(half_width=5)
    rng = np.random.default_rng(0)
    for _ in range(10):
        mask = parts.band_mask((60, 90), rng)
        # a band joining two opposite edges: 1..11 voxels across, in every column or every row
        cols, rows = mask.sum(axis=0), mask.sum(axis=1)
        assert (cols.min() >= 1 and cols.max() <= 11) or (rows.min() >= 1 and rows.max() <= 11)


def test_smoothing_preserves_ids_and_removes_spurs():
    from connectomics.data.augmentation import smooth_label_edges

    label = np.zeros((1, 12, 12), np.uint32)
    label[0, 3:9, 3:9] = 7
    label[0, 5, 9] = 7  # a one-voxel spur
    label[0, 0, 0] = 9  # a one-voxel instance disappears
    out = smooth_label_edges(label)
    assert out[0, 5, 9] == 0 and out[0, 0, 0] == 0
    np.testing.assert_array_equal(out[0, 4:8, 4:8], 7)
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 4, (2, 15, 17)).astype(np.uint16) * 1000
    smoothed = smooth_label_edges(noisy)
    assert set(np.unique(smoothed)) <= set(np.unique(noisy))
    padded = np.pad(noisy, ((0, 0), (1, 1), (1, 1)), mode="edge")
    for z, y, x in np.ndindex(*noisy.shape):  # oracle: majority of the 3x3 window, ties keep
        values, counts = np.unique(padded[z, y:y + 3, x:x + 3], return_counts=True)
        best = values[counts == counts.max()]
        assert smoothed[z, y, x] == (noisy[z, y, x] if noisy[z, y, x] in best else best[0])
