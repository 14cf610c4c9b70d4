"""Geometry of chunked sliding-window inference: exhaustive loops over small cases."""
import itertools
import math

import numpy as np
import pytest

from connectomics.inference.tiling import Tiling, axis_padding, window_starts


def test_window_starts_follow_the_predecessor_rule():
    for length, window, pad in itertools.product(range(1, 25), range(1, 12), range(0, 5)):
        for stride in range(1, window + 1):
            starts = window_starts(length, window, stride, pad)
            before, after = axis_padding(length, window, pad)
            padded = length + before + after
            if length + 2 * pad >= window:
                assert (before, after) == (pad, pad)
                assert len(starts) == 1 + math.ceil((length + 2 * pad - window) / stride)
            else:  # grown to exactly one window, split evenly
                assert padded == window and len(starts) == 1 and abs(before - after) <= 1
            assert starts[0] == -before and starts[-1] == length + after - window
            assert all(b - a == stride for a, b in zip(starts[:-2], starts[1:-1]))
            assert all(0 < b - a <= stride for a, b in zip(starts, starts[1:]))
            covered = np.zeros(padded, bool)
            for a in starts:
                covered[a + before:a + before + window] = True
            assert covered.all()


def _brute_windows(tiling, box):
    """Global windows (3D starts) that intersect ``box``, in global raster order."""
    return [s for s in itertools.product(*tiling.starts)
            if all(a < c1 and a + w > c0 for a, w, (c0, c1) in zip(s, tiling.window, box))]


def test_chunks_partition_the_volume_and_take_exactly_the_touching_windows():
    rng = np.random.default_rng(0)
    for _ in range(150):
        shape = tuple(int(v) for v in rng.integers(1, 14, 3))
        window = tuple(int(v) for v in rng.integers(1, 8, 3))
        stride = tuple(int(rng.integers(1, w + 1)) for w in window)
        pad = tuple(int(v) for v in rng.integers(0, 4, 3))
        chunk_size = tuple(int(v) for v in rng.integers(1, 10, 3))
        tiling = Tiling(shape, window, stride, pad, chunk_size)
        count = np.zeros(shape, int)
        total = 0
        for chunk in tiling.chunks():
            box = tuple(slice(a, b) for a, b in chunk.write)
            count[box] += 1
            expected = _brute_windows(tiling, chunk.write)
            assert list(chunk.windows) == expected
            for axis in range(3):
                lo = min(s[axis] for s in expected)
                hi = max(s[axis] for s in expected) + window[axis]
                assert chunk.read[axis] == (lo, hi)
                assert lo <= chunk.write[axis][0] and hi >= chunk.write[axis][1]
            total += len(chunk.windows)
        assert (count == 1).all()
        assert total == tiling.windows_computed() >= tiling.num_windows
        whole = Tiling(shape, window, stride, pad)
        assert whole.num_chunks == 1 and whole.windows_computed() == whole.num_windows


def test_chunk_geometry_example():
    tiling = Tiling((10, 100, 100), (4, 32, 32), (2, 16, 16), (1, 8, 8), (5, 50, 50))
    assert tiling.starts[1] == [-8, 8, 24, 40, 56, 72, 76]
    # border 50 moves to 56 (a window start: only 40 straddles it; 24 and 40 straddle 50)
    assert tiling.borders == ((0, 5, 10), (0, 56, 100), (0, 56, 100))
    assert tiling.grid_shape == (2, 2, 2) and tiling.num_chunks == 8
    chunk = tiling.chunk((1, 0, 1))
    assert chunk.write == ((5, 10), (0, 56), (56, 100))
    assert chunk.write_shape == (5, 56, 44) and tiling.max_chunk_shape == (5, 56, 56)
    assert chunk.read == ((3, 11), (-8, 72), (40, 108))


def _nominal_windows(tiling):
    """Windows run with plain borders every chunk_size (no moving)."""
    return math.prod(sum(len(tiling._touching(st, w, c0, min(c0 + c, n))) for c0 in range(0, n, c))
                     for n, c, w, st in zip(tiling.volume_shape, tiling.chunk_size, tiling.window, tiling.starts))


def test_moved_borders_never_run_more_windows_and_stay_near_nominal():
    rng = np.random.default_rng(2)
    fewer = 0
    for _ in range(400):
        shape = tuple(int(v) for v in rng.integers(1, 60, 3))
        window = tuple(int(v) for v in rng.integers(1, 16, 3))
        stride = tuple(int(rng.integers(1, w + 1)) for w in window)
        chunk_size = tuple(int(v) for v in rng.integers(1, 30, 3))
        tiling = Tiling(shape, window, stride, (2, 2, 2), chunk_size)
        assert tiling.windows_computed() <= _nominal_windows(tiling)
        fewer += tiling.windows_computed() < _nominal_windows(tiling)
        for borders, c, s in zip(tiling.borders, tiling.chunk_size, stride):
            assert all(abs(b - round(b / c) * c) <= s // 2 for b in borders[1:-1])
    assert fewer > 100
    big = Tiling((100, 4096, 4096), (8, 256, 256), (4, 128, 128), (2, 64, 64), (64, 512, 512))
    assert big.windows_computed() / big.num_windows < 1.6  # 2.23 with plain borders


def test_bad_geometry_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="stride 5 is larger than the window 4"):
        Tiling((8, 8, 8), (4, 4, 4), (5, 2, 2), (0, 0, 0))
    with pytest.raises(ValueError, match="window must be three integers"):
        Tiling((8, 8, 8), (4, 4), (2, 2, 2), (0, 0, 0))
    with pytest.raises(ValueError, match="pad must be three integers >= 0"):
        Tiling((8, 8, 8), (4, 4, 4), (2, 2, 2), (0, -1, 0))
    with pytest.raises(IndexError, match="outside the chunk grid"):
        Tiling((8, 8, 8), (4, 4, 4), (2, 2, 2), (0, 0, 0), (4, 4, 4)).chunk((2, 0, 0))
