"""Training windows, chunk geometry and the training-sample dataset."""
import functools

import numpy as np
import pytest

from connectomics.data.chunks import chunk_box, chunk_for_period
from connectomics.data.dataset import (TrainingSamples, collate_samples, load_training_volumes, prepare_label,
                                       sample_loader)
from connectomics.data.sampling import WindowSampler, sample_rng
from connectomics.storage import VolumeError, write_volume


def blobs(shape=(12, 40, 40)):
    label = np.zeros(shape, np.uint32)
    label[2:8, 5:15, 5:15] = 7
    label[4:10, 20:35, 18:30] = 3
    image = np.where(label > 0, 60, 160).astype(np.uint8)
    return image, label


def test_windows_are_aligned_and_deterministic():
    image, label = blobs()
    sampler = WindowSampler([image], [label], (4, 16, 16))
    a = sampler.sample(sample_rng(0, 5))
    b = sampler.sample(sample_rng(0, 5))
    assert a[3] == b[3]
    im, lb, _, box = a
    assert im.shape == lb.shape == (4, 16, 16)
    np.testing.assert_array_equal(im, image[box])
    np.testing.assert_array_equal(lb, label[box])
    boxes = {tuple((s.start, s.stop) for s in sampler.sample(sample_rng(0, i))[3]) for i in range(30)}
    assert len(boxes) > 20


def test_rejection_sampling_prefers_foreground():
    image, label = blobs((12, 80, 80))
    sampler = WindowSampler([image], [label], (4, 16, 16), reject_size=50, reject_p=1.0)
    for i in range(20):
        assert np.count_nonzero(sampler.sample(sample_rng(1, i))[1]) > 50


def test_valid_mask_rejects_unlabelled_windows():
    image, label = blobs((12, 80, 80))
    mask = np.zeros_like(image)
    mask[:, :, :40] = 1
    sampler = WindowSampler([image], [label], (4, 16, 16), masks=[mask], invalid_fraction=0.0, invalid_trials=200)
    for i in range(20):
        box = sampler.sample(sample_rng(2, i))[3]
        assert box[2].stop <= 40


def test_window_larger_than_volume_is_an_error():
    image, label = blobs((4, 16, 16))
    # a VolumeError: scripts/main.py reports it as a user error, without a traceback
    with pytest.raises(VolumeError, match="smaller than the sampled window"):
        WindowSampler([image], [label], (8, 16, 16))


@pytest.mark.parametrize("chunk", [None, ((1, 1, 1), 0, True)])
def test_bad_training_volumes_are_named_before_padding(tmp_path, chunk):
    image, label = blobs((12, 40, 40))
    path = str(tmp_path / "v.h5")
    write_volume(path + ":image", image)
    write_volume(path + ":narrow", label[:, :32])
    write_volume(path + ":flat", image[0])
    write_volume(path + ":two", np.stack([image, image]))
    load = functools.partial(load_training_volumes, pad=(2, 4, 4), chunk=chunk)
    # the stored shapes, not the padded ones (16, 48, 48) / (16, 40, 48)
    with pytest.raises(VolumeError, match=r"image .*:image has shape \(12, 40, 40\) but label .*:narrow has \(12, 32, 40\)"):
        load([path + ":image"], [path + ":narrow"])
    with pytest.raises(VolumeError, match=r":narrow has shape \(12, 32, 40\) but label .*:image has \(12, 40, 40\)"):
        load([path + ":narrow"], [path + ":image"])
    # wrong number of dimensions: named as such (not a NumPy broadcast error or a padding complaint)
    with pytest.raises(VolumeError, match=r"image .*:flat: expected a 3D \(Z, Y, X\) volume, got shape \(40, 40\)"):
        load([path + ":flat"], [path + ":flat"])
    with pytest.raises(VolumeError, match=r"got shape \(2, 12, 40, 40\)"):
        load([path + ":two"], [path + ":two"])


def test_prepare_label_relabels_and_checks():
    label = np.array([[[0, 5, 5], [9, 9, 0]]], np.int64)
    out = prepare_label(label, "x")
    assert out.dtype == np.uint32 and sorted(np.unique(out)) == [0, 1, 2]
    with pytest.raises(VolumeError, match="non-integer"):
        prepare_label(label + 0.5, "x.h5")


def test_chunk_geometry_matches_predecessor():
    shape = (400, 4096, 4096)
    boxes = [chunk_box(shape, (8, 2, 2), i) for i in range(32)]
    assert boxes[0] == ((0, 88), (0, 2730), (0, 2730))
    assert boxes[31] == ((311, 400), (1365, 4096), (1365, 4096))
    assert chunk_box(shape, (1, 1, 1), 0) == ((0, 400), (0, 4096), (0, 4096))
    assert chunk_box((10, 10, 10), (2, 1, 1), 1, overlap=False) == ((5, 10), (0, 10), (0, 10))
    order = [chunk_for_period(p, range(4), seed=3) for p in range(8)]
    assert sorted(order[:4]) == [0, 1, 2, 3] and sorted(order[4:]) == [0, 1, 2, 3]


def test_chunked_volumes_are_read_with_padding(tmp_path):
    image, label = blobs((12, 40, 40))
    write_volume(str(tmp_path / "v.h5:image"), image)
    write_volume(str(tmp_path / "v.h5:label"), label)
    images, labels, _ = load_training_volumes([str(tmp_path / "v.h5:image")], [str(tmp_path / "v.h5:label")],
                                              pad=(1, 2, 2), chunk=((2, 1, 1), 0, True))
    assert images[0].shape == (8 + 2, 44, 44)  # chunk 0 of 2 with overlap: z 0..8, plus padding
    np.testing.assert_array_equal(images[0][1:9, 2:42, 2:42], image[0:8])
    np.testing.assert_array_equal(images[0][0], image[1][np.ix_(np.r_[2, 1, 0:40, 38, 37], np.r_[2, 1, 0:40, 38, 37])])


def test_training_samples_and_collate():
    image, label = blobs((12, 48, 48))
    sampler = WindowSampler([image], [label], (4, 16, 16))
    data = TrainingSamples(sampler, None, ["0", "4-1-1"], [["1"], ["0"]], seed=0)
    im, targets, weights = data[3]
    assert im.shape == (1, 4, 16, 16) and im.dtype == np.float32 and im.max() <= 1
    assert [t.shape for t in targets] == [(1, 4, 16, 16)] * 2
    assert weights[1] is None and weights[0].shape == (1, 4, 16, 16)
    np.testing.assert_array_equal(data[3][0], im)  # the same index gives the same sample
    batch = collate_samples([data[0], data[1]])
    assert batch[0].shape == (2, 1, 4, 16, 16) and batch[2][1] is None
    loader = sample_loader(data, 2, range(10, 14), 0)
    first = next(iter(loader))
    np.testing.assert_array_equal(first[0][0].numpy(), data[10][0])
