"""Boxes, the block grid and mirrored reads (connectomics.geometry): against brute force."""
import numpy as np
import pytest

from connectomics.geometry import BlockGrid, Box, read_box, reflect_index, slices


def test_box_operations():
    box = Box([(2, 5), (0, 4), (1, 9)])
    assert box == ((2, 5), (0, 4), (1, 9)) and isinstance(box, tuple) and hash(box) == hash(tuple(box))
    assert box.begin == (2, 0, 1) and box.end == (5, 4, 9) and box.shape == (3, 4, 8) and box.size == 96
    assert box.grow(1) == ((1, 6), (-1, 5), (0, 10)) and box.grow((0, 1, -1)) == ((2, 5), (-1, 5), (2, 8))
    assert box.shift((1, -1, 0)) == ((3, 6), (-1, 3), (1, 9))
    assert box.grow(2).clip((6, 5, 10)) == ((0, 6), (0, 5), (0, 10))
    assert box.intersect(Box.at((4, 3, 0), (9, 9, 2))) == ((4, 5), (3, 4), (1, 2))
    far = box.intersect(Box.at((7, 0, 0), (1, 1, 1)))
    assert far.empty and far.size == 0 and not box.empty
    assert Box.of_shape((3, 4, 5)).contains(Box.at((1, 1, 1), (2, 3, 4)))
    assert not Box.of_shape((3, 4, 5)).contains(Box.at((1, 1, 1), (3, 3, 4)))
    volume = np.arange(6 * 7 * 10).reshape(6, 7, 10)
    part = volume[box.slices()]
    assert part.shape == box.shape and part[0, 0, 0] == volume[2, 0, 1]
    inner = Box.at((3, 1, 2), (1, 2, 3))
    assert np.array_equal(part[inner.slices(box)], volume[inner.slices()])
    assert inner.slices(box) == inner.slices(box.begin) == slices(list(inner), list(box))


def test_reflect_index_matches_numpy_pad_even_for_long_pads():
    for length in range(1, 7):
        for pad in range(0, 15):
            base = np.arange(length)
            expected = np.pad(base, pad, mode="reflect") if length > 1 else np.zeros(length + 2 * pad, int)
            got = reflect_index(np.arange(-pad, length + pad), length)
            assert np.array_equal(got, expected), (length, pad)
            assert reflect_index(-pad, length) == expected[0]


def test_read_box_equals_padding_the_whole_volume_first():
    rng = np.random.default_rng(1)
    for _ in range(100):
        shape = tuple(int(v) for v in rng.integers(1, 9, 3))
        volume = rng.integers(0, 255, shape, dtype=np.uint8)
        pad = 12
        padded = np.pad(volume, pad, mode="reflect") if min(shape) > 1 else None
        box = []
        for n in shape:
            a = int(rng.integers(-pad, n + pad - 1))
            box.append((a, int(rng.integers(a + 1, n + pad + 1))))
        got = read_box(volume, tuple(box))
        index = np.ix_(*[reflect_index(np.arange(a, b), n) for (a, b), n in zip(box, shape)])
        assert np.array_equal(got, volume[index])
        if padded is not None:
            assert np.array_equal(got, padded[tuple(slice(a + pad, b + pad) for a, b in box)])


def test_read_box_inside_the_volume_is_one_slice():
    volume = np.arange(6 * 7 * 8, dtype=np.uint8).reshape(6, 7, 8)
    assert np.array_equal(read_box(volume, ((1, 4), (0, 7), (2, 5))), volume[1:4, :, 2:5])


def test_block_grid_geometry():
    grid = BlockGrid((10, 20, 30), (4, 8, 30))
    assert grid.grid_shape == (3, 3, 1) and len(grid) == 9
    assert grid.box((2, 1, 0)) == ((8, 10), (8, 16), (0, 30))
    assert grid.box((0, 0, 0), halo=(2, 3, 4)) == ((0, 6), (0, 11), (0, 30))
    covered = np.zeros((10, 20, 30), int)
    for index in grid.indices():
        covered[tuple(slice(a, b) for a, b in grid.box(index))] += 1
    assert (covered == 1).all()
    owners = grid.owners(((3, 9), (7, 9), (0, 30)))
    assert [index for index, _ in owners] == [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0), (2, 0, 0), (2, 1, 0)]
    assert sum(np.prod([b - a for a, b in sub]) for _, sub in owners) == 6 * 2 * 30


def test_block_grid_boxes_and_errors():
    grid = BlockGrid((5, 7, 3), (2, 3, 8))
    assert grid.block == (2, 3, 3) and [grid.flat(i) for i in grid.indices()] == list(range(len(grid)))
    assert grid.boxes() == [grid.box(i) for i in grid.indices()] and all(isinstance(b, Box) for b in grid.boxes())
    with pytest.raises(ValueError, match="block size must be three integers >= 1"):
        BlockGrid((5, 7, 3), (0, 3, 3))
